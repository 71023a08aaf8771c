import type { ContainerState } from './operations/index.ts';
import type { ErrorBody } from './errors.ts';
import type { JobProgress } from './job.ts';
import type { ContainerUsage } from './usage.ts';

/**
 * Every event type lxcq publishes, with its `data`. Shared by worker (publishes), API (fans out)
 * and client (consumes).
 */
export interface EventDataMap {
  /** A container changed state; `source` is `external` when the change was made outside lxcq. */
  'container.state': {
    from: ContainerState | 'UNKNOWN';
    to: ContainerState;
    source: 'api' | 'external';
    /** With `to: STOPPED`: how the init ended (exit code, or 128 + signal), when liblxc said. */
    exitStatus?: number;
  };
  /** A container appeared (created by lxcq or found on a host). */
  'container.created': { source: 'api' | 'external' };
  /** A container is gone. */
  'container.destroyed': { source: 'api' | 'external' };
  /** A container was renamed; the event's `container` is the new name. */
  'container.renamed': { from: string; to: string };
  /** A container moved to another host. */
  'container.moved': { from: string; to: string };
  /** The host found a container it cannot use (its config is unloadable or names no rootfs);
   * `reason` says why and what to do. lxcq refuses to start it until it is repaired. */
  'container.broken': { reason: string };
  /**
   * A live move failed after the dump and the source could not restore the checkpoint either:
   * the container was started again on its source (a cold start: its processes began anew) and
   * the checkpoint was kept.
   */
  'container.cold-started': { checkpoint: string; reason: string };
  /**
   * What a container uses, from its host's last usage pass. Not in the durable stream (no cursor:
   * `id` is empty, nothing replays it): sent live, only to subscribers that name this type in
   * `types` (never through `*` or `container.*`), at most every `interval` seconds per host and
   * never more often than the host collects.
   */
  'container.usage': ContainerUsage;
  /** A job was accepted and waits for its host. */
  'job.queued': { operation: string; queuePosition: number };
  /** A worker began the job. */
  'job.active': { operation: string; attempt: number };
  /** A running job reports progress. */
  'job.progress': JobProgress;
  /** The job ended well; `result` is the job's result. */
  'job.completed': { operation: string; result: unknown };
  /** The job ended with an error. */
  'job.failed': { operation: string; error: ErrorBody };
  /** The job was cancelled before (or while) running. */
  'job.cancelled': { operation: string };
  /** A host's worker registered or came back. */
  'host.online': { capabilities: Record<string, unknown> };
  /** A host missed its heartbeats. */
  'host.offline': { lastSeen: string };
  /** A host was drained (or undrained: `draining: false`). */
  'host.draining': { draining: boolean };
  /**
   * An admin removed an offline host from the registry (`DELETE /v1/hosts/:id`), with the
   * records of the containers it held when that was forced (`containers`).
   */
  'host.forgotten': { containers: string[] };
}

export type EventType = keyof EventDataMap;
export const EVENT_TYPES = [
  'container.state',
  'container.created',
  'container.destroyed',
  'container.renamed',
  'container.moved',
  'container.broken',
  'container.cold-started',
  'container.usage',
  'job.queued',
  'job.active',
  'job.progress',
  'job.completed',
  'job.failed',
  'job.cancelled',
  'host.online',
  'host.offline',
  'host.draining',
  'host.forgotten',
] as const satisfies readonly EventType[];

export interface LxcqEvent<T extends EventType = EventType> {
  /** The cursor: the event's id in the Redis stream (empty on `container.usage`, which is not in it). */
  id: string;
  type: T;
  time: string;
  host?: string;
  container?: string;
  job?: string;
  data: EventDataMap[T];
}
