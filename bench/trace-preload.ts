/**
 * Loaded into the lxcq worker process by bench/trace.ts (`node --import tsx --import
 * trace-preload.ts services/worker/src/main.ts`): wraps the worker's own methods, its thread
 * pool's call, its name locks and every Store method, and writes, for each job the worker runs,
 * one JSON line to $LXCQ_TRACE_FILE with the time each of them took inside that job. Nothing in
 * the worker changes but the few microseconds each wrapper costs.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

/** One wrapped call inside a job: name, start (ms since the job's start), duration, nesting. */
export interface Span {
  n: string;
  /** Names of the wrapped calls it ran inside, outermost first, joined with '/'. */
  p: string;
  s: number;
  d: number;
  depth: number;
}

/** One job as the worker ran it (BullMQ processor call to its return). */
export interface JobTrace {
  id: string;
  op: string;
  container: string;
  /** Epoch ms when the processor was called, and its duration in ms. */
  at: number;
  total: number;
  /** Pool tasks queued in piscina when the job began. */
  poolQueued: number;
  spans: Span[];
}

interface Ctx {
  t0: number;
  depth: number;
  path: string;
  spans: Span[];
}

type AsyncMethod = (this: unknown, ...args: unknown[]) => Promise<unknown>;

const als = new AsyncLocalStorage<Ctx>();

/** Replaces `proto[method]` by a wrapper recording a span named by `label` in the current job. */
function wrap(proto: object, method: string, label: (args: readonly unknown[]) => string): void {
  const p = proto as Record<string, unknown>;
  const orig = p[method];
  if (typeof orig !== 'function') throw new Error(`trace: no method ${method} to wrap`);
  const fn = orig as AsyncMethod;
  p[method] = function (this: unknown, ...args: unknown[]): Promise<unknown> {
    const ctx = als.getStore();
    if (!ctx) return fn.apply(this, args);
    const n = label(args);
    const span: Span = { n, p: ctx.path, s: performance.now() - ctx.t0, d: NaN, depth: ctx.depth };
    ctx.spans.push(span);
    // Calls made by this one are one level deeper (the store is copied for the nested context).
    const path = ctx.path ? `${ctx.path}/${n}` : n;
    return als.run({ ...ctx, depth: ctx.depth + 1, path }, async () => {
      try {
        return await fn.apply(this, args);
      } finally {
        span.d = performance.now() - ctx.t0 - span.s;
      }
    });
  };
}

const out = process.env.LXCQ_TRACE_FILE;

if (isMainThread && out) {
  const { LxcqWorker } = await import('../services/worker/src/worker.ts');
  const { LxcPool } = await import('../services/worker/src/pool.ts');
  const { NameLocks } = await import('../services/worker/src/locks.ts');
  const { Ledger, Store } = await import('@lxcq/shared');

  const proto = LxcqWorker.prototype as unknown as Record<string, unknown>;
  const process0 = proto.process;
  if (typeof process0 !== 'function') throw new Error('trace: LxcqWorker has no process()');
  const processJob = process0 as AsyncMethod;
  proto.process = function (this: unknown, ...args: unknown[]): Promise<unknown> {
    const bullJob = args[0] as { data: { id: string; operation?: string; container?: string } };
    const pool = (this as { pool?: { piscina?: { queueSize?: number } } }).pool;
    const ctx: Ctx = { t0: performance.now(), depth: 0, path: '', spans: [] };
    const at = Date.now();
    const poolQueued = pool?.piscina?.queueSize ?? 0;
    return als.run(ctx, async () => {
      try {
        return await processJob.apply(this, args);
      } finally {
        const t: JobTrace = {
          id: bullJob.data.id,
          op: bullJob.data.operation ?? '?',
          container: bullJob.data.container ?? '?',
          at,
          total: performance.now() - ctx.t0,
          poolQueued,
          spans: ctx.spans,
        };
        appendFileSync(out, JSON.stringify(t) + '\n');
      }
    });
  };
  for (const m of ['runHandler', 'settle', 'refresh', 'monitorCaughtUp']) wrap(proto, m, () => m);
  wrap(LxcPool.prototype, 'call', (a) => `pool.${(a[0] as { fn?: string }).fn ?? '?'}`);
  wrap(NameLocks.prototype, 'acquire', () => 'locks.acquire');
  for (const [label, cls] of [
    ['store', Store],
    ['ledger', Ledger],
  ] as const) {
    for (const m of Object.getOwnPropertyNames(cls.prototype)) {
      if (m === 'constructor' || (label === 'ledger' && m === 'run')) continue;
      const d = Object.getOwnPropertyDescriptor(cls.prototype, m);
      if (d && typeof d.value === 'function') wrap(cls.prototype, m, () => `${label}.${m}`);
    }
  }
}
