import type { ErrorBody, ErrorCode, Job } from '@lxcq/shared';
import { LxcqError, isErrorCode } from './shared-runtime.ts';

export { LxcqError };

/** The server could not be reached at all (refused, DNS, TLS, reset): nothing was sent or answered. */
export class LxcqConnectionError extends Error {
  /** The lxcq URL the client was given. */
  readonly url: string;
  /** The system's code when there is one: ECONNREFUSED, ENOTFOUND, ETIMEDOUT, ... */
  readonly reason: string;

  constructor(url: string, reason: string, cause?: unknown) {
    super(`cannot reach lxcq at ${url}: ${reason}; is it running?`, cause === undefined ? {} : { cause });
    this.name = 'LxcqConnectionError';
    this.url = url;
    this.reason = reason;
  }
}

/** A job that was cancelled has no result; awaiting it rejects with this. */
export class JobCancelledError extends LxcqError {
  readonly job: Job;
  constructor(job: Job) {
    // ERROR_CODES has no code for "cancelled": the job is in a state that cannot give a result.
    super('LXCQ_INVALID_STATE', `Job ${job.id} (${job.operation} ${job.container}) was cancelled.`, {
      details: { jobState: 'cancelled', job: job.id },
    });
    this.name = 'JobCancelledError';
    this.job = job;
  }
}

/** A job that ended `failed`: the job's own error, with the job attached. */
export class JobFailedError extends LxcqError {
  readonly job: Job;
  constructor(job: Job, error: ErrorBody) {
    super(error.code, error.message, error.details ? { details: error.details } : {});
    this.name = 'JobFailedError';
    this.job = job;
  }
}

/** `wait({ timeoutMs })` ran out before the job ended; the job goes on. */
export class WaitTimeoutError extends Error {
  readonly job: Job;
  constructor(job: Job, timeoutMs: number) {
    super(
      `Job ${job.id} (${job.operation} ${job.container}) had not ended after ${timeoutMs} ms (${job.state}).`,
    );
    this.name = 'WaitTimeoutError';
    this.job = job;
  }
}

/** The system reason behind a failed fetch: `ECONNREFUSED`, `ENOTFOUND`, ... or the message. */
export function networkReason(err: unknown): string {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    const inner = (e as { errors?: unknown }).errors;
    if (Array.isArray(inner) && inner.length > 0) {
      const first: unknown = inner[0];
      e = first;
      continue;
    }
    e = (e as { cause?: unknown }).cause;
  }
  const last = e instanceof Error ? e : err instanceof Error ? err : null;
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : null;
  return cause ?? last?.message ?? String(err);
}

const STATUS_CODE: Record<number, ErrorCode> = {
  400: 'LXCQ_BAD_REQUEST',
  401: 'LXCQ_UNAUTHORIZED',
  403: 'LXCQ_FORBIDDEN',
  404: 'LXCQ_NOT_FOUND',
  413: 'LXCQ_BODY_TOO_LARGE',
  422: 'LXCQ_INVALID_STATE',
  501: 'LXCQ_NOT_IMPLEMENTED',
  503: 'LXCQ_REDIS_UNAVAILABLE',
  504: 'LXCQ_TIMEOUT',
};

/** The LxcqError an HTTP error answer stands for. */
export function httpError(url: string, status: number, body: unknown): LxcqError {
  const e = (body as { error?: unknown } | null)?.error;
  if (e && typeof e === 'object' && isErrorCode((e as { code?: unknown }).code)) {
    const eb = e as ErrorBody;
    if (eb.code === 'LXCQ_UNAUTHORIZED') {
      return new LxcqError(
        'LXCQ_UNAUTHORIZED',
        `lxcq at ${url} refused the token (wrong or missing): ${eb.message}`,
        eb.details ? { details: eb.details } : {},
      );
    }
    return LxcqError.fromBody(eb);
  }
  const code = STATUS_CODE[status] ?? (status >= 500 ? 'LXCQ_INTERNAL' : 'LXCQ_BAD_REQUEST');
  return new LxcqError(
    code,
    `HTTP ${status} from ${url} without an lxcq error body: is this the URL of an lxcq API?`,
    { details: { status } },
  );
}
