/**
 * Every Redis key lxcq uses, in one place. All share a prefix (LXCQ_PREFIX, default "lxcq");
 * wrap it in braces ("{lxcq}") to keep every key in one Redis Cluster hash slot.
 */
export function keys(prefix = 'lxcq') {
  return {
    prefix,
    /** BullMQ's own prefix for the per-host queues. */
    bullPrefix: `${prefix}:bull`,
    /** The BullMQ queue name of a host. */
    queue: (host: string) => `host.${host}`,
    /** Hash: one job's record. */
    job: (id: string) => `${prefix}:job:${id}`,
    /** Sorted set of every job id by creation time (ms). */
    jobs: `${prefix}:jobs`,
    /** Sorted set of a container's job ids by creation time. */
    containerJobs: (name: string) => `${prefix}:jobs:c:${name}`,
    /** Sorted set of a lock name's unfinished job ids by submission sequence. */
    pending: (name: string) => `${prefix}:pending:${name}`,
    /**
     * Sorted set of job ids being submitted (score: ms when the submission began), left when the
     * job is in its host's queue; an entry that stays belongs to a submission cut off half-way.
     */
    submitting: `${prefix}:submitting`,
    /** Counter giving every job its submission sequence. */
    seq: `${prefix}:seq`,
    /** String: the job id first submitted under an Idempotency-Key. */
    idempotency: (key: string) => `${prefix}:idem:${key}`,
    /** Hash: a container's inventory record (JSON in field `info`, owner in `host`). */
    container: (name: string) => `${prefix}:container:${name}`,
    /** Set of every known container name. */
    containers: `${prefix}:containers`,
    /** String with TTL: a name reserved by a queued create/clone/rename. */
    nameClaim: (name: string) => `${prefix}:claim:${name}`,
    /** Hash: a host's registration (JSON in `info`), heartbeat in `lastSeen`. */
    host: (id: string) => `${prefix}:host:${id}`,
    /** Hash: a host's storage pools (field: pool name, value: PoolInfo JSON), written by its worker. */
    pools: (host: string) => `${prefix}:pools:${host}`,
    /** Set of every host id that ever registered. */
    hosts: `${prefix}:hosts`,
    /** Stream of every event. */
    events: `${prefix}:events`,
    /** Pub/sub channel carrying the id of every job that ended (wakes API waiters). */
    jobDone: `${prefix}:jobdone`,
    /** String with a short TTL: a one-time worker-to-worker transfer token (JSON grant), deleted on use. */
    transferToken: (token: string) => `${prefix}:xfer:token:${token}`,
    /**
     * String: who decided a transfer's outcome, set once (NX) by whichever side gets there first:
     * the target (`restoring`, then `done` or `failed`) or the source giving up (`aborted`).
     */
    transferOutcome: (id: string) => `${prefix}:xfer:outcome:${id}`,
    /** List: a job's log lines (state changes, progress stages, errors). */
    jobLog: (id: string) => `${prefix}:joblog:${id}`,
    /**
     * Hash with a TTL: the last usage collection of a host's worker, one field per container (JSON
     * ContainerUsage) and `#pass` (JSON UsagePass); rewritten whole by every pass.
     */
    usage: (host: string) => `${prefix}:usage:${host}`,
    /** Pub/sub channel: every usage pass of every host (JSON UsagePublished), for container.usage events. */
    usageChannel: `${prefix}:usage`,
  };
}

export type Keys = ReturnType<typeof keys>;
