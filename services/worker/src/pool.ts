import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, stop } from 'esbuild';
import { Piscina } from 'piscina';
import { LxcqError } from '@lxcq/shared';
import type { LxcCall, LxcReply, ReplyOf } from './protocol.ts';

export interface LxcPoolOptions {
  /** Threads running liblxc calls at once (default: cores, at least 2). */
  threads?: number;
  /** The thread module (default: thread.ts compiled once by `buildThreadModule`). */
  filename?: string;
}

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
    const reply = (await this.piscina.run(req)) as LxcReply<ReplyOf<R['fn']>>;
    if (reply.ok) return reply.value;
    throw new LxcqError(
      reply.error.code,
      reply.error.message,
      reply.error.details ? { details: reply.error.details } : {},
    );
  }

  get stats(): { threads: number; queued: number; utilization: number; waitP99Ms: number } {
    return {
      threads: this.piscina.threads.length,
      queued: this.piscina.queueSize,
      utilization: this.piscina.utilization,
      waitP99Ms: this.piscina.histogram.waitTime.p99,
    };
  }

  async close(): Promise<void> {
    await this.piscina.close();
  }
}
