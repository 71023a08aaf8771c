/**
 * The job ledger: the one module that changes a job's state. Every change (submit, start,
 * progress, finish) is one Lua script (./lua/*.lua) that checks the job's current state and then
 * writes everything the change means at once: the record, the pending queues and name claims,
 * the job log, the event in the stream and (for an end) the job-done publish. A transition the
 * script refuses writes nothing, and the caller learns it from the return value. So a job ends
 * once, and clients see one end event per job, whoever tries to end it (worker, watchdog, cancel,
 * reconcile) and in whatever order. docs/jobs.md describes the state machine.
 *
 * Every key a script touches is passed in KEYS (none is built inside Lua): with a hash-tagged
 * prefix (LXCQ_PREFIX={lxcq}) they share one Redis Cluster slot.
 */
import { readFileSync } from 'node:fs';
import type { RedisConnection as Redis } from './redis.ts';
import type { ErrorBody } from './errors.ts';
import type { EventDataMap } from './events.ts';
import { FINAL_JOB_STATES, type JobProgress, type JobState } from './job.ts';
import type { Keys } from './keys.ts';
import { eventResult } from './operations/index.ts';
import { JOB_FIELDS, type StoredJob } from './store.ts';

type ScriptName = 'submit' | 'start' | 'progress' | 'finish' | 'release';
const SCRIPTS: readonly ScriptName[] = ['submit', 'start', 'progress', 'finish', 'release'];

let sources: Record<ScriptName, string> | undefined;

/** The scripts' text, read once, next to this module (as tsx runs it: no build step copies them). */
function scriptSources(): Record<ScriptName, string> {
  sources ??= Object.fromEntries(
    SCRIPTS.map((name) => [name, readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8')]),
  ) as Record<ScriptName, string>;
  return sources;
}

/** ioredis's name for a script's command on a connection (defineCommand: EVALSHA, EVAL on NOSCRIPT). */
const commandName = (name: ScriptName) => `lxcqLedger_${name}`;

/** A job's end: what the job's record and its end event say. */
export type JobEnd =
  { state: 'completed'; result: unknown } | { state: 'failed'; error: ErrorBody } | { state: 'cancelled' };

/** What submit() needs: the job as it will be recorded, without the sequence number it gets there. */
export type NewJob = Omit<StoredJob, 'seq' | 'state' | 'queuePosition'>;

export type SubmitOutcome =
  /** Recorded: the job with its sequence number and queue position, and its job.queued event's id. */
  | { recorded: true; job: StoredJob; eventId: string }
  /** A job with this id is already recorded (nothing written). */
  | { recorded: false; reason: 'exists' }
  /** The Idempotency-Key names job `id`, which exists (nothing written). */
  | { recorded: false; reason: 'idempotent'; id: string }
  /** `name`, one of the names the job would make, exists or is claimed by another job (nothing written). */
  | { recorded: false; reason: 'name-taken'; name: string };

export interface SubmitOptions {
  /** Names the job will make (create, clone, rename targets): each claimed until the job ends. */
  claims?: readonly string[];
  /** The job is the first under this Idempotency-Key, or the key's existing job is returned. */
  idempotencyKey?: string;
  /** How long a claim lasts if the job never ends (seconds). */
  claimTtlSec?: number;
}

export interface LedgerOptions {
  /** How long job records and logs outlive their job (seconds). */
  jobRetentionSec: number;
  /** Event stream retention by count (XADD MAXLEN ~). */
  eventMaxLen: number;
}

type JobRef = Pick<StoredJob, 'id' | 'operation' | 'container' | 'host' | 'locks'>;

function enc(v: unknown): string {
  return JSON.stringify(v);
}

export class Ledger {
  private readonly redis: Redis;
  private readonly keys: Keys;
  private readonly opts: LedgerOptions;

  constructor(store: { redis: Redis; keys: Keys; jobRetentionSec: number; eventMaxLen: number }) {
    this.redis = store.redis;
    this.keys = store.keys;
    this.opts = { jobRetentionSec: store.jobRetentionSec, eventMaxLen: store.eventMaxLen };
    const src = scriptSources();
    for (const name of SCRIPTS) {
      if (!(commandName(name) in this.redis)) this.redis.defineCommand(commandName(name), { lua: src[name] });
    }
  }

  private run(name: ScriptName, keys: string[], args: (string | number)[]): Promise<unknown> {
    const fn = (this.redis as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>)[
      commandName(name)
    ] as (...a: (string | number)[]) => Promise<unknown>;
    return fn.call(this.redis, keys.length, ...keys, ...args);
  }

  /**
   * Records a new job (state queued), claims the names it will make, puts it in its locks'
   * pending queues and adds job.queued. With an Idempotency-Key already naming an existing job,
   * records nothing and says which job that is.
   */
  async submit(job: NewJob, opts: SubmitOptions = {}): Promise<SubmitOutcome> {
    const claims = opts.claims ?? [];
    const record: Partial<StoredJob> = { ...job, state: 'queued' };
    const fields: string[] = [];
    for (const f of JOB_FIELDS) if (f !== 'seq' && record[f] !== undefined) fields.push(f, enc(record[f]));
    const keys = [
      this.keys.job(job.id),
      this.keys.jobLog(job.id),
      this.keys.jobs,
      this.keys.containerJobs(job.container),
      this.keys.seq,
      this.keys.submitting,
      this.keys.events,
      ...job.locks.map((l) => this.keys.pending(l)),
      ...claims.map((n) => this.keys.nameClaim(n)),
      ...claims.map((n) => this.keys.container(n)),
    ];
    const queuedData = enc({ operation: job.operation, queuePosition: 0 }).replace(/0\}$/, '');
    // The key's record is read first so its job's hash can be passed in KEYS; the script checks
    // that the record still says the same, and the read is repeated if it changed in between.
    for (let tries = 0; ; tries++) {
      const keyed: string[] = [];
      let idem = '';
      if (opts.idempotencyKey !== undefined) {
        const idemKey = this.keys.idempotency(opts.idempotencyKey);
        const prior = await this.redis.get(idemKey);
        keyed.push(idemKey);
        if (prior !== null) keyed.push(this.keys.job(prior));
        idem = `=${prior ?? ''}`;
      }
      const now = new Date().toISOString();
      const r = (await this.run(
        'submit',
        [...keys, ...keyed],
        [
          job.id,
          Date.parse(job.createdAt),
          `${now} queued for host ${job.host}`,
          this.opts.jobRetentionSec,
          this.opts.eventMaxLen,
          job.locks.length,
          claims.length,
          now,
          queuedData,
          job.host,
          job.container,
          opts.claimTtlSec ?? 24 * 3600,
          idem,
          ...fields,
        ],
      )) as [number, ...(string | number)[]];
      if (r[0] === 1) {
        const [, seq, queuePosition, eventId] = r as [1, number, number, string];
        return { recorded: true, job: { ...job, state: 'queued', seq, queuePosition }, eventId };
      }
      const reason = r[1] as string;
      if (reason === 'exists') return { recorded: false, reason: 'exists' };
      if (reason === 'idempotent') return { recorded: false, reason: 'idempotent', id: r[2] as string };
      if (reason === 'name')
        return { recorded: false, reason: 'name-taken', name: claims[(r[2] as number) - 1] as string };
      if (reason !== 'retry' || tries >= 10)
        throw new Error(`the ledger's submit script answered ${enc(r)} for job ${job.id}`);
    }
  }

  /**
   * A worker on `host` begins the job (queued, or active again after a worker died mid-way):
   * counts the attempt and adds job.active. Null when refused (the job ended, or is gone).
   */
  async start(
    job: Pick<StoredJob, 'id' | 'container'>,
    host: string,
  ): Promise<{ attempt: number; startedAt: string } | null> {
    const now = new Date().toISOString();
    const r = (await this.run(
      'start',
      [this.keys.job(job.id), this.keys.jobLog(job.id), this.keys.events],
      [now, enc(now), host, job.container, job.id, this.opts.jobRetentionSec, this.opts.eventMaxLen],
    )) as 0 | [number, string];
    if (r === 0) return null;
    return { attempt: r[0], startedAt: JSON.parse(r[1]) as string };
  }

  /**
   * Records a running job's progress and adds job.progress. False when refused: the job is not
   * active, or (with `attempt`) another attempt runs it now.
   */
  async progress(job: JobRef, progress: JobProgress, opts: { attempt?: number } = {}): Promise<boolean> {
    const data: EventDataMap['job.progress'] = progress;
    const r = await this.run(
      'progress',
      [this.keys.job(job.id), this.keys.jobLog(job.id), this.keys.events],
      [
        new Date().toISOString(),
        enc(data),
        `${progress.percent}% ${progress.stage}`,
        job.host,
        job.container,
        job.id,
        this.opts.jobRetentionSec,
        this.opts.eventMaxLen,
        opts.attempt ?? '',
      ],
    );
    return r === 1;
  }

  /**
   * Ends a job from one of `from` (queued or active by default): final state, result or error,
   * retention, out of its pending queues, its names freed, the log line, the end event
   * (job.completed, job.failed or job.cancelled) and the job-done publish. False when refused
   * (it had already ended, was in another state, or `attempt` is no longer its current one):
   * then nothing was written, so whoever ended it first wrote its only end.
   */
  async finish(
    job: JobRef,
    end: JobEnd,
    opts: { from?: readonly JobState[]; attempt?: number } = {},
  ): Promise<boolean> {
    const now = new Date().toISOString();
    const fields: string[] = ['finishedAt', enc(now)];
    let data: EventDataMap['job.completed'] | EventDataMap['job.failed'] | EventDataMap['job.cancelled'];
    let line: string = end.state;
    if (end.state === 'completed') {
      if (end.result !== undefined) fields.push('result', enc(end.result));
      // The stream is readable by every read token (and kept for days): an exec's output stays
      // in the job record, readable with the operate scope.
      data = { operation: job.operation, result: eventResult(job.operation, end.result) };
    } else if (end.state === 'failed') {
      fields.push('error', enc(end.error));
      data = { operation: job.operation, error: end.error };
      line = `failed: ${end.error.code}: ${end.error.message}`;
    } else {
      data = { operation: job.operation };
    }
    const r = await this.run(
      'finish',
      [
        this.keys.job(job.id),
        this.keys.jobLog(job.id),
        this.keys.events,
        ...job.locks.map((l) => this.keys.pending(l)),
        ...job.locks.map((l) => this.keys.nameClaim(l)),
      ],
      [
        (opts.from ?? ['queued', 'active']).join(','),
        end.state,
        now,
        line,
        this.opts.jobRetentionSec,
        this.opts.eventMaxLen,
        enc(data),
        job.host,
        job.container,
        job.id,
        this.keys.jobDone,
        opts.attempt ?? '',
        job.locks.length,
        ...fields,
      ],
    );
    return r === 1;
  }

  /**
   * After a job that had already ended (or whose record expired) is handed out again: takes it
   * out of its pending queues and frees the names it still holds. Does nothing (false) while the
   * job has not ended.
   */
  async release(job: Pick<StoredJob, 'id' | 'locks'>): Promise<boolean> {
    const r = await this.run(
      'release',
      [
        this.keys.job(job.id),
        ...job.locks.map((l) => this.keys.pending(l)),
        ...job.locks.map((l) => this.keys.nameClaim(l)),
      ],
      [job.id, job.locks.length, ...FINAL_JOB_STATES],
    );
    return r === 1;
  }
}
