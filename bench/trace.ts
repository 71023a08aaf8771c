/**
 * Where a lifecycle's time goes inside the worker: `pnpm bench trace`
 * (as root, like the pipeline bench).
 *
 * Runs the pipeline bench's main mode (create from the cached local image, start, stop, destroy)
 * through the API at concurrency 1 and 4, with the worker started with bench/trace-preload.ts,
 * which records every pool call (liblxc in a thread), Store call (Redis), name-lock wait and
 * monitor wait inside each job. Prints, per operation, the p50 of each of those per job next to
 * the job's total in the worker and as the client saw it, and the same liblxc steps called
 * directly for reference. Removes its stack, image and containers at the end.
 *
 * Environment: LXCQ_BENCH_N lifecycles per row (default 20), LXCQ_BENCH_THREADS the worker's
 * LXCQ_THREADS (default 4), LXCQ_TRACE_MODE `local` (default) or `clone` (create replaced by an
 * overlayfs clone of a stopped base made from the image, as the bench's mode 1c), LXCQ_TRACE_OUT a
 * JSON file for the summary (default: none).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Stack, TEST_CONFIG, TOKEN, removeLxcpath } from '@lxcq/api/testing';
import { directLifecycle, directMakeStopped, type LifecycleTimes, type Make } from './direct.ts';
import { buildLocalImage, removeLocalImage, type LocalImage } from '@lxcq/api/testing/local-image';
import { fmt, round, summarize, table, type Summary } from './stats.ts';
import type { JobTrace } from './trace-preload.ts';

const CONC = 4;
const rawN = Number(process.env.LXCQ_BENCH_N || 20);
if (!Number.isInteger(rawN) || rawN < 1)
  throw new Error(`LXCQ_BENCH_N=${process.env.LXCQ_BENCH_N} is not a whole number >= 1`);
const N = Math.ceil(rawN / CONC) * CONC;
const repo = fileURLToPath(new URL('../', import.meta.url));
const preload = fileURLToPath(new URL('./trace-preload.ts', import.meta.url));
const OPS = ['create', 'start', 'stop', 'destroy'] as const;
const MODE = process.env.LXCQ_TRACE_MODE || 'local';
if (MODE !== 'local' && MODE !== 'clone') throw new Error(`LXCQ_TRACE_MODE=${MODE} is not local or clone`);
const BASE = 'bt-base';

function log(msg: string): void {
  process.stderr.write(`[trace ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** The worker as Stack.startWorker runs it, plus the trace preload. */
async function startTracedWorker(stack: Stack, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--import', preload, join(repo, 'services/worker/src/main.ts')],
    {
      env: {
        ...process.env,
        LXCQ_REDIS_URL: stack.redisServer.url,
        LXCQ_HOST_ID: stack.hostId,
        LXCQ_LXCPATH: stack.lxcpath,
        LXCQ_HEARTBEAT_MS: '1000',
        LXCQ_INVENTORY_MS: '30000',
        LXCQ_LOCK_MS: '30000',
        LXCQ_THREADS: process.env.LXCQ_BENCH_THREADS || '4',
        ...env,
      },
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 1200; i++) {
    if (child.exitCode !== null) throw new Error(`worker exited (${child.exitCode}):\n${out}`);
    if (out.includes('worker ready')) return child;
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`worker did not become ready:\n${out}`);
}

async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

interface ClientJob {
  id: string;
  op: string;
  total: number;
}

async function job(url: string, method: string, path: string, body?: unknown): Promise<ClientJob> {
  const t0 = performance.now();
  const res = await fetch(`${url}${path}${path.includes('?') ? '&' : '?'}wait=120`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const j = (await res.json()) as { id: string; operation: string; state: string };
  if (res.status !== 200 || j.state !== 'completed')
    throw new Error(`${method} ${path} answered ${res.status}: ${JSON.stringify(j)}`);
  return { id: j.id, op: j.operation, total: performance.now() - t0 };
}

function apiCreate(url: string, name: string, img: LocalImage): Promise<ClientJob> {
  return job(url, 'POST', '/v1/containers', {
    name,
    template: 'local',
    local: { rootfs: img.rootfs, metadata: img.metadata },
    config: TEST_CONFIG,
  });
}

async function apiLifecycle(url: string, name: string, img: LocalImage): Promise<ClientJob[]> {
  return [
    MODE === 'clone'
      ? await job(url, 'POST', `/v1/containers/${BASE}/clone`, { newName: name, snapshot: true })
      : await apiCreate(url, name, img),
    await job(url, 'POST', `/v1/containers/${name}/start`),
    await job(url, 'POST', `/v1/containers/${name}/stop`),
    await job(url, 'DELETE', `/v1/containers/${name}`),
  ];
}

async function apiRow(url: string, conc: number, tag: string, img: LocalImage): Promise<ClientJob[]> {
  const all: ClientJob[] = [];
  await Promise.all(
    Array.from({ length: conc }, async (_, t) => {
      for (let i = 0; i < N / conc; i++) all.push(...(await apiLifecycle(url, `bt-${tag}-${t}-${i}`, img)));
    }),
  );
  return all;
}

/** Per operation: client and worker totals, and each span (name at its depth) summed per job. */
interface OpBreakdown {
  op: string;
  n: number;
  client: Summary;
  worker: Summary;
  /** Client total minus the worker's processor time: HTTP, submit, BullMQ pickup, wake-up. */
  outsideWorker: Summary;
  spans: { name: string; depth: number; callsPerJob: number; p50: number; mean: number }[];
  /** Processor time in no wrapped call (depth 0 gaps): JSON, logging, marker files, awaits. */
  unwrapped: Summary;
}

function breakdown(clientJobs: readonly ClientJob[], traces: ReadonlyMap<string, JobTrace>): OpBreakdown[] {
  const ops = MODE === 'clone' ? ['clone', ...OPS.slice(1)] : [...OPS];
  return ops.map((op) => {
    const jobs = clientJobs.filter((j) => j.op === op);
    const tr = jobs.map((j) => traces.get(j.id)).filter((t): t is JobTrace => t !== undefined);
    // One row per call path (a name inside its callers), in the order a job runs them: by the
    // median start of the path and of each of its callers, outermost first.
    const full = (x: { p: string; n: string }) => (x.p ? `${x.p}/${x.n}` : x.n);
    const starts = new Map<string, number[]>();
    for (const t of tr)
      for (const s of t.spans) {
        const k = full(s);
        const seen = starts.get(k) ?? [];
        if (!t.spans.some((o) => o !== s && full(o) === k && o.s < s.s)) seen.push(s.s);
        starts.set(k, seen);
      }
    const med = (k: string) => summarize(starts.get(k) ?? []).p50;
    const order = (k: string): number[] => {
      const parts = k.split('/');
      return parts.map((_, i) => med(parts.slice(0, i + 1).join('/')));
    };
    const cmp = (a: string, b: string): number => {
      const oa = order(a);
      const ob = order(b);
      for (let i = 0; i < Math.min(oa.length, ob.length); i++) {
        const d = (oa[i] ?? 0) - (ob[i] ?? 0);
        if (d !== 0) return d;
      }
      return oa.length - ob.length;
    };
    const spans = [...starts.keys()].sort(cmp).map((k) => {
      const per = tr.map((t) => t.spans.filter((s) => full(s) === k));
      const sum = summarize(per.map((ss) => ss.reduce((a, s) => a + s.d, 0)));
      const parts = k.split('/');
      return {
        name: parts[parts.length - 1] ?? k,
        depth: parts.length - 1,
        callsPerJob: round(per.reduce((a, ss) => a + ss.length, 0) / Math.max(1, tr.length), 2),
        p50: sum.p50,
        mean: sum.mean,
      };
    });
    const unwrapped = tr.map(
      (t) => t.total - t.spans.filter((s) => s.depth === 0).reduce((a, s) => a + s.d, 0),
    );
    return {
      op,
      n: tr.length,
      client: summarize(jobs.map((j) => j.total)),
      worker: summarize(tr.map((t) => t.total)),
      outsideWorker: summarize(
        jobs.flatMap((j) => {
          const t = traces.get(j.id);
          return t ? [j.total - t.total] : [];
        }),
      ),
      spans,
      unwrapped: summarize(unwrapped),
    };
  });
}

const isStep = (s: string): s is (typeof OPS)[number] => (OPS as readonly string[]).includes(s);

function printRow(
  title: string,
  direct: readonly LifecycleTimes[] | null,
  ops: readonly OpBreakdown[],
): string {
  const lines = [title];
  for (const o of ops) {
    const step = o.op === 'clone' ? 'create' : o.op;
    const d = direct && isStep(step) ? summarize(direct.map((t) => t[step])) : null;
    lines.push(
      `  ${o.op}: client p50 ${fmt(o.client.p50, 1)} ms, worker processor p50 ${fmt(o.worker.p50, 1)} ms` +
        `, outside the worker p50 ${fmt(o.outsideWorker.p50, 1)} ms` +
        (d ? `; direct liblxc (in-process, c1) p50 ${fmt(d.p50, 1)} ms` : ''),
    );
    lines.push(
      table(
        ['  span (inclusive; indented = inside the one above)', 'calls/job', 'p50 ms', 'mean ms'],
        [
          ...o.spans.map((s) => [
            `  ${'  '.repeat(s.depth)}${s.name}`,
            fmt(s.callsPerJob, 2),
            fmt(s.p50, 2),
            fmt(s.mean, 2),
          ]),
          ['  (processor time outside any span)', '-', fmt(o.unwrapped.p50, 2), fmt(o.unwrapped.mean, 2)],
        ],
      ),
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the trace creates real containers: run it as root');
  const tmp = mkdtempSync(join(tmpdir(), 'lxcq-trace-'));
  const traceFile = join(tmp, 'jobs.jsonl');
  const directPath = mkdtempSync(join(tmpdir(), 'lxcq-trace-direct-'));
  let image: LocalImage | null = null;
  let stack: Stack | null = null;
  let worker: ChildProcess | null = null;
  try {
    log('building the local image');
    image = buildLocalImage();
    const img = image;
    stack = await Stack.start({ noWorker: true });
    worker = await startTracedWorker(stack, { LXCQ_IMAGES_DIR: img.dir, LXCQ_TRACE_FILE: traceFile });
    const url = stack.url;
    const local: Make = { kind: 'local', rootfs: img.rootfsPath, metadata: img.metadataPath };
    const how: Make = MODE === 'clone' ? { kind: 'clone', base: 'bt-dbase' } : local;
    if (MODE === 'clone') {
      directMakeStopped('bt-dbase', directPath, local);
      await apiCreate(url, BASE, img);
    }

    const load0 = loadavg()[0] ?? NaN;
    log(
      `${N} direct lifecycles (reference), then ${N} API lifecycles at c1 and c${CONC} (load ${fmt(load0)})`,
    );
    directLifecycle('bt-dwarm', directPath, how);
    const direct: LifecycleTimes[] = [];
    for (let i = 0; i < N; i++) direct.push(directLifecycle(`bt-d${i}`, directPath, how));
    await apiLifecycle(url, 'bt-warm', img);
    const c1 = await apiRow(url, 1, 'c1', img);
    await Promise.all(Array.from({ length: CONC }, (_, i) => apiLifecycle(url, `bt-warm${i}`, img)));
    const c4 = await apiRow(url, CONC, 'c4', img);
    const load1 = loadavg()[0] ?? NaN;

    await stopWorker(worker);
    worker = null;
    const traces = new Map<string, JobTrace>();
    for (const line of readFileSync(traceFile, 'utf8').split('\n')) {
      if (!line) continue;
      const t = JSON.parse(line) as JobTrace;
      traces.set(t.id, t);
    }
    const result = {
      date: new Date().toISOString(),
      n: N,
      mode: MODE,
      loadAvg: { start: round(load0, 2), end: round(load1, 2) },
      c1: breakdown(c1, traces),
      c4: breakdown(c4, traces),
    };
    process.stdout.write(
      [
        `lxcq worker trace: ${MODE === 'clone' ? 'overlayfs clone of a stopped base' : 'create (local image)'}` +
          ` + start + stop + destroy, ${N} lifecycles per row,` +
          ` load average ${fmt(load0)} -> ${fmt(load1)}`,
        '',
        printRow('API at concurrency 1', direct, result.c1),
        '',
        printRow(`API at concurrency ${CONC}`, null, result.c4),
        '',
      ].join('\n'),
    );
    const out = process.env.LXCQ_TRACE_OUT;
    if (out) writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  } finally {
    if (worker) await stopWorker(worker);
    if (stack) await stack.close();
    removeLxcpath(directPath);
    if (image) removeLocalImage(image);
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `trace failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
