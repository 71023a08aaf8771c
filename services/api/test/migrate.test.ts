// Migration and cross-host clone between simulated hosts (a worker process each, own lxcpath):
// cold, live (CRIU: a counter goes on counting on the target), a transfer cut mid-stream, a wrong
// transfer token, and a clone onto another host.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '@lxcq/shared';
import { criuStatus } from '../../../packages/lxc-ffi/src/host.ts';
import { Stack, TEST_CONFIG, type Job } from './harness.ts';

let s: Stack;
const lxcpaths = new Map<string, string>();
let proxy: Server | null = null;
// CRIU as the workers see it (`criu check` and the socket probe), known before the tests are
// collected; the hosts' heartbeats must agree. In CI ($CI) or with LXCQ_REQUIRE_CRIU=1 a host
// without a usable CRIU fails this file: there scripts/setup-host.sh installs one.
const criuHere = criuStatus();
const criu = criuHere.available;
const criuRequired = Boolean(process.env['CI']) || process.env['LXCQ_REQUIRE_CRIU'] === '1';
let hostsCriu = false;

/** A TCP proxy in front of h3's transfer server that cuts every connection after `cutAfter` bytes. */
async function cuttingProxy(targetPort: number, cutAfter: number): Promise<{ server: Server; port: number }> {
  const server = createServer((client: Socket) => {
    const upstream = connect(targetPort, '127.0.0.1');
    let seen = 0;
    client.on('data', (d: Buffer) => {
      seen += d.length;
      if (seen > cutAfter) {
        client.destroy();
        upstream.destroy();
        return;
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => client.write(d));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as AddressInfo).port };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

// h4 lives in a network namespace of its own, reached over a veth pair this file makes and removes:
// its transfers cross a real link that a test can slow down (tc) and cut (link down: no RST, the
// packets just stop, as when a cable or a host's network dies).
const NS = `lxcq-t${process.pid}`;
const VETH = `lxqv${process.pid % 100_000}`;
const OCTET = 1 + (process.pid % 250);
const NS_IP = `169.254.${OCTET}.2`;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

function makeNetns(): void {
  ip('netns', 'add', NS);
  ip('link', 'add', `${VETH}a`, 'type', 'veth', 'peer', 'name', `${VETH}b`);
  ip('link', 'set', `${VETH}b`, 'netns', NS);
  ip('addr', 'add', `169.254.${OCTET}.1/30`, 'dev', `${VETH}a`);
  ip('link', 'set', `${VETH}a`, 'up');
  ip('-n', NS, 'addr', 'add', `${NS_IP}/30`, 'dev', `${VETH}b`);
  ip('-n', NS, 'link', 'set', `${VETH}b`, 'up');
  ip('-n', NS, 'link', 'set', 'lo', 'up');
}

function removeNetns(): void {
  for (const args of [
    ['link', 'del', `${VETH}a`],
    ['netns', 'del', NS],
  ])
    try {
      ip(...args);
    } catch {
      // already gone
    }
}

beforeAll(async () => {
  // A silent transfer connection is cut after 4 s here (60 s by default), so a cut link shows quickly;
  // a worker restarted mid-move may take over 10 s to heartbeat again on a loaded machine.
  s = await Stack.start({
    hostId: 'h1',
    workerEnv: { LXCQ_TRANSFER_IDLE_MS: '4000' },
    apiEnv: { LXCQ_HOST_OFFLINE_MS: '30000' },
  });
  lxcpaths.set('h1', s.lxcpath);
  lxcpaths.set('h2', await s.addHost('h2'));
  const h3Port = await freePort();
  const p = await cuttingProxy(h3Port, 256 * 1024);
  proxy = p.server;
  lxcpaths.set(
    'h3',
    await s.addHost('h3', {
      LXCQ_TRANSFER_BIND: `127.0.0.1:${h3Port}`,
      LXCQ_TRANSFER_ADVERTISE: `127.0.0.1:${p.port}`,
    }),
  );
  makeNetns();
  lxcpaths.set('h4', await s.addHost('h4', { LXCQ_TRANSFER_BIND: `${NS_IP}:0` }, { netns: NS }));
  const hosts = await s.http<{ id: string; capabilities: { criu: boolean } }[]>('GET', '/v1/hosts');
  hostsCriu = hosts.body.every((h) => h.capabilities.criu);
}, 300_000);
afterAll(async () => {
  await s?.close();
  removeNetns();
  await new Promise((r) => (proxy ? proxy.close(r) : r(undefined)));
});

const ls = (host: string) =>
  execFileSync('lxc-ls', ['-P', lxcpaths.get(host) as string, '-1'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
const state = (host: string, name: string) =>
  /State:\s+(\S+)/.exec(
    execFileSync('lxc-info', ['-P', lxcpaths.get(host) as string, '-n', name, '-s'], { encoding: 'utf8' }),
  )?.[1];
const incoming = (host: string) => {
  const d = join(lxcpaths.get(host) as string, '.lxcq', 'incoming');
  return existsSync(d) ? readdirSync(d) : [];
};
const leaving = (host: string) => {
  const d = join(lxcpaths.get(host) as string, '.lxcq', 'leaving');
  return existsSync(d) ? readdirSync(d) : [];
};
/** Waits for a host's worker to die (a failpoint kills it). */
async function waitExit(host: string): Promise<void> {
  const child = s.hosts.get(host)?.child;
  if (!child) throw new Error(`host ${host} has no worker`);
  if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
  expect(child.signalCode).toBe('SIGKILL');
}
/**
 * Makes `name` on h2, restarts h2 with a failpoint, and submits its move to h1: returns the
 * submitted job once h2 has killed itself at that point, and the event cursor from just before
 * the move (after the create).
 */
async function moveFromH2Dying(
  name: string,
  failpoint: string,
): Promise<{ sub: { body: { id: string } }; from: string }> {
  await s.restartHost('h2', { LXCQ_FAILPOINTS: failpoint });
  const j = await s.run('POST', '/v1/containers', {
    name,
    template: 'busybox',
    config: TEST_CONFIG,
    host: 'h2',
  });
  expect(j.state, JSON.stringify(j.error)).toBe('completed');
  const from = (await s.redis.xrevrange('lxcq:events', '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
  const sub = await s.http<{ id: string }>('POST', `/v1/containers/${name}/migrate`, { targetHost: 'h1' });
  expect(sub.status).toBe(202);
  await waitExit('h2');
  return { sub, from };
}
const registryHost = async (name: string) =>
  (await s.http<{ host: string }>('GET', `/v1/containers/${name}`)).body.host;

/**
 * Puts in a rootfs what a plain copy tends to lose, and returns a function describing those
 * files in a rootfs (null: the original's description, taken now).
 */
function fidelityFixture(rootfs: string): (other: string | null) => Record<string, string> {
  const sh = (cmd: string) =>
    execFileSync('sh', ['-c', cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const q = (p: string) => `'${p}'`;
  const f = (n: string) => join(rootfs, 'fid', n);
  sh(`mkdir -p ${q(join(rootfs, 'fid'))}`);
  writeFileSync(f('cap'), 'x');
  sh(`setcap cap_net_raw+ep ${q(f('cap'))}`);
  writeFileSync(f('xattr'), 'x');
  sh(`setfattr -n user.lxcq -v kept ${q(f('xattr'))}`);
  writeFileSync(f('acl'), 'x');
  sh(`setfacl -m u:4242:rw ${q(f('acl'))}`);
  sh(`mknod ${q(f('null'))} c 1 3 && mkfifo ${q(f('fifo'))}`);
  writeFileSync(f('owned'), 'x');
  sh(`chown 100000:100007 ${q(f('owned'))} && chmod 4751 ${q(f('owned'))}`);
  writeFileSync(f('linked'), 'x');
  sh(`ln ${q(f('linked'))} ${q(f('hardlink'))}`);
  sh(`truncate -s 64M ${q(f('sparse'))}`);
  const describe = (root: string) => {
    const g = (n: string) => join(root, 'fid', n);
    return {
      cap: sh(`getcap ${q(g('cap'))}`).replace(root, ''),
      xattr: sh(`getfattr --only-values -n user.lxcq ${q(g('xattr'))}`),
      acl: sh(`getfacl -c ${q(g('acl'))}`),
      nodes: sh(`stat -c '%F %t:%T' ${q(g('null'))} ${q(g('fifo'))}`),
      owned: sh(`stat -c '%u:%g %a' ${q(g('owned'))}`),
      links: sh(`stat -c '%h %i' ${q(g('linked'))} ${q(g('hardlink'))}`)
        .trim()
        .split('\n')
        .map((l) => l.split(' ')[0])
        .join(','),
      sameInode: String(
        new Set(
          sh(`stat -c '%i' ${q(g('linked'))} ${q(g('hardlink'))}`)
            .trim()
            .split('\n'),
        ).size === 1,
      ),
      sparse: sh(`stat -c '%s %b' ${q(g('sparse'))}`),
    };
  };
  const original = describe(rootfs);
  return (other) => (other === null ? original : describe(other.replace(/\/rootfs$/, '') + '/rootfs'));
}

const CRIU_CONFIG = {
  'lxc.net.0.type': 'empty',
  'lxc.tty.max': '0',
  'lxc.init.cmd': '/bin/sh /count.sh',
};
const COUNT_SH = 'i=0\nwhile true; do i=$((i+1)); echo $i > /count; sleep 0.1; done\n';

async function counter(name: string): Promise<number> {
  // `echo $i > /count` truncates before it writes: a read can fall in between (empty), read again
  for (let i = 0; ; i++) {
    const j = await s.run('POST', `/v1/containers/${name}/exec`, { argv: ['cat', '/count'] });
    const out = (j.result as { stdout: string }).stdout.trim();
    if (out !== '' || i === 5) return Number(out);
    await sleep(50);
  }
}

async function makeCounter(name: string): Promise<void> {
  let j = await s.run('POST', '/v1/containers', {
    name,
    template: 'busybox',
    config: CRIU_CONFIG,
    host: 'h1',
  });
  expect(j.state, JSON.stringify(j.error)).toBe('completed');
  j = await s.run('PATCH', `/v1/containers/${name}/config`, {
    clear: ['lxc.apparmor.profile', 'lxc.apparmor.allow_nesting'],
  });
  expect(j.state, JSON.stringify(j.error)).toBe('completed');
  writeFileSync(join(s.lxcpath, name, 'rootfs', 'count.sh'), COUNT_SH);
  j = await s.run('POST', `/v1/containers/${name}/start`);
  expect(j.result).toMatchObject({ state: 'RUNNING' });
  await sleep(500);
}

describe('migrate', () => {
  it('CRIU: the hosts report what this host has, and CI requires it', () => {
    expect(hostsCriu, criuHere.reason).toBe(criu);
    if (criuRequired)
      expect(
        criu,
        `CRIU is required here ($CI or LXCQ_REQUIRE_CRIU=1) but not usable: ${criuHere.reason}`,
      ).toBe(true);
  });

  it('moves a stopped container cold; later operations go to its new host', async () => {
    let j = await s.run('POST', '/v1/containers', {
      name: 'm1',
      template: 'busybox',
      config: TEST_CONFIG,
      host: 'h1',
    });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    writeFileSync(join(s.lxcpath, 'm1', 'rootfs', 'marker'), 'from h1\n');
    const fidelity = fidelityFixture(join(s.lxcpath, 'm1', 'rootfs'));
    j = await s.run('POST', '/v1/containers/m1/migrate', { targetHost: 'h2' });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    const m = (j.result as { migration: { bytes: number; ms: number } }).migration;
    expect(m.bytes).toBeGreaterThan(100_000);
    console.log(`cold migration of a busybox container: ${m.ms} ms, ${m.bytes} bytes`);
    expect(j.result).toMatchObject({ name: 'm1', host: 'h2', state: 'STOPPED' });
    expect(ls('h1')).not.toContain('m1');
    expect(ls('h2')).toContain('m1');
    expect(await registryHost('m1')).toBe('h2');
    const cfg = readFileSync(join(lxcpaths.get('h2') as string, 'm1', 'config'), 'utf8');
    expect(cfg).toContain(`lxc.rootfs.path = dir:${lxcpaths.get('h2')}/m1/rootfs`);
    expect(cfg).not.toContain(s.lxcpath);
    // Everything a real rootfs carries besides bytes arrived: owners, modes, capabilities,
    // extended attributes, ACLs, device nodes, hard links, sparse files.
    expect(fidelity(join(lxcpaths.get('h2') as string, 'm1', 'rootfs'))).toEqual(fidelity(null));
    j = await s.run('POST', '/v1/containers/m1/start');
    expect(j.host).toBe('h2');
    expect(j.result).toMatchObject({ state: 'RUNNING', host: 'h2' });
    expect(state('h2', 'm1')).toBe('RUNNING');
    j = await s.run('POST', '/v1/containers/m1/exec', { argv: ['cat', '/marker'] });
    expect((j.result as { stdout: string }).stdout).toBe('from h1\n');
    // a running container does not move cold
    j = await s.run('POST', '/v1/containers/m1/migrate', { targetHost: 'h1' });
    expect(j.error?.code).toBe('LXCQ_INVALID_STATE');
    await s.run('POST', '/v1/containers/m1/stop');
    j = await s.run('POST', '/v1/containers/m1/migrate', { targetHost: 'nohost' });
    expect(j.error?.code).toBe('LXCQ_HOST_NOT_FOUND');
    expect(incoming('h2')).toEqual([]);
  });

  it('a link cut mid-transfer (a veth into another network namespace) leaves the container on its source', async () => {
    let j = await s.run('POST', '/v1/containers', {
      name: 'nc1',
      template: 'busybox',
      config: TEST_CONFIG,
      host: 'h1',
    });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    const blob = randomBytes(6 * 1024 * 1024);
    writeFileSync(join(s.lxcpath, 'nc1', 'rootfs', 'blob'), blob);
    const sum = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    // ~8 MB through a 4 Mbit/s link: about 16 s, time enough to cut it half-way.
    execFileSync('tc', [
      'qdisc',
      'add',
      'dev',
      `${VETH}a`,
      'root',
      'tbf',
      'rate',
      '4mbit',
      'burst',
      '32kbit',
      'latency',
      '400ms',
    ]);
    try {
      const sub = await s.http<{ id: string }>('POST', '/v1/containers/nc1/migrate', { targetHost: 'h4' });
      expect(sub.status).toBe(202);
      const sent = async () => {
        const job = (await s.http<Job>('GET', `/v1/jobs/${sub.body.id}`)).body;
        return Number(/^sent (\d+) of/.exec(job.progress?.stage ?? '')?.[1] ?? 0);
      };
      for (let i = 0; i < 300 && (await sent()) < 1024 * 1024; i++) await sleep(100);
      expect(await sent()).toBeGreaterThanOrEqual(1024 * 1024);
      ip('link', 'set', `${VETH}a`, 'down');
      j = await s.wait(sub.body.id);
      expect(j.state).toBe('failed');
      expect(j.error?.message).toContain('stopped answering');
    } finally {
      ip('link', 'set', `${VETH}a`, 'up');
      execFileSync('tc', ['qdisc', 'del', 'dev', `${VETH}a`, 'root']);
    }
    expect(ls('h1')).toContain('nc1');
    expect(state('h1', 'nc1')).toBe('STOPPED');
    expect(await registryHost('nc1')).toBe('h1');
    expect(sum(readFileSync(join(s.lxcpath, 'nc1', 'rootfs', 'blob')))).toBe(sum(blob));
    expect(leaving('h1')).toEqual([]);
    // The target cut its side too (its own idle bound) and kept nothing.
    for (let i = 0; i < 100 && incoming('h4').length > 0; i++) await sleep(100);
    expect(incoming('h4')).toEqual([]);
    expect(ls('h4')).toEqual([]);
    // The link back up, the same move goes through.
    j = await s.run('POST', '/v1/containers/nc1/migrate', { targetHost: 'h4' });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect(ls('h4')).toContain('nc1');
    expect(ls('h1')).not.toContain('nc1');
    expect(sum(readFileSync(join(lxcpaths.get('h4') as string, 'nc1', 'rootfs', 'blob')))).toBe(sum(blob));
    await s.run('DELETE', '/v1/containers/nc1');
  });

  it('refuses an upload with a wrong token', async () => {
    const raw = await s.redis.hget('lxcq:host:h2', 'info');
    const addr = (JSON.parse(raw ?? '{}') as { transfer?: string }).transfer;
    expect(addr).toMatch(/^127\.0\.0\.1:\d+$/);
    for (const auth of [`Bearer ${randomBytes(32).toString('hex')}`, '']) {
      // TLS (trusting anything: an intruder), no client certificate
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpsRequest(`https://${addr}/receive/intruder`, {
          method: 'PUT',
          rejectUnauthorized: false,
          headers: auth ? { authorization: auth } : {},
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end(randomBytes(4096));
      });
      expect(status).toBe(401);
    }
    expect(ls('h2')).not.toContain('intruder');
    expect(existsSync(join(lxcpaths.get('h2') as string, 'intruder'))).toBe(false);
    expect(incoming('h2')).toEqual([]);
  });

  it('a transfer cut mid-stream leaves the container on its source, intact, and nothing on the target', async () => {
    let j = await s.run('POST', '/v1/containers', {
      name: 'm2',
      template: 'busybox',
      config: TEST_CONFIG,
      host: 'h1',
    });
    expect(j.state).toBe('completed');
    // 4 MiB that must arrive whole: more than the proxy lets through.
    const blob = randomBytes(4 * 1024 * 1024);
    writeFileSync(join(s.lxcpath, 'm2', 'rootfs', 'blob'), blob);
    const sum = createHash('sha256').update(blob).digest('hex');
    j = await s.run('POST', '/v1/containers/m2/migrate', { targetHost: 'h3' });
    expect(j.state).toBe('failed');
    expect(ls('h1')).toContain('m2');
    expect(state('h1', 'm2')).toBe('STOPPED');
    expect(
      createHash('sha256')
        .update(readFileSync(join(s.lxcpath, 'm2', 'rootfs', 'blob')))
        .digest('hex'),
    ).toBe(sum);
    expect(await registryHost('m2')).toBe('h1');
    expect(ls('h3')).toEqual([]);
    // the target notices the cut and removes its staging copy
    for (let i = 0; i < 50 && incoming('h3').length > 0; i++) await sleep(100);
    expect(incoming('h3')).toEqual([]);
    // and the container still works where it is
    j = await s.run('POST', '/v1/containers/m2/start');
    expect(j.result).toMatchObject({ state: 'RUNNING', host: 'h1' });
    await s.run('DELETE', '/v1/containers/m2?force=true');
  });

  it('copies a stopped container to another host under a new name (cross-host clone)', async () => {
    const j = await s.run('POST', '/v1/containers/m1/clone', { newName: 'm1copy', host: 'h1' });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect(j.result).toMatchObject({ name: 'm1copy', host: 'h1' });
    expect(ls('h2')).toContain('m1');
    expect(ls('h1')).toContain('m1copy');
    expect(await registryHost('m1')).toBe('h2');
    expect(await registryHost('m1copy')).toBe('h1');
    const cfg = readFileSync(join(s.lxcpath, 'm1copy', 'config'), 'utf8');
    expect(cfg).toMatch(/^lxc\.uts\.name = m1copy$/m);
    expect(cfg).toContain(`dir:${s.lxcpath}/m1copy/rootfs`);
    const k = await s.run('POST', '/v1/containers/m1copy/start');
    expect(k.result).toMatchObject({ state: 'RUNNING', host: 'h1' });
    await s.run('DELETE', '/v1/containers/m1copy?force=true');
  });

  it('moves a running container live: its counter goes on where it was', async () => {
    await makeCounter('lm1');
    if (!criu) {
      expect(criuRequired, criuHere.reason).toBe(false);
      const j = await s.run('POST', '/v1/containers/lm1/migrate', { targetHost: 'h2', live: true });
      expect(j.error?.code).toBe('LXCQ_CRIU_UNAVAILABLE');
      console.warn('CRIU is not usable on this host: checked the refusal instead of a live migration.');
      return;
    }
    const before = await counter('lm1');
    expect(before).toBeGreaterThan(0);
    const j = await s.run('POST', '/v1/containers/lm1/migrate', { targetHost: 'h2', live: true });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    const m = (j.result as { migration: { bytes: number; ms: number; downtimeMs: number } }).migration;
    console.log(`live migration: ${m.ms} ms, ${m.bytes} bytes, downtime ${m.downtimeMs} ms`);
    expect(j.result).toMatchObject({ host: 'h2', state: 'RUNNING' });
    expect(ls('h1')).not.toContain('lm1');
    expect(state('h2', 'lm1')).toBe('RUNNING');
    expect(await registryHost('lm1')).toBe('h2');
    await sleep(500);
    const after = await counter('lm1');
    expect(after).toBeGreaterThan(before);
    await s.run('DELETE', '/v1/containers/lm1?force=true');
  });

  it('a source killed after the target took the container removes its stale copy and never takes it back', async () => {
    const { sub, from } = await moveFromH2Dying('mk1', 'migrate.before-purge');
    // h2 died (SIGKILL) in the window: h1 owns the container, h2 still has its copy.
    expect(await registryHost('mk1')).toBe('h1');
    expect(ls('h1')).toContain('mk1');
    expect(ls('h2')).toContain('mk1');
    expect(leaving('h2')).toEqual(['mk1']);

    await s.restartHost('h2');
    expect(ls('h2')).not.toContain('mk1');
    expect(leaving('h2')).toEqual([]);
    let j = await s.wait(sub.body.id);
    expect(j.error?.code).toBe('LXCQ_WORKER_LOST');
    await sleep(2500); // an inventory pass of h2 (LXCQ_INVENTORY_MS 2000 in tests)
    expect(await registryHost('mk1')).toBe('h1');
    // h2 announced nothing about mk1 after the move: no "created" of a stale copy, no "destroyed".
    const after = (await s.redis.xrange('lxcq:events', `(${from}`, '+')).map(([id, f]) =>
      Store.parseEvent(id, f),
    );
    expect(
      after.filter((e) => e.container === 'mk1' && e.host === 'h2' && e.type.startsWith('container.')),
    ).toEqual([]);
    expect(after.some((e) => e.container === 'mk1' && e.type === 'container.moved')).toBe(true);
    j = await s.run('POST', '/v1/containers/mk1/start');
    expect(j.result).toMatchObject({ state: 'RUNNING', host: 'h1' });
    await s.run('DELETE', '/v1/containers/mk1?force=true');
  });

  it('a source killed before the transfer keeps the container, and a late target cannot take it', async () => {
    const { sub } = await moveFromH2Dying('mk2', 'migrate.before-transfer');
    const marker = JSON.parse(
      readFileSync(join(lxcpaths.get('h2') as string, '.lxcq', 'leaving', 'mk2'), 'utf8'),
    ) as { transfer: string; to: string };
    expect(marker.to).toBe('h1');
    await s.restartHost('h2');
    expect(leaving('h2')).toEqual([]);
    // Settled as not done, and claimed so: a target that got the data late would refuse to take it.
    expect(await s.redis.get(`lxcq:xfer:outcome:${marker.transfer}`)).toBe('aborted');
    expect(ls('h2')).toContain('mk2');
    expect(ls('h1')).not.toContain('mk2');
    let j = await s.wait(sub.body.id);
    expect(j.error?.code).toBe('LXCQ_WORKER_LOST');
    expect(await registryHost('mk2')).toBe('h2');
    // and it moves fine afterwards
    j = await s.run('POST', '/v1/containers/mk2/migrate', { targetHost: 'h1' });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect(ls('h2')).not.toContain('mk2');
    await s.run('DELETE', '/v1/containers/mk2');
  });

  it.skipIf(!criu)(
    'a source killed mid live move restores the container running here from its checkpoint',
    async () => {
      await s.stopWorker();
      await s.startWorker({ LXCQ_FAILPOINTS: 'migrate.before-transfer' });
      await makeCounter('lm3');
      const before = await counter('lm3');
      const sub = await s.http<{ id: string }>('POST', '/v1/containers/lm3/migrate', {
        targetHost: 'h2',
        live: true,
      });
      expect(sub.status).toBe(202);
      const w = s.worker;
      if (w && w.exitCode === null && w.signalCode === null) await new Promise((r) => w.once('exit', r));
      expect(w?.signalCode).toBe('SIGKILL');
      // Dumped with stop, never sent: stopped here, with its checkpoint and a leaving-marker.
      expect(state('h1', 'lm3')).toBe('STOPPED');
      expect(leaving('h1')).toEqual(['lm3']);
      await s.startWorker();
      expect(leaving('h1')).toEqual([]);
      expect(state('h1', 'lm3')).toBe('RUNNING');
      expect(ls('h2')).not.toContain('lm3');
      expect(await registryHost('lm3')).toBe('h1');
      expect((await s.wait(sub.body.id)).error?.code).toBe('LXCQ_WORKER_LOST');
      await sleep(300);
      expect(await counter('lm3')).toBeGreaterThan(before);
      await s.run('DELETE', '/v1/containers/lm3?force=true');
    },
  );

  it('a container of the same name made by hand on another host does not take over the record', async () => {
    const j = await s.run('POST', '/v1/containers', {
      name: 'dup1',
      template: 'busybox',
      config: TEST_CONFIG,
      host: 'h1',
    });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    const h2 = lxcpaths.get('h2') as string;
    execFileSync('lxc-copy', ['-P', s.lxcpath, '-n', 'dup1', '-p', h2, '-N', 'dup1']);
    try {
      await sleep(5000); // two inventory passes of h2
      expect(ls('h2')).toContain('dup1');
      expect(await registryHost('dup1')).toBe('h1');
      expect(s.hosts.get('h2')?.log()).toContain(
        'a container of this name exists here and on its owner host',
      );
    } finally {
      execFileSync('lxc-destroy', ['-P', h2, '-n', 'dup1']);
    }
    await s.run('DELETE', '/v1/containers/dup1');
  });

  it.skipIf(!criu)('a live move cut mid-stream puts the container back running on its source', async () => {
    await makeCounter('lm2');
    writeFileSync(join(s.lxcpath, 'lm2', 'rootfs', 'blob'), randomBytes(4 * 1024 * 1024));
    const before = await counter('lm2');
    const j = await s.run('POST', '/v1/containers/lm2/migrate', { targetHost: 'h3', live: true });
    expect(j.state).toBe('failed');
    expect(state('h1', 'lm2')).toBe('RUNNING');
    expect(await registryHost('lm2')).toBe('h1');
    expect(ls('h3')).toEqual([]);
    await sleep(300);
    expect(await counter('lm2')).toBeGreaterThan(before);
    await s.run('DELETE', '/v1/containers/lm2?force=true');
  });
});
