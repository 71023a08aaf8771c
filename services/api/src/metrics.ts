import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Queue } from 'bullmq';
import type { FastifyBaseLogger } from 'fastify';
import type { LxcqEvent, QueuedJobData, Store } from '@lxcq/shared';
import type { EventHub } from './events.ts';

const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * The API's Prometheus metrics (`GET /metrics`), in a registry of its own. Besides the API's own
 * work (HTTP, submissions, WebSocket clients, the event reader), it reports the cluster as Redis
 * holds it, read at scrape time: queue depth per host and each host's heartbeat. Every API
 * process reports the same cluster figures, so with several APIs aggregate those with max().
 * docs/observability.md lists every metric.
 */
export class ApiMetrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route'>;
  readonly jobsSubmitted: Counter<'operation'>;
  readonly jobsEnded: Counter<'operation' | 'outcome'>;
  private hub: EventHub | null = null;

  constructor(
    private readonly deps: {
      store: Store;
      /** The BullMQ queue of a host. */
      queue(host: string): Queue<QueuedJobData>;
      hostOfflineMs: number;
      log: FastifyBaseLogger;
    },
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.httpRequests = new Counter({
      name: 'lxcq_http_requests_total',
      help: 'HTTP requests answered, by method, route template and status code.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'lxcq_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by method and route template (includes ?wait).',
      labelNames: ['method', 'route'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.jobsSubmitted = new Counter({
      name: 'lxcq_jobs_submitted_total',
      help: 'Jobs accepted by this API process, by operation (a repeated Idempotency-Key does not count).',
      labelNames: ['operation'],
      registers,
    });
    this.jobsEnded = new Counter({
      name: 'lxcq_cluster_jobs_ended_total',
      help: 'Jobs that ended anywhere in the cluster, by operation and outcome (completed, failed, cancelled), as read from the event stream since this API started.',
      labelNames: ['operation', 'outcome'],
      registers,
    });

    const hubOf = () => this.hub;
    const hubCounter = (name: string, help: string, read: (h: EventHub) => number, labels = {}) => {
      let seen = 0;
      return new Counter({
        name,
        help,
        labelNames: Object.keys(labels),
        registers,
        collect() {
          const hub = hubOf();
          const now = hub ? read(hub) : 0;
          if (now > seen) this.inc(labels, now - seen);
          seen = Math.max(seen, now);
        },
      });
    };
    // The hub counts on its hot path with plain numbers; the counters catch up at scrape time.
    hubCounter('lxcq_ws_events_sent_total', 'Events sent to WebSocket clients.', (h) => h.stats.delivered);
    const droppedSeen = { slow: 0, dead: 0 };
    const dropped = new Counter({
      name: 'lxcq_ws_clients_dropped_total',
      help: 'WebSocket clients the server closed: slow (4008, buffer bound passed) or dead (no pong).',
      labelNames: ['reason'],
      registers,
      collect() {
        const h = hubOf();
        if (!h) return;
        for (const [reason, now] of [
          ['slow', h.stats.slowClosed],
          ['dead', h.stats.deadDropped],
        ] as const) {
          if (now > droppedSeen[reason]) this.inc({ reason }, now - droppedSeen[reason]);
          droppedSeen[reason] = Math.max(droppedSeen[reason], now);
        }
      },
    });
    // Both reasons exist from the start, at 0, so rate() over them works before the first drop.
    dropped.inc({ reason: 'slow' }, 0);
    dropped.inc({ reason: 'dead' }, 0);
    new Gauge({
      name: 'lxcq_ws_clients',
      help: 'WebSocket clients connected to this API process.',
      registers,
      collect() {
        this.set(hubOf()?.clientCount ?? 0);
      },
    });
    new Gauge({
      name: 'lxcq_event_stream_lag_seconds',
      help: "Age of the oldest event this API's stream reader has not read yet (0: caught up).",
      registers,
      async collect() {
        const hub = hubOf();
        if (!hub) return;
        try {
          this.set((await hub.lag()).seconds);
        } catch {
          // Redis unreachable: no figure rather than a wrong one (see lxcq_event_reader_silence_seconds).
        }
      },
    });
    new Gauge({
      name: 'lxcq_event_reader_silence_seconds',
      help: 'Seconds since the stream reader last heard from Redis (it blocks 5 s at most when idle).',
      registers,
      collect() {
        const hub = hubOf();
        if (hub) this.set((Date.now() - hub.lastReadAt) / 1000);
      },
    });
    this.clusterGauges();
  }

  /** The hub is built after the routes; its figures show from then on. */
  attachHub(hub: EventHub): void {
    this.hub = hub;
  }

  /** Counts job ends from a batch the event reader took from the stream. */
  onEvents(events: readonly LxcqEvent[]): void {
    for (const ev of events) {
      if (ev.type !== 'job.completed' && ev.type !== 'job.failed' && ev.type !== 'job.cancelled') continue;
      const operation = (ev.data as { operation?: unknown }).operation;
      this.jobsEnded.inc({
        operation: typeof operation === 'string' ? operation : 'unknown',
        outcome: ev.type.slice('job.'.length),
      });
    }
  }

  /**
   * Per-host figures read from Redis at scrape time: one read of the host registry, one BullMQ
   * count per host. Hosts are few (they are machines), so a series per host is bounded.
   */
  private clusterGauges(): void {
    const registers = [this.registry];
    const { store, log, hostOfflineMs } = this.deps;
    const queueOf = (host: string) => this.deps.queue(host);
    // One read serves the four gauges: the registry collects them all at once, so the first
    // collect starts it and the others wait for the same promise.
    let pending: Promise<void> | null = null;
    const collect = () =>
      (pending ??= (async () => {
        const hosts = await store.listHosts(hostOfflineMs);
        for (const g of [queue, age, up, criu]) g.reset();
        await Promise.all(
          hosts.map(async (h) => {
            age.set({ host: h.id }, Math.max(0, Date.now() - Date.parse(h.lastSeen)) / 1000);
            up.set({ host: h.id }, h.status === 'offline' ? 0 : 1);
            criu.set({ host: h.id }, h.capabilities.criu ? 1 : 0);
            const counts = await queueOf(h.id).getJobCounts('waiting', 'active', 'delayed', 'prioritized');
            queue.set({ host: h.id, state: 'waiting' }, (counts.waiting ?? 0) + (counts.prioritized ?? 0));
            queue.set({ host: h.id, state: 'active' }, counts.active ?? 0);
            queue.set({ host: h.id, state: 'delayed' }, counts.delayed ?? 0);
          }),
        );
      })()
        .catch((err: unknown) => log.warn({ err }, 'metrics: reading hosts and queues from Redis failed'))
        .finally(() => setImmediate(() => (pending = null))));
    const queue = new Gauge({
      name: 'lxcq_queue_jobs',
      help: "Jobs in a host's BullMQ queue by state (waiting: not yet taken by its worker; active: taken, waiting for a container lock or running; delayed).",
      labelNames: ['host', 'state'],
      registers,
      collect,
    });
    const age = new Gauge({
      name: 'lxcq_host_heartbeat_age_seconds',
      help: "Seconds since the host's last heartbeat.",
      labelNames: ['host'],
      registers,
      collect,
    });
    const up = new Gauge({
      name: 'lxcq_host_up',
      help: '1 when the host is online or draining (heartbeat fresh), 0 when offline.',
      labelNames: ['host'],
      registers,
      collect,
    });
    const criu = new Gauge({
      name: 'lxcq_host_criu_available',
      help: '1 when the host has a working CRIU (checkpoint, restore, live migration), else 0.',
      labelNames: ['host'],
      registers,
      collect,
    });
  }
}
