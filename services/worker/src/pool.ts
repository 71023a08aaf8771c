import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { LxcqError } from '@lxcq/shared';
import type { LxcCall, LxcReply, ReplyOf } from './protocol.ts';

export interface LxcPoolOptions {
  /** Threads running liblxc calls at once (default: cores, at least 2). */
  threads?: number;
}

/** The piscina pool that runs every blocking liblxc call off the main thread. */
export class LxcPool {
  readonly piscina: Piscina;

  constructor(opts: LxcPoolOptions = {}) {
    const threads = opts.threads ?? Math.max(2, availableParallelism());
    this.piscina = new Piscina({
      filename: new URL('./thread-entry.mjs', import.meta.url).href,
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
