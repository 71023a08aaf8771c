/**
 * Fault case 4: a load run. Thousands of jobs are queued at once over dozens of containers while
 * hundreds of subscribers listen. Sampled every second: the API's and the worker's resident memory,
 * the host queue's depth; measured at the end: each job's time from submission to its end, and
 * event delivery delay. Asserted: every job ends definitely, none lost; jobs on one container ran
 * one at a time in submission order; every subscriber got exactly its events; memory stays under
 * generous bounds; nothing is left behind. Timing is reported, not asserted.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import type { StoredJob } from '@lxcq/shared';
import { TEST_CONFIG } from '../../harness.ts';
import { findOrphans, formatOutcomes, settle, unfinishedJobs } from '../audit.ts';
import {
  Loader,
  cheapJob,
  checkListeners,
  delaySummary,
  rawListener,
  sdkListener,
  type Listener,
} from '../load.ts';
import { MB, emptyResult, percentile, type CaseOptions, type CaseResult } from '../report.ts';
import { FaultStack } from '../stack.ts';

/** Generous bounds: far above what a healthy run uses, far below a leak over thousands of jobs. */
const API_RSS_BOUND = 1024 * MB;
const WORKER_RSS_BOUND = 2048 * MB;

export async function loadCase(o: CaseOptions): Promise<CaseResult> {
  const t0 = Date.now();
  const full = o.profile === 'full';
  const result = emptyResult('load run');
  const log = o.log ?? (() => undefined);
  const nContainers = full ? 40 : 12;
  const nJobs = full ? 5000 : 600;
  const nListeners = full ? 300 : 60;
  const s = await FaultStack.start({ appendfsync: 'everysec', apiEnv: { LXCQ_WS_PING_MS: '60000' } });
  const listeners: Listener[] = [];
  const samples: { t: number; api: number; worker: number; depth: number }[] = [];
  let sampling = true;
  const queue = new Queue(s.keys.queue(s.hostId), { connection: s.redis, prefix: s.keys.bullPrefix });
  try {
    const containers = Array.from({ length: nContainers }, (_, i) => `l${i}`);
    await Promise.all(
      containers.map(async (name) => {
        const r = await s.http<StoredJob>('POST', '/v1/containers?wait=300', {
          name,
          template: 'busybox',
          config: TEST_CONFIG,
          start: true,
        });
        if (r.status !== 200 || r.body.state !== 'completed') throw new Error(`create ${name}: ${r.text}`);
      }),
    );
    log(`${nContainers} containers running`);
    const since = (await s.redis.xrevrange(s.keys.events, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
    for (let i = 0; i < nListeners; i++) {
      // Mostly one container each (as a dashboard row would), a few for everything.
      const q: Record<string, string> =
        i % 20 === 0
          ? {}
          : i % 20 === 1
            ? { types: 'job.*' }
            : { container: containers[i % nContainers] as string };
      listeners.push(
        i % 5 === 0 ? sdkListener(s, `sdk#${i}`, q, since) : rawListener(s, `ws#${i}`, q, since),
      );
    }
    const sampler = (async () => {
      while (sampling) {
        const c = await queue.getJobCounts('wait', 'active', 'prioritized').catch(() => ({}));
        samples.push({
          t: Date.now(),
          api: FaultStack.rss(s.api),
          worker: FaultStack.rss(s.worker),
          depth: Object.values(c).reduce((a, b) => a + b, 0),
        });
        await sleep(1000);
      }
    })();
    // Queue them all as fast as the API takes them (16 at a time), round-robin over containers.
    const loader = new Loader(s, containers, { perLaneIntervalMs: 0 });
    const tSubmit = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = next++; i < nJobs; i = next++) {
          const c = containers[i % nContainers] as string;
          await loader.submit(cheapJob(c, Math.floor(i / nContainers)));
        }
      }),
    );
    const submitSec = (Date.now() - tSubmit) / 1000;
    log(`${loader.total} jobs queued in ${submitSec.toFixed(1)} s`);
    const settled = await settle(s, loader.accepted, 900_000);
    const drainSec = (Date.now() - tSubmit) / 1000;
    log(`all ended after ${drainSec.toFixed(1)} s`);
    result.runs = 1;
    result.submitted = loader.accepted.length;
    result.definite = settled.definite;
    result.lost = settled.lost.length;
    if (loader.accepted.length !== nJobs)
      result.problems.push(
        `${nJobs - loader.accepted.length} of ${nJobs} submissions were refused: ${[...loader.refused].join(', ')}`,
      );
    for (const l of settled.lost.slice(0, 20)) result.problems.push(`accepted job lost: ${l}`);
    for (const u of settled.unclear.slice(0, 20))
      result.problems.push(`job ended without a clear code: ${u}`);
    for (const u of loader.unexpected.slice(0, 20)) result.problems.push(`unexpected answer: ${u}`);
    for (const u of await unfinishedJobs(s)) result.problems.push(`job record never ended: ${u}`);
    // One at a time per container, and in submission order: a job sent after another's 202 came
    // back starts after that one ended (requests in flight together have no order between them).
    const byContainer = new Map<string, StoredJob[]>();
    for (const j of settled.jobs.values()) {
      const l = byContainer.get(j.container) ?? [];
      l.push(j);
      byContainer.set(j.container, l);
    }
    let orderViolations = 0;
    const t = (v: string | undefined) => (v ? Date.parse(v) : NaN);
    for (const [c, jobs] of byContainer) {
      jobs.sort((a, b) => t(a.startedAt) - t(b.startedAt));
      for (let i = 1; i < jobs.length; i++) {
        const a = jobs[i - 1] as StoredJob;
        const b = jobs[i] as StoredJob;
        if (t(b.startedAt) < t(a.finishedAt) && orderViolations++ < 5)
          result.problems.push(
            `on ${c}, job #${b.seq} started ${b.startedAt} while #${a.seq} ran (ended ${a.finishedAt})`,
          );
      }
      for (const a of jobs)
        for (const b of jobs) {
          const sentAfter = (loader.submittedAt.get(b.id) ?? 0) > (loader.acceptedAt.get(a.id) ?? Infinity);
          if (sentAfter && t(b.startedAt) < t(a.finishedAt) && orderViolations++ < 5)
            result.problems.push(
              `on ${c}, job #${b.seq}, sent after #${a.seq} was accepted, started before it ended`,
            );
        }
    }
    const ev = await checkListeners(s, listeners, since, 120_000);
    result.problems.push(...ev.problems);
    sampling = false;
    await sampler;
    const maxApi = Math.max(...samples.map((x) => x.api));
    const maxWorker = Math.max(...samples.map((x) => x.worker));
    if (maxApi > API_RSS_BOUND)
      result.problems.push(`API RSS reached ${Math.round(maxApi / MB)} MB (bound ${API_RSS_BOUND / MB})`);
    if (maxWorker > WORKER_RSS_BOUND)
      result.problems.push(
        `worker RSS reached ${Math.round(maxWorker / MB)} MB (bound ${WORKER_RSS_BOUND / MB})`,
      );
    if (!FaultStack.alive(s.api) || !FaultStack.alive(s.worker)) result.problems.push('a process died');
    const orphans = await findOrphans(s);
    result.orphans = orphans.length;
    for (const f of orphans) result.problems.push(`left behind: ${f}`);
    const lat = [...settled.jobs.values()]
      .filter((j) => j.finishedAt)
      .map(
        (j) => Date.parse(j.finishedAt as string) - (loader.submittedAt.get(j.id) ?? Date.parse(j.createdAt)),
      );
    const run = [...settled.jobs.values()]
      .filter((j) => j.finishedAt && j.startedAt)
      .map((j) => Date.parse(j.finishedAt as string) - Date.parse(j.startedAt as string));
    const mb = (b: number) => `${Math.round(b / MB)}`;
    const first = samples[0];
    result.notes.push(
      `${nJobs} jobs over ${nContainers} containers, ${nListeners} subscribers; queued in ${submitSec.toFixed(1)} s, all ended after ${drainSec.toFixed(1)} s (${Math.round(nJobs / drainSec)} jobs/s); max queue depth ${Math.max(...samples.map((x) => x.depth))}`,
    );
    result.notes.push(
      `RSS MB API ${mb(first?.api ?? 0)} -> max ${mb(maxApi)}, worker ${mb(first?.worker ?? 0)} -> max ${mb(maxWorker)} (${samples.length} samples)`,
    );
    result.notes.push(
      `job submit->end p50 ${percentile(lat, 50)} ms, p99 ${percentile(lat, 99)} ms, max ${percentile(lat, 100)} ms; run time p50 ${percentile(run, 50)} ms, p99 ${percentile(run, 99)} ms`,
    );
    result.notes.push(`${ev.delivered}/${ev.expected} events delivered; ${delaySummary(listeners)}`);
    result.notes.push(`jobs: ${formatOutcomes(settled.outcomes)}`);
  } catch (err) {
    result.problems.push(`case aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
    sampling = false;
    for (const l of listeners) l.close();
    await queue.close();
    await s.close();
    result.seconds = (Date.now() - t0) / 1000;
  }
  return result;
}

export const MEMORY_BOUNDS = { api: API_RSS_BOUND, worker: WORKER_RSS_BOUND };
