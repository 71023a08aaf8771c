import type { ErrorBody } from './errors.ts';
import type { OperationName } from './operations/index.ts';

export type JobState = 'queued' | 'active' | 'completed' | 'failed' | 'cancelled';
export const JOB_STATES: readonly JobState[] = ['queued', 'active', 'completed', 'failed', 'cancelled'];
export const FINAL_JOB_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

export interface JobProgress {
  percent: number;
  stage: string;
}

/** A job as clients see it (docs/api.md, "The job object"). */
export interface Job {
  id: string;
  operation: OperationName;
  container: string;
  host: string;
  state: JobState;
  /** Jobs ahead of this one on the same container (0: next or running). Only while queued. */
  queuePosition?: number;
  progress?: JobProgress;
  payload: Record<string, unknown>;
  result?: unknown;
  error?: ErrorBody;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** How many times a worker began it (more than 1 after a worker died mid-way). */
  attempts?: number;
  /** The request that submitted it: the caller's X-Request-Id, or one the API made up. */
  requestId?: string;
}

/** What travels in the BullMQ job: enough for the worker to run it without another lookup. */
export interface QueuedJobData {
  id: string;
  operation: OperationName;
  container: string;
  payload: Record<string, unknown>;
  locks: string[];
  seq: number;
  requestId?: string;
  /** W3C trace context of the submitting request's enqueue span (only while tracing is on). */
  trace?: { traceparent: string; tracestate?: string };
}

export function isFinal(state: JobState): boolean {
  return FINAL_JOB_STATES.includes(state);
}
