/**
 * The pipeline benchmark: `pnpm --filter @lxcq/api bench` (as root; needs lxc, busybox-static and
 * redis-server, which scripts/setup-host.sh installs).
 *
 * In one run it measures, on a real stack (private redis-server, the API on a free port, one
 * worker process, a temporary lxcpath, busybox containers with `lxc.net.0.type = empty`):
 *  1. full container lifecycles (create, start, stop, destroy) per second through the API at
 *     concurrency 1 and 4, next to the same liblxc steps called directly through @lxcq/lxc-ffi,
 *     and next to LXD 5.0.2's reference figures; then the same with create replaced by an overlayfs
 *     copy-on-write clone of a stopped base container;
 *  2. the round trip of one cheap job through the API next to its liblxc part called directly;
 *  3. the worker's main-thread event-loop delay under that load (from its heartbeat).
 * It prints aligned tables and writes everything as JSON to bench/results/latest.json.
 *
 * Environment: LXCQ_BENCH_N lifecycles per mode (default 20), LXCQ_BENCH_RT round trips per
 * cheap-job mode (default 200), LXCQ_BENCH_THREADS the worker's LXCQ_THREADS (default 4, its
 * default), LXCQ_BENCH_OUT the JSON file.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { LxcPool } from '@lxcq/worker';
import { lxcVersion } from '../../../packages/lxc-ffi/src/index.ts';
import { Stack, TOKEN, TEST_CONFIG, removeLxcpath } from '../test/harness.ts';
import {
  directFreezePair,
  directLifecycle,
  directMakeRunning,
  directRemove,
  directCloneLifecycle,
  directIps,
  directMakeBase,
  directStateCheck,
  type LifecycleTimes,
} from './direct.ts';
import type { DirectThreadInput, DirectThreadOutput } from './direct-thread.ts';
import { cpuPer, cpuSnapshot, type CpuUse } from './cpu.ts';
import { fmt, ratio, round, summarize, table, type Summary } from './stats.ts';

// ---- parameters and reference figures -------------------------------------------------------

function envInt(key: string, def: number, min: number): number {
  const raw = process.env[key];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${key}=${raw} is not a whole number >= ${min}`);
  return n;
}

const CONC = 4;
const N = Math.ceil(envInt('LXCQ_BENCH_N', 20, 1) / CONC) * CONC;
const RT = Math.ceil(envInt('LXCQ_BENCH_RT', 200, 4) / CONC) * CONC;
const OUT = process.env.LXCQ_BENCH_OUT || fileURLToPath(new URL('./results/latest.json', import.meta.url));
const WAIT_S = 120;

/** LXD 5.0.2 on the same kind of machine (the figures). */
const LXD = { seqPerSec: 1.19, c4PerSec: 4.15, c4P50s: 0.85 } as const;
/** HOST.md: one BullMQ job's round trip (add, waitUntilFinished) against a local Redis 7.0. */
const BULLMQ_FLOOR = { p50Ms: 1.13, p99Ms: 5.49 } as const;
const GOAL = 3;

const WORKER_ENV = {
  // Production defaults except a 1 s heartbeat, so the loop delay can be read soon after the load.
  LXCQ_HEARTBEAT_MS: '1000',
  LXCQ_INVENTORY_MS: '30000',
  LXCQ_LOCK_MS: '30000',
  LXCQ_THREADS: process.env.LXCQ_BENCH_THREADS || '4',
};

const STEPS = ['create', 'start', 'stop', 'destroy'] as const;
type Step = (typeof STEPS)[number];

// ---- the API client -------------------------------------------------------------------------

interface ApiJob {
  id: string;
  operation: string;
  container: string;
  state: string;
  createdAt?: string;
  startedAt?: string;
  finishedAt?: string;
  error?: { code: string; message: string };
}

/** One job seen from the client, split by the job record's own timestamps. */
interface JobTiming {
  /** Client: request sent to answer read. */
  total: number;
  /** Record: createdAt to startedAt (in the queue, waiting for the worker). */
  queue: number;
  /** Record: startedAt to finishedAt (the worker's handler, inventory refresh, job record). */
  run: number;
  /** The rest: HTTP, validation, placement, enqueue, noticing the end, answering. */
  outside: number;
}

interface HostRecord {
  id: string;
  lastSeen: string;
  capabilities: Record<string, unknown>;
}

class Client {
  constructor(readonly url: string) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as T };
  }

  /** Submits with ?wait and checks the job completed; returns the client-side and record times. */
  async job(method: string, path: string, body?: unknown): Promise<JobTiming> {
    const sep = path.includes('?') ? '&' : '?';
    const t0 = performance.now();
    const r = await this.request<ApiJob>(method, `${path}${sep}wait=${WAIT_S}`, body);
    const total = performance.now() - t0;
    if (r.status !== 200 || r.body.state !== 'completed') {
      throw new Error(`${method} ${path} answered ${r.status}: ${JSON.stringify(r.body)}`);
    }
    const created = Date.parse(r.body.createdAt ?? '');
    const started = Date.parse(r.body.startedAt ?? '');
    const finished = Date.parse(r.body.finishedAt ?? '');
    return {
      total,
      queue: started - created,
      run: finished - started,
      outside: total - (finished - created),
    };
  }

  /** create (or, with `base`, an overlayfs clone of base), start, stop, destroy. */
  async lifecycle(name: string, base?: string): Promise<Record<Step, JobTiming> & { total: number }> {
    const t0 = performance.now();
    const create = base
      ? await this.job('POST', `/v1/containers/${base}/clone`, { newName: name, snapshot: true })
      : await this.job('POST', '/v1/containers', { name, template: 'busybox', config: TEST_CONFIG });
    const start = await this.job('POST', `/v1/containers/${name}/start`);
    const stop = await this.job('POST', `/v1/containers/${name}/stop`);
    const destroy = await this.job('DELETE', `/v1/containers/${name}`);
    return { create, start, stop, destroy, total: performance.now() - t0 };
  }

  async host(id: string): Promise<HostRecord> {
    const r = await this.request<HostRecord[]>('GET', '/v1/hosts');
    const h = r.body.find((x) => x.id === id);
    if (!h) throw new Error(`host ${id} is not listed: ${JSON.stringify(r.body)}`);
    return h;
  }

  /** The host record from the first heartbeat written after now. */
  async freshHost(id: string): Promise<HostRecord> {
    const since = Date.now();
    for (let i = 0; i < 100; i++) {
      const h = await this.host(id);
      if (Date.parse(h.lastSeen) > since) return h;
      await sleep(100);
    }
    throw new Error(`host ${id} sent no heartbeat for 10 s`);
  }
}

// ---- measurements ---------------------------------------------------------------------------

interface LifecycleResult {
  mode: string;
  concurrency: number;
  n: number;
  wallS: number;
  perSec: number;
  /** Seconds per lifecycle. */
  lifecycle: Summary;
  /** Milliseconds per step, as the caller saw it. */
  steps: Record<Step, Summary>;
  /** API only: where each step's time went, ms (p50 and mean of queue / run / outside). */
  split?: Record<Step, { queue: Summary; run: Summary; outside: Summary }>;
  /** CPU ms per lifecycle, by process. */
  cpu?: CpuUse;
}

function lifecycleResult(
  mode: string,
  concurrency: number,
  wallMs: number,
  times: readonly LifecycleTimes[],
): LifecycleResult {
  const steps = Object.fromEntries(STEPS.map((s) => [s, summarize(times.map((t) => t[s]))])) as Record<
    Step,
    Summary
  >;
  return {
    mode,
    concurrency,
    n: times.length,
    wallS: round(wallMs / 1000),
    perSec: round(times.length / (wallMs / 1000)),
    lifecycle: summarize(times.map((t) => t.total / 1000)),
    steps,
  };
}

function directSequential(lxcpath: string, base?: string): LifecycleResult {
  const times: LifecycleTimes[] = [];
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const name = `bd-s${base ? 'k' : ''}${i}`;
    times.push(base ? directCloneLifecycle(base, name, lxcpath) : directLifecycle(name, lxcpath));
  }
  return lifecycleResult('direct lxc-ffi, in-process', 1, performance.now() - t0, times);
}

async function directParallel(lxcpath: string, base?: string): Promise<LifecycleResult> {
  const entry = new URL('./direct-thread.mjs', import.meta.url);
  const threads = Array.from({ length: CONC }, (_, t) => {
    const input: DirectThreadInput = {
      lxcpath,
      prefix: `bd-p${base ? 'k' : ''}${t}-`,
      count: N / CONC,
      ...(base ? { base } : {}),
    };
    const w = new Worker(entry, { workerData: input });
    let onReady: () => void = () => undefined;
    const ready = new Promise<void>((r) => (onReady = r));
    const done = new Promise<LifecycleTimes[]>((resolve, reject) => {
      w.on('message', (m: DirectThreadOutput) => {
        if (m.kind === 'ready') onReady();
        else if (m.kind === 'done') resolve(m.times);
        else reject(new Error(`direct thread failed: ${m.error}`));
      });
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`direct thread exited (${code}) without an answer`)));
    });
    // A failure before 'ready' must not leave the caller waiting for it.
    done.catch(() => onReady());
    return { w, ready, done };
  });
  await Promise.all(threads.map((t) => t.ready));
  const t0 = performance.now();
  for (const t of threads) t.w.postMessage('go');
  const times = (await Promise.all(threads.map((t) => t.done))).flat();
  return lifecycleResult(`direct lxc-ffi, ${CONC} worker_threads`, CONC, performance.now() - t0, times);
}

async function apiLifecycles(client: Client, concurrency: number, base?: string): Promise<LifecycleResult> {
  const all: Awaited<ReturnType<Client['lifecycle']>>[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, t) => {
      for (let i = 0; i < N / concurrency; i++)
        all.push(await client.lifecycle(`ba-c${concurrency}${base ? 'k' : ''}-${t}-${i}`, base));
    }),
  );
  const wall = performance.now() - t0;
  const times: LifecycleTimes[] = all.map((l) => ({
    create: l.create.total,
    start: l.start.total,
    stop: l.stop.total,
    destroy: l.destroy.total,
    total: l.total,
  }));
  const r = lifecycleResult(`lxcq API (HTTP, ?wait)`, concurrency, wall, times);
  r.split = Object.fromEntries(
    STEPS.map((s) => [
      s,
      {
        queue: summarize(all.map((l) => l[s].queue)),
        run: summarize(all.map((l) => l[s].run)),
        outside: summarize(all.map((l) => l[s].outside)),
      },
    ]),
  ) as Record<Step, { queue: Summary; run: Summary; outside: Summary }>;
  return r;
}

interface RoundTrip {
  mode: string;
  concurrency: number;
  n: number;
  perSec: number;
  ms: Summary;
  split?: { queue: Summary; run: Summary; outside: Summary };
  /** CPU ms per job, by process. */
  cpu?: CpuUse;
}

function rt(mode: string, concurrency: number, wallMs: number, xs: readonly number[]): RoundTrip {
  return {
    mode,
    concurrency,
    n: xs.length,
    perSec: round(xs.length / (wallMs / 1000), 1),
    ms: summarize(xs),
  };
}

async function apiJobs(
  client: Client,
  mode: string,
  names: readonly string[],
  perName: number,
  paths: (name: string) => string[],
): Promise<RoundTrip> {
  const timings: JobTiming[] = [];
  const t0 = performance.now();
  await Promise.all(
    names.map(async (name) => {
      for (let i = 0; i < perName; i++)
        for (const p of paths(name)) timings.push(await client.job('POST', p));
    }),
  );
  const r = rt(
    mode,
    names.length,
    performance.now() - t0,
    timings.map((t) => t.total),
  );
  r.split = {
    queue: summarize(timings.map((t) => t.queue)),
    run: summarize(timings.map((t) => t.run)),
    outside: summarize(timings.map((t) => t.outside)),
  };
  return r;
}

function directLoop(mode: string, n: number, fn: () => number[]): RoundTrip {
  const xs: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) xs.push(...fn());
  return rt(mode, 1, performance.now() - t0, xs);
}

async function poolLoop(mode: string, n: number, fn: () => Promise<unknown>): Promise<RoundTrip> {
  const xs: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await fn();
    xs.push(performance.now() - s);
  }
  return rt(mode, 1, performance.now() - t0, xs);
}

interface LoopDelay {
  at: string;
  p99Ms: number | null;
  maxMs: number | null;
}

/** RSS (MB) and thread count of a process, from /proc/<pid>/status. */
function procStatus(pid: number | undefined): { rssMB: number; threads: number } {
  let text = '';
  try {
    text = pid === undefined ? '' : readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // gone: report nothing
  }
  const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return { rssMB: round(field('VmRSS') / 1024, 1), threads: field('Threads') };
}

function loopDelay(at: string, h: HostRecord): LoopDelay {
  const num = (v: unknown) => (typeof v === 'number' ? v : null);
  return {
    at,
    p99Ms: num(h.capabilities.eventLoopDelayP99Ms),
    maxMs: num(h.capabilities.eventLoopDelayMaxMs),
  };
}

// ---- the run --------------------------------------------------------------------------------

let pids: { worker?: number | undefined; redis?: number | undefined } = {};

/** Runs one measurement and adds the CPU its processes used per unit (lifecycle or job). */
async function withCpu<T extends { n: number; cpu?: CpuUse }>(fn: () => T | Promise<T>): Promise<T> {
  const a = cpuSnapshot(pids);
  const r = await fn();
  r.cpu = cpuPer(a, cpuSnapshot(pids), r.n);
  return r;
}

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark creates real containers: run it as root');
  const startedAt = new Date();
  const loadStart = loadavg()[0] ?? NaN;
  const directPath = mkdtempSync(join(tmpdir(), 'lxcq-bench-direct-'));
  let stack: Stack | null = null;
  try {
    // 1. lifecycles, direct first (no lxcq process running yet)
    log(`warm-up, then ${N} direct lifecycles sequentially`);
    directLifecycle('bd-warm', directPath);
    const dSeq = await withCpu(() => directSequential(directPath));
    log(`${N} direct lifecycles on ${CONC} threads`);
    const dPar = await withCpu(() => directParallel(directPath));

    log('starting the stack (redis-server, API, worker)');
    stack = await Stack.start({ workerEnv: WORKER_ENV });
    pids = { worker: stack.worker?.pid, redis: stack.redisServer.pid };
    const client = new Client(stack.url);
    const hostId = stack.hostId;
    const delays: LoopDelay[] = [loopDelay('idle, after start', await client.freshHost(hostId))];

    log(`warm-up, then ${N} API lifecycles at concurrency 1`);
    await client.lifecycle('ba-warm');
    const aSeq = await withCpu(() => apiLifecycles(client, 1));
    log(
      `warm-up (${CONC} in parallel: the worker's pool grows to its threads), then ${N} API lifecycles at concurrency ${CONC}`,
    );
    await Promise.all(Array.from({ length: CONC }, (_, i) => client.lifecycle(`ba-warm${i}`)));
    const aPar = await withCpu(() => apiLifecycles(client, CONC));

    // 1b. the same with create replaced by a copy-on-write clone of a stopped base container
    log(
      `${N} lifecycles each with an overlayfs clone instead of create: direct c1, c${CONC}, API c1, c${CONC}`,
    );
    directMakeBase('bd-base', directPath);
    directCloneLifecycle('bd-base', 'bd-kwarm', directPath);
    const kdSeq = await withCpu(() => directSequential(directPath, 'bd-base'));
    const kdPar = await withCpu(() => directParallel(directPath, 'bd-base'));
    await client.job('POST', '/v1/containers', { name: 'ba-base', template: 'busybox', config: TEST_CONFIG });
    await client.lifecycle('ba-kwarm', 'ba-base');
    const kaSeq = await withCpu(() => apiLifecycles(client, 1, 'ba-base'));
    const kaPar = await withCpu(() => apiLifecycles(client, CONC, 'ba-base'));
    await client.job('DELETE', '/v1/containers/ba-base');
    directRemove('bd-base', directPath);
    delays.push(loopDelay('after the lifecycles', await client.freshHost(hostId)));

    // 2. cheap jobs' round trip
    log(`round trips: ${RT} no-op starts, ${RT / 4} freeze/unfreeze pairs`);
    const rtNames = Array.from({ length: CONC }, (_, i) => `ba-rt${i}`);
    for (const n of rtNames) {
      await client.job('POST', '/v1/containers', { name: n, template: 'busybox', config: TEST_CONFIG });
      await client.job('POST', `/v1/containers/${n}/start`);
    }
    const first = rtNames[0] as string;
    const lxcpath = stack.lxcpath;
    directMakeRunning('bd-fz', directPath);
    const directState = await withCpu(() =>
      directLoop('direct: open + state + running + dispose', RT, () => [directStateCheck(first, lxcpath)]),
    );
    const directIpsRt = await withCpu(() =>
      directLoop('direct: ips() (forks into the container netns)', RT, () => [directIps(first, lxcpath)]),
    );
    const pool = new LxcPool({ threads: 4 });
    let poolStart: RoundTrip, poolInfo: RoundTrip;
    try {
      await pool.call({ fn: 'info', name: first, lxcpath, withConfig: true }); // warm the threads
      poolStart = await withCpu(() =>
        poolLoop('LxcPool.call start (no-op): thread hop + describe', RT, () =>
          pool.call({ fn: 'start', name: first, lxcpath }),
        ),
      );
      poolInfo = await withCpu(() =>
        poolLoop('LxcPool.call info withConfig (the refresh after a job)', RT, () =>
          pool.call({ fn: 'info', name: first, lxcpath, withConfig: true }),
        ),
      );
    } finally {
      await pool.close();
    }
    const apiNoop = await withCpu(() =>
      apiJobs(client, 'API: POST start on a running container', [first], RT, (n) => [
        `/v1/containers/${n}/start`,
      ]),
    );
    const apiNoopPar = await withCpu(() =>
      apiJobs(client, `API: POST start (no-op), ${CONC} containers in parallel`, rtNames, RT / CONC, (n) => [
        `/v1/containers/${n}/start`,
      ]),
    );
    const directFreeze = await withCpu(() =>
      directLoop('direct: freeze, unfreeze (each)', RT / 4, () => {
        const p = directFreezePair('bd-fz', directPath);
        return [p.freeze, p.unfreeze];
      }),
    );
    const apiFreeze = await withCpu(() =>
      apiJobs(client, 'API: POST freeze, unfreeze (each)', [first], RT / 4, (n) => [
        `/v1/containers/${n}/freeze`,
        `/v1/containers/${n}/unfreeze`,
      ]),
    );
    delays.push(loopDelay('after all the load', await client.freshHost(hostId)));
    const workerProc = procStatus(stack.worker?.pid);

    // clean-up of what the runs left running (the rest goes with the lxcpaths)
    for (const n of rtNames) {
      await client.job('POST', `/v1/containers/${n}/stop`);
      await client.job('DELETE', `/v1/containers/${n}`);
    }
    directRemove('bd-fz', directPath);

    const result = {
      date: startedAt.toISOString(),
      host: {
        cores: cpus().length,
        cpu: cpus()[0]?.model ?? 'unknown',
        kernel: release(),
        node: process.version,
        liblxc: lxcVersion(),
        loadAvgStart: round(loadStart, 2),
        loadAvgEnd: round(loadavg()[0] ?? NaN, 2),
      },
      params: { lifecyclesPerMode: N, roundTrips: RT, concurrency: CONC, workerEnv: WORKER_ENV },
      reference: { lxd502: LXD, bullmqFloor: BULLMQ_FLOOR, goalVsLxd: GOAL },
      lifecycles: { directSeq: dSeq, directPar: dPar, apiSeq: aSeq, apiPar: aPar },
      cloneLifecycles: { directSeq: kdSeq, directPar: kdPar, apiSeq: kaSeq, apiPar: kaPar },
      ratios: {
        apiVsDirectSeq: round(aSeq.perSec / dSeq.perSec),
        apiVsDirectPar: round(aPar.perSec / dPar.perSec),
        apiVsLxdSeq: round(aSeq.perSec / LXD.seqPerSec),
        apiVsLxdPar: round(aPar.perSec / LXD.c4PerSec),
        directVsLxdSeq: round(dSeq.perSec / LXD.seqPerSec),
        directVsLxdPar: round(dPar.perSec / LXD.c4PerSec),
        cloneApiVsDirectSeq: round(kaSeq.perSec / kdSeq.perSec),
        cloneApiVsDirectPar: round(kaPar.perSec / kdPar.perSec),
        cloneApiVsLxdSeq: round(kaSeq.perSec / LXD.seqPerSec),
        cloneApiVsLxdPar: round(kaPar.perSec / LXD.c4PerSec),
      },
      roundTrip: {
        directState,
        directIps: directIpsRt,
        poolStart,
        poolInfo,
        apiNoop,
        apiNoopPar,
        directFreeze,
        apiFreeze,
      },
      overheadMs: {
        noopStartP50: round(apiNoop.ms.p50 - directState.ms.p50),
        noopStartP99: round(apiNoop.ms.p99 - directState.ms.p99),
        freezeP50: round(apiFreeze.ms.p50 - directFreeze.ms.p50),
      },
      workerEventLoopDelay: delays,
      workerProcess: workerProc,
    };
    print(result);
    mkdirSync(dirname(OUT), { recursive: true });
    writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
    log(`results written to ${OUT}`);
  } finally {
    if (stack) await stack.close();
    removeLxcpath(directPath);
  }
}

type Lifecycles = Record<'directSeq' | 'directPar' | 'apiSeq' | 'apiPar', LifecycleResult>;

type Result = {
  date: string;
  host: {
    cores: number;
    cpu: string;
    kernel: string;
    node: string;
    liblxc: string;
    loadAvgStart: number;
    loadAvgEnd: number;
  };
  lifecycles: Lifecycles;
  cloneLifecycles: Lifecycles;
  roundTrip: Record<string, RoundTrip>;
  workerEventLoopDelay: LoopDelay[];
  workerProcess: { rssMB: number; threads: number };
};

function print(r: Result): void {
  const out: string[] = [];
  out.push(
    `lxcq pipeline benchmark  ${r.date}`,
    `host: ${r.host.cores} cores (${r.host.cpu}), kernel ${r.host.kernel}, node ${r.host.node}, liblxc ${r.host.liblxc}`,
    `${N} lifecycles per mode (LXCQ_BENCH_N), ${RT} round trips per cheap-job mode (LXCQ_BENCH_RT), worker LXCQ_THREADS=${WORKER_ENV.LXCQ_THREADS}`,
    `load average (1 min) at start ${fmt(r.host.loadAvgStart)}, at end ${fmt(r.host.loadAvgEnd)}: other work on the machine skews every figure`,
    '',
    `1. Full lifecycles: create (busybox template, lxc.net.0.type=empty) + start + stop + destroy`,
    ...lifecycleTables(r.lifecycles),
    '',
    `1b. The same lifecycle with create replaced by an overlayfs copy-on-write clone of a stopped base`,
    `    (POST /v1/containers/<base>/clone {snapshot: true}; clones of one base take its lock one at a time)`,
    ...lifecycleTables(r.cloneLifecycles),
    '',
    '2. One cheap job: round trip through the API vs its liblxc part called directly (ms)',
  );
  const rtRows = Object.values(r.roundTrip).map((x) => [
    x.mode,
    String(x.concurrency),
    String(x.n),
    fmt(x.ms.p50, 2),
    fmt(x.ms.p99, 2),
    fmt(x.ms.max, 2),
    fmt(x.perSec, 0),
    x.split
      ? `${fmt(x.split.queue.p50, 0)} / ${fmt(x.split.run.p50, 0)} / ${fmt(x.split.outside.p50, 1)}`
      : '',
  ]);
  rtRows.push([
    'BullMQ floor (HOST.md): add + waitUntilFinished',
    '1',
    '-',
    fmt(BULLMQ_FLOOR.p50Ms),
    fmt(BULLMQ_FLOOR.p99Ms),
    '-',
    '-',
    '',
  ]);
  const rtm = r.roundTrip;
  out.push(
    table(['mode', 'conc', 'n', 'p50 ms', 'p99 ms', 'max ms', 'jobs/s', 'queue/run/rest p50'], rtRows),
    `  lxcq overhead on a no-op start (API - direct): p50 ${fmt((rtm.apiNoop?.ms.p50 ?? NaN) - (rtm.directState?.ms.p50 ?? NaN))} ms,` +
      ` p99 ${fmt((rtm.apiNoop?.ms.p99 ?? NaN) - (rtm.directState?.ms.p99 ?? NaN))} ms;` +
      ` over the BullMQ floor: p50 ${fmt((rtm.apiNoop?.ms.p50 ?? NaN) - BULLMQ_FLOOR.p50Ms)} ms`,
    `  freeze/unfreeze overhead (API - direct, per job): p50 ${fmt((rtm.apiFreeze?.ms.p50 ?? NaN) - (rtm.directFreeze?.ms.p50 ?? NaN))} ms,` +
      ` mean ${fmt((rtm.apiFreeze?.ms.mean ?? NaN) - (rtm.directFreeze?.ms.mean ?? NaN))} ms`,
    '',
    'CPU ms per job, by process',
    cpuTable(Object.values(r.roundTrip), 'API + client / caller'),
    '',
    "3. Worker main-thread event-loop delay (heartbeat capabilities, cumulative since the worker's start)",
    table(
      ['when', 'p99 ms', 'max ms'],
      r.workerEventLoopDelay.map((d) => [d.at, fmt(d.p99Ms ?? NaN), fmt(d.maxMs ?? NaN)]),
    ),
    `worker process after the load: RSS ${fmt(r.workerProcess.rssMB, 0)} MB, ${r.workerProcess.threads} threads` +
      ' (every fork liblxc makes from it copies its page tables: templates, lxc-start, ips())',
  );
  process.stdout.write(out.join('\n') + '\n');
}

function lifecycleTables(l: Lifecycles): string[] {
  const { directSeq, directPar, apiSeq, apiPar } = l;
  const lcRow = (x: LifecycleResult, direct: LifecycleResult | null, lxd: number): string[] => [
    x.mode,
    String(x.concurrency),
    String(x.n),
    fmt(x.perSec),
    fmt(x.lifecycle.p50, 3),
    fmt(x.lifecycle.p99, 3),
    direct ? ratio(x.perSec, direct.perSec) : '-',
    ratio(x.perSec, lxd),
  ];
  const stepRows = STEPS.map((s) => {
    const sp = (x: LifecycleResult) => x.split?.[s];
    return [
      s,
      fmt(directSeq.steps[s].p50, 1),
      fmt(apiSeq.steps[s].p50, 1),
      fmt(sp(apiSeq)?.queue.p50, 0),
      fmt(sp(apiSeq)?.run.p50, 0),
      fmt(sp(apiSeq)?.outside.p50, 1),
      fmt(apiSeq.steps[s].p50 - directSeq.steps[s].p50, 1),
      fmt(directPar.steps[s].p50, 1),
      fmt(apiPar.steps[s].p50, 1),
      fmt(sp(apiPar)?.queue.p50, 0),
      fmt(sp(apiPar)?.run.p50, 0),
      fmt(sp(apiPar)?.outside.p50, 1),
    ];
  });
  return [
    table(
      ['mode', 'conc', 'n', 'lifecycles/s', 'p50 s', 'p99 s', 'API/direct', `vs LXD (goal >=${GOAL}x)`],
      [
        lcRow(directSeq, null, LXD.seqPerSec),
        lcRow(apiSeq, directSeq, LXD.seqPerSec),
        ['LXD 5.0.2 (issue reference)', '1', '-', fmt(LXD.seqPerSec), '-', '-', '-', '1.00x'],
        lcRow(directPar, null, LXD.c4PerSec),
        lcRow(apiPar, directPar, LXD.c4PerSec),
        ['LXD 5.0.2 (issue reference)', '4', '-', fmt(LXD.c4PerSec), fmt(LXD.c4P50s, 3), '-', '-', '1.00x'],
      ],
    ),
    'Per step, p50 ms as the caller saw it; for the API also the job record split (p50):',
    '  queue = createdAt..startedAt, run = startedAt..finishedAt in the worker, rest = HTTP + submit + wake-up',
    table(
      [
        'step',
        'direct c1',
        'API c1',
        'queue',
        'run',
        'rest',
        'API-direct',
        'direct c4',
        'API c4',
        'queue',
        'run',
        'rest',
      ],
      stepRows,
    ),
    'CPU ms per lifecycle, by process (children = templates, lxc-start and other processes liblxc waits for)',
    cpuTable([directSeq, directPar, apiSeq, apiPar], 'API + client / caller'),
  ];
}

function cpuTable(
  rows: readonly { mode: string; concurrency: number; cpu?: CpuUse }[],
  bench: string,
): string {
  return table(
    ['mode', 'conc', 'children', 'worker', bench, 'redis', 'total', 'cores busy'],
    rows.map((x) => [
      x.mode,
      String(x.concurrency),
      fmt(x.cpu?.children, 1),
      fmt(x.cpu?.worker, 1),
      fmt(x.cpu?.bench, 1),
      fmt(x.cpu?.redis, 1),
      fmt(x.cpu?.total, 1),
      fmt(x.cpu?.cores, 2),
    ]),
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
