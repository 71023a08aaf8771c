import type { Job, OperationName, ResultOf } from '@lxcq/shared';
import { isErrorCode, isFinal } from './shared-runtime.ts';
import {
  JobCancelledError,
  JobFailedError,
  LxcqConnectionError,
  LxcqError,
  WaitTimeoutError,
} from './errors.ts';
import { isResync, type EventOf, type EventStream, type EventsOptions } from './events.ts';

/** The job events (`job.queued` ... `job.cancelled`), with typed `data`. */
export type JobEventType =
  'job.queued' | 'job.active' | 'job.progress' | 'job.completed' | 'job.failed' | 'job.cancelled';
export type JobEvent = EventOf<JobEventType>;

/** What a JobHandle needs from its client. */
export interface JobHandleDeps {
  /** `GET /v1/jobs/:id`. */
  get(id: string): Promise<Job>;
  /** `GET /v1/jobs/:id/wait?timeout=<s>`: the job once ended, or as it is after the timeout. */
  waitOnce(id: string, timeoutSec: number, signal?: AbortSignal): Promise<Job>;
  /** `DELETE /v1/jobs/:id`. */
  cancel(id: string): Promise<Job>;
  events(opts: EventsOptions<'job.*'>): EventStream<JobEvent>;
}

export interface WaitOptions {
  /** Give up (with WaitTimeoutError; the job goes on) after this long. Default: no bound. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Longest single long-poll; the loop goes on until the job ends or the caller's bound passes. */
const POLL_SEC = 30;
/** How long waiting rides out an unreachable API (a restart) before giving up. */
const OUTAGE_MS = 60_000;

/**
 * A submitted job. `await handle` gives the job's typed result once it completes, or rejects with
 * an LxcqError (JobFailedError with the job's own code, JobCancelledError) when it fails or is
 * cancelled; a refused submission (HTTP 4xx) rejects the same way. `id` and `job` are there once
 * `await handle.submitted` has resolved.
 */
export class JobHandle<N extends OperationName = OperationName> implements PromiseLike<ResultOf<N>> {
  /** The job as the submission answered (usually `queued`). */
  readonly submitted: Promise<Job>;
  private initial: Job | undefined;
  private outcome: Promise<ResultOf<N>> | undefined;

  constructor(
    private readonly deps: JobHandleDeps,
    submission: Promise<Job> | Job,
  ) {
    this.submitted = Promise.resolve(submission).then((job) => {
      this.initial = job;
      return job;
    });
    // Whoever awaits `submitted` or the handle sees a refusal; no unhandled rejection otherwise.
    this.submitted.catch(() => undefined);
    if (!(submission instanceof Promise)) this.initial = submission;
  }

  /** The job id (after `submitted` resolved). */
  get id(): string {
    return this.job.id;
  }

  /** The job as first answered (after `submitted` resolved). */
  get job(): Job {
    if (!this.initial) throw new Error('The job has not been submitted yet: await handle.submitted first.');
    return this.initial;
  }

  then<T1 = ResultOf<N>, T2 = never>(
    onfulfilled?: ((value: ResultOf<N>) => T1 | PromiseLike<T1>) | null,
    onrejected?: ((reason: unknown) => T2 | PromiseLike<T2>) | null,
  ): Promise<T1 | T2> {
    this.outcome ??= this.wait();
    return this.outcome.then(onfulfilled, onrejected);
  }

  catch<T = never>(onrejected?: ((reason: unknown) => T | PromiseLike<T>) | null): Promise<ResultOf<N> | T> {
    return this.then(undefined, onrejected);
  }

  /** The job's result once it completes; rejects if it fails, is cancelled, or `timeoutMs` passes. */
  async wait(opts: WaitOptions = {}): Promise<ResultOf<N>> {
    return resultOf<N>(await this.ended(opts));
  }

  /** The job once it ended, whatever the outcome (completed, failed or cancelled). */
  async ended(opts: WaitOptions = {}): Promise<Job> {
    const first = await this.submitted;
    if (isFinal(first.state)) return first;
    const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    let last = first;
    let outageSince: number | null = null;
    for (;;) {
      opts.signal?.throwIfAborted();
      const left = deadline - Date.now();
      if (left <= 0) throw new WaitTimeoutError(last, opts.timeoutMs ?? 0);
      const sec = Math.max(0.001, Math.min(POLL_SEC, left / 1000));
      try {
        last = await this.deps.waitOnce(first.id, Math.round(sec * 1000) / 1000, opts.signal);
        outageSince = null;
      } catch (err) {
        // Ride out an API restart (or a Redis blip) for a while; anything else is final.
        const transient =
          err instanceof LxcqConnectionError ||
          (err instanceof LxcqError && err.code === 'LXCQ_REDIS_UNAVAILABLE');
        if (!transient) throw err;
        outageSince ??= Date.now();
        if (Date.now() - outageSince > OUTAGE_MS) throw err;
        await sleep(Math.min(1000, Math.max(0, deadline - Date.now())), opts.signal);
        continue;
      }
      if (isFinal(last.state)) return last;
    }
  }

  /** The job as it is now. */
  refresh(): Promise<Job> {
    return this.submitted.then((j) => this.deps.get(j.id));
  }

  /** Cancels the job (queued jobs, and running ones of operations that allow it). */
  async cancel(): Promise<Job> {
    const j = await this.submitted;
    return this.deps.cancel(j.id);
  }

  /**
   * The job's events as they happen: `job.queued`, `job.active`, each `job.progress`, then the
   * final `job.completed` / `job.failed` / `job.cancelled`, after which the iteration ends. Events
   * that happened before the call are replayed first (from the event stream's retention).
   */
  async *progress(opts: { signal?: AbortSignal } = {}): AsyncGenerator<JobEvent, void, undefined> {
    const job = await this.submitted;
    // Stream ids are Redis's clock in ms: start a little before the job was created (a margin for
    // clock skew between the API's host and Redis's), so every event of it is replayed however
    // late progress() is called. The job filter drops everything else.
    const created = Date.parse(job.createdAt);
    const since = Number.isFinite(created) ? `${Math.max(0, created - 10_000)}-0` : undefined;
    const stream = this.deps.events({
      types: ['job.*'],
      job: job.id,
      ...(since !== undefined ? { since } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    try {
      for await (const item of stream) {
        if (isResync(item)) {
          // Part of its history is gone from retention: if it has ended there is no more to say.
          if (isFinal((await this.deps.get(job.id)).state)) return;
          continue;
        }
        yield item;
        if (item.type === 'job.completed' || item.type === 'job.failed' || item.type === 'job.cancelled')
          return;
      }
    } finally {
      stream.close();
    }
  }
}

/** A job's result, or the LxcqError its failure or cancellation stands for. */
export function resultOf<N extends OperationName>(job: Job): ResultOf<N> {
  if (job.state === 'completed') return job.result as ResultOf<N>;
  if (job.state === 'cancelled') throw new JobCancelledError(job);
  if (job.state === 'failed') {
    const e = job.error;
    throw new JobFailedError(
      job,
      e && isErrorCode(e.code)
        ? e
        : {
            code: 'LXCQ_INTERNAL',
            message: e?.message ?? `Job ${job.id} failed without an error.`,
            ...(e?.details ? { details: e.details } : {}),
          },
    );
  }
  throw new LxcqError('LXCQ_INTERNAL', `Job ${job.id} has not ended (${job.state}).`);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      },
      { once: true },
    );
  });
}
