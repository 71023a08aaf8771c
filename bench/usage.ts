/**
 * bench:usage — the worker's cost of one usage collection pass, per running container, and the
 * cost of a /metrics scrape served from it, at N running busybox containers (default 10 and 100;
 * LXCQ_BENCH_N=10,100,300 for more).
 *
 * Real containers in a temporary lxcpath (privileged busybox, no network device: `lo` only, so
 * nothing is added to any bridge), started with lxc-start, read by the very UsageCollector the
 * worker runs. A pass's cost is the main thread's CPU time (process.cpuUsage) across the pass,
 * including the JSON the worker writes to Redis (the Redis round trip itself is not included: it
 * is one MULTI per pass whatever N). Also the longest the event loop was held during the passes
 * (monitorEventLoopDelay max), and the scrape: WorkerMetrics.registry.metrics() from the last pass.
 * Everything made is removed at the end, also on Ctrl-C.
 *
 * With LXCQ_BENCH_LXD=<n> (e.g. 100), LXD 5.0 the same run as a reference: its own daemon (Debian's
 * lxd, installed with apt when missing; see bench/lxd.ts), n running busybox
 * instances with no NIC, then `GET /1.0/instances/<name>/state` of each (3 rounds) and
 * `GET /1.0/metrics` (5 scrapes): wall time per call and the daemon's CPU (its own and its
 * waited-for children's, from /proc/<pid>/stat) per container.
 *
 *   pnpm bench usage
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import type { ContainerUsage, UsagePass } from '@lxcq/shared';
import { startLxd } from './lxd.ts';
import { WorkerMetrics } from '../services/worker/src/metrics.ts';
import { UsageCollector, type KnownContainer } from '../services/worker/src/usage.ts';

const SIZES = (process.env['LXCQ_BENCH_N'] ?? '10,100').split(',').map(Number);
const PASSES = Number(process.env['LXCQ_BENCH_PASSES'] ?? 60);
const lxcpath = mkdtempSync(join(tmpdir(), 'lxcq-bench-usage-'));
const made: string[] = [];

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function cleanup(): void {
  for (const n of made) {
    try {
      sh('lxc-stop', ['-P', lxcpath, '-n', n, '-k']);
    } catch {
      // not running
    }
  }
  rmSync(lxcpath, { recursive: true, force: true });
}
/** LXD's tear-down while its part runs (a signal then stops it too). */
let lxdStop: (() => Promise<void>) | null = null;
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => {
    cleanup();
    void (lxdStop?.() ?? Promise.resolve()).finally(() => process.exit(130));
  });

/** One busybox container made by the template; the others are copies of its directory. */
function makeBase(): void {
  sh('lxc-create', ['-P', lxcpath, '-n', 'base', '-t', 'busybox']);
  const cfg = join(lxcpath, 'base', 'config');
  const text = readFileSync(cfg, 'utf8')
    .split('\n')
    .filter((l) => !/^\s*lxc\.net\./.test(l))
    .join('\n');
  writeFileSync(cfg, `${text}\nlxc.net.0.type = empty\n`);
}

function makeCopy(name: string): void {
  const dir = join(lxcpath, name);
  mkdirSync(dir);
  cpSync(join(lxcpath, 'base', 'rootfs'), join(dir, 'rootfs'), { recursive: true, verbatimSymlinks: true });
  const cfg = readFileSync(join(lxcpath, 'base', 'config'), 'utf8')
    .replaceAll(join(lxcpath, 'base'), dir)
    .replace(/^lxc\.uts\.name = .*$/m, `lxc.uts.name = ${name}`);
  writeFileSync(join(dir, 'config'), cfg);
  made.push(name);
  sh('lxc-start', ['-P', lxcpath, '-n', name]);
}

const pidOf = (name: string) => Number(sh('lxc-info', ['-P', lxcpath, '-n', name, '-pH']).trim());

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  return {
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    p50: q(0.5),
    p95: q(0.95),
    max: s[s.length - 1] ?? NaN,
  };
};

async function measure(n: number): Promise<Record<string, number>> {
  const known: KnownContainer[] = made
    .slice(0, n)
    .map((name) => ({ name, state: 'RUNNING', pid: pidOf(name) }));
  const metrics = new WorkerMetrics(
    'bench',
    {
      jobsInFlight: () => 0,
      waitingByContainer: () => new Map(),
      pool: () => ({ threads: 1, busy: 0, queued: 0, utilization: 0 }),
      containers: () => ({ total: n, running: n }),
    },
    { topContainers: 20 },
  );
  let bytes = 0;
  const collector = new UsageCollector({
    hostId: 'bench',
    lxcpath,
    intervalMs: 1000,
    diskIntervalMs: 3_600_000,
    containers: () => known,
    // what the worker's writeUsage serialises (the Redis round trip is not measured here)
    write: (pass: UsagePass, containers: ContainerUsage[]) => {
      const head = JSON.stringify(pass);
      const each = containers.map((c) => JSON.stringify(c));
      const published = `{"pass":${head},"containers":[${each.join(',')}]}`;
      bytes = head.length + each.reduce((a, f) => a + f.length, 0) + published.length;
      return Promise.resolve();
    },
    log: pino({ level: 'silent' }),
  });
  metrics.containerUsage(() => collector.last);
  await collector.pass(); // opens each container's cgroup files (a start's cost, once per container)
  const firstPass = collector.passCpuUs.at(-1) ?? NaN;
  for (let i = 0; i < 10; i++) await collector.pass(); // warm-up (JIT), not counted
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const wall: number[] = [];
  for (let i = 0; i < PASSES; i++) {
    const t0 = performance.now();
    await collector.pass();
    wall.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  loop.disable();
  const cpu = collector.passCpuUs.slice(-PASSES);
  const running = collector.last?.containers.filter((c) => c.cpu).length ?? 0;
  if (running !== n) throw new Error(`only ${running} of ${n} containers were read as running`);
  const scrape: number[] = [];
  let scrapeBytes = 0;
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    scrapeBytes = (await metrics.registry.metrics()).length;
    scrape.push(performance.now() - t0);
  }
  await collector.stop();
  const c = stats(cpu);
  return {
    containers: n,
    passCpuUsPerContainer: Math.round((c.mean / n) * 10) / 10,
    passCpuUsPerContainerP95: Math.round((c.p95 / n) * 10) / 10,
    firstPassCpuUsPerContainer: Math.round((firstPass / n) * 10) / 10,
    passWallMsMean: Math.round(stats(wall).mean * 100) / 100,
    loopDelayMaxMs: Math.round((loop.max / 1e6) * 100) / 100,
    writtenBytesPerPass: bytes,
    scrapeMsMean: Math.round(stats(scrape).mean * 100) / 100,
    scrapeMsMax: Math.round(stats(scrape).max * 100) / 100,
    scrapeBytes,
  };
}

/** GET over a unix socket, the body as text (LXD's /1.0/metrics is Prometheus text, not JSON). */
function rawGet(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(Buffer.concat(chunks).toString('utf8'))
          : reject(new Error(`LXD GET ${path}: HTTP ${res.statusCode}`)),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** CPU time (us) of a process and its waited-for children, from /proc/<pid>/stat. */
function procCpuUs(pid: number): number {
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  // utime, stime, cutime, cstime: fields 14-17, i.e. 11-14 after the state (field 3)
  return ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100) * 1e6;
}

async function measureLxd(n: number): Promise<Record<string, number | string>> {
  const lxd = await startLxd({ storage: 'dir', privileged: true, log: (l) => console.error(l) });
  lxdStop = () => lxd.stop();
  try {
    for (let i = 1; i <= n; i++) {
      await lxd.client.create(`u${i}`, lxd.image);
      await lxd.client.start(`u${i}`);
    }
    await new Promise((r) => setTimeout(r, 2000));
    const rounds = 3;
    const c0 = procCpuUs(lxd.pid);
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++)
      for (let i = 1; i <= n; i++) await lxd.client.request('GET', `/1.0/instances/u${i}/state`);
    const stateWall = (performance.now() - t0) / (rounds * n);
    const stateCpu = (procCpuUs(lxd.pid) - c0) / (rounds * n);
    console.log(
      `lxd state: ${stateWall.toFixed(2)} ms and ${Math.round(stateCpu)} us of daemon CPU per call at ${n} instances`,
    );
    const scrapes = 5;
    const c1 = procCpuUs(lxd.pid);
    const t1 = performance.now();
    let bytes = 0;
    for (let i = 0; i < scrapes; i++) bytes = (await rawGet(lxd.client.socketPath, '/1.0/metrics')).length;
    return {
      lxd: lxd.version,
      containers: n,
      stateMsPerCall: Math.round(stateWall * 100) / 100,
      stateDaemonCpuUsPerCall: Math.round(stateCpu),
      metricsMsPerScrape: Math.round(((performance.now() - t1) / scrapes) * 100) / 100,
      metricsDaemonCpuUsPerContainer: Math.round((procCpuUs(lxd.pid) - c1) / scrapes / n),
      metricsBytes: bytes,
    };
  } finally {
    await lxd.stop();
  }
}

async function main(): Promise<void> {
  const results: Record<string, number>[] = [];
  let lxdResult: Record<string, number | string> | null = null;
  try {
    makeBase();
    for (const n of SIZES) {
      while (made.length < n) makeCopy(`c${made.length + 1}`);
      // let the starts settle (their inits' first work)
      await new Promise((r) => setTimeout(r, 2000));
      const r = await measure(n);
      results.push(r);
      console.log(JSON.stringify(r));
    }
  } finally {
    cleanup();
  }
  const lxdN = Number(process.env['LXCQ_BENCH_LXD'] ?? 0);
  if (lxdN > 0) {
    lxdResult = await measureLxd(lxdN);
    console.log(JSON.stringify(lxdResult));
  }
  console.table(results);
  const out = join(import.meta.dirname, 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'usage.json'),
    `${JSON.stringify({ at: new Date().toISOString(), load: readFileSync('/proc/loadavg', 'utf8').trim(), passes: PASSES, results, lxd: lxdResult }, null, 2)}\n`,
  );
}

void main().catch((err: unknown) => {
  console.error(err);
  cleanup();
  process.exit(1);
});
