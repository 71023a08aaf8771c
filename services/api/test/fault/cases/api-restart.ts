/**
 * Fault case 3: the API restarted while WebSocket clients are subscribed. The API process is killed
 * (SIGKILL) or stopped (SIGTERM: it closes sockets with 1001) by pid and started again on the same
 * port, while the worker goes on running jobs queued before, so events keep landing in the stream
 * while no API serves them. Subscribers (the SDK's EventStream and a raw ws client that resumes with
 * `since` itself) must reconnect and receive exactly what the stream holds for their filter: no
 * event missed, none twice. Every job accepted ends definitely; nothing is left behind.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { findOrphans, formatOutcomes, settle, unfinishedJobs } from '../audit.ts';
import {
  Loader,
  checkListeners,
  delaySummary,
  runningContainersWithListeners,
  type Listener,
} from '../load.ts';
import { emptyResult, rng, type CaseOptions, type CaseResult } from '../report.ts';
import { FaultStack } from '../stack.ts';

export async function apiRestartCase(o: CaseOptions): Promise<CaseResult> {
  const t0 = Date.now();
  const full = o.profile === 'full';
  const result = emptyResult('API restarted with subscribers');
  const log = o.log ?? (() => undefined);
  const random = rng(o.seed + 3);
  const s = await FaultStack.start({ appendfsync: 'everysec' });
  const listeners: Listener[] = [];
  try {
    const { containers, since } = await runningContainersWithListeners(s, {
      prefix: 'a',
      count: full ? 10 : 4,
      subscribers: full ? 60 : 10,
      into: listeners,
    });
    const loader = new Loader(s, containers, { perLaneIntervalMs: full ? 200 : 250 });
    loader.start();
    const restarts = full ? 6 : 2;
    let eventsWhileDown = 0;
    for (let i = 0; i < restarts; i++) {
      await sleep(full ? 4000 : 2500);
      // A burst the worker is still working through while the API is away: its events land in
      // the stream with no API to serve them.
      const burst = await Promise.all(
        containers.flatMap((c) =>
          [0, 1, 2].map(() =>
            loader.submit({
              method: 'POST',
              path: `/v1/containers/${c}/exec`,
              body: { argv: ['sleep', '0.2'] },
            }),
          ),
        ),
      );
      const signal = i % 2 === 0 ? 'SIGKILL' : 'SIGTERM';
      const before = await s.redis.xlen(s.keys.events);
      log(
        `restart ${i + 1}/${restarts}: ${signal} (burst of ${burst.filter(Boolean).length} jobs; accepted so far ${loader.total})`,
      );
      await s.stopApi(signal);
      await sleep(Math.floor(random() * (full ? 2000 : 1000)));
      eventsWhileDown += (await s.redis.xlen(s.keys.events)) - before;
      await s.startApi();
      s.faults.apiRestarts++;
      result.runs++;
    }
    await sleep(2000);
    await loader.stop();
    log(`load stopped: ${loader.total} accepted`);
    const settled = await settle(s, loader.accepted, 180_000);
    result.submitted = loader.accepted.length;
    result.definite = settled.definite;
    result.lost = settled.lost.length;
    for (const l of settled.lost.slice(0, 20)) result.problems.push(`accepted job lost: ${l}`);
    for (const u of settled.unclear.slice(0, 20))
      result.problems.push(`job ended without a clear code: ${u}`);
    for (const u of await unfinishedJobs(s)) result.problems.push(`job record never ended: ${u}`);
    for (const u of loader.unexpected.slice(0, 20)) result.problems.push(`unexpected answer: ${u}`);
    if (!FaultStack.alive(s.worker)) result.problems.push('the worker process died');
    const ev = await checkListeners(s, listeners, since);
    result.problems.push(...ev.problems);
    const sdkReconnects = listeners.filter((l) => l.label.startsWith('sdk')).map((l) => l.connections - 1);
    if (sdkReconnects.some((n) => n < restarts))
      result.problems.push(
        `SDK subscribers reconnected [${sdkReconnects.join(',')}] times for ${restarts} restarts`,
      );
    const orphans = await findOrphans(s);
    result.orphans = orphans.length;
    for (const f of orphans) result.problems.push(`left behind: ${f}`);
    result.notes.push(
      `${restarts} restarts (SIGKILL and SIGTERM alternately); ${eventsWhileDown} events written while the API was down`,
    );
    result.notes.push(`requests with no answer while it was down: ${loader.unreachable}`);
    result.notes.push(`jobs: ${formatOutcomes(settled.outcomes)}`);
    const reconnects = listeners.reduce((n, l) => n + Math.max(0, l.connections - 1), 0);
    result.notes.push(
      `${listeners.length} subscribers got ${ev.delivered}/${ev.expected} events (${reconnects} reconnections); ${delaySummary(listeners)}`,
    );
  } catch (err) {
    result.problems.push(`case aborted: ${(err as Error).stack ?? String(err)}`);
    result.problems.push(`api log tail: ${s.apiLog.text.slice(-2000)}`);
  } finally {
    for (const l of listeners) l.close();
    await s.close();
    result.seconds = (Date.now() - t0) / 1000;
  }
  return result;
}
