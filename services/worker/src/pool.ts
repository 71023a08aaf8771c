import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, stop } from 'esbuild';
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { SpanKind, context, trace } from '@opentelemetry/api';
import { LxcqError } from '@lxcq/shared';
import { failSpan, tracer } from '@lxcq/telemetry';
import type { LxcCall, LxcReply, ReplyOf } from './protocol.ts';

export interface LxcPoolOptions {
  /** Threads running liblxc calls at once (default: cores, at least 2). */
  threads?: number;
  /** The thread module (default: thread.ts compiled once by `buildThreadModule`). */
  filename?: string;
}

/** Told about every liblxc step: seconds it waited for a thread, seconds it ran there. */
export type StepObserver = (fn: string, waitSeconds: number, runSeconds: number) => void;

const threadSource = fileURLToPath(new URL('./thread.ts', import.meta.url));

/**
 * Compiles thread.ts and what it imports into one JavaScript module, once per process, so each
 * piscina thread loads plain JavaScript. Loading TypeScript in every thread through tsx would cost
 * each thread its own esbuild service process and tens of MB, and a bigger worker process makes
 * every fork liblxc does (templates, lxc-start, attach) slower. koffi stays external (native).
 */
export async function buildThreadModule(): Promise<string> {
  const outfile = join(dirname(threadSource), '..', '.build', 'thread.mjs');
  const result = await build({
    entryPoints: [threadSource],
    outfile,
    write: false,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['koffi'],
    sourcemap: 'inline',
    logLevel: 'error',
    // Bundled CommonJS dependencies may call require(): give the ESM bundle one.
    banner: {
      js: "import { createRequire as __lxcqCreateRequire } from 'node:module'; const require = __lxcqCreateRequire(import.meta.url);",
    },
  });
  // esbuild keeps a service process alive after a build; this process needs it no more.
  await stop();
  const code = result.outputFiles[0]?.contents;
  if (!code) throw new Error('esbuild produced no thread module');
  // Several workers may start at once from one checkout: write aside, then rename atomically.
  mkdirSync(dirname(outfile), { recursive: true });
  const tmp = `${outfile}.${process.pid}.tmp`;
  writeFileSync(tmp, code);
  renameSync(tmp, outfile);
  return pathToFileURL(outfile).href;
}

/** The piscina pool that runs every blocking liblxc call off the main thread. */
export class LxcPool {
  readonly piscina: Piscina;
  /** Steps submitted and not answered (queued for a thread, or running in one). */
  private inFlight = 0;
  /** Set by the worker to feed its metrics. */
  observer: StepObserver | null = null;

  constructor(opts: LxcPoolOptions = {}) {
    const threads = opts.threads ?? Math.max(2, availableParallelism());
    this.piscina = new Piscina({
      filename: opts.filename ?? new URL('./thread-entry.mjs', import.meta.url).href,
      // A compiled thread module needs no TypeScript loader in its threads (see buildThreadModule).
      ...(opts.filename ? { execArgv: [] } : {}),
      // All threads up front: a thread loads tsx, koffi and liblxc once, which is slow under load.
      minThreads: threads,
      maxThreads: threads,
      // Each task blocks its thread in liblxc; queueing more on one thread gains nothing.
      concurrentTasksPerWorker: 1,
      idleTimeout: 60_000,
    });
  }

  /** Runs one liblxc step in a thread; rejects with an LxcqError carrying liblxc's message. */
  async call<R extends LxcCall>(req: R): Promise<ReplyOf<R['fn']>> {
    // A span per step of a traced piece of work (a job, a transfer), child of its active span:
    // `lxc <fn>` covers the wait for a thread and the step; its child `liblxc <fn>` is the time
    // the thread spent in liblxc. Steps outside any span (the periodic inventory and heartbeat)
    // get none: each would make a trace of its own and drown the useful ones.
    const parent = context.active();
    const name = 'name' in req ? req.name : undefined;
    // Span times as OpenTelemetry keeps them: the wall clock at the start plus monotonic time since.
    const startWall = Date.now();
    const t0 = performance.now();
    const span = trace.getSpan(parent)?.isRecording()
      ? tracer().startSpan(
          `lxc ${req.fn}`,
          {
            kind: SpanKind.INTERNAL,
            startTime: startWall,
            attributes: { 'lxcq.lxc.fn': req.fn, ...(name ? { 'lxcq.container': name } : {}) },
          },
          parent,
        )
      : undefined;
    this.inFlight++;
    let reply: LxcReply<ReplyOf<R['fn']>>;
    try {
      reply = (await this.piscina.run(req)) as LxcReply<ReplyOf<R['fn']>>;
    } catch (err) {
      if (span) {
        failSpan(span, err);
        span.end();
      }
      throw err;
    } finally {
      this.inFlight--;
    }
    const totalMs = performance.now() - t0;
    const runMs = Math.min(reply.ms ?? totalMs, totalMs);
    this.observer?.(req.fn, (totalMs - runMs) / 1000, runMs / 1000);
    const error = reply.ok
      ? null
      : new LxcqError(
          reply.error.code,
          reply.error.message,
          reply.error.details ? { details: reply.error.details } : {},
        );
    if (span) {
      const end = startWall + totalMs;
      span.setAttribute('lxcq.pool.wait_ms', Math.round((totalMs - runMs) * 1000) / 1000);
      const inner = tracer().startSpan(
        `liblxc ${req.fn}`,
        { kind: SpanKind.INTERNAL, startTime: end - runMs, attributes: { 'lxcq.lxc.fn': req.fn } },
        trace.setSpan(parent, span),
      );
      if (error) {
        failSpan(inner, error);
        failSpan(span, error);
      }
      inner.end(end);
      span.end(end);
    }
    if (reply.ok) return reply.value;
    throw error as LxcqError;
  }

  get stats(): { threads: number; busy: number; queued: number; utilization: number; waitP99Ms: number } {
    const queued = this.piscina.queueSize;
    return {
      threads: this.piscina.threads.length,
      busy: Math.max(0, this.inFlight - queued),
      queued,
      utilization: this.piscina.utilization,
      waitP99Ms: this.piscina.histogram.waitTime.p99,
    };
  }

  async close(): Promise<void> {
    await this.piscina.close();
  }
}
