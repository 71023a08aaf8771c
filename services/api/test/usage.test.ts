// What each container uses (issue 17), checked against the kernel's own numbers on real
// containers: memory a container fills shows within 10%, bytes it sends over its veth show, a busy
// loop shows CPU near one core, a stopped container shows its disk only; the state route's
// scopes, container.usage events (opt-in, at the asked interval) and the per-container
// Prometheus series of the worker.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerStateReport, HostInfo } from '@lxcq/shared';
import { Stack, TEST_CONFIG, type Job } from './harness.ts';
import { Sub } from './ws-client.ts';
import { lxcq } from '../../../packages/client/test/helpers.ts';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const VIEWER = 'usage-viewer-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'lxcq-usage-'));
const tokensFile = join(dir, 'tokens.json');
writeFileSync(tokensFile, JSON.stringify({ tokens: [{ name: 'viewer', token: VIEWER, scopes: ['read'] }] }));
const MiB = 1024 * 1024;

let s: Stack;
const subs: Sub[] = [];

beforeAll(async () => {
  s = await Stack.start({
    tokensFile,
    workerEnv: {
      LXCQ_USAGE_INTERVAL_MS: '1000',
      LXCQ_USAGE_DISK_INTERVAL_MS: '2000',
      LXCQ_METRICS_BIND: '127.0.0.1:0',
    },
  });
}, 120_000);
afterAll(async () => {
  for (const sub of subs) sub.ws.terminate();
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function ok(method: string, path: string, body?: unknown): Promise<Job> {
  const j = await s.run(method, path, body);
  expect(j.state, `${method} ${path}: ${JSON.stringify(j.error)}`).toBe('completed');
  return j;
}

async function exec(
  name: string,
  script: string,
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const j = await ok('POST', `/v1/containers/${name}/exec`, { argv: ['sh', '-c', script] });
  return j.result as { exitCode: number; stdout: string; stderr: string };
}

const state = async (name: string, token?: string) => {
  const r = await s.http<ContainerStateReport>('GET', `/v1/containers/${name}/state`, undefined, {
    ...(token ? { token } : {}),
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
};

/** Polls the state until `pred` holds (the worker collects every second here). */
async function stateUntil(
  name: string,
  what: string,
  pred: (s: ContainerStateReport) => boolean,
  ms = 30_000,
): Promise<ContainerStateReport> {
  const deadline = Date.now() + ms;
  for (;;) {
    const st = await state(name);
    if (pred(st)) return st;
    if (Date.now() > deadline)
      throw new Error(`${name}: ${what}: still ${JSON.stringify(st)} after ${ms} ms`);
    await sleep(200);
  }
}

/** The container's cgroup file, read by the test itself (v1 controller dir, or the v2 one). */
function kernelFile(pid: number, controller: string, v1: string, v2: string): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  for (const l of lines) {
    const [, ctrls, path] = l.split(':') as [string, string, string];
    if (ctrls.split(',').includes(controller))
      return readFileSync(`/sys/fs/cgroup/${controller}${path}/${v1}`, 'utf8');
  }
  const v2path = lines.find((l) => l.startsWith('0::'))?.slice(3) ?? '/';
  return readFileSync(`/sys/fs/cgroup/unified${v2path}/${v2}`, 'utf8');
}

async function initPid(name: string): Promise<number> {
  const r = await s.http<{ pid?: number }>('GET', `/v1/containers/${name}`);
  expect(r.body.pid, `${name} has an init pid`).toBeGreaterThan(0);
  return r.body.pid as number;
}

function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      have[l[1] as string] = l[2] as string;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function workerMetrics(): Promise<string> {
  const h = await s.http<{ metrics?: string }>('GET', `/v1/hosts/${s.hostId}`);
  const res = await fetch(`http://${h.body.metrics}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

describe('usage of a running container, against the kernel', () => {
  it('host totals follow the registry at once: a start shows in GET /v1/hosts/:id before any heartbeat', async () => {
    await ok('POST', '/v1/containers', { name: 'mem', template: 'busybox', config: TEST_CONFIG });
    const before = await s.http<HostInfo>('GET', `/v1/hosts/${s.hostId}`);
    expect(before.body.totals).toMatchObject({ containers: 1, running: 0 });
    await ok('POST', '/v1/containers/mem/start');
    // no wait: the job's end rewrote the registry record, and the totals come from it
    const after = await s.http<HostInfo>('GET', `/v1/hosts/${s.hostId}`);
    expect(after.body.totals).toMatchObject({ containers: 1, running: 1 });
    expect(after.body.capabilities).toMatchObject({ containers: 1, running: 1 });
    const list = await s.http<HostInfo[]>('GET', '/v1/hosts');
    expect(list.body.find((h) => h.id === s.hostId)?.totals).toMatchObject({ containers: 1, running: 1 });
  });

  it('a container that fills 64 MiB of tmpfs shows it in memory (within 10%) and in cache, as the kernel counts', async () => {
    const base = await stateUntil('mem', 'first figures', (st) => st.memory !== undefined);
    expect(base.state).toBe('RUNNING');
    expect(base.memory?.limitBytes).toBeNull();
    expect(base.pids?.current).toBeGreaterThan(0);
    expect(base.uptimeSeconds).toBeGreaterThanOrEqual(0);
    const r = await exec('mem', 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=64 2>&1 && sync');
    expect(r.exitCode, r.stdout).toBe(0);
    const st = await stateUntil(
      'mem',
      'memory after filling 64 MiB',
      (x) => (x.memory?.bytes ?? 0) - (base.memory?.bytes ?? 0) > 0.9 * 64 * MiB,
    );
    const pid = await initPid('mem');
    const kernel = Number(kernelFile(pid, 'memory', 'memory.usage_in_bytes', 'memory.current'));
    const grown = (st.memory?.bytes ?? 0) - (base.memory?.bytes ?? 0);
    expect(Math.abs(grown - 64 * MiB) / (64 * MiB), `grew by ${grown}`).toBeLessThan(0.1);
    expect(
      Math.abs((st.memory?.bytes ?? 0) - kernel) / kernel,
      `reported ${st.memory?.bytes}, kernel ${kernel}`,
    ).toBeLessThan(0.1);
    expect(st.memory?.cacheBytes).toBeGreaterThan(0.9 * 64 * MiB);
    expect(st.memory?.peakBytes).toBeGreaterThanOrEqual(st.memory?.bytes ?? Infinity);
    // the same figure on the worker's /metrics, and the host total includes it
    const text = await workerMetrics();
    expect(sample(text, 'lxcq_container_memory_bytes', { name: 'mem', host: s.hostId })).toBeGreaterThan(
      0.9 * 64 * MiB,
    );
    expect(sample(text, 'lxcq_container_running', { name: 'mem' })).toBe(1);
    const h = await s.http<HostInfo>('GET', `/v1/hosts/${s.hostId}`);
    expect(h.body.totals?.memoryBytes).toBeGreaterThan(0.9 * 64 * MiB);
    await exec('mem', 'rm -f /dev/shm/fill');
  });

  it('the limits in force show next to the usage', async () => {
    await ok('PUT', '/v1/containers/mem/limits', { memory: '256M', cpus: 1.5, pids: 100 });
    const st = await stateUntil('mem', 'the limits', (x) => x.memory?.limitBytes === 256 * MiB);
    expect(st.memory?.limitBytes).toBe(256 * MiB);
    expect(st.cpu?.limitCores).toBe(1.5);
    expect(st.pids?.limit).toBe(100);
  });

  it('a busy loop shows the CPU cpuacct gives it over the same time (up to one core)', async () => {
    const r = await exec('mem', 'setsid timeout 12 sh -c "while :; do :; done" </dev/null >/dev/null 2>&1 &');
    expect(r.exitCode).toBe(0);
    const pid = await initPid('mem');
    const cpuNs = () => {
      const v1 = (() => {
        try {
          return Number(kernelFile(pid, 'cpuacct', 'cpuacct.usage', 'cpu.stat'));
        } catch {
          return NaN;
        }
      })();
      if (Number.isFinite(v1)) return v1;
      return Number(/usage_usec (\d+)/.exec(kernelFile(pid, 'cpu', 'cpu.stat', 'cpu.stat'))?.[1]) * 1000;
    };
    // The kernel's own figure over 3 s, and ours over the passes in the same 3 s.
    await sleep(1500);
    const k0 = cpuNs();
    const t0 = process.hrtime.bigint();
    const seen: number[] = [];
    const until = Date.now() + 3000;
    let last = '';
    while (Date.now() < until) {
      const st = await state('mem');
      if (st.collectedAt !== last && st.cpu?.percent !== null && st.cpu?.percent !== undefined) {
        last = st.collectedAt ?? '';
        seen.push(st.cpu.percent);
      }
      await sleep(250);
    }
    const kernelPct = ((cpuNs() - k0) / Number(process.hrtime.bigint() - t0)) * 100;
    const ours = seen.reduce((a, b) => a + b, 0) / seen.length;
    expect(seen.length).toBeGreaterThanOrEqual(2);
    // One core: at most a little over 100 (rounding of the interval); a loaded 2-core machine may
    // give the loop less, so the kernel's own figure is the reference.
    expect(kernelPct, 'the loop ran').toBeGreaterThan(25);
    expect(ours, `ours ${seen.join(',')} vs kernel ${kernelPct.toFixed(1)}`).toBeGreaterThan(kernelPct - 20);
    expect(ours).toBeLessThan(Math.min(kernelPct + 20, 110));
    const st = await state('mem');
    expect(st.cpu?.seconds).toBeGreaterThan(1);
    expect(st.cpu?.seconds).toBeLessThanOrEqual(cpuNs() / 1e9);
    const text = await workerMetrics();
    expect(sample(text, 'lxcq_container_cpu_seconds_total', { name: 'mem' })).toBeGreaterThan(1);
  });
});

describe('network', () => {
  it('a container that sends 10 MiB over its veth shows it in tx bytes, as its /proc/net/dev counts them', async () => {
    await ok('POST', '/v1/containers', {
      name: 'net',
      template: 'busybox',
      config: { 'lxc.net.0.type': 'veth', 'lxc.net.0.link': 'lxcbr0', 'lxc.net.0.flags': 'up' },
    });
    await ok('POST', '/v1/containers/net/start');
    const ip = `10.0.3.${150 + Math.floor(Math.random() * 100)}`;
    expect((await exec('net', `ip addr add ${ip}/24 dev eth0 && ip link set eth0 up`)).exitCode).toBe(0);
    let received = 0;
    const server = net.createServer((sock) => {
      sock.on('data', (d: Buffer) => {
        received += d.length;
        if (received >= 10 * MiB) sock.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '10.0.3.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const base = await stateUntil('net', 'first figures', (x) => x.network?.eth0 !== undefined);
      const r = await exec('net', `dd if=/dev/zero bs=1M count=10 2>/dev/null | nc -w 5 10.0.3.1 ${port}`);
      expect(received, `nc: ${r.stdout} ${r.stderr}`).toBeGreaterThanOrEqual(10 * MiB);
      const baseTx = base.network?.eth0?.tx.bytes ?? 0;
      const st = await stateUntil(
        'net',
        'tx after 10 MiB',
        (x) => (x.network?.eth0?.tx.bytes ?? 0) - baseTx >= 10 * MiB,
      );
      const sent = (st.network?.eth0?.tx.bytes ?? 0) - baseTx;
      // 10 MiB of payload plus TCP/IP headers (~3-5%)
      expect(sent / (10 * MiB), `sent ${sent}`).toBeLessThan(1.1);
      // (packets: veth segments are offloaded, up to 64 KiB each, so no lower bound from the MTU)
      expect(st.network?.eth0?.tx.packets).toBeGreaterThan(0);
      expect(st.network?.eth0?.rx.packets).toBeGreaterThan(0); // the ACKs
      const pid = await initPid('net');
      const dev = readFileSync(`/proc/${pid}/net/dev`, 'utf8');
      const kernelTx = Number(/eth0:\s*(?:\d+\s+){8}(\d+)/.exec(dev)?.[1]);
      expect(kernelTx).toBeGreaterThanOrEqual(st.network?.eth0?.tx.bytes ?? Infinity);
      expect(st.network?.lo).toBeDefined();
      const text = await workerMetrics();
      expect(
        sample(text, 'lxcq_container_network_transmit_bytes_total', { name: 'net', interface: 'eth0' }),
      ).toBeGreaterThanOrEqual(10 * MiB);
    } finally {
      server.close();
      await ok('POST', '/v1/containers/net/stop');
      await ok('DELETE', '/v1/containers/net');
    }
  });
});

describe('a stopped container', () => {
  it('shows its disk only, as du measures it, on the state route and /metrics', async () => {
    await ok('POST', '/v1/containers/mem/stop');
    const stoppedAt = new Date().toISOString();
    const st = await stateUntil(
      'mem',
      'a pass after the stop, with a disk figure',
      (x) => x.state === 'STOPPED' && x.disk !== null && (x.collectedAt ?? '') > stoppedAt,
    );
    expect(st.cpu).toBeUndefined();
    expect(st.memory).toBeUndefined();
    expect(st.network).toBeUndefined();
    expect(st.pids).toBeUndefined();
    const du = Number(
      execFileSync('du', ['-s', '-x', '-B1', join(s.lxcpath, 'mem', 'rootfs')], { encoding: 'utf8' }).split(
        /\s/,
      )[0],
    );
    expect(Math.abs((st.disk?.usedBytes ?? 0) - du) / du).toBeLessThan(0.1);
    const text = await workerMetrics();
    expect(sample(text, 'lxcq_container_running', { name: 'mem' })).toBe(0);
    expect(sample(text, 'lxcq_container_disk_used_bytes', { name: 'mem' })).toBeGreaterThan(0);
    expect(sample(text, 'lxcq_container_memory_bytes', { name: 'mem' })).toBeUndefined();
    const h = await s.http<HostInfo>('GET', `/v1/hosts/${s.hostId}`);
    expect(h.body.totals).toMatchObject({ containers: 1, running: 0 });
  });
});

describe('access and events', () => {
  it('a read token reads the state; no token is 401; an unknown container is 404', async () => {
    expect((await state('mem', VIEWER)).name).toBe('mem');
    const none = await s.http('GET', '/v1/containers/mem/state', undefined, { token: null });
    expect(none.status).toBe(401);
    const missing = await s.http<{ error: { code: string } }>('GET', '/v1/containers/nosuch/state');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('LXCQ_CONTAINER_NOT_FOUND');
  });

  it('container.usage events: only for a subscriber that names them, at its interval, never oftener', async () => {
    await expect(Sub.open(s.url, '?interval=2', { token: VIEWER })).rejects.toMatchObject({ status: 400 });
    await expect(
      Sub.open(s.url, '?types=container.usage&interval=0', { token: VIEWER }),
    ).rejects.toMatchObject({ status: 400 });
    await ok('POST', '/v1/containers/mem/start');
    const every = await Sub.open(s.url, '?types=*', { token: VIEWER });
    const usage = await Sub.open(s.url, '?types=container.usage&interval=2&container=mem', { token: VIEWER });
    subs.push(every, usage);
    const t0 = Date.now();
    await usage.until((m) => m.filter((x) => x.type === 'container.usage').length >= 4, 30_000);
    const evs = usage.events();
    expect(
      evs.every((e) => e.type === 'container.usage' && e.container === 'mem' && e.host === s.hostId),
    ).toBe(true);
    expect(evs.every((e) => e.id === '')).toBe(true);
    // at 2 s with passes every second: 4 events take 6 s at least (less half a period of slack each)
    expect(Date.now() - t0).toBeGreaterThan(3 * 1500);
    const times = evs.map((e) => Date.parse((e.data as { collectedAt: string }).collectedAt));
    for (let i = 1; i < times.length; i++)
      expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(1500);
    expect((evs[0]?.data as { state: string }).state).toBe('RUNNING');
    expect(every.events().some((e) => e.type === 'container.usage')).toBe(false);
    await ok('POST', '/v1/containers/mem/stop');
  });

  it('lxcq show prints the usage (and --json the state report); lxcq top --json one table; lxcq top redraws live', async () => {
    const env = { HOME: dir, LXCQ_URL: s.url, LXCQ_TOKEN: VIEWER };
    await ok('POST', '/v1/containers/mem/start');
    await stateUntil(
      'mem',
      'running figures',
      (x) => x.cpu?.percent !== null && x.cpu?.percent !== undefined,
    );
    const show = await lxcq(['show', 'mem'], env);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^cpu:\s+.*% of one core \(limit 1\.5 cores\)/m);
    expect(show.stdout).toMatch(/^memory:\s+.*\(limit 256M\)/m);
    expect(show.stdout).toMatch(/^pids:\s+\d+ \(limit 100\)/m);
    const shown = JSON.parse((await lxcq(['show', '--json', 'mem'], env)).stdout) as {
      name: string;
      usage: ContainerStateReport;
    };
    expect(shown.name).toBe('mem');
    expect(shown.usage.memory?.limitBytes).toBe(256 * MiB);
    const top = await lxcq(['top', '--json'], env);
    expect(top.code, top.stderr).toBe(0);
    const rows = JSON.parse(top.stdout) as (ContainerStateReport & { host: string })[];
    expect(rows.map((r) => [r.name, r.host, r.state])).toEqual([['mem', s.hostId, 'RUNNING']]);
    // live: two frames of the table, each listing mem, from container.usage events
    const bin = fileURLToPath(new URL('../../../packages/client/bin/lxcq.mjs', import.meta.url));
    const child = spawn(process.execPath, [bin, 'top', '--interval', '1', '--sort', 'memory'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const deadline = Date.now() + 30_000;
      while ((out.match(/lxcq top/g) ?? []).length < 3 && Date.now() < deadline) await sleep(200);
      const frames = out.split('\x1b[H\x1b[2J').filter(Boolean);
      expect(frames.length, out).toBeGreaterThanOrEqual(3);
      const last = frames[frames.length - 1] as string;
      expect(last).toMatch(/sorted by memory/);
      expect(last).toMatch(/^NAME\s+HOST\s+STATE\s+CPU\s+MEMORY\s+PIDS\s+RX\s+TX\s+DISK$/m);
      expect(last).toMatch(new RegExp(`^mem\\s+${s.hostId}\\s+RUNNING\\s+\\S+%/150%\\s+\\S+/256M`, 'm'));
    } finally {
      child.kill('SIGTERM');
    }
    await ok('POST', '/v1/containers/mem/stop');
  });
});
