import { existsSync, rmSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import { SpanKind, type Span } from '@opentelemetry/api';
import { Worker as BullWorker, Queue, type Job as BullJob } from 'bullmq';
import type { RedisConnection as Redis } from '@lxcq/shared';
import { pino, type Logger } from 'pino';
import {
  Ledger,
  OPERATIONS,
  Store,
  LxcqError,
  isFinal,
  keys as makeKeys,
  redisClient,
  stopStep,
  toLxcqError,
  type ContainerInfo,
  type ContainerState,
  type HostInfo,
  type OperationName,
  type PayloadOf,
  type QueuedJobData,
  type StoredJob,
  type UsagePublished,
  USAGE_PASS_FIELD,
} from '@lxcq/shared';
import { Compile } from 'typebox/compile';
import {
  extractTrace,
  failSpan,
  inSpan,
  logRedisConnection,
  serveMetrics,
  traceIdOf,
  type MetricsServer,
} from '@lxcq/telemetry';
import type { WorkerConfig } from './config.ts';
import type { HandlerContext } from './handlers/context.ts';
import { removePartialCheckpoints } from './handlers/checkpoint.ts';
import { HANDLERS } from './handlers/index.ts';
import { NameLocks } from './locks.ts';
import { PoolManager, driverSupport } from './pools.ts';
import {
  hasConvertMarker,
  hasLeaving,
  listLeaving,
  listMarkers,
  listSnapshotIntents,
  readLeaving,
  readMarker,
  readSnapshotIntent,
  removeLeaving,
  removeMarker,
  removeSnapshotIntent,
} from './handlers/markers.ts';
import { activeFailpoints } from './failpoints.ts';
import { letContainerRootsThrough } from './idmap.ts';
import { killLeftoverTools, toolLogDir } from './leftovers.ts';
import { checkpointDir } from './paths.ts';
import { StateMonitor } from './monitor.ts';
import { UsageCollector, type KnownContainer } from './usage.ts';
import { WorkerMetrics } from './metrics.ts';
import { LxcPool } from './pool.ts';
import type { RawContainerInfo } from './protocol.ts';
import { TransferServer, decide, type TransferGrant } from './transfer.ts';
import { identityDir, loadOrCreateIdentity, type TransferIdentity } from './tls-identity.ts';

const payloadCheckers = Object.fromEntries(
  Object.entries(OPERATIONS).map(([name, def]) => [name, Compile(def.payload)]),
) as Record<OperationName, ReturnType<typeof Compile>>;

const LOOP_RESOLUTION_MS = 10;
/** A loop-delay histogram value (ns between timer ticks) as the delay past the timer, in ms. */
const loopDelayMs = (ns: number): number =>
  Math.round(Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS) * 1000) / 1000;

export interface WorkerDeps {
  config: WorkerConfig;
  log?: Logger;
  /** The liblxc thread pool (main.ts passes one running the precompiled thread module). */
  pool?: LxcPool;
}

/** What may run on a half-converted container (see ConvertMarker): finishing it, or getting rid of it. */
const HALF_CONVERTED_OK: ReadonlySet<string> = new Set(['convert', 'destroy', 'stop', 'shutdown']);

/**
 * One host's worker: takes its host's BullMQ queue, runs each job's handler (liblxc steps in a
 * piscina pool), keeps job records, container inventory and the host's heartbeat in Redis.
 */
export class LxcqWorker {
  readonly config: WorkerConfig;
  readonly log: Logger;
  readonly keys: ReturnType<typeof makeKeys>;
  readonly redis: Redis;
  readonly store: Store;
  /** The one writer of job state and job.* events. */
  readonly ledger: Ledger;
  readonly pool: LxcPool;
  readonly locks = new NameLocks();
  private pools!: PoolManager;
  private readonly imageLocks = new NameLocks();
  readonly loopDelay: IntervalHistogram;
  private bull?: BullWorker<QueuedJobData>;
  private queue?: Queue<QueuedJobData>;
  private timers: NodeJS.Timeout[] = [];
  private hostInfo?: { liblxcVersion: string; criu: boolean; criuMessage: string };
  private startedAt = new Date().toISOString();
  private closing = false;
  private inventoryRunning: Promise<void> | null = null;
  /** Names found here whose record belongs to another host (warned about once each). */
  private readonly conflicts = new Set<string>();
  /** liblxc's monitor: every state change of every container of the lxcpath, as it happens. */
  private monitor: StateMonitor | null = null;
  private monitorChain: Promise<void> = Promise.resolve();
  /** The last state announced for each container, by the monitor or a reconciliation. */
  private readonly announced = new Map<string, ContainerState>();
  /** The refresh of each container under way (see refresh). */
  private readonly refreshing = new Map<string, Promise<void>>();
  /** The job running on each container name right now (its state changes are `source: api`). */
  private readonly jobOn = new Map<string, string>();
  private readonly exitStatus = new Map<string, number>();
  private transfer?: TransferServer;
  /** This worker's TLS key and certificate for transfers, made at its first start. */
  private identity?: TransferIdentity;
  /** Where other workers reach this worker's transfer server. */
  private transferAddress?: string;
  readonly metrics: WorkerMetrics;
  private metricsServer?: MetricsServer;
  /** Where this worker serves /metrics (advertised in its host record). */
  metricsAddress?: string;
  /** Jobs taken from the queue and not ended (waiting for their container, or running). */
  private jobsInFlight = 0;
  /**
   * This host's containers as its registry records say, kept as the worker writes them: the
   * usage collector's list, and the host's container and running counts, which so follow every
   * change at once instead of the next inventory.
   */
  private readonly known = new Map<string, KnownContainer>();
  readonly usage: UsageCollector;

  constructor(deps: WorkerDeps) {
    this.config = deps.config;
    this.log = (deps.log ?? pino({ name: 'lxcq-worker' })).child({ host: deps.config.hostId });
    this.keys = makeKeys(this.config.prefix);
    this.redis = redisClient(this.config.redisUrl, { maxRetriesPerRequest: null });
    logRedisConnection(this.redis, 'worker', this.log);
    this.store = new Store(this.redis, this.keys, {
      jobRetentionSec: this.config.jobRetentionSec,
      eventMaxLen: this.config.eventMaxLen,
    });
    this.ledger = new Ledger(this.store);
    this.pool = deps.pool ?? new LxcPool({ threads: this.config.threads });
    this.loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.metrics = new WorkerMetrics(
      this.config.hostId,
      {
        jobsInFlight: () => this.jobsInFlight,
        waitingByContainer: () => this.locks.waiting,
        pool: () => this.pool.stats,
        containers: () => ({ total: this.containerCount, running: this.runningCount }),
      },
      { topContainers: this.config.metricsTopContainers },
    );
    this.pool.observer = (fn, wait, run) => this.metrics.lxcStep(fn, wait, run);
    this.usage = new UsageCollector({
      hostId: this.config.hostId,
      lxcpath: this.config.lxcpath,
      intervalMs: this.config.usageIntervalMs,
      diskIntervalMs: this.config.usageDiskIntervalMs,
      containers: () => this.known.values(),
      write: (pass, containers) => this.writeUsage({ pass, containers }),
      log: this.log,
    });
    this.metrics.containerUsage(() => this.usage.last);
  }

  /**
   * Stores a usage pass: the host's usage hash rewritten whole (it expires when passes stop,
   * so a dead worker's figures are not served as current), then published for container.usage.
   */
  private async writeUsage(p: UsagePublished): Promise<void> {
    const key = this.keys.usage(this.config.hostId);
    const pass = JSON.stringify(p.pass);
    const fields: string[] = [USAGE_PASS_FIELD, pass];
    const each: string[] = [];
    for (const c of p.containers) {
      const json = JSON.stringify(c);
      fields.push(c.name, json);
      each.push(json);
    }
    const m = this.redis.multi();
    m.del(key);
    m.hset(key, ...fields);
    m.pexpire(key, this.config.usageIntervalMs * 3 + 10_000);
    // the UsagePublished JSON, from the pieces serialised once above
    m.publish(this.keys.usageChannel, `{"pass":${pass},"containers":[${each.join(',')}]}`);
    await m.exec();
  }

  /** Records that the registry now holds `info` for this host (see `known`). */
  private remember(info: ContainerInfo): void {
    this.known.set(info.name, {
      name: info.name,
      state: info.state,
      ...(info.pid !== undefined ? { pid: info.pid } : {}),
      ...(info.config ? { config: info.config } : {}),
    });
    this.recount();
  }

  private forget(name: string): void {
    if (this.known.delete(name)) this.recount();
  }

  private recount(): void {
    let running = 0;
    for (const c of this.known.values()) if (c.state !== 'STOPPED') running++;
    this.containerCount = this.known.size;
    this.runningCount = running;
  }

  async start(): Promise<void> {
    this.loopDelay.enable();
    this.hostInfo = await this.pool.call({ fn: 'hostInfo', lxcpath: this.config.lxcpath });
    await this.store.setHostFlag(this.config.hostId, 'stopped', false);
    // A worker that died left its copies running: stop them before anything re-runs their jobs.
    const killed = await killLeftoverTools(this.config.lxcpath);
    if (killed.length > 0)
      this.log.warn({ pids: killed }, 'stopped helper processes a previous worker left running');
    rmSync(toolLogDir(this.config.lxcpath), { recursive: true, force: true });
    if (existsSync(this.config.lxcpath)) letContainerRootsThrough(this.config.lxcpath);
    // Before the sweeps: a half-made container on a loop pool is removed from its mounted pool.
    this.pools = new PoolManager({ host: this.config.hostId, lxcpath: this.config.lxcpath, log: this.log });
    await this.pools.load();
    await this.publishPools();
    await this.sweepMarkers();
    await this.settleMoves();
    await this.startTransferServer();
    await this.startMetricsServer();
    await this.startMonitor();
    await this.heartbeat();
    await this.store.addEvent(
      'host.online',
      { capabilities: { ...this.hostInfo } },
      { host: this.config.hostId },
    );
    await this.inventory();
    this.usage.start();
    const connection = redisClient(this.config.redisUrl, { maxRetriesPerRequest: null });
    logRedisConnection(connection, 'worker-queue', this.log);
    this.queue = new Queue(this.keys.queue(this.config.hostId), {
      connection: this.redis,
      prefix: this.keys.bullPrefix,
    });
    this.bull = new BullWorker<QueuedJobData>(
      this.keys.queue(this.config.hostId),
      (job) => this.process(job),
      {
        connection,
        prefix: this.keys.bullPrefix,
        concurrency: this.config.maxJobsInFlight,
        lockDuration: this.config.lockMs,
        stalledInterval: Math.max(1000, Math.floor(this.config.lockMs / 2)),
        // One re-run after a worker died mid-job; a second death gives the job up (LXCQ_WORKER_LOST).
        maxStalledCount: 1,
        removeOnComplete: { age: 3600, count: 10_000 },
        removeOnFail: { age: 24 * 3600 },
      },
    );
    this.bull.on('failed', (job, err) => {
      if (job) void this.giveUp(job.data, err);
    });
    this.bull.on('error', (err) => this.log.error({ err }, 'queue error'));
    this.timers.push(
      setInterval(
        () => void this.heartbeat().catch((err: unknown) => this.log.warn({ err }, 'heartbeat failed')),
        this.config.heartbeatMs,
      ),
    );
    this.timers.push(
      setInterval(
        () => void this.inventory().catch((err: unknown) => this.log.warn({ err }, 'inventory failed')),
        this.config.inventoryMs,
      ),
    );
    await this.bull.waitUntilReady();
    this.log.info(
      {
        lxcpath: this.config.lxcpath,
        threads: this.config.threads,
        liblxc: this.hostInfo.liblxcVersion,
        criu: this.hostInfo.criu,
      },
      'worker ready',
    );
    const fps = activeFailpoints();
    if (fps.length > 0)
      this.log.warn(
        { failpoints: fps },
        'LXCQ_FAILPOINTS is set: this worker kills itself at those points (tests only)',
      );
  }

  /**
   * Removes containers half-made by jobs that will not run again (failed while this worker was
   * away, e.g. with LXCQ_HOST_OFFLINE): a creating-marker whose job has ended or expired.
   */
  private async sweepMarkers(): Promise<void> {
    for (const name of listMarkers(this.config.lxcpath)) {
      const jobId = readMarker(this.config.lxcpath, name);
      const job = jobId ? await this.store.getJob(jobId) : null;
      if (job && !isFinal(job.state)) continue; // its job runs again and cleans up itself
      this.log.warn({ container: name, job: jobId }, 'removing a container half-made by a job that ended');
      await this.pool.call({ fn: 'purge', name, lxcpath: this.config.lxcpath });
      removeMarker(this.config.lxcpath, name);
    }
    // Dumps that a dead worker never finished (hidden, never listed): nothing can use them.
    for (const name of await this.pool.call({ fn: 'list', lxcpath: this.config.lxcpath })) {
      const gone = removePartialCheckpoints(this.config.lxcpath, name);
      if (gone.length > 0)
        this.log.warn({ container: name, gone }, 'removed checkpoints a dead worker left half-made');
    }
    for (const name of listSnapshotIntents(this.config.lxcpath)) {
      const intent = readSnapshotIntent(this.config.lxcpath, name);
      const job = intent ? await this.store.getJob(intent.job) : null;
      if (job && !isFinal(job.state)) continue; // its job runs again and cleans up itself
      await this.rollBackSnapshot(name);
    }
  }

  /** Removes the snapshot a dead snapshot job half-made on `name` (see SnapshotIntent). */
  private async rollBackSnapshot(name: string): Promise<void> {
    const intent = readSnapshotIntent(this.config.lxcpath, name);
    if (!intent) return;
    const { removed } = await this.pool.call({
      fn: 'snapshotRollback',
      name,
      lxcpath: this.config.lxcpath,
      keep: intent.before,
    });
    this.log.warn(
      { container: name, job: intent.job, removed },
      'removed a snapshot half-made by a job that ended',
    );
    removeSnapshotIntent(this.config.lxcpath, name);
  }

  /**
   * Settles moves to other hosts that a dead worker (or a target too slow to answer) left
   * unfinished: a leaving-marker. The container ends on exactly one host:
   * - the registry names another host, or the transfer's outcome is `done`: the target has it, so
   *   the copy here is removed;
   * - otherwise this worker claims the outcome (`aborted`, so a target that has not finished will
   *   not take it) and the container stays here, restored from its checkpoint when a live move
   *   had stopped it;
   * - a target still restoring it (`restoring`) is left to finish; the next pass settles it.
   * Names a running job holds are skipped: that job settles its own move.
   */
  private async settleMoves(): Promise<void> {
    const lxcpath = this.config.lxcpath;
    for (const name of listLeaving(lxcpath)) {
      if (this.locks.isHeld(name)) continue;
      const m = readLeaving(lxcpath, name);
      const log = this.log.child({ container: name, job: m?.job });
      if (!m) {
        log.warn('unreadable leaving-marker (written before any transfer began): removed');
        removeLeaving(lxcpath, name);
        continue;
      }
      const record = await this.store.getContainer(name);
      const outcome =
        record && record.host !== this.config.hostId
          ? 'done'
          : await decide(this.redis, this.keys, m.transfer, 1);
      if (outcome === 'restoring') {
        log.info({ to: m.to }, 'a move is still being restored on its target; settling it later');
        continue;
      }
      if (outcome === 'done') {
        log.warn({ to: m.to }, 'removing the copy left here by a move that completed on its target');
        await this.pool.call({ fn: 'purge', name, lxcpath });
      } else {
        const info = await this.pool.call({ fn: 'info', name, lxcpath });
        const dir = m.checkpoint ? checkpointDir(lxcpath, name, m.checkpoint) : null;
        if (info.defined && info.state === 'STOPPED' && dir && existsSync(dir)) {
          log.warn({ to: m.to }, 'a live move did not complete: restoring the container here');
          try {
            await this.pool.call({ fn: 'restore', name, lxcpath, dir });
            rmSync(dir, { recursive: true, force: true });
          } catch (err) {
            log.error(
              { err, checkpoint: m.checkpoint },
              'could not restore it here: the container stays stopped with its checkpoint (start it, or restore the checkpoint)',
            );
          }
        } else log.warn({ to: m.to }, 'a move did not complete: the container stays on this host');
      }
      removeLeaving(lxcpath, name);
    }
  }

  /** The server other workers stream containers to (migrate, cross-host clone). */
  private async startTransferServer(): Promise<void> {
    rmSync(join(this.config.lxcpath, '.lxcq', 'incoming'), { recursive: true, force: true });
    const identity = (this.identity = await loadOrCreateIdentity(
      identityDir(this.config.lxcpath),
      this.config.hostId,
    ));
    this.transfer = new TransferServer({
      identity,
      hostId: this.config.hostId,
      lxcpath: this.config.lxcpath,
      redis: this.redis,
      keys: this.keys,
      pool: this.pool,
      log: this.log,
      lock: (name) => this.locks.acquire([name]),
      adopt: (grant) => this.adopt(grant),
      idleMs: this.config.transferIdleMs,
      policy: this.config.policy,
    });
    const bound = await this.transfer.listen(this.config.transferBind);
    this.transferAddress = this.config.transferAdvertise ?? bound;
    this.log.info(
      { bound, advertised: this.transferAddress, fingerprint: identity.fingerprint },
      'transfer server listening (TLS)',
    );
  }

  /** Prometheus metrics on LXCQ_METRICS_BIND (off when unset). */
  private async startMetricsServer(): Promise<void> {
    const bind = this.config.metricsBind;
    if (!bind) return;
    try {
      this.metricsServer = await serveMetrics({
        bind,
        source: this.metrics.registry,
        token: this.config.metricsToken,
        log: this.log,
      });
    } catch (err) {
      throw new Error(
        `LXCQ_METRICS_BIND ${bind.host}:${bind.port}: cannot listen there (${(err as Error).message}); pick a free port, or leave it unset for no metrics server.`,
        { cause: err },
      );
    }
    this.metricsAddress = this.metricsServer.address;
    this.log.info(
      { bound: this.metricsAddress, token: this.config.metricsToken !== undefined },
      'metrics server listening (GET /metrics)',
    );
  }

  /** A received container becomes this host's: its record names this host from now on. */
  private async adopt(grant: TransferGrant): Promise<ContainerInfo> {
    const raw = await this.pool.call({
      fn: 'info',
      name: grant.newName,
      lxcpath: this.config.lxcpath,
      withConfig: true,
    });
    const info = this.toInfo(raw);
    this.announced.set(grant.newName, info.state);
    await this.store.putContainer(info);
    this.remember(info);
    const refs = { host: this.config.hostId, container: grant.newName, job: grant.job };
    if (grant.mode === 'clone') await this.store.addEvent('container.created', { source: 'api' }, refs);
    else await this.store.addEvent('container.moved', { from: grant.from, to: grant.to }, refs);
    return info;
  }

  private async startMonitor(): Promise<void> {
    const monitor = new StateMonitor({ lxcpath: this.config.lxcpath, log: this.log });
    monitor.on('state', (e) => {
      this.monitorChain = this.monitorChain
        .then(() => this.onMonitorState(e.name, e.state))
        .catch((err: unknown) => this.log.warn({ err, container: e.name }, 'state event not recorded'));
    });
    monitor.on('exit', (e) => this.exitStatus.set(e.name, e.status));
    // Whatever happened while the monitor was away is found by a reconciliation.
    monitor.on(
      'reconnected',
      () => void this.inventory().catch((err: unknown) => this.log.warn({ err }, 'inventory failed')),
    );
    monitor.on('error', (err) => this.log.warn({ err }, 'liblxc monitor'));
    try {
      await monitor.start();
      this.monitor = monitor;
    } catch (err) {
      this.log.warn(
        { err },
        'liblxc monitor unavailable: container state changes are found by periodic reconciliation only',
      );
      await monitor.close().catch(() => undefined);
    }
  }

  /** One state change announced by a container's liblxc monitor process. */
  private async onMonitorState(name: string, state: ContainerState): Promise<void> {
    const prev = this.announced.get(name);
    this.log.debug({ container: name, state, prev }, 'monitor state');
    if (prev === state) return; // liblxc repeats FROZEN and THAWED
    this.announced.set(name, state);
    const job = this.jobOn.get(name);
    const exitStatus = state === 'STOPPED' ? this.exitStatus.get(name) : undefined;
    if (state === 'STOPPED') this.exitStatus.delete(name);
    // The registry record is rewritten whole from a fresh liblxc read: by the job that caused the
    // change when it ends, or here, before the event, for changes made outside lxcq once the
    // state has settled, so a client reacting to the event reads the registry already updated.
    // (Patching the record from a copy read earlier could undo what a job just wrote.)
    if (!job && (state === 'RUNNING' || state === 'STOPPED' || state === 'FROZEN')) {
      await this.refresh(name, 'external').catch((err: unknown) =>
        this.log.warn({ err, container: name }, 'inventory refresh failed'),
      );
    }
    await this.store.addEvent(
      'container.state',
      {
        from: prev ?? 'UNKNOWN',
        to: state,
        source: job ? 'api' : 'external',
        ...(exitStatus !== undefined ? { exitStatus } : {}),
      },
      { host: this.config.hostId, container: name, ...(job ? { job } : {}) },
    );
  }

  /** Waits briefly for the monitor to announce `state` for `name` (its messages trail liblxc's return). */
  private async monitorCaughtUp(name: string, state: ContainerState): Promise<boolean> {
    if (!this.monitor?.listening) return false;
    for (let i = 0; i < 100; i++) {
      if (this.announced.get(name) === state) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.announced.get(name) === state;
  }

  /** Stop taking jobs, let running ones finish, deregister. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
    await this.usage.stop();
    await this.closeQueueWorker();
    // Each step that needs Redis gets a bound: with the connection reconnecting it could wait for
    // ever, and once no job runs a stop must end.
    const bounded = (what: string, step: Promise<unknown> | undefined) => stopStep(what, step, this.log);
    await bounded('closing the host queue', this.queue?.close());
    await this.transfer?.close();
    await bounded('the inventory pass', this.inventoryRunning ?? undefined);
    await this.monitor?.close().catch(() => undefined);
    await this.monitorChain;
    await this.pool.close();
    await this.metricsServer?.close();
    await bounded('marking the host stopped', this.store.setHostFlag(this.config.hostId, 'stopped', true));
    await bounded(
      'announcing host.offline',
      this.store.addEvent(
        'host.offline',
        { lastSeen: new Date().toISOString() },
        { host: this.config.hostId },
      ),
    );
    this.loopDelay.disable();
    this.redis.disconnect();
  }

  /**
   * Stops taking jobs and waits for the running ones. BullMQ's close() can hang when SIGTERM
   * arrives while its connection is still reconnecting after a Redis restart
   * (taskforcesh/bullmq#4656): once none of this worker's jobs runs, it gets 5 s more, then it is
   * forced, so a stop never hangs until the supervisor's SIGKILL.
   */
  private async closeQueueWorker(): Promise<void> {
    const bull = this.bull;
    if (!bull) return;
    let done = false;
    const closed = bull.close().finally(() => (done = true));
    const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
    const stuck = (async () => {
      while (!done && this.jobsInFlight > 0) await pause(100);
      for (let waited = 0; !done && waited < 5000; waited += 100) await pause(100);
      return !done;
    })();
    if (await Promise.race([closed.then(() => false), stuck])) {
      this.log.warn(
        'the queue connection did not close 5 s after the last job ended (Redis reconnecting?); forcing it',
      );
      await Promise.race([bull.close(true).catch(() => undefined), pause(2000)]);
    }
  }

  private transferIdentity(): TransferIdentity {
    if (!this.identity) throw new LxcqError('LXCQ_INTERNAL', 'The transfer server has not started yet.');
    return this.identity;
  }

  private async publishPools(): Promise<void> {
    await this.store.setPools(this.config.hostId, this.pools.list());
  }

  private async heartbeat(): Promise<void> {
    const containers = this.containerCount;
    const info: HostInfo = {
      id: this.config.hostId,
      status: 'online',
      draining: false,
      lastSeen: new Date().toISOString(),
      startedAt: this.startedAt,
      lxcpath: this.config.lxcpath,
      ...(this.transferAddress ? { transfer: this.transferAddress } : {}),
      ...(this.identity
        ? { transferCert: this.identity.cert, transferFingerprint: this.identity.fingerprint }
        : {}),
      ...(this.metricsAddress ? { metrics: this.metricsAddress } : {}),
      capabilities: {
        liblxcVersion: this.hostInfo?.liblxcVersion ?? 'unknown',
        criu: this.hostInfo?.criu ?? false,
        ...(this.hostInfo ? { criuMessage: this.hostInfo.criuMessage } : {}),
        cores: cpus().length,
        memoryBytes: totalmem(),
        freeMemoryBytes: freemem(),
        containers,
        running: this.runningCount,
        usageIntervalMs: this.config.usageIntervalMs,
        loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
        // Cumulative since start(). The histogram records the time between its 10 ms timer's
        // ticks, so the interval itself is taken off to leave the delay.
        eventLoopDelayP99Ms: loopDelayMs(this.loopDelay.percentile(99)),
        eventLoopDelayMaxMs: loopDelayMs(this.loopDelay.max),
        poolDrivers: driverSupport(),
      },
    };
    await this.store.putHost(info);
    // The pools' space changes as containers write: refreshed with every heartbeat.
    if (this.pools) await this.publishPools();
  }

  private runningCount = 0;
  private containerCount = 0;

  toInfo(raw: RawContainerInfo): ContainerInfo {
    const info: ContainerInfo = {
      name: raw.name,
      host: this.config.hostId,
      state: raw.state,
      updatedAt: new Date().toISOString(),
    };
    if (raw.pid !== undefined) info.pid = raw.pid;
    if (raw.ips !== undefined) info.ips = raw.ips;
    if (raw.snapshots !== undefined) info.snapshots = raw.snapshots;
    if (raw.checkpoints !== undefined) info.checkpoints = raw.checkpoints;
    if (raw.config !== undefined) info.config = raw.config;
    if (raw.broken !== undefined) info.broken = raw.broken;
    if (raw.pool !== undefined) info.pool = raw.pool;
    if (raw.disk !== undefined) info.disk = raw.disk;
    if (raw.privileged !== undefined) info.privileged = raw.privileged;
    if (raw.migrationBlockers !== undefined)
      info.liveMigration = { possible: raw.migrationBlockers.length === 0, blockers: raw.migrationBlockers };
    return info;
  }

  /**
   * Refreshes the inventory record of `name` from liblxc and announces what changed.
   * `source` says whether lxcq made the change (a job) or something else did.
   */
  /**
   * Rewrites a container's record from a fresh liblxc read. Refreshes of one container run one
   * after another: two overlapping ones (the monitor's for a change outside lxcq, and a job's at its
   * end) could otherwise write in the other order, the older read last, and the registry would show
   * a config or state liblxc no longer has until the next inventory.
   */
  refresh(name: string, source: 'api' | 'external', jobId?: string): Promise<void> {
    const prev = this.refreshing.get(name) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.refreshNow(name, source, jobId));
    this.refreshing.set(name, next);
    const forget = () => {
      if (this.refreshing.get(name) === next) this.refreshing.delete(name);
    };
    next.then(forget, forget);
    return next;
  }

  private async refreshNow(name: string, source: 'api' | 'external', jobId?: string): Promise<void> {
    // In transit to another host: its record is the move's to settle (settleMoves), not ours.
    if (hasLeaving(this.config.lxcpath, name)) return;
    const raw = await this.pool.call({ fn: 'info', name, lxcpath: this.config.lxcpath, withConfig: true });
    const before = await this.store.getContainer(name);
    const refs = { host: this.config.hostId, container: name, ...(jobId ? { job: jobId } : {}) };
    if (before && before.host !== this.config.hostId && raw.defined) {
      // Names are global: a container of this name lives on another host, and its record is that
      // host's. Never take it over (a stale copy here must not steal a moved container back).
      this.forget(name);
      if (!this.conflicts.has(name)) {
        this.conflicts.add(name);
        this.log.warn(
          { container: name, owner: before.host },
          "a container of this name exists here and on its owner host; lxcq keeps the owner's record and leaves this copy alone (rename or destroy it with the lxc-* tools)",
        );
      }
      return;
    }
    this.conflicts.delete(name);
    if (!raw.defined || readMarker(this.config.lxcpath, name) !== null) {
      this.forget(name);
      if (before && before.host === this.config.hostId) {
        await this.store.deleteContainer(name);
        await this.store.addEvent('container.destroyed', { source }, refs);
      }
      return;
    }
    const info = this.toInfo(raw);
    await this.store.putContainer(info);
    this.remember(info);
    if (!before || before.host !== this.config.hostId)
      await this.store.addEvent('container.created', { source }, refs);
    if (info.broken && info.broken !== before?.broken) {
      this.log.error({ container: name, reason: info.broken }, 'container is broken');
      await this.store.addEvent('container.broken', { reason: info.broken }, refs);
    }
    // State changes are announced by the monitor as they happen; this corrects what it missed
    // (the worker was down, a message was lost) and says so.
    const from: ContainerState | 'UNKNOWN' = this.announced.get(name) ?? before?.state ?? 'UNKNOWN';
    // A container just made and still stopped has no announcement to wait for; any other change
    // is announced by the monitor, whose messages may trail liblxc's return a little.
    const unannounced = from === 'UNKNOWN' && info.state === 'STOPPED';
    if (from !== info.state && (unannounced || !(await this.monitorCaughtUp(name, info.state)))) {
      this.announced.set(name, info.state);
      if (!(from === 'UNKNOWN' && info.state === 'STOPPED')) {
        await this.store.addEvent('container.state', { from, to: info.state, source }, refs);
      }
    }
  }

  /** Records every container of the lxcpath; drops records of containers gone from it. */
  inventory(): Promise<void> {
    this.inventoryRunning ??= (async () => {
      try {
        await this.settleMoves();
        const startedAt = Date.now();
        const names = await this.pool.call({ fn: 'list', lxcpath: this.config.lxcpath });
        const mine = new Set(names);
        for (const name of names) {
          // A container a job is working on is refreshed by that job when it ends; holding its
          // lock meanwhile keeps a job from starting on it before this refresh is written.
          const release = this.locks.tryAcquire([name]);
          if (!release) continue;
          try {
            await this.refresh(name, 'external');
          } finally {
            release();
          }
        }
        for (const c of await this.store.listContainers()) {
          if (c.host !== this.config.hostId || mine.has(c.name)) continue;
          const release = this.locks.tryAcquire([c.name]);
          if (!release) continue;
          try {
            // Not in the list read above, but a job may have made it since (and ended): only a
            // container liblxc does not know now, with no job on it, is gone.
            const now = await this.pool.call({ fn: 'info', name: c.name, lxcpath: this.config.lxcpath });
            if (now.defined) continue;
            // A record written since this inventory began (a job's, a transfer's) is newer than
            // anything read here.
            const cur = await this.store.getContainer(c.name);
            if (!cur || Date.parse(cur.updatedAt) >= startedAt) continue;
            await this.store.deleteContainer(c.name);
            this.forget(c.name);
            await this.store.addEvent(
              'container.destroyed',
              { source: 'external' },
              { host: this.config.hostId, container: c.name },
            );
          } finally {
            release();
          }
        }
      } finally {
        this.inventoryRunning = null;
      }
    })();
    return this.inventoryRunning;
  }

  /**
   * BullMQ's processor. Operation failures end the job `failed`; they are not thrown to BullMQ.
   * The job runs in a span continuing the trace of the request that submitted it (job data
   * `trace`), so its liblxc steps nest under it.
   */
  private async process(bullJob: BullJob<QueuedJobData>): Promise<void> {
    const data = bullJob.data;
    this.jobsInFlight++;
    try {
      await inSpan(
        `job ${data.operation}`,
        {
          kind: SpanKind.CONSUMER,
          parent: extractTrace(data.trace),
          attributes: {
            'lxcq.job.id': data.id,
            'lxcq.operation': data.operation,
            'lxcq.container': data.container,
            'lxcq.host': this.config.hostId,
            ...(data.requestId ? { 'lxcq.request_id': data.requestId } : {}),
          },
        },
        (span) => this.runJob(data, span),
      );
    } finally {
      this.jobsInFlight--;
    }
  }

  private async runJob(data: QueuedJobData, span: Span): Promise<void> {
    const first = await this.store.getJob(data.id);
    if (!first || isFinal(first.state)) {
      span.addEvent('skipped: the job had already ended (cancelled while queued, or expired)');
      // Cancelled while queued, expired, or ended otherwise than by the ledger (which frees them
      // as it ends a job): take it out of its pending queues and free its names now, or they
      // stay taken.
      await this.ledger.release(data).catch(() => undefined);
      return;
    }
    let release = await this.locks.acquire(data.locks);
    // BullMQ can hand out two jobs of one container out of order (its fetches race): the locks
    // above follow arrival, the pending sets in Redis follow submission. A job that finds an
    // earlier one still unfinished lets it pass and comes back.
    for (let i = 1; (await this.store.jobAhead(data)) !== null; i++) {
      release();
      await new Promise((r) => setTimeout(r, Math.min(50, 5 * i)));
      release = await this.locks.acquire(data.locks);
    }
    span.addEvent('container locks taken');
    for (const n of data.locks) this.jobOn.set(n, data.id);
    try {
      const job = await this.store.getJob(data.id);
      if (!job || isFinal(job.state)) return;
      const started = await this.ledger.start(job, this.config.hostId);
      if (!started) return;
      const { attempt, startedAt } = started;
      const t0 = performance.now();
      if (attempt === 1)
        this.metrics.jobQueueWait.observe(
          { operation: job.operation },
          Math.max(0, Date.now() - Date.parse(job.createdAt)) / 1000,
        );
      span.setAttribute('lxcq.attempt', attempt);
      // Every line logged for this job carries these, whatever logs it (handlers get this logger).
      const traceId = traceIdOf();
      const log = this.log.child({
        jobId: job.id,
        container: job.container,
        operation: job.operation,
        ...(job.requestId ? { requestId: job.requestId } : {}),
        ...(traceId ? { traceId } : {}),
      });
      log.info({ attempt }, 'job started');
      const touched = new Set<string>();
      try {
        const result = await this.runHandler({ ...job, attempts: attempt, startedAt }, attempt, log, touched);
        await this.settle(touched, job.id, log);
        // Refused when the job ended meanwhile (the watchdog failed it while this worker was
        // silent, say): then its first end is its only one, and this outcome is dropped.
        if (await this.ledger.finish(job, { state: 'completed', result }, { attempt })) {
          const seconds = (performance.now() - t0) / 1000;
          this.metrics.jobEnded(job.operation, 'completed', seconds);
          log.info({ ms: Math.round(seconds * 1000) }, 'job completed');
        } else this.endedElsewhere(job.id, 'completed', log);
      } catch (err) {
        const e = toLxcqError(err);
        failSpan(span, e);
        await this.settle(touched, job.id, log);
        if (await this.ledger.finish(job, { state: 'failed', error: e.toJSON() }, { attempt })) {
          const seconds = (performance.now() - t0) / 1000;
          this.metrics.jobEnded(job.operation, 'failed', seconds, e.code);
          log.warn({ code: e.code, err: e.message, ms: Math.round(seconds * 1000) }, 'job failed');
        } else this.endedElsewhere(job.id, `failed (${e.code}: ${e.message})`, log);
      }
    } finally {
      for (const n of data.locks) if (this.jobOn.get(n) === data.id) this.jobOn.delete(n);
      release();
    }
  }

  /** A job's end the ledger refused: the job had already ended (or another attempt runs it). */
  private endedElsewhere(id: string, outcome: string, log: Logger): void {
    this.store
      .getJob(id)
      .then((now) =>
        log.warn(
          { outcome, state: now?.state ?? 'gone', code: now?.error?.code },
          "the job had already ended elsewhere (or another attempt runs it): this attempt's outcome was not recorded",
        ),
      )
      .catch(() => undefined);
  }

  private async runHandler(
    job: StoredJob,
    attempt: number,
    log: Logger,
    touched: Set<string>,
  ): Promise<unknown> {
    const op = job.operation;
    if (attempt > 1 && !OPERATIONS[op].rerunnable) {
      throw new LxcqError(
        'LXCQ_WORKER_LOST',
        `The worker died while this ${op} ran; it may have taken effect, so it was not run a second time.`,
      );
    }
    if (!HALF_CONVERTED_OK.has(op) && hasConvertMarker(this.config.lxcpath, job.container)) {
      throw new LxcqError(
        'LXCQ_INVALID_STATE',
        `Container ${job.container} is half converted to unprivileged (a convert job ended before it finished: some of its files are shifted, its config has no id map yet). Run convert again to finish it (POST /v1/containers/${job.container}/convert, admin), or destroy it.`,
        { details: { converting: true } },
      );
    }
    // The API checked the payload; check again so a job from anywhere meets the same contract.
    if (!payloadCheckers[op].Check(job.payload)) {
      throw toLxcqError({
        code: 'LXCQ_VALIDATION',
        message: `The payload of this ${op} job does not match its schema.`,
      });
    }
    const ctx: HandlerContext = {
      job,
      attempt,
      host: this.config.hostId,
      lxcpath: this.config.lxcpath,
      imagesDir: this.config.imagesDir,
      policy: this.config.policy,
      who: { admin: job.admin === true },
      maxExecOutputBytes: this.config.maxExecOutputBytes,
      lxc: (req) => this.pool.call(req),
      store: this.store,
      redis: this.redis,
      keys: this.keys,
      hostOfflineMs: this.config.hostOfflineMs,
      transferIdleMs: this.config.transferIdleMs,
      transferIdentity: this.transferIdentity(),
      log,
      touched,
      imageLocks: this.imageLocks,
      pools: this.pools,
      publishPools: () => this.publishPools(),
      toInfo: (raw) => this.toInfo(raw),
      progress: async (percent, stage) => {
        const progress = { percent: Math.max(0, Math.min(100, Math.round(percent))), stage };
        // Refused (nothing written) once the job has ended, or another attempt runs it.
        await this.ledger.progress(job, progress, { attempt });
      },
    };
    const handler = HANDLERS[op] as (c: HandlerContext, p: PayloadOf<typeof op>) => Promise<unknown>;
    return handler(ctx, job.payload);
  }

  /** After a job: refresh the inventory of every container it touched. */
  private async settle(touched: Set<string>, jobId: string, log: Logger): Promise<void> {
    for (const name of touched) {
      await this.refresh(name, 'api', jobId).catch((err: unknown) =>
        log.warn({ err, refreshed: name }, 'inventory refresh failed'),
      );
    }
  }

  /**
   * BullMQ gave a job up (its worker died twice while running it, or the processor itself threw):
   * end our record too, and undo what the dead attempts left: a half-made container (its
   * creating-marker names this job) is removed, and the names the job reserved are freed, so
   * nothing stays locked until the reservation's TTL runs out.
   */
  private async giveUp(data: QueuedJobData, err: Error): Promise<void> {
    const job = await this.store.getJob(data.id);
    const release = await this.locks.acquire(data.locks);
    try {
      for (const n of data.locks) {
        if (readMarker(this.config.lxcpath, n) !== data.id) continue;
        this.log.warn({ container: n, job: data.id }, 'removing a container half-made by a job given up');
        await this.pool.call({ fn: 'purge', name: n, lxcpath: this.config.lxcpath });
        removeMarker(this.config.lxcpath, n);
      }
      for (const n of data.locks)
        if (readSnapshotIntent(this.config.lxcpath, n)?.job === data.id) await this.rollBackSnapshot(n);
      if (job && !isFinal(job.state)) {
        const stalled = /stalled/i.test(err.message);
        const error = {
          code: stalled ? ('LXCQ_WORKER_LOST' as const) : ('LXCQ_INTERNAL' as const),
          message: stalled
            ? `The worker running this job died repeatedly (${err.message}); the job was given up.`
            : `The worker could not finish this job: ${err.message}`,
        };
        // Refused when it ended meanwhile (the watchdog failed it, say): that end stands alone.
        if (await this.ledger.finish(job, { state: 'failed', error })) {
          this.metrics.jobs.inc({ operation: job.operation, outcome: 'failed' });
          this.metrics.jobFailures.inc({ operation: job.operation, code: error.code });
          this.log.warn(
            {
              jobId: job.id,
              container: job.container,
              operation: job.operation,
              ...(job.requestId ? { requestId: job.requestId } : {}),
              code: error.code,
            },
            'job given up',
          );
        }
      }
      // Out of its pending queues, its names free (finish did that if it ended the job here).
      await this.ledger.release(data);
      await this.settle(new Set(data.locks), data.id, this.log);
    } finally {
      release();
    }
  }
}
