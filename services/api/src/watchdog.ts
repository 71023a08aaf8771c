import type { Queue } from 'bullmq';
import type { FastifyBaseLogger } from 'fastify';
import { isFinal, type Ledger, type QueuedJobData, type Store } from '@lxcq/shared';

/**
 * Tells the truth about hosts that stopped beating: once a host has been silent longer than
 * `offlineMs`, announce `host.offline` (once, across every API process) and fail every job
 * still waiting for it with LXCQ_HOST_OFFLINE instead of letting it wait forever. A host that
 * beats again is announced online by its worker and takes jobs as before.
 */
export class HostWatchdog {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly ledger: Ledger,
    private readonly queueOf: (host: string) => Queue<QueuedJobData>,
    private readonly opts: { offlineMs: number; log: FastifyBaseLogger },
  ) {}

  start(): void {
    const every = Math.max(100, Math.floor(this.opts.offlineMs / 3));
    this.timer = setInterval(() => void this.sweep(), every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  sweep(): Promise<void> {
    this.running ??= this.check()
      .catch((err: unknown) => this.opts.log.warn({ err }, 'host watchdog'))
      .finally(() => (this.running = null));
    return this.running;
  }

  private async check(): Promise<void> {
    for (const id of await this.store.redis.smembers(this.store.keys.hosts)) {
      const silence = await this.store.hostSilenceMs(id);
      if (silence <= this.opts.offlineMs) {
        await this.store.clearOffline(id);
        continue;
      }
      if (await this.store.claimOffline(id)) {
        const lastSeen = new Date(Date.now() - silence).toISOString();
        await this.store.addEvent('host.offline', { lastSeen }, { host: id });
        this.opts.log.warn({ host: id, lastSeen }, 'host offline');
      }
      await this.failWaitingJobs(id);
    }
  }

  /** Every job of an offline host that has not ended fails with LXCQ_HOST_OFFLINE. */
  private async failWaitingJobs(host: string): Promise<void> {
    const queue = this.queueOf(host);
    const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized', 'active']);
    for (const bull of jobs) {
      const id = bull.id;
      if (!id) continue;
      const job = await this.store.getJob(id);
      if (!job || isFinal(job.state)) continue;
      const error = {
        code: 'LXCQ_HOST_OFFLINE' as const,
        message: `Host ${host} stopped sending heartbeats (silent for more than ${Math.round(this.opts.offlineMs / 1000)} s); the job was not run. Retry once the host is back, or on another host.`,
      };
      // Refused (nothing written) when the job ended meanwhile: its worker's end stands alone.
      await this.ledger.finish(job, { state: 'failed', error });
      // A job a dead worker held stays locked in BullMQ until its lock expires; the returning
      // worker then finds its record ended and skips it.
      await bull.remove().catch(() => undefined);
    }
  }
}
