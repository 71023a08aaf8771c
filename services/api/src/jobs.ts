import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import type { RedisConnection as Redis } from '@lxcq/shared';
import {
  LxcqError,
  OPERATIONS,
  assertClearableKeys,
  assertConfigAllowed,
  assertTemplateArgs,
  assertName,
  isFinal,
  locksOf,
  type ConfigPolicy,
  type Requester,
  type HostInfo,
  type Keys,
  HOST_OPERATIONS,
  type Ledger,
  type NewJob,
  type OperationName,
  type PayloadOf,
  type QueuedJobData,
  type Store,
  type StoredJob,
  type ErrorBody,
} from '@lxcq/shared';
import { isDeepStrictEqual } from 'node:util';
import { SpanKind, type Context } from '@opentelemetry/api';
import { inSpan, injectTrace } from '@lxcq/telemetry';

export interface SubmitRequest<N extends OperationName> {
  operation: N;
  container: string;
  payload: PayloadOf<N>;
  /** Only for create (placement) and same-host clone: the host asked for. */
  host?: string | undefined;
  idempotencyKey?: string | undefined;
  requestId?: string | undefined;
  /** The trace context of the submitting request; the enqueue span (and so the job) continues it. */
  trace?: Context | undefined;
  /** Submitted with an admin token: the config policy's raw keys the host allows apply. */
  admin?: boolean | undefined;
}

/** The error of a job whose submission was cut off half-way (its request was answered with an error). */
function cutOff(): ErrorBody {
  return {
    code: 'LXCQ_REDIS_UNAVAILABLE',
    message:
      'The request that submitted this job was cut off half-way (Redis or the API went away) and answered with an error; the job was never queued. Submit it again.',
  };
}

/** Accepts operations: validates them against the policy, finds their host, records and queues them. */
export class JobService {
  private queues = new Map<string, Queue<QueuedJobData>>();
  private waiters = new Map<string, Set<() => void>>();
  private released = false;

  constructor(
    private readonly store: Store,
    private readonly ledger: Ledger,
    private readonly keys: Keys,
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    private readonly opts: {
      policy: ConfigPolicy;
      hostOfflineMs: number;
      /** Told about every job accepted (not about an Idempotency-Key's repeat). */
      onAccepted?: (job: StoredJob) => void;
    },
  ) {}

  async init(): Promise<void> {
    await this.subscriber.subscribe(this.keys.jobDone);
    this.subscriber.on('message', (_channel: string, id: string) => {
      const set = this.waiters.get(id);
      if (set) for (const wake of set) wake();
    });
  }

  /** Ends every `?wait=` at once, each answering with its job as it stands: a stopping API does
   * not hold its clients (or its own stop) until their waits run out. */
  release(): void {
    this.released = true;
    for (const set of this.waiters.values()) for (const wake of set) wake();
  }

  async close(): Promise<void> {
    this.release();
    for (const q of this.queues.values()) await q.close();
  }

  queue(host: string): Queue<QueuedJobData> {
    let q = this.queues.get(host);
    if (!q) {
      q = new Queue<QueuedJobData>(this.keys.queue(host), {
        connection: this.redis,
        prefix: this.keys.bullPrefix,
      });
      this.queues.set(host, q);
    }
    return q;
  }

  /** The host owning a container: its inventory record, or the queued job that will make it. */
  async hostOf(container: string): Promise<string> {
    const info = await this.store.getContainer(container);
    if (info) return info.host;
    const claim = await this.redis.get(this.keys.nameClaim(container));
    if (claim) {
      const job = await this.store.getJob(claim);
      if (job && !isFinal(job.state)) return job.host;
    }
    throw new LxcqError('LXCQ_CONTAINER_NOT_FOUND', `No container named ${container} is known on any host.`);
  }

  /** Picks an online, non-draining host with the most free memory per container it holds. */
  async place(asked?: string): Promise<HostInfo> {
    const hosts = await this.store.listHosts(this.opts.hostOfflineMs);
    if (asked !== undefined) {
      const h = hosts.find((x) => x.id === asked);
      if (!h) throw new LxcqError('LXCQ_HOST_NOT_FOUND', `No host ${asked} has registered.`);
      if (h.status === 'offline')
        throw new LxcqError('LXCQ_HOST_OFFLINE', `Host ${asked} is offline (last seen ${h.lastSeen}).`);
      if (h.status === 'draining')
        throw new LxcqError('LXCQ_HOST_DRAINING', `Host ${asked} is draining and takes no new containers.`);
      return h;
    }
    const online = hosts.filter((h) => h.status === 'online');
    if (online.length === 0) {
      throw new LxcqError(
        'LXCQ_NO_HOST',
        'No online, non-draining host can take the container. Start a worker (or undrain a host).',
      );
    }
    // Free memory per container, counting what the registry holds now (heartbeats lag behind).
    const count = new Map<string, number>();
    for (const c of await this.store.listContainers()) count.set(c.host, (count.get(c.host) ?? 0) + 1);
    const score = (h: HostInfo) => h.capabilities.freeMemoryBytes / (1 + (count.get(h.id) ?? 0));
    return online.reduce((best, h) => (score(h) > score(best) ? h : best));
  }

  /** A host asked for by id that has registered and is not offline (host operations run on it). */
  async onlineHost(id: string | undefined): Promise<string> {
    if (id === undefined) throw new LxcqError('LXCQ_VALIDATION', 'A host operation needs its host.');
    const silence = await this.store.hostSilenceMs(id);
    if (silence === Infinity) throw new LxcqError('LXCQ_HOST_NOT_FOUND', `No host ${id} has registered.`);
    if (silence > this.opts.hostOfflineMs)
      throw new LxcqError(
        'LXCQ_HOST_OFFLINE',
        `Host ${id} is offline (no heartbeat for ${Math.round(silence / 1000)} s). Retry once its worker is back.`,
        { details: { host: id } },
      );
    return id;
  }

  /** Validates, places, records and queues an operation, in an `enqueue <operation>` span. */
  async submit<N extends OperationName>(
    req: SubmitRequest<N>,
  ): Promise<{ job: StoredJob; existing: boolean }> {
    return inSpan(
      `enqueue ${req.operation}`,
      {
        kind: SpanKind.PRODUCER,
        ...(req.trace ? { parent: req.trace } : {}),
        attributes: {
          'lxcq.operation': req.operation,
          'lxcq.container': req.container,
          ...(req.requestId ? { 'lxcq.request_id': req.requestId } : {}),
        },
      },
      async (span) => {
        const out = await this.enqueue(req);
        span.setAttributes({
          'lxcq.job.id': out.job.id,
          'lxcq.host': out.job.host,
          'lxcq.job.existing': out.existing,
        });
        if (!out.existing) this.opts.onAccepted?.(out.job);
        return out;
      },
    );
  }

  private async enqueue<N extends OperationName>(
    req: SubmitRequest<N>,
  ): Promise<{ job: StoredJob; existing: boolean }> {
    const def = OPERATIONS[req.operation];
    const hostLevel = HOST_OPERATIONS.has(req.operation);
    // A host operation's target is `pool:<name>` (its pool name checked by the payload's schema).
    if (!hostLevel) assertName('container', req.container);
    if (!def.implemented) {
      throw new LxcqError(
        'LXCQ_NOT_IMPLEMENTED',
        `${req.operation} is not available in this version of lxcq.`,
      );
    }
    this.checkPolicy(req.operation, req.payload, { admin: req.admin === true });
    if (req.idempotencyKey !== undefined) {
      const prior = await this.byIdempotencyKey(req);
      if (prior) return { job: prior, existing: true };
    }
    const id = randomUUID();
    const locks = locksOf(req.operation, req.container, req.payload);
    const newNames = hostLevel ? [] : locks.filter((n) => n !== req.container);
    let host: string;
    if (hostLevel) {
      host = await this.onlineHost(req.host);
    } else if (req.operation === 'create') {
      host = (await this.place(req.host)).id;
      newNames.push(req.container);
    } else {
      host = await this.hostOf(req.container);
      const silence = await this.store.hostSilenceMs(host);
      if (silence > this.opts.hostOfflineMs) {
        throw new LxcqError(
          'LXCQ_HOST_OFFLINE',
          `Container ${req.container} is on host ${host}, which is offline (no heartbeat for ${Math.round(silence / 1000)} s). Retry once the host is back.`,
          {
            details: { host },
          },
        );
      }
    }
    // One ledger script records the job, claims the names it will make (free now, reserved until
    // it ends), marks it as being submitted and adds job.queued; or, refused, writes nothing.
    // The mark stays until the job is in its host's queue: a submission cut off before that (Redis
    // or this process went away) is found by reconcile() and its job failed, so no record stays
    // queued forever for a request that was answered with an error.
    const newJob: NewJob = {
      id,
      operation: req.operation,
      container: req.container,
      host,
      payload: req.payload as Record<string, unknown>,
      createdAt: new Date().toISOString(),
      locks,
      ...(req.requestId ? { requestId: req.requestId } : {}),
      ...(req.admin ? { admin: true } : {}),
    };
    const submitted = await this.ledger.submit(newJob, {
      claims: newNames,
      ...(req.idempotencyKey !== undefined ? { idempotencyKey: req.idempotencyKey } : {}),
    });
    if (!submitted.recorded) {
      if (submitted.reason === 'name-taken') {
        throw new LxcqError(
          'LXCQ_CONTAINER_EXISTS',
          `A container named ${submitted.name} already exists or is being made.`,
          { details: { name: submitted.name } },
        );
      }
      if (submitted.reason === 'idempotent') {
        const first = await this.store.getJob(submitted.id);
        if (first) return { job: first, existing: true };
      }
      throw new LxcqError(
        'LXCQ_INTERNAL',
        `Job ${id} could not be recorded (${submitted.reason}); submit it again.`,
      );
    }
    const job = submitted.job;
    const data: QueuedJobData = {
      id,
      operation: req.operation,
      container: req.container,
      payload: job.payload,
      locks,
      seq: job.seq,
    };
    if (req.requestId) data.requestId = req.requestId;
    // The enqueue span's context (nothing while tracing is off): the worker's job span continues it.
    const trace = injectTrace();
    if (trace) data.trace = trace;
    try {
      // The last step that can fail: once the job is queued it runs, and the answer is 202.
      await this.queue(host).add(req.operation, data, { jobId: id });
    } catch (err) {
      // The client gets an error, so the job must not run later: end it now (which frees its
      // names). When Redis is unreachable this fails too, and reconcile() ends it later.
      const ended = await this.ledger
        .finish(job, { state: 'failed', error: cutOff() }, { from: ['queued'] })
        .catch(() => false);
      if (ended) await this.redis.zrem(this.keys.submitting, id).catch(() => undefined);
      throw err;
    }
    await this.redis.zrem(this.keys.submitting, id).catch(() => undefined);
    return { job, existing: false };
  }

  private checkPolicy<N extends OperationName>(op: N, payload: PayloadOf<N>, who: Requester): void {
    const policy = this.opts.policy;
    if (op === 'create') {
      const p = payload as PayloadOf<'create'>;
      assertTemplateArgs(p, policy);
      assertConfigAllowed(p.config ?? {}, policy, who);
    } else if (op === 'config.set') {
      const p = payload as PayloadOf<'config.set'>;
      assertConfigAllowed(p.set ?? {}, policy, who);
      assertClearableKeys(p.clear ?? [], policy, who);
    } else if (op === 'config.clear') {
      assertClearableKeys((payload as PayloadOf<'config.clear'>).keys, policy, who);
    }
  }

  private async byIdempotencyKey<N extends OperationName>(req: SubmitRequest<N>): Promise<StoredJob | null> {
    const firstId = await this.redis.get(this.keys.idempotency(req.idempotencyKey as string));
    if (!firstId) return null;
    const first = await this.store.getJob(firstId);
    if (!first) return null;
    if (
      first.operation !== req.operation ||
      first.container !== req.container ||
      !isDeepStrictEqual(first.payload, req.payload)
    ) {
      throw new LxcqError(
        'LXCQ_IDEMPOTENCY_CONFLICT',
        `Idempotency-Key was first used for ${first.operation} on ${first.container} (job ${first.id}) with another body.`,
        {
          details: { job: first.id },
        },
      );
    }
    return first;
  }

  async get(id: string): Promise<StoredJob> {
    const job = await this.store.getJob(id);
    if (!job) throw new LxcqError('LXCQ_JOB_NOT_FOUND', `No job ${id} (it may have passed its retention).`);
    return job;
  }

  /** Resolves with the job once it ended, or as it is when `timeoutMs` passed. */
  async wait(id: string, timeoutMs: number): Promise<StoredJob> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Listen before reading, so an end published in between still wakes us.
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      set.add(wake);
      const forget = () => {
        set.delete(wake);
        if (set.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id);
      };
      let job: StoredJob;
      try {
        job = await this.get(id);
      } catch (err) {
        forget();
        throw err;
      }
      const left = deadline - Date.now();
      if (isFinal(job.state) || left <= 0 || this.released) {
        forget();
        return job;
      }
      // The pub/sub message wakes us at once; the timer bounds the wait and covers a lost message.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([woken, new Promise<void>((r) => (timer = setTimeout(r, Math.min(left, 1000))))]);
      clearTimeout(timer);
      forget();
    }
  }

  /**
   * Fails the jobs of submissions cut off half-way: marked as being submitted for over `graceMs`,
   * still queued, and not in their host's queue. Their request was answered with an error, so the
   * job must not run later either; it fails with LXCQ_REDIS_UNAVAILABLE and frees its names.
   */
  async reconcile(graceMs: number): Promise<number> {
    const ids = await this.redis.zrangebyscore(
      this.keys.submitting,
      '-inf',
      Date.now() - graceMs,
      'LIMIT',
      0,
      500,
    );
    let failed = 0;
    for (const id of ids) {
      const job = await this.store.getJob(id);
      if (job?.state === 'queued' && !(await this.queue(job.host).getJob(id))) {
        if (await this.ledger.finish(job, { state: 'failed', error: cutOff() }, { from: ['queued'] }))
          failed++;
      }
      await this.redis.zrem(this.keys.submitting, id);
    }
    return failed;
  }

  /** Cancels a queued job. Running jobs of operations that cannot stop mid-way are refused. */
  async cancel(id: string): Promise<StoredJob> {
    const job = await this.get(id);
    if (isFinal(job.state)) {
      throw new LxcqError('LXCQ_JOB_NOT_CANCELLABLE', `Job ${id} has already ended (${job.state}).`);
    }
    if (job.state === 'active' && !OPERATIONS[job.operation].cancellableWhileRunning) {
      throw new LxcqError(
        'LXCQ_JOB_NOT_CANCELLABLE',
        `Job ${id} is running ${job.operation}, which cannot be stopped mid-way safely.`,
      );
    }
    if (!(await this.ledger.finish(job, { state: 'cancelled' }, { from: ['queued'] }))) {
      throw new LxcqError('LXCQ_JOB_NOT_CANCELLABLE', `Job ${id} started before it could be cancelled.`);
    }
    // Best effort: a job BullMQ already handed to the worker is skipped there (its record says cancelled).
    await this.queue(job.host)
      .remove(id)
      .catch(() => 0);
    return this.get(id);
  }
}
