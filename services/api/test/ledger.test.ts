// One end per job, through the real API, worker, Redis and a container: the watchdog fails the
// running job of a worker that went silent (SIGSTOP), the worker comes back (SIGCONT) and ends
// the same job itself; the job ledger refuses that second end, so subscribers see one.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG, TOKEN, type Job } from './harness.ts';
import { Sub, type Msg } from './ws-client.ts';

let s: Stack;
let sub: Sub | undefined;
let stopped: number | null = null;
beforeAll(async () => {
  s = await Stack.start();
});
afterAll(async () => {
  // A failed assertion must not leave the worker stopped: close() could not end it.
  if (stopped !== null) process.kill(stopped, 'SIGCONT');
  await sub?.close();
  await s?.close();
});

const END = new Set(['job.completed', 'job.failed', 'job.cancelled']);
const endsOf = (id: string) => (m: Msg[]) => m.filter((x) => x.job === id && END.has(x.type));

async function waitState(id: string, pred: (j: Job) => boolean, what: string, tries = 6000): Promise<Job> {
  for (let i = 0; i < tries; i++) {
    const j = (await s.http<Job>('GET', `/v1/jobs/${id}`)).body;
    if (pred(j)) return j;
    await sleep(10);
  }
  throw new Error(`job ${id} never ${what}`);
}

describe('one end per job', () => {
  it('the watchdog fails the job of a stopped worker; the worker, resumed, finishes it: one end event', async () => {
    const made = await s.run('POST', '/v1/containers', {
      name: 'l1',
      template: 'busybox',
      config: TEST_CONFIG,
      start: true,
    });
    expect(made.state, JSON.stringify(made.error)).toBe('completed');
    sub = await Sub.open(s.url, '?container=l1', { token: TOKEN });
    await sub.until((m) => m[0]?.type === 'hello');

    // A job that runs long enough to stop its worker in the middle of it.
    const r = await s.http<Job>('POST', '/v1/containers/l1/exec', { argv: ['sleep', '5'] });
    expect(r.status).toBe(202);
    const id = r.body.id;
    await waitState(
      id,
      (j) => j.state === 'active' || j.state === 'completed' || j.state === 'failed',
      'ran',
    );
    const pid = s.worker?.pid as number;
    process.kill(pid, 'SIGSTOP');
    stopped = pid;
    const caught = (await s.http<Job>('GET', `/v1/jobs/${id}`)).body;
    expect(caught.state, 'the worker was not stopped while the job ran').toBe('active');

    // Silent past LXCQ_HOST_OFFLINE_MS: the watchdog fails the job.
    const failed = await waitState(id, (j) => j.state !== 'active', 'was failed by the watchdog');
    expect(failed.state).toBe('failed');
    expect(failed.error?.code).toBe('LXCQ_HOST_OFFLINE');
    await sub.until((m) => endsOf(id)(m).length > 0, 60_000);

    // The worker comes back; its exec has returned, and it ends the job as it saw it.
    process.kill(pid, 'SIGCONT');
    stopped = null;
    // (Its log says how it ended it: refused by the ledger, or, were the ledger to accept it,
    // "job completed" / "job failed".)
    const endedBy = (what: RegExp) => () =>
      s.workerLog.split('\n').some((l) => l.includes(id) && what.test(l));
    const triedToEnd = endedBy(/the job had already ended elsewhere|"msg":"job (completed|failed)"/);
    for (let i = 0; i < 12_000 && !triedToEnd(); i++) await sleep(10);
    expect(triedToEnd(), `the resumed worker never ended job ${id}:\n${s.workerLog.slice(-3000)}`).toBe(true);

    // Anything the worker wrote for that job would be in the stream before the end of a job
    // submitted after it: once that one's end has arrived, the first job's events are all in.
    // (Once the host is back online: the API refuses jobs for an offline host.)
    for (let i = 0; i < 6000; i++) {
      const h = await s.http<{ status: string }>('GET', `/v1/hosts/${s.hostId}`);
      if (h.body.status === 'online') break;
      await sleep(10);
    }
    const next = await s.run('POST', '/v1/containers/l1/exec', { argv: ['true'] });
    expect(next.state, JSON.stringify(next.error)).toBe('completed');
    await sub.until((m) => endsOf(next.id)(m).length > 0, 60_000);

    const ends = endsOf(id)(sub.messages);
    expect(ends.map((e) => e.type)).toEqual(['job.failed']);
    expect(ends[0]?.data).toMatchObject({ operation: 'exec', error: { code: 'LXCQ_HOST_OFFLINE' } });
    // Nothing at all of that job after its end: no progress, no re-run's job.active.
    const at = sub.messages.indexOf(ends[0] as Msg);
    expect(sub.messages.slice(at + 1).filter((m) => m.job === id)).toEqual([]);
    expect(endedBy(/the job had already ended elsewhere/)()).toBe(true);
    const after = (await s.http<Job>('GET', `/v1/jobs/${id}`)).body;
    expect(after).toMatchObject({ state: 'failed', error: { code: 'LXCQ_HOST_OFFLINE' } });
    const log = (await s.http<{ lines: string[] }>('GET', `/v1/jobs/${id}/log`)).body.lines;
    expect(log.filter((l) => /^(completed|failed|cancelled)\b/.test(l.replace(/^\S+ /, '')))).toHaveLength(1);

    expect((await s.run('DELETE', '/v1/containers/l1?force=true')).state).toBe('completed');
  });
});
