/**
 * The pipeline benchmark: `pnpm bench pipeline` (as root; needs lxc, busybox-static and
 * redis-server, which scripts/setup-host.sh installs).
 *
 * In one run it measures, on a real stack (private redis-server, the API on a free port, one
 * worker process, a temporary lxcpath, busybox containers with `lxc.net.0.type = empty`):
 *  1. full container lifecycles (create, start, stop, destroy) per second through the API at
 *     concurrency 1 and 4, next to the same liblxc steps called directly through @lxcq/lxc-ffi
 *     (sequentially and on 4 worker_threads), and next to LXD 5.0 measured in the same run
 *     (bench/lxd.ts: Debian's lxd, its own daemon and LXD_DIR, a dir pool, no NIC, a busybox image;
 *     create from image + start + stop (forced, as liblxc's stop) + delete over its REST socket, at
 *     concurrency 1 and 4, before lxcq's stack starts), with the lxcq container made three ways:
 *     a. the main mode, the issue's "create from a cached image": template `local` (lxc-local)
 *        from a busybox rootfs + metadata xz image built once at the start (test/local-image.ts) and
 *        put in the worker's LXCQ_IMAGES_DIR;
 *     b. secondary: the `busybox` template, a shell script that builds the rootfs each time;
 *     c. an overlayfs copy-on-write clone of a stopped base container instead of a create;
 *  2. the round trip of one cheap job through the API next to its liblxc part called directly;
 *  3. the worker's main-thread event-loop delay under that load (from its heartbeat).
 * Each mode runs its four rows back to back (direct c1, direct c4, API c1, API c4), so a change in
 * the machine's load between modes skews the rows of one mode alike. It prints aligned tables and
 * writes everything as JSON to bench/results/latest.json. It removes its stack, image, lxcpaths
 * and containers at the end.
 *
 * Environment: LXCQ_BENCH_N lifecycles per mode and row (default 20), LXCQ_BENCH_RT round trips
 * per cheap-job mode (default 200), LXCQ_BENCH_THREADS the worker's LXCQ_THREADS (default 4, its
 * default), LXCQ_BENCH_OUT the JSON file, LXCQ_BENCH_LXD the LXD pool (`dir`, the default, or
 * `btrfs` on a loop file) or `off`. A ratio to LXD is printed only against that same-run figure:
 * when LXD is off or cannot be set up, the run says why and prints no ratio.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { Queue, QueueEvents, Worker as BullWorker } from 'bullmq';
import { LxcPool } from '@lxcq/worker';
import { lxcVersion } from '@lxcq/lxc-ffi';
import { Stack, TOKEN, TEST_CONFIG, removeLxcpath } from '@lxcq/api/testing';
import {
  directFreezePair,
  directLifecycle,
  directMakeRunning,
  directMakeStopped,
  directRemove,
  directIps,
  directStateCheck,
  type LifecycleTimes,
  type Make,
} from './direct.ts';
import type { DirectThreadInput, DirectThreadOutput } from './direct-thread.ts';
import { cpuPer, cpuSnapshot, type CpuUse } from './cpu.ts';
import { buildLocalImage, removeLocalImage, type LocalImage } from '@lxcq/api/testing/local-image';
import { fmt, ratio, round, summarize, table, type Summary } from './stats.ts';
import { startLxd, type LxdLifecycle } from './lxd.ts';

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

const LXD_MODE = process.env.LXCQ_BENCH_LXD || 'dir';
if (!['dir', 'btrfs', 'off'].includes(LXD_MODE))
  throw new Error(`LXCQ_BENCH_LXD=${LXD_MODE}: dir, btrfs or off`);
const GOAL = 3;

const WORKER_ENV = {
  // Production defaults except a 1 s heartbeat, so the loop delay can be read soon after the load.
  LXCQ_HEARTBEAT_MS: '1000',
  LXCQ_INVENTORY_MS: '30000',
  LXCQ_LOCK_MS: '30000',
  LXCQ_THREADS: process.env.LXCQ_BENCH_THREADS || '4',
};

const STEPS = ['create', 'start', 'stop', 'destroy'] as const;

/** The ways a lifecycle makes its container; `local` is the main one. */
const MODE_KEYS = ['local', 'busyboxTemplate', 'clone'] as const;
type ModeKey = (typeof MODE_KEYS)[number];
const MODE_TITLES: Record<ModeKey, string> = {
  local:
    'Main: create from a cached image (template local, busybox rootfs + metadata .tar.xz) + start + stop + destroy',
  busyboxTemplate:
    'Secondary: create with the busybox template (a shell script building the rootfs each time) + start + stop + destroy',
  clone:
    'create replaced by an overlayfs copy-on-write clone of a stopped base container (made from the image)',
};
const MODE_SHORT: Record<ModeKey, string> = {
  local: 'cached image (local)',
  busyboxTemplate: 'busybox template',
  clone: 'overlayfs clone',
};
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

  /** Makes `name`: POST /v1/containers (busybox or local image) or a clone of the base. */
  make(name: string, how: Make): Promise<JobTiming> {
    switch (how.kind) {
      case 'clone':
        return this.job('POST', `/v1/containers/${how.base}/clone`, { newName: name, snapshot: true });
      case 'local':
        return this.job('POST', '/v1/containers', {
          name,
          template: 'local',
          local: { rootfs: how.rootfs, metadata: how.metadata },
          config: TEST_CONFIG,
        });
      case 'busybox':
        return this.job('POST', '/v1/containers', { name, template: 'busybox', config: TEST_CONFIG });
    }
  }

  /** make (see Make: create from an image or template, or clone), start, stop, destroy. */
  async lifecycle(name: string, how: Make): Promise<Record<Step, JobTiming> & { total: number }> {
    const t0 = performance.now();
    const create = await this.make(name, how);
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
  /** 1-minute load average before and after the row. */
  load?: { before: number; after: number };
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

function directSequential(lxcpath: string, tag: string, how: Make): LifecycleResult {
  const times: LifecycleTimes[] = [];
  const t0 = performance.now();
  for (let i = 0; i < N; i++) times.push(directLifecycle(`bd-${tag}s${i}`, lxcpath, how));
  return lifecycleResult('direct lxc-ffi, in-process', 1, performance.now() - t0, times);
}

async function directParallel(lxcpath: string, tag: string, how: Make): Promise<LifecycleResult> {
  const entry = new URL('./direct-thread.mjs', import.meta.url);
  const threads = Array.from({ length: CONC }, (_, t) => {
    const input: DirectThreadInput = { lxcpath, prefix: `bd-${tag}p${t}-`, count: N / CONC, make: how };
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
  // CPU from 'go' on: the threads' start-up (tsx compiling direct.ts, loading liblxc) is not counted.
  const cpu0 = cpuSnapshot(pids);
  const t0 = performance.now();
  for (const t of threads) t.w.postMessage('go');
  const times = (await Promise.all(threads.map((t) => t.done))).flat();
  const r = lifecycleResult(`direct lxc-ffi, ${CONC} worker_threads`, CONC, performance.now() - t0, times);
  r.cpu = cpuPer(cpu0, cpuSnapshot(pids), r.n);
  return r;
}

async function apiLifecycles(
  client: Client,
  concurrency: number,
  tag: string,
  how: Make,
): Promise<LifecycleResult> {
  const all: Awaited<ReturnType<Client['lifecycle']>>[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, t) => {
      for (let i = 0; i < N / concurrency; i++)
        all.push(await client.lifecycle(`ba-${tag}c${concurrency}-${t}-${i}`, how));
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

/**
 * The floor under any queued job: BullMQ alone on the same Redis, one job added and waited for
 * (Queue.add, a no-op Worker, Job.waitUntilFinished through QueueEvents), measured in this run.
 */
async function bullmqFloor(redisUrl: string, n: number): Promise<RoundTrip> {
  const connection = { url: redisUrl };
  const opts = { connection, prefix: 'bench-floor' };
  const queue = new Queue('floor', opts);
  const events = new QueueEvents('floor', opts);
  const worker = new BullWorker('floor', () => Promise.resolve(undefined), opts);
  try {
    await Promise.all([events.waitUntilReady(), worker.waitUntilReady()]);
    for (let i = 0; i < 20; i++) await (await queue.add('warm', {})).waitUntilFinished(events);
    return await poolLoop('BullMQ floor: add + waitUntilFinished (same Redis)', n, async () =>
      (await queue.add('floor', {})).waitUntilFinished(events),
    );
  } finally {
    await worker.close();
    await events.close();
    await queue.obliterate({ force: true });
    await queue.close();
  }
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
  r.cpu ??= cpuPer(a, cpuSnapshot(pids), r.n);
  return r;
}

const load1 = (): number => round(loadavg()[0] ?? NaN, 2);

/** withCpu, and the load average before and after. */
async function row(fn: () => LifecycleResult | Promise<LifecycleResult>): Promise<LifecycleResult> {
  const before = load1();
  const r = await withCpu(fn);
  r.load = { before, after: load1() };
  return r;
}

type Lifecycles = Record<'directSeq' | 'directPar' | 'apiSeq' | 'apiPar', LifecycleResult>;

interface ModeSpec {
  /** Container name tag (keeps the modes' names apart). */
  tag: string;
  title: string;
  direct: Make;
  api: Make;
}

/** One mode's four rows: direct c1, direct c4, API c1, API c4, each after a warm-up. */
async function runMode(
  m: ModeSpec,
  client: Client,
  directPath: string,
  setup?: { direct(): void; api(): Promise<void>; teardown(): Promise<void> },
): Promise<Lifecycles> {
  log(`${m.title}: ${N} lifecycles each direct c1, direct c${CONC}, API c1, API c${CONC} (load ${load1()})`);
  if (setup) {
    setup.direct();
    await setup.api();
  }
  directLifecycle(`bd-${m.tag}warm`, directPath, m.direct);
  const directSeq = await row(() => directSequential(directPath, m.tag, m.direct));
  const directPar = await row(() => directParallel(directPath, m.tag, m.direct));
  await client.lifecycle(`ba-${m.tag}warm`, m.api);
  const apiSeq = await row(() => apiLifecycles(client, 1, m.tag, m.api));
  // Warm-up at full concurrency too (every pool thread has run a lifecycle).
  await Promise.all(Array.from({ length: CONC }, (_, i) => client.lifecycle(`ba-${m.tag}warm${i}`, m.api)));
  const apiPar = await row(() => apiLifecycles(client, CONC, m.tag, m.api));
  if (setup) await setup.teardown();
  return { directSeq, directPar, apiSeq, apiPar };
}

/** Ratios to LXD are null unless LXD was measured in this run. */
function modeRatios(l: Lifecycles, ref: LxdRef) {
  const vs = (x: number, c: number) => (ref.measured ? round(x / lxdPerSec(ref, c)) : null);
  return {
    apiVsDirectSeq: round(l.apiSeq.perSec / l.directSeq.perSec),
    apiVsDirectPar: round(l.apiPar.perSec / l.directPar.perSec),
    apiVsLxdSeq: vs(l.apiSeq.perSec, 1),
    apiVsLxdPar: vs(l.apiPar.perSec, CONC),
    directVsLxdSeq: vs(l.directSeq.perSec, 1),
    directVsLxdPar: vs(l.directPar.perSec, CONC),
  };
}

// ---- LXD, measured in the same run ----------------------------------------------------------

/** LXD's same-run lifecycles, or why there are none (then no ratio is printed). */
type LxdRef =
  | {
      measured: true;
      version: string;
      storage: string;
      privileged: boolean;
      seq: LifecycleResult;
      par: LifecycleResult;
    }
  | { measured: false; reason: string };

/** LXD's same-run lifecycles/s at that concurrency; NaN (so no ratio) when it was not measured. */
function lxdPerSec(ref: LxdRef, concurrency: number): number {
  if (!ref.measured) return Number.NaN;
  return concurrency === 1 ? ref.seq.perSec : ref.par.perSec;
}

function lxdRow(version: string, x: LifecycleResult): string[] {
  return [
    x.mode.replace('LXD', `LXD ${version}`),
    String(x.concurrency),
    String(x.n),
    fmt(x.perSec),
    fmt(x.lifecycle.p50, 3),
    fmt(x.lifecycle.p99, 3),
    '-',
    '1.00x',
  ];
}

/**
 * LXD's lifecycles at concurrency 1 and CONC, N each, after one warm-up lifecycle, with the same
 * row accounting as lxcq's (the lxd daemon's CPU is in the `worker` column). Its daemon is stopped
 * before lxcq's stack starts, so neither idles beside the other's measurement.
 */
async function measureLxd(): Promise<LxdRef> {
  if (LXD_MODE === 'off') return { measured: false, reason: 'LXCQ_BENCH_LXD=off' };
  let lxd;
  try {
    log(`starting LXD (${LXD_MODE} pool) for the same-run reference`);
    // Privileged, like lxcq's busybox containers (no lxc.idmap).
    lxd = await startLxd({ storage: LXD_MODE === 'btrfs' ? 'btrfs' : 'dir', privileged: true, log });
  } catch (err) {
    return {
      measured: false,
      reason: `LXD could not be set up: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
  const { client, image } = lxd;
  try {
    pids = { worker: lxd.pid };
    const runs = async (concurrency: number): Promise<LifecycleResult> => {
      const all: LxdLifecycle[] = [];
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async (_, t) => {
          for (let i = 0; i < N / concurrency; i++)
            all.push(await client.lifecycle(`bl-c${concurrency}-${t}-${i}`, image));
        }),
      );
      return lifecycleResult('LXD REST (unix socket)', concurrency, performance.now() - t0, all);
    };
    await client.lifecycle('bl-warm', image);
    log(`LXD ${lxd.version}: ${N} lifecycles at concurrency 1, then ${CONC}`);
    const seq = await row(() => runs(1));
    const par = await row(() => runs(CONC));
    return {
      measured: true,
      version: lxd.version,
      storage: lxd.storage,
      privileged: lxd.privileged,
      seq,
      par,
    };
  } catch (err) {
    return {
      measured: false,
      reason: `LXD lifecycles failed: ${err instanceof Error ? err.message : String(err)}`,
    };
  } finally {
    pids = {};
    await lxd.stop();
  }
}

/** The code measured: HEAD and the files that differ from it (other work in the tree). */
function sourceState(): { commit: string; uncommitted: string[] } {
  const git = (...args: string[]) => {
    try {
      return execFileSync('git', args, {
        encoding: 'utf8',
        cwd: fileURLToPath(new URL('../', import.meta.url)),
      });
    } catch {
      return '';
    }
  };
  return {
    commit: git('rev-parse', '--short', 'HEAD').trim() || 'unknown',
    uncommitted: git(
      'status',
      '--porcelain',
      '--',
      'services/worker',
      'services/api/src',
      'packages/lxc-ffi',
      'packages/shared',
    )
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3)),
  };
}

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark creates real containers: run it as root');
  const startedAt = new Date();
  const source = sourceState();
  const loadStart = loadavg()[0] ?? NaN;
  const directPath = mkdtempSync(join(tmpdir(), 'lxcq-bench-direct-'));
  let stack: Stack | null = null;
  let image: LocalImage | null = null;
  try {
    log('building the local image (busybox rootfs + metadata, xz) once');
    image = buildLocalImage();
    const img = image;
    const lxdRef = await measureLxd();
    if (!lxdRef.measured) log(`no LXD reference: ${lxdRef.reason}`);
    log(`starting the stack (redis-server, API, worker with LXCQ_IMAGES_DIR=${img.dir})`);
    stack = await Stack.start({ workerEnv: { ...WORKER_ENV, LXCQ_IMAGES_DIR: img.dir } });
    pids = { worker: stack.worker?.pid, redis: stack.redisServer.pid };
    const client = new Client(stack.url);
    const hostId = stack.hostId;
    const delays: LoopDelay[] = [loopDelay('idle, after start', await client.freshHost(hostId))];
    const apiLocal: Make = { kind: 'local', rootfs: img.rootfs, metadata: img.metadata };
    const directLocal: Make = { kind: 'local', rootfs: img.rootfsPath, metadata: img.metadataPath };

    // 1a. the main mode: create from the cached (local) image
    const local = await runMode(
      { tag: 'i', title: MODE_TITLES.local, direct: directLocal, api: apiLocal },
      client,
      directPath,
    );
    // 1b. secondary: create with the busybox template
    const busybox = await runMode(
      {
        tag: 'b',
        title: MODE_TITLES.busyboxTemplate,
        direct: { kind: 'busybox' },
        api: { kind: 'busybox' },
      },
      client,
      directPath,
    );
    // 1c. create replaced by a copy-on-write clone of a stopped base container (made from the image)
    const clone = await runMode(
      {
        tag: 'k',
        title: MODE_TITLES.clone,
        direct: { kind: 'clone', base: 'bd-base' },
        api: { kind: 'clone', base: 'ba-base' },
      },
      client,
      directPath,
      {
        direct: () => directMakeStopped('bd-base', directPath, directLocal),
        api: async () => void (await client.make('ba-base', apiLocal)),
        teardown: async () => {
          await client.job('DELETE', '/v1/containers/ba-base');
          directRemove('bd-base', directPath);
        },
      },
    );
    delays.push(loopDelay('after the lifecycles', await client.freshHost(hostId)));

    // 2. cheap jobs' round trip
    log(`round trips: ${RT} no-op starts, ${RT / 4} freeze/unfreeze pairs`);
    const rtNames = Array.from({ length: CONC }, (_, i) => `ba-rt${i}`);
    for (const n of rtNames) {
      await client.make(n, apiLocal);
      await client.job('POST', `/v1/containers/${n}/start`);
    }
    const first = rtNames[0] as string;
    const lxcpath = stack.lxcpath;
    directMakeRunning('bd-fz', directPath, directLocal);
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
    const redisUrl = stack.redisServer.url;
    const floor = await withCpu(() => bullmqFloor(redisUrl, RT));
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
      source,
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
      reference: { goalVsLxd: GOAL },
      lxd: lxdRef,
      image: { rootfsBytes: img.rootfsBytes, format: 'tar.xz (lxc-local accepts xz only)' },
      lifecycles: { local, busyboxTemplate: busybox, clone },
      ratios: {
        local: modeRatios(local, lxdRef),
        busyboxTemplate: modeRatios(busybox, lxdRef),
        clone: modeRatios(clone, lxdRef),
      },
      roundTrip: {
        directState,
        directIps: directIpsRt,
        poolStart,
        poolInfo,
        bullmqFloor: floor,
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
    if (image) removeLocalImage(image);
  }
}

type Result = {
  date: string;
  source: { commit: string; uncommitted: string[] };
  host: {
    cores: number;
    cpu: string;
    kernel: string;
    node: string;
    liblxc: string;
    loadAvgStart: number;
    loadAvgEnd: number;
  };
  lxd: LxdRef;
  lifecycles: Record<ModeKey, Lifecycles>;
  roundTrip: Record<string, RoundTrip>;
  workerEventLoopDelay: LoopDelay[];
  workerProcess: { rssMB: number; threads: number };
};

function print(r: Result): void {
  const out: string[] = [];
  out.push(
    `lxcq pipeline benchmark  ${r.date}  (commit ${r.source.commit}` +
      `${r.source.uncommitted.length ? `, uncommitted changes in ${r.source.uncommitted.join(', ')}` : ''})`,
    `host: ${r.host.cores} cores (${r.host.cpu}), kernel ${r.host.kernel}, node ${r.host.node}, liblxc ${r.host.liblxc}`,
    `${N} lifecycles per mode (LXCQ_BENCH_N), ${RT} round trips per cheap-job mode (LXCQ_BENCH_RT), worker LXCQ_THREADS=${WORKER_ENV.LXCQ_THREADS}`,
    `load average (1 min) at start ${fmt(r.host.loadAvgStart)}, at end ${fmt(r.host.loadAvgEnd)}: other work on the machine skews every figure`,
    '',
    `1. Full lifecycles (make + start + stop + destroy, lxc.net.0.type=empty) per second, next to LXD measured in this run`,
    r.lxd.measured
      ? `   (LXD ${r.lxd.version}, own daemon, ${r.lxd.storage} pool, ${r.lxd.privileged ? 'privileged' : 'unprivileged'}, no NIC, busybox image:` +
          ` ${fmt(r.lxd.seq.perSec)}/s sequentially, ${fmt(r.lxd.par.perSec)}/s at concurrency ${CONC}, p50 ${fmt(r.lxd.par.lifecycle.p50)} s; goal >= ${GOAL}x)`
      : `   (no LXD figure from this run, so no ratio: ${r.lxd.reason})`,
    summaryTable(r.lifecycles, r.lxd),
    ...(r.lxd.measured
      ? [
          'LXD per step, p50 ms (create / start / stop / delete), and CPU ms per lifecycle of the lxd daemon and of this process:',
          ...[r.lxd.seq, r.lxd.par].map(
            (x) =>
              `  c${x.concurrency}: ${STEPS.map((s) => fmt(x.steps[s].p50, 0)).join(' / ')};` +
              ` lxd ${fmt(x.cpu?.worker, 1)}, bench ${fmt(x.cpu?.bench, 1)} (lxc monitors and forkstart are not its children, so not counted)`,
          ),
        ]
      : []),
    '',
    `1a. ${MODE_TITLES.local}`,
    `    (POST /v1/containers {template: 'local', local: {rootfs, metadata}}; direct: create('local', ['--fstree', ..., '--metadata', ...]))`,
    ...lifecycleTables(r.lifecycles.local, r.lxd),
    '',
    `1b. ${MODE_TITLES.busyboxTemplate}`,
    ...lifecycleTables(r.lifecycles.busyboxTemplate, r.lxd),
    '',
    `1c. ${MODE_TITLES.clone}`,
    `    (POST /v1/containers/<base>/clone {snapshot: true}; clones of one base take its lock one at a time)`,
    ...lifecycleTables(r.lifecycles.clone, r.lxd),
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
  const rtm = r.roundTrip;
  out.push(
    table(['mode', 'conc', 'n', 'p50 ms', 'p99 ms', 'max ms', 'jobs/s', 'queue/run/rest p50'], rtRows),
    `  lxcq overhead on a no-op start (API - direct): p50 ${fmt((rtm.apiNoop?.ms.p50 ?? NaN) - (rtm.directState?.ms.p50 ?? NaN))} ms,` +
      ` p99 ${fmt((rtm.apiNoop?.ms.p99 ?? NaN) - (rtm.directState?.ms.p99 ?? NaN))} ms;` +
      ` over the BullMQ floor (same run): p50 ${fmt((rtm.apiNoop?.ms.p50 ?? NaN) - (rtm.bullmqFloor?.ms.p50 ?? NaN))} ms`,
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

/** Every mode's lifecycles/s and its ratio to LXD, one row per mode and way of calling. */
function summaryTable(all: Record<ModeKey, Lifecycles>, ref: LxdRef): string {
  const rows: string[][] = [];
  for (const key of MODE_KEYS) {
    const l = all[key];
    for (const [name, x] of [
      ['lxcq API', l.apiSeq],
      ['direct lxc-ffi', l.directSeq],
      ['lxcq API', l.apiPar],
      ['direct lxc-ffi', l.directPar],
    ] as const) {
      const lxd = lxdPerSec(ref, x.concurrency);
      rows.push([
        MODE_SHORT[key],
        name,
        String(x.concurrency),
        fmt(x.perSec),
        fmt(x.lifecycle.p50, 3),
        ratio(x.perSec, lxd),
        Number.isNaN(lxd) ? '-' : x.perSec >= GOAL * lxd ? 'yes' : 'no',
        `${fmt(x.load?.before, 1)}-${fmt(x.load?.after, 1)}`,
      ]);
    }
  }
  if (ref.measured)
    for (const x of [ref.seq, ref.par])
      rows.push([
        `LXD ${ref.version} (this run)`,
        'busybox image, REST',
        String(x.concurrency),
        fmt(x.perSec),
        fmt(x.lifecycle.p50, 3),
        '1.00x',
        '-',
        `${fmt(x.load?.before, 1)}-${fmt(x.load?.after, 1)}`,
      ]);
  return table(
    ['mode', 'through', 'conc', 'lifecycles/s', 'p50 s', 'lxcq/LXD', `>=${GOAL}x`, 'load 1m'],
    rows,
  );
}

function lifecycleTables(l: Lifecycles, ref: LxdRef): string[] {
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
        lcRow(directSeq, null, lxdPerSec(ref, 1)),
        lcRow(apiSeq, directSeq, lxdPerSec(ref, 1)),
        ...(ref.measured ? [lxdRow(ref.version, ref.seq)] : []),
        lcRow(directPar, null, lxdPerSec(ref, CONC)),
        lcRow(apiPar, directPar, lxdPerSec(ref, CONC)),
        ...(ref.measured ? [lxdRow(ref.version, ref.par)] : []),
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
