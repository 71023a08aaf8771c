import type { RedisConnection as Redis } from './redis.ts';
import type { EventDataMap, EventType, LxcqEvent } from './events.ts';
import { FINAL_JOB_STATES, type Job, type JobState } from './job.ts';
import type { Keys } from './keys.ts';
import type { ContainerInfo, PoolInfo } from './operations/index.ts';
import { USAGE_PASS_FIELD, type ContainerUsage, type HostTotals, type UsagePass } from './usage.ts';

/** Job fields stored one per hash field (JSON-encoded), so updates touch only what changed. */
export const JOB_FIELDS = [
  'id',
  'operation',
  'container',
  'host',
  'state',
  'payload',
  'progress',
  'result',
  'error',
  'createdAt',
  'startedAt',
  'finishedAt',
  'attempts',
  'requestId',
  'locks',
  'seq',
  'admin',
] as const;

export interface StoredJob extends Job {
  locks: string[];
  seq: number;
  /** Submitted with an admin token: the worker's re-check of the config policy grants what the host allows admins. */
  admin?: boolean;
}

export interface HostInfo {
  id: string;
  /** online: heartbeat fresh; offline: missed heartbeats; draining: online but takes no new containers. */
  status: 'online' | 'offline' | 'draining';
  draining: boolean;
  lastSeen: string;
  startedAt: string;
  lxcpath: string;
  /** Where other workers reach this worker's transfer server (migrate, cross-host clone): host:port. */
  transfer?: string;
  /** The transfer server's self-signed certificate (PEM): the only one a peer accepts from this host. */
  transferCert?: string;
  /** sha256 of that certificate (DER), lowercase hex. */
  transferFingerprint?: string;
  /** Where this worker serves Prometheus metrics (host:port), when LXCQ_METRICS_BIND is set. */
  metrics?: string;
  capabilities: {
    liblxcVersion: string;
    criu: boolean;
    criuMessage?: string;
    cores: number;
    memoryBytes: number;
    freeMemoryBytes: number;
    containers: number;
    running: number;
    /** The host's load average over 1, 5 and 15 minutes (os.loadavg()). */
    loadAverage?: number[];
    /** The worker's main-thread event-loop delay since it started: p99 and max, in ms. */
    eventLoopDelayP99Ms?: number;
    eventLoopDelayMaxMs?: number;
    /** Which storage pool drivers the host can run: a missing one maps to the reason it cannot. */
    poolDrivers?: { [driver: string]: { available: boolean; reason?: string } };
    /** The worker's usage collection period (LXCQ_USAGE_INTERVAL_MS): container.usage events come no oftener. */
    usageIntervalMs?: number;
  };
  /** Added by the API's host routes. */
  totals?: HostTotals;
}

/**
 * jobAhead in one round trip. KEYS: the pending sets of the job's locks. ARGV[1]: the job's id;
 * ARGV[2]: the job-key prefix; ARGV[3..]: the final states. Returns the first unfinished job
 * submitted before it on any of them, or false; ended or expired entries met on the way are removed.
 */
const JOB_AHEAD = `
local final = {}
for i = 3, #ARGV do final[ARGV[i]] = true end
for _, key in ipairs(KEYS) do
  local mine = redis.call('ZSCORE', key, ARGV[1])
  if mine then
    while true do
      local first = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. mine, 'LIMIT', 0, 1)[1]
      if not first then break end
      local state = redis.call('HGET', ARGV[2] .. first, 'state')
      if state and not final[cjson.decode(state)] then return first end
      redis.call('ZREM', key, first)
    end
  end
end
return false`;

export interface StoreOptions {
  /** How long job records outlive their job (seconds). docs/api.md: 7 days by default. */
  jobRetentionSec?: number;
  /** Event stream retention by count (XADD MAXLEN ~). */
  eventMaxLen?: number;
}

function enc(v: unknown): string {
  return JSON.stringify(v);
}

/** The Redis records shared by API and worker: jobs, containers, hosts, events. */
/**
 * forgetHost's step. KEYS: the host's hash, the hosts set, the containers set, then each
 * container's record. ARGV: the lastSeen read before ('' for none), the host id, then each
 * container's name. Returns 1 when done, 0 when the host beat meanwhile (nothing changed).
 */
const FORGET_HOST = `
local cur = redis.call('HGET', KEYS[1], 'lastSeen') or ''
if cur ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
for i = 4, #KEYS do
  redis.call('DEL', KEYS[i])
  redis.call('SREM', KEYS[3], ARGV[i - 1])
end
return 1
`;

export class Store {
  readonly jobRetentionSec: number;
  readonly eventMaxLen: number;

  constructor(
    readonly redis: Redis,
    readonly keys: Keys,
    opts: StoreOptions = {},
  ) {
    this.jobRetentionSec = opts.jobRetentionSec ?? 7 * 24 * 3600;
    this.eventMaxLen = opts.eventMaxLen ?? 100_000;
  }

  // ---- jobs ----

  async getJob(id: string): Promise<StoredJob | null> {
    const h = await this.redis.hgetall(this.keys.job(id));
    if (!h.id) return null;
    const job: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(h)) job[k] = JSON.parse(v) as unknown;
    const stored = job as unknown as StoredJob;
    if (stored.state === 'queued') stored.queuePosition = await this.queuePosition(stored);
    return stored;
  }

  /** Jobs ahead of this one on its busiest lock (0 when it is next). */
  async queuePosition(job: Pick<StoredJob, 'id' | 'locks'>): Promise<number> {
    let pos = 0;
    for (const lock of job.locks) {
      const r = await this.redis.zrank(this.keys.pending(lock), job.id);
      if (r !== null && r > pos) pos = r;
    }
    return pos;
  }

  /**
   * An unfinished job submitted before `job` on one of its locks (the pending sets hold the
   * submission order), or null when `job` is first on all of them. An entry whose job has ended
   * or expired is dropped on the way (it would block the container until it was).
   */
  async jobAhead(job: Pick<StoredJob, 'id' | 'locks'>): Promise<string | null> {
    if (job.locks.length === 0) return null;
    const first = (await this.redis.eval(
      JOB_AHEAD,
      job.locks.length,
      ...job.locks.map((lock) => this.keys.pending(lock)),
      job.id,
      this.keys.job(''),
      ...FINAL_JOB_STATES,
    )) as string | null;
    return first ?? null;
  }

  async jobLog(id: string): Promise<string[]> {
    return this.redis.lrange(this.keys.jobLog(id), 0, -1);
  }

  /**
   * Lists jobs newest first. `cursor` is the opaque value returned as `next` by the previous page.
   * Filters are applied while walking the index, so a page may need several reads.
   */
  async listJobs(q: {
    container?: string;
    host?: string;
    state?: JobState;
    limit: number;
    cursor?: string;
  }): Promise<{ jobs: StoredJob[]; next: string | null }> {
    const index = q.container ? this.keys.containerJobs(q.container) : this.keys.jobs;
    let max = q.cursor ? `(${q.cursor}` : '+inf';
    const out: StoredJob[] = [];
    const batch = Math.max(q.limit * 2, 50);
    for (;;) {
      const ids = await this.redis.zrevrangebyscore(index, max, '-inf', 'WITHSCORES', 'LIMIT', 0, batch);
      if (ids.length === 0) return { jobs: out, next: null };
      for (let i = 0; i < ids.length; i += 2) {
        const id = ids[i] as string;
        const score = ids[i + 1] as string;
        const job = await this.getJob(id);
        if (job === null) {
          // Expired record: drop it from the indexes it was in.
          await this.redis.zrem(index, id);
          continue;
        }
        if ((q.host && job.host !== q.host) || (q.state && job.state !== q.state)) continue;
        out.push(job);
        if (out.length === q.limit) {
          // Scores are ms timestamps; jobs created in the same ms share one, so step just below it.
          return { jobs: out, next: i + 2 < ids.length || ids.length === batch ? score : null };
        }
      }
      max = `(${ids[ids.length - 1]}`;
    }
  }

  // ---- containers ----

  async putContainer(info: ContainerInfo): Promise<void> {
    const m = this.redis.multi();
    m.hset(this.keys.container(info.name), { info: enc(info), host: info.host });
    m.sadd(this.keys.containers, info.name);
    await m.exec();
  }

  async getContainer(name: string): Promise<ContainerInfo | null> {
    const v = await this.redis.hget(this.keys.container(name), 'info');
    return v ? (JSON.parse(v) as ContainerInfo) : null;
  }

  async deleteContainer(name: string): Promise<void> {
    const m = this.redis.multi();
    m.del(this.keys.container(name));
    m.srem(this.keys.containers, name);
    await m.exec();
  }

  async listContainers(): Promise<ContainerInfo[]> {
    const names = (await this.redis.smembers(this.keys.containers)).sort();
    if (names.length === 0) return [];
    const m = this.redis.multi();
    for (const n of names) m.hget(this.keys.container(n), 'info');
    const res = (await m.exec()) ?? [];
    return res.flatMap(([, v]) => (typeof v === 'string' ? [JSON.parse(v) as ContainerInfo] : []));
  }

  // ---- usage ----

  /** A container's figures and its host's pass from the host's last usage pass (null: none recent). */
  async containerUsage(
    host: string,
    name: string,
  ): Promise<{ pass: UsagePass | null; usage: ContainerUsage | null }> {
    const [p, u] = await this.redis.hmget(this.keys.usage(host), USAGE_PASS_FIELD, name);
    return {
      pass: p ? (JSON.parse(p) as UsagePass) : null,
      usage: u ? (JSON.parse(u) as ContainerUsage) : null,
    };
  }

  /** The last usage pass of each of `hosts` (null: none recent). */
  async usagePasses(hosts: readonly string[]): Promise<Map<string, UsagePass | null>> {
    const out = new Map<string, UsagePass | null>();
    if (hosts.length === 0) return out;
    const m = this.redis.multi();
    for (const h of hosts) m.hget(this.keys.usage(h), USAGE_PASS_FIELD);
    const res = (await m.exec()) ?? [];
    hosts.forEach((h, i) => {
      const v = res[i]?.[1];
      out.set(h, typeof v === 'string' ? (JSON.parse(v) as UsagePass) : null);
    });
    return out;
  }

  // ---- hosts ----

  /** A host's storage pools as its worker last wrote them (the implicit `default` dir pool included). */
  async listPools(host: string): Promise<PoolInfo[]> {
    const all = await this.redis.hgetall(this.keys.pools(host));
    return Object.values(all)
      .map((v) => JSON.parse(v) as PoolInfo)
      .sort((a, b) => (a.name === 'default' ? -1 : b.name === 'default' ? 1 : a.name.localeCompare(b.name)));
  }

  async getPool(host: string, name: string): Promise<PoolInfo | null> {
    const v = await this.redis.hget(this.keys.pools(host), name);
    return v === null ? null : (JSON.parse(v) as PoolInfo);
  }

  /** Replaces a host's pool records with `pools` (the worker's own view of them). */
  async setPools(host: string, pools: PoolInfo[]): Promise<void> {
    const m = this.redis.multi();
    m.del(this.keys.pools(host));
    if (pools.length > 0)
      m.hset(this.keys.pools(host), Object.fromEntries(pools.map((p) => [p.name, enc(p)])));
    await m.exec();
  }

  async putHost(info: HostInfo): Promise<void> {
    const m = this.redis.multi();
    m.hset(this.keys.host(info.id), { info: enc(info), lastSeen: String(Date.parse(info.lastSeen)) });
    m.sadd(this.keys.hosts, info.id);
    await m.exec();
  }

  async getHost(id: string, offlineAfterMs: number): Promise<HostInfo | null> {
    const h = await this.redis.hgetall(this.keys.host(id));
    if (!h.info) return null;
    return this.hostStatus(JSON.parse(h.info) as HostInfo, h, offlineAfterMs);
  }

  private hostStatus(info: HostInfo, h: Record<string, string>, offlineAfterMs: number): HostInfo {
    const draining = h.draining === '1';
    const stale = Date.now() - Number(h.lastSeen ?? 0) > offlineAfterMs || h.stopped === '1';
    return { ...info, draining, status: stale ? 'offline' : draining ? 'draining' : 'online' };
  }

  async listHosts(offlineAfterMs: number): Promise<HostInfo[]> {
    const ids = (await this.redis.smembers(this.keys.hosts)).sort();
    const out: HostInfo[] = [];
    for (const id of ids) {
      const h = await this.getHost(id, offlineAfterMs);
      if (h) out.push(h);
    }
    return out;
  }

  /**
   * Removes a host from the registry, and the records of `containers` (those it held), in one
   * step that happens only if the host sent no heartbeat since `lastSeen` was read: a worker
   * that came back meanwhile keeps its registration. False when it did not happen.
   */
  async forgetHost(
    id: string,
    lastSeen: string | undefined,
    containers: readonly string[],
  ): Promise<boolean> {
    const done = await this.redis.eval(
      FORGET_HOST,
      3 + containers.length,
      this.keys.host(id),
      this.keys.hosts,
      this.keys.containers,
      ...containers.map((n) => this.keys.container(n)),
      lastSeen ?? '',
      id,
      ...containers,
    );
    return done === 1;
  }

  /** The host's raw heartbeat field, for forgetHost's check. */
  async hostLastSeenRaw(id: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.host(id), 'lastSeen')) ?? undefined;
  }

  async setHostFlag(id: string, flag: 'draining' | 'stopped', on: boolean): Promise<void> {
    await this.redis.hset(this.keys.host(id), flag, on ? '1' : '0');
  }

  /** Milliseconds since the host's last heartbeat (Infinity for an unknown host). */
  async hostSilenceMs(id: string): Promise<number> {
    const last = await this.redis.hget(this.keys.host(id), 'lastSeen');
    return last === null ? Infinity : Date.now() - Number(last);
  }

  /**
   * Marks a host as announced offline; true only for the first caller (so several API
   * processes announce it, and fail its jobs, once). Cleared when it beats again.
   */
  async claimOffline(id: string): Promise<boolean> {
    return (await this.redis.hsetnx(this.keys.host(id), 'offlineSince', new Date().toISOString())) === 1;
  }

  async clearOffline(id: string): Promise<boolean> {
    return (await this.redis.hdel(this.keys.host(id), 'offlineSince')) === 1;
  }

  // ---- events ----

  /**
   * Appends an event to the durable stream; returns its cursor. Not for job.* events: those are
   * written by the job ledger (ledger.ts) together with the state change they announce.
   */
  async addEvent<T extends Exclude<EventType, `job.${string}`>>(
    type: T,
    data: EventDataMap[T],
    refs: { host?: string; container?: string; job?: string } = {},
  ): Promise<string> {
    const fields = ['type', type, 'time', new Date().toISOString(), 'data', enc(data)];
    if (refs.host) fields.push('host', refs.host);
    if (refs.container) fields.push('container', refs.container);
    if (refs.job) fields.push('job', refs.job);
    const id = await this.redis.xadd(
      this.keys.events,
      'MAXLEN',
      '~',
      String(this.eventMaxLen),
      '*',
      ...fields,
    );
    return id ?? '';
  }

  /** Drops events older than `maxAgeMs` (retention by age; MAXLEN on every XADD bounds the count). */
  async trimEvents(maxAgeMs: number): Promise<number> {
    return this.redis.xtrim(this.keys.events, 'MINID', '~', `${Date.now() - maxAgeMs}-0`);
  }

  static parseEvent(id: string, flat: string[]): LxcqEvent {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i] as string] = flat[i + 1] as string;
    const ev: LxcqEvent = {
      id,
      type: f.type as EventType,
      time: f.time ?? '',
      data: JSON.parse(f.data ?? '{}') as EventDataMap[EventType],
    };
    if (f.host) ev.host = f.host;
    if (f.container) ev.container = f.container;
    if (f.job) ev.job = f.job;
    return ev;
  }
}
