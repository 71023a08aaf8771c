import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ContainerUsage, OperationName } from '@lxcq/shared';

/** What the worker's gauges read at scrape time (the worker keeps these numbers anyway). */
export interface WorkerGaugeSources {
  /** Jobs taken from the queue and not ended: waiting for a container lock, or running. */
  jobsInFlight(): number;
  /** Per container name: jobs held here waiting behind another job on that container. */
  waitingByContainer(): ReadonlyMap<string, number>;
  pool(): { threads: number; busy: number; queued: number; utilization: number };
  containers(): { total: number; running: number };
}

/** Seconds buckets for jobs: a start is ~20 ms, a create seconds, a migrate minutes. */
const JOB_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Seconds buckets for single liblxc calls and waits for a thread. */
const CALL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The worker's Prometheus metrics, in a registry of its own (no prom-client global), every series
 * labelled with the worker's `host`. docs/observability.md lists them. Label values come from
 * bounded sets (operations, outcomes, error codes, liblxc steps), except `container`, which only
 * the top-N containers with waiting jobs get (see `waitingContainers`).
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly jobs: Counter<'operation' | 'outcome'>;
  readonly jobFailures: Counter<'operation' | 'code'>;
  readonly jobDuration: Histogram<'operation' | 'outcome'>;
  readonly jobQueueWait: Histogram<'operation'>;
  readonly lxcCall: Histogram<'fn'>;
  readonly poolWait: Histogram;
  readonly poolBusySeconds: Counter;

  constructor(host: string, sources: WorkerGaugeSources, opts: { topContainers: number }) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ host });
    collectDefaultMetrics({ register: this.registry });
    this.jobs = new Counter({
      name: 'lxcq_jobs_total',
      help: 'Jobs this worker ran to an end, by operation and outcome (completed, failed).',
      labelNames: ['operation', 'outcome'],
      registers,
    });
    this.jobFailures = new Counter({
      name: 'lxcq_job_failures_total',
      help: 'Failed jobs by operation and error code (LXCQ_*).',
      labelNames: ['operation', 'code'],
      registers,
    });
    this.jobDuration = new Histogram({
      name: 'lxcq_job_duration_seconds',
      help: 'Run time of a job on this worker (from taking its locks to its end), by operation and outcome.',
      labelNames: ['operation', 'outcome'],
      buckets: JOB_BUCKETS,
      registers,
    });
    this.jobQueueWait = new Histogram({
      name: 'lxcq_job_queue_wait_seconds',
      help: 'Time from a job being accepted by the API to it starting here (queue and container lock), by operation.',
      labelNames: ['operation'],
      buckets: JOB_BUCKETS,
      registers,
    });
    this.lxcCall = new Histogram({
      name: 'lxcq_lxc_call_duration_seconds',
      help: 'Time one liblxc step took in its piscina thread, by step (start, stop, create, info, ...).',
      labelNames: ['fn'],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.poolWait = new Histogram({
      name: 'lxcq_pool_wait_seconds',
      help: 'Time a liblxc step waited for a free piscina thread.',
      buckets: CALL_BUCKETS,
      registers,
    });
    this.poolBusySeconds = new Counter({
      name: 'lxcq_pool_busy_seconds_total',
      help: 'Thread-seconds spent in liblxc steps; rate() / lxcq_pool_threads is the pool utilisation.',
      registers,
    });
    new Gauge({
      name: 'lxcq_jobs_in_flight',
      help: 'Jobs taken from the queue and not ended (waiting for a container lock, or running).',
      registers,
      collect() {
        this.set(sources.jobsInFlight());
      },
    });
    this.waitingGauges(sources, opts.topContainers);
    const pool = (key: 'threads' | 'busy' | 'queued' | 'utilization', name: string, help: string) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(sources.pool()[key]);
        },
      });
    pool('threads', 'lxcq_pool_threads', 'piscina threads running liblxc steps.');
    pool('busy', 'lxcq_pool_busy_threads', 'piscina threads inside a liblxc step now.');
    pool('queued', 'lxcq_pool_queue_size', 'liblxc steps waiting for a free piscina thread now.');
    pool(
      'utilization',
      'lxcq_pool_utilization',
      "piscina's own utilisation (0-1): time running tasks over time alive, since the worker started.",
    );
    new Gauge({
      name: 'lxcq_worker_containers',
      help: 'Containers in this host lxcpath (state=all) and running ones (state=running), at the last inventory.',
      labelNames: ['state'],
      registers,
      collect() {
        const c = sources.containers();
        this.set({ state: 'all' }, c.total);
        this.set({ state: 'running' }, c.running);
      },
    });
  }

  /**
   * Waiting jobs per container without unbounded label cardinality: one series per container
   * that has jobs waiting right now, for the `topN` containers with the most, rebuilt at every
   * scrape (a container whose queue drained disappears), plus totals over every container.
   */
  private waitingGauges(sources: WorkerGaugeSources, topN: number): void {
    const registers = [this.registry];
    new Gauge({
      name: 'lxcq_container_waiting_jobs',
      help: `Jobs waiting behind another job on the same container, for the ${topN} containers with the most (only containers with waiting jobs appear).`,
      labelNames: ['container'],
      registers,
      collect() {
        this.reset();
        const top = [...sources.waitingByContainer()]
          .filter(([, n]) => n > 0)
          .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
          .slice(0, topN);
        for (const [container, n] of top) this.set({ container }, n);
      },
    });
    new Gauge({
      name: 'lxcq_containers_with_waiting_jobs',
      help: 'Containers that have at least one job waiting behind another.',
      registers,
      collect() {
        let n = 0;
        for (const v of sources.waitingByContainer().values()) if (v > 0) n++;
        this.set(n);
      },
    });
    new Gauge({
      name: 'lxcq_container_waiting_jobs_max',
      help: 'The most jobs waiting on any one container.',
      registers,
      collect() {
        let max = 0;
        for (const v of sources.waitingByContainer().values()) if (v > max) max = v;
        this.set(max);
      },
    });
  }

  /**
   * Per-container usage series (labels `name` and `host`), served from the worker's last usage
   * pass: a scrape reads no kernel file. Stopped containers have their disk series and
   * `lxcq_container_running 0`; series of a container gone from the host go with it.
   */
  containerUsage(last: () => { containers: ContainerUsage[] } | null): void {
    const registers = [this.registry];
    const each = (fn: (c: ContainerUsage) => void) => {
      for (const c of last()?.containers ?? []) fn(c);
    };
    const gauge = (name: string, help: string, value: (c: ContainerUsage) => number | null | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['name'],
        registers,
        collect() {
          this.reset();
          each((c) => {
            const v = value(c);
            if (v !== null && v !== undefined && Number.isFinite(v)) this.set({ name: c.name }, v);
          });
        },
      });
    const counter = (name: string, help: string, value: (c: ContainerUsage) => number | undefined) =>
      new Counter({
        name,
        help,
        labelNames: ['name'],
        registers,
        collect() {
          this.reset();
          each((c) => {
            const v = value(c);
            if (v !== undefined) this.inc({ name: c.name }, v);
          });
        },
      });
    gauge(
      'lxcq_container_running',
      'Whether the container runs (1) or is stopped (0), at the last usage pass.',
      (c) => (c.state === 'STOPPED' ? 0 : 1),
    );
    gauge(
      'lxcq_container_uptime_seconds',
      'Seconds since the container init started.',
      (c) => c.uptimeSeconds,
    );
    counter(
      'lxcq_container_cpu_seconds_total',
      'CPU time the container used since it started (user + system), from its cgroup.',
      (c) => c.cpu?.seconds,
    );
    gauge(
      'lxcq_container_cpu_limit_cores',
      'The CPU limit in force, in cores (CFS quota / period, or the cpuset size); absent when unlimited.',
      (c) => c.cpu?.limitCores,
    );
    gauge(
      'lxcq_container_memory_bytes',
      "The container cgroup's memory usage (anonymous memory and page cache, tmpfs included).",
      (c) => c.memory?.bytes,
    );
    gauge(
      'lxcq_container_memory_peak_bytes',
      'The highest memory usage since the container started.',
      (c) => c.memory?.peakBytes,
    );
    gauge(
      'lxcq_container_memory_cache_bytes',
      'Page cache (files and tmpfs) within the memory usage.',
      (c) => c.memory?.cacheBytes,
    );
    gauge('lxcq_container_memory_swap_bytes', 'Swap used by the container.', (c) => c.memory?.swapBytes);
    gauge(
      'lxcq_container_memory_limit_bytes',
      'The memory limit in force; absent when unlimited.',
      (c) => c.memory?.limitBytes,
    );
    gauge('lxcq_container_pids', 'Processes and threads in the container.', (c) => c.pids?.current);
    gauge(
      'lxcq_container_pids_limit',
      'The pids limit in force; absent when unlimited.',
      (c) => c.pids?.limit,
    );
    gauge(
      'lxcq_container_disk_used_bytes',
      'Disk used by the container rootfs (du of a dir rootfs, measured every LXCQ_USAGE_DISK_INTERVAL_MS).',
      (c) => c.disk?.usedBytes,
    );
    for (const dir of ['receive', 'transmit'] as const) {
      for (const what of ['bytes', 'packets', 'errors', 'drops'] as const) {
        const side = dir === 'receive' ? 'rx' : 'tx';
        new Counter({
          name: `lxcq_container_network_${dir}_${what}_total`,
          help: `${what[0]?.toUpperCase()}${what.slice(1)} ${dir === 'receive' ? 'received' : 'sent'} by each interface of the container, as its network namespace counts them.`,
          labelNames: ['name', 'interface'],
          registers,
          collect() {
            this.reset();
            each((c) => {
              for (const [nic, u] of Object.entries(c.network ?? {}))
                this.inc({ name: c.name, interface: nic }, u[side][what]);
            });
          },
        });
      }
    }
  }

  jobEnded(operation: OperationName, outcome: 'completed' | 'failed', seconds: number, code?: string): void {
    this.jobs.inc({ operation, outcome });
    this.jobDuration.observe({ operation, outcome }, seconds);
    if (outcome === 'failed') this.jobFailures.inc({ operation, code: code ?? 'LXCQ_INTERNAL' });
  }

  /** One liblxc step: how long it waited for a thread and how long it ran there. */
  lxcStep(fn: string, waitSeconds: number, runSeconds: number): void {
    this.poolWait.observe(waitSeconds);
    this.lxcCall.observe({ fn }, runSeconds);
    this.poolBusySeconds.inc(runSeconds);
  }
}
