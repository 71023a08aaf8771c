/**
 * Fault case 2: Redis restarted under load (AOF on). While jobs stream in over a dozen containers
 * and subscribers listen, redis-server is killed (SIGKILL: a crash) or stopped (SIGTERM) by pid and
 * started again on the same socket and data directory. Nothing else is restarted: the API and the
 * worker must reconnect by themselves. Then:
 * - every job the API accepted (202) ends definitely; none is lost;
 * - no job record is left unfinished (a request refused half-way must not leave one queued);
 * - requests made while Redis is down are refused with 503 LXCQ_REDIS_UNAVAILABLE, nothing else;
 * - the API answers health "ok" and a new job runs end to end;
 * - every subscriber (SDK and raw ws) received exactly the events the stream holds for its filter;
 * - nothing is left behind (audit.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isFinal, type StoredJob } from '@lxcq/shared';
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

export async function redisRestartCase(
  o: CaseOptions,
  appendfsync: 'everysec' | 'always',
): Promise<CaseResult> {
  const t0 = Date.now();
  const full = o.profile === 'full';
  const result = emptyResult(`Redis restarted under load (appendfsync ${appendfsync})`);
  const log = o.log ?? (() => undefined);
  const random = rng(o.seed + 2);
  const s = await FaultStack.start({ appendfsync });
  const listeners: Listener[] = [];
  try {
    const { containers, since } = await runningContainersWithListeners(s, {
      prefix: 'r',
      count: full ? 12 : 6,
      subscribers: full ? 40 : 8,
      into: listeners,
    });
    const loader = new Loader(s, containers, { perLaneIntervalMs: full ? 150 : 200 });
    loader.start();
    const restarts = full ? 6 : 2;
    let downMs = 0;
    for (let i = 0; i < restarts; i++) {
      await sleep(full ? 6000 : 3000);
      const signal = i % 2 === 0 ? 'SIGKILL' : 'SIGTERM';
      const down = Math.floor(random() * (full ? 3000 : 1500));
      log(`restart ${i + 1}/${restarts}: ${signal}, down ${down} ms (accepted so far ${loader.total})`);
      const t = Date.now();
      await s.restartRedis(signal, down);
      downMs += Date.now() - t;
      result.runs++;
    }
    await sleep(3000);
    await loader.stop();
    log(`load stopped: ${loader.total} accepted`);
    const settled = await settle(s, loader.accepted, 180_000);
    result.submitted = loader.accepted.length;
    result.definite = settled.definite;
    result.lost = settled.lost.length;
    for (const l of settled.lost.slice(0, 20)) result.problems.push(`accepted job lost: ${l}`);
    for (const u of settled.unclear.slice(0, 20))
      result.problems.push(`job ended without a clear code: ${u}`);
    // what the refused requests left (a record written before Redis went away)
    const accepted = new Set(loader.accepted);
    const open = await unfinishedJobs(s);
    for (const u of open) result.problems.push(`job record never ended: ${u}`);
    const all = await s.redis.zrange(s.keys.jobs, '0', '-1');
    const strays = (
      await Promise.all(all.filter((id) => !accepted.has(id)).map((id) => s.store.getJob(id)))
    ).filter((j): j is StoredJob => j !== null && j.operation !== 'create');
    if (strays.length > 0)
      result.notes.push(
        `records of refused requests: ${strays.length} (${strays.map((j) => j.state).join(', ')})`,
      );
    for (const u of loader.unexpected.slice(0, 20)) result.problems.push(`unexpected answer: ${u}`);
    if (loader.unreachable > 0)
      result.problems.push(`${loader.unreachable} requests got no answer from the API`);
    // reconnected by themselves
    if (!FaultStack.alive(s.api)) result.problems.push('the API process died');
    if (!FaultStack.alive(s.worker)) result.problems.push('the worker process died');
    const health = await s.http<{ status: string }>('GET', '/v1/health', undefined, { token: null });
    if (health.status !== 200 || health.body.status !== 'ok')
      result.problems.push(`health after the restarts: ${health.status} ${health.text}`);
    const fresh = await s.http<StoredJob>('POST', `/v1/containers/${containers[0]}/exec?wait=60`, {
      argv: ['echo', 'after'],
    });
    if (fresh.status !== 200 || fresh.body.state !== 'completed')
      result.problems.push(
        `a job after the restarts did not run: ${fresh.status} ${fresh.text.slice(0, 300)}`,
      );
    else {
      result.submitted++;
      result.definite++;
    }
    // events
    const ev = await checkListeners(s, listeners, since);
    result.problems.push(...ev.problems);
    const orphans = await findOrphans(s);
    result.orphans = orphans.length;
    for (const f of orphans) result.problems.push(`left behind: ${f}`);
    const refused = [...loader.refused.entries()].map(([k, n]) => `${k} x${n}`).join(', ') || 'none';
    result.notes.push(
      `${restarts} restarts (SIGKILL and SIGTERM alternately), Redis down ${Math.round(downMs / 1000)} s in all`,
    );
    result.notes.push(`refused while down: ${refused}`);
    result.notes.push(`jobs: ${formatOutcomes(settled.outcomes)}`);
    const reconnects = listeners.reduce((n, l) => n + Math.max(0, l.connections - 1), 0);
    result.notes.push(
      `${listeners.length} subscribers got ${ev.delivered}/${ev.expected} events (${reconnects} reconnections); ${delaySummary(listeners)}`,
    );
    if (settled.jobs.size > 0 && [...settled.jobs.values()].some((j) => !isFinal(j.state)))
      result.problems.push('some jobs never ended');
  } catch (err) {
    result.problems.push(`case aborted: ${(err as Error).stack ?? String(err)}`);
    result.problems.push(`api log tail: ${s.apiLog.text.slice(-2000)}`);
    result.problems.push(`worker log tail: ${s.workerLog.text.slice(-2000)}`);
  } finally {
    for (const l of listeners) l.close();
    await s.close();
    result.seconds = (Date.now() - t0) / 1000;
  }
  return result;
}
