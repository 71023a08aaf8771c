// The job ledger against a real redis-server, transition by transition: what each script writes
// when it is allowed, and that a refused one writes nothing (no state, no log line, no event, no
// job-done publish) and says so.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Ledger,
  Store,
  keys,
  type ErrorBody,
  type LxcqEvent,
  type NewJob,
  type OperationName,
  type StoredJob,
} from '../src/index.ts';

let dir: string;
let server: ChildProcess;
let redis: Redis;
let subscriber: Redis;
const k = keys('ledgertest');
let store: Store;
let ledger: Ledger;
/** Every id published on the job-done channel, in order. */
const published: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lxcq-ledger-redis-'));
  const sock = join(dir, 'redis.sock');
  server = spawn(
    'redis-server',
    ['--port', '0', '--unixsocket', sock, '--unixsocketperm', '700', '--dir', dir, '--save', ''],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 400 && !existsSync(sock) && server.exitCode === null; i++) await sleep(25);
  if (!existsSync(sock))
    throw new Error('redis-server did not start (is it installed? scripts/setup-host.sh)');
  redis = new Redis(sock);
  subscriber = new Redis(sock);
  await subscriber.subscribe(k.jobDone);
  subscriber.on('message', (_channel: string, id: string) => published.push(id));
  store = new Store(redis, k, { jobRetentionSec: 3600, eventMaxLen: 1000 });
  ledger = new Ledger(store);
});

afterAll(async () => {
  redis?.disconnect();
  subscriber?.disconnect();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function newJob(over: Partial<NewJob> = {}): NewJob {
  const container = over.container ?? `c-${randomUUID().slice(0, 8)}`;
  return {
    id: randomUUID(),
    operation: 'start',
    container,
    host: 'h1',
    payload: {},
    createdAt: new Date().toISOString(),
    locks: [container],
    ...over,
  };
}

async function submitted(over: Partial<NewJob> = {}, claims: string[] = []): Promise<StoredJob> {
  const r = await ledger.submit(newJob(over), { claims });
  if (!r.recorded) throw new Error(`not recorded: ${r.reason}`);
  return r.job;
}

async function events(): Promise<LxcqEvent[]> {
  return (await redis.xrange(k.events, '-', '+')).map(([id, flat]) => Store.parseEvent(id, flat));
}

async function eventsOf(id: string): Promise<LxcqEvent[]> {
  return (await events()).filter((e) => e.job === id);
}

/** Waits until the job-done channel carried `id` (messages arrive in order on one connection). */
async function publishedUpTo(id: string): Promise<void> {
  for (let i = 0; i < 2000 && !published.includes(id); i++) await sleep(5);
  expect(published).toContain(id);
}

/** What a refused transition must leave exactly as it was. */
async function snapshot(id: string) {
  return {
    hash: await redis.hgetall(k.job(id)),
    log: await redis.lrange(k.jobLog(id), 0, -1),
    events: await redis.xlen(k.events),
    seq: await redis.get(k.seq),
  };
}

const HOST_OFFLINE: ErrorBody = {
  code: 'LXCQ_HOST_OFFLINE',
  message: 'Host h1 stopped sending heartbeats (silent for more than 10 s); the job was not run.',
};

describe('submit', () => {
  it('records the job queued, in its indexes and pending queues, with its names claimed, a log line and job.queued', async () => {
    const ahead = await submitted({ container: 'web' });
    const job = newJob({ operation: 'create', container: 'web', locks: ['web'], payload: { template: 'x' } });
    const r = await ledger.submit(job, { claims: ['web'] });
    // 'web' is not claimed by `ahead` (a start claims nothing), so a create may claim it
    expect(r.recorded).toBe(true);
    if (!r.recorded) return;
    expect(r.job).toMatchObject({ id: job.id, state: 'queued', queuePosition: 1 });
    expect(r.job.seq).toBe(ahead.seq + 1);
    const stored = await store.getJob(job.id);
    expect(stored).toMatchObject({
      ...job,
      state: 'queued',
      seq: r.job.seq,
      queuePosition: 1,
    });
    expect(await redis.zscore(k.jobs, job.id)).toBe(String(Date.parse(job.createdAt)));
    expect(await redis.zscore(k.containerJobs('web'), job.id)).toBe(String(Date.parse(job.createdAt)));
    expect(await redis.zscore(k.pending('web'), job.id)).toBe(String(r.job.seq));
    expect(await redis.zscore(k.submitting, job.id)).not.toBeNull();
    expect(await redis.get(k.nameClaim('web'))).toBe(job.id);
    expect(await redis.ttl(k.nameClaim('web'))).toBeGreaterThan(0);
    const log = await redis.lrange(k.jobLog(job.id), 0, -1);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+Z queued for host h1$/);
    const [ev, ...more] = await eventsOf(job.id);
    expect(more).toEqual([]);
    expect(ev).toMatchObject({
      id: r.eventId,
      type: 'job.queued',
      host: 'h1',
      container: 'web',
      job: job.id,
      data: { operation: 'create', queuePosition: 1 },
    });
    // The stream entry is field for field what Store.addEvent wrote before the ledger.
    const [[, flat]] = (await redis.xrange(k.events, r.eventId, r.eventId)) as [[string, string[]]];
    expect(flat.filter((_, i) => i % 2 === 0)).toEqual(['type', 'time', 'data', 'host', 'container', 'job']);
    expect(flat[5]).toBe(JSON.stringify({ operation: 'create', queuePosition: 1 }));
    expect(new Date(flat[3] as string).toISOString()).toBe(flat[3]);
  });

  it('refuses a second submit of the same job id, writing nothing', async () => {
    const job = newJob();
    expect((await ledger.submit(job)).recorded).toBe(true);
    const before = await snapshot(job.id);
    const pending = await redis.zrange(k.pending(job.container), '0', '-1');
    expect(await ledger.submit({ ...job, operation: 'stop' })).toEqual({ recorded: false, reason: 'exists' });
    expect(await snapshot(job.id)).toEqual(before);
    expect(await redis.zrange(k.pending(job.container), '0', '-1')).toEqual(pending);
    expect(await eventsOf(job.id)).toHaveLength(1);
  });

  it('refuses a name another job claimed or an existing container has, writing nothing', async () => {
    const first = await submitted({ operation: 'create', container: 'taken', locks: ['taken'] }, ['taken']);
    const second = newJob({ operation: 'create', container: 'taken', locks: ['taken'] });
    const before = await snapshot(second.id);
    expect(await ledger.submit(second, { claims: ['taken'] })).toEqual({
      recorded: false,
      reason: 'name-taken',
      name: 'taken',
    });
    expect(await snapshot(second.id)).toEqual(before);
    expect(await redis.exists(k.job(second.id))).toBe(0);
    expect(await redis.zscore(k.pending('taken'), second.id)).toBeNull();
    expect(await redis.zscore(k.submitting, second.id)).toBeNull();
    expect(await redis.get(k.nameClaim('taken'))).toBe(first.id);

    // A rename onto a name an existing container has: the second claim is refused, the first
    // (free) one is not taken either.
    await redis.hset(k.container('exists'), 'info', '{}');
    const rename = newJob({ operation: 'rename', container: 'src', locks: ['src', 'free1', 'exists'] });
    expect(await ledger.submit(rename, { claims: ['free1', 'exists'] })).toEqual({
      recorded: false,
      reason: 'name-taken',
      name: 'exists',
    });
    expect(await redis.get(k.nameClaim('free1'))).toBeNull();
    expect(await redis.exists(k.job(rename.id))).toBe(0);
  });

  it('with an Idempotency-Key, a repeat names the first job and writes nothing; an expired first job is replaced', async () => {
    const key = `idem-${randomUUID()}`;
    const first = newJob();
    expect((await ledger.submit(first, { idempotencyKey: key })).recorded).toBe(true);
    expect(await redis.get(k.idempotency(key))).toBe(first.id);
    const repeat = newJob({ container: first.container, locks: first.locks });
    const before = await snapshot(repeat.id);
    expect(await ledger.submit(repeat, { idempotencyKey: key })).toEqual({
      recorded: false,
      reason: 'idempotent',
      id: first.id,
    });
    expect(await snapshot(repeat.id)).toEqual(before);
    // The first job's record is gone (expired): the key goes to the next job.
    await redis.del(k.job(first.id));
    expect((await ledger.submit(repeat, { idempotencyKey: key })).recorded).toBe(true);
    expect(await redis.get(k.idempotency(key))).toBe(repeat.id);
  });
});

describe('start', () => {
  it('makes a queued job active, counting the attempt, with a log line and job.active; a re-run counts again', async () => {
    const job = await submitted();
    const s1 = await ledger.start(job, 'h1');
    expect(s1).toEqual({ attempt: 1, startedAt: expect.any(String) as unknown });
    const stored = await store.getJob(job.id);
    expect(stored).toMatchObject({ state: 'active', attempts: 1, startedAt: s1?.startedAt });
    // Started again after a worker died mid-way: attempt 2, the first start time kept.
    const s2 = await ledger.start(job, 'h1');
    expect(s2).toEqual({ attempt: 2, startedAt: s1?.startedAt });
    const log = await redis.lrange(k.jobLog(job.id), 0, -1);
    expect(log.slice(1).map((l) => l.replace(/^\S+ /, ''))).toEqual([
      'active on host h1',
      'active again on host h1 (attempt 2: the previous worker died mid-way)',
    ]);
    const evs = await eventsOf(job.id);
    expect(evs.map((e) => [e.type, e.data])).toEqual([
      ['job.queued', { operation: 'start', queuePosition: 0 }],
      ['job.active', { operation: 'start', attempt: 1 }],
      ['job.active', { operation: 'start', attempt: 2 }],
    ]);
    expect(evs[1]).toMatchObject({ host: 'h1', container: job.container, job: job.id });
  });

  it('refuses to start a cancelled job, writing nothing', async () => {
    const job = await submitted({ operation: 'create' }, []);
    expect(await ledger.finish(job, { state: 'cancelled' }, { from: ['queued'] })).toBe(true);
    const before = await snapshot(job.id);
    expect(await ledger.start(job, 'h1')).toBeNull();
    expect(await snapshot(job.id)).toEqual(before);
    expect((await store.getJob(job.id))?.state).toBe('cancelled');
  });

  it('refuses to start a job with no record', async () => {
    const id = randomUUID();
    const before = await redis.xlen(k.events);
    expect(await ledger.start({ id, container: 'nowhere' }, 'h1')).toBeNull();
    expect(await redis.exists(k.job(id), k.jobLog(id))).toBe(0);
    expect(await redis.xlen(k.events)).toBe(before);
  });
});

describe('progress', () => {
  it('records progress of an active job: its field, a log line and job.progress', async () => {
    const job = await submitted();
    // not active yet: refused
    expect(await ledger.progress(job, { percent: 10, stage: 'early' })).toBe(false);
    const { attempt } = (await ledger.start(job, 'h1')) ?? { attempt: 0 };
    expect(await ledger.progress(job, { percent: 40, stage: 'copying' }, { attempt })).toBe(true);
    expect((await store.getJob(job.id))?.progress).toEqual({ percent: 40, stage: 'copying' });
    expect((await redis.lrange(k.jobLog(job.id), -1, -1))[0]).toMatch(/ 40% copying$/);
    const ev = (await eventsOf(job.id)).at(-1);
    expect(ev).toMatchObject({
      type: 'job.progress',
      data: { percent: 40, stage: 'copying' },
      host: 'h1',
      container: job.container,
      job: job.id,
    });
  });

  it('refuses progress after the job ended, or from an attempt that is no longer current, writing nothing', async () => {
    const job = await submitted();
    await ledger.start(job, 'h1');
    await ledger.start(job, 'h1'); // attempt 2 runs it now
    let before = await snapshot(job.id);
    expect(await ledger.progress(job, { percent: 50, stage: 'stale' }, { attempt: 1 })).toBe(false);
    expect(await snapshot(job.id)).toEqual(before);
    expect(await ledger.finish(job, { state: 'completed', result: null }, { attempt: 2 })).toBe(true);
    before = await snapshot(job.id);
    expect(await ledger.progress(job, { percent: 90, stage: 'late' })).toBe(false);
    expect(await ledger.progress(job, { percent: 90, stage: 'late' }, { attempt: 2 })).toBe(false);
    expect(await snapshot(job.id)).toEqual(before);
  });
});

describe('finish', () => {
  it('completes a job: result, retention, out of its pending queues, names freed, log line, job.completed, job-done', async () => {
    const job = await submitted(
      { operation: 'rename', container: 'old1', locks: ['old1', 'new1'], payload: { newName: 'new1' } },
      ['new1'],
    );
    expect(await redis.get(k.nameClaim('new1'))).toBe(job.id);
    const { attempt } = (await ledger.start(job, 'h1')) ?? { attempt: 0 };
    expect(await ledger.finish(job, { state: 'completed', result: { name: 'new1' } }, { attempt })).toBe(
      true,
    );
    const stored = await store.getJob(job.id);
    expect(stored).toMatchObject({ state: 'completed', result: { name: 'new1' } });
    expect(stored?.finishedAt).toEqual(expect.any(String));
    expect(await redis.ttl(k.job(job.id))).toBeGreaterThan(0);
    expect(await redis.ttl(k.jobLog(job.id))).toBeGreaterThan(0);
    expect(await redis.zscore(k.pending('old1'), job.id)).toBeNull();
    expect(await redis.zscore(k.pending('new1'), job.id)).toBeNull();
    expect(await redis.get(k.nameClaim('new1'))).toBeNull();
    expect((await redis.lrange(k.jobLog(job.id), -1, -1))[0]).toMatch(/ completed$/);
    const end = (await eventsOf(job.id)).at(-1);
    expect(end).toMatchObject({
      type: 'job.completed',
      data: { operation: 'rename', result: { name: 'new1' } },
      host: 'h1',
      container: 'old1',
      job: job.id,
    });
    await publishedUpTo(job.id);
  });

  it("frees only the names this job holds, and keeps an exec's output out of the event", async () => {
    const job = await submitted({ operation: 'exec', container: 'ex1', locks: ['ex1'], payload: {} });
    await redis.set(k.nameClaim('ex1'), 'another-job');
    await ledger.start(job, 'h1');
    const result = { exitCode: 0, stdout: 'secret', stderr: '' };
    expect(await ledger.finish(job, { state: 'completed', result })).toBe(true);
    expect(await redis.get(k.nameClaim('ex1'))).toBe('another-job');
    await redis.del(k.nameClaim('ex1'));
    expect((await store.getJob(job.id))?.result).toEqual(result);
    expect((await eventsOf(job.id)).at(-1)?.data).toEqual({ operation: 'exec', result: { exitCode: 0 } });
  });

  it('fails a job with its error in the record, the log line and job.failed, byte for byte', async () => {
    const job = await submitted();
    // JSON that Lua's cjson would write differently (slashes, non-ASCII): the ledger passes it as is.
    const error: ErrorBody = {
      code: 'LXCQ_LXC_ERROR',
      message: 'lxc-start /var/lib/lxc: “no” ✗',
      details: { a: 1 },
    };
    expect(await ledger.finish(job, { state: 'failed', error })).toBe(true);
    expect((await store.getJob(job.id))?.error).toEqual(error);
    expect((await redis.lrange(k.jobLog(job.id), -1, -1))[0]).toMatch(
      / failed: LXCQ_LXC_ERROR: lxc-start \/var\/lib\/lxc: “no” ✗$/,
    );
    const id = (await eventsOf(job.id)).at(-1)?.id as string;
    const [[, flat]] = (await redis.xrange(k.events, id, id)) as [[string, string[]]];
    expect(flat.slice(0, 1)).toEqual(['type']);
    expect(flat[1]).toBe('job.failed');
    expect(flat[5]).toBe(JSON.stringify({ operation: 'start', error }));
  });

  it("a late finish after the watchdog's gives no second event, no log line, no job-done publish, and returns false", async () => {
    const job = await submitted();
    const { attempt } = (await ledger.start(job, 'h1')) ?? { attempt: 0 };
    // The watchdog fails it (its worker went silent)...
    expect(await ledger.finish(job, { state: 'failed', error: HOST_OFFLINE })).toBe(true);
    await publishedUpTo(job.id);
    const before = await snapshot(job.id);
    const publishedBefore = published.length;
    // ...then the worker comes back and ends it: completed, failed or cancelled, all refused.
    expect(await ledger.finish(job, { state: 'completed', result: { ok: true } }, { attempt })).toBe(false);
    expect(
      await ledger.finish(job, { state: 'failed', error: { code: 'LXCQ_INTERNAL', message: 'x' } }),
    ).toBe(false);
    expect(await ledger.finish(job, { state: 'cancelled' }, { from: ['queued'] })).toBe(false);
    expect(await snapshot(job.id)).toEqual(before);
    // A later job's publish arrives after anything the refused ones would have published.
    const marker = await submitted();
    expect(await ledger.finish(marker, { state: 'cancelled' })).toBe(true);
    await publishedUpTo(marker.id);
    expect(published.slice(publishedBefore)).toEqual([marker.id]);
    expect(published.filter((x) => x === job.id)).toHaveLength(1);
    const ends = (await eventsOf(job.id)).filter((e) => /^job\.(completed|failed|cancelled)$/.test(e.type));
    expect(ends).toHaveLength(1);
    expect(ends[0]?.data).toEqual({ operation: 'start', error: HOST_OFFLINE });
    expect((await store.getJob(job.id))?.state).toBe('failed');
  });

  it('refuses an end from a state the caller does not allow (cancel of a running job)', async () => {
    const job = await submitted();
    await ledger.start(job, 'h1');
    const before = await snapshot(job.id);
    expect(await ledger.finish(job, { state: 'cancelled' }, { from: ['queued'] })).toBe(false);
    expect(await snapshot(job.id)).toEqual(before);
    expect(await redis.zscore(k.pending(job.container), job.id)).not.toBeNull();
  });

  it('refuses the end of an attempt that is no longer current', async () => {
    const job = await submitted();
    await ledger.start(job, 'h1');
    await ledger.start(job, 'h1');
    const before = await snapshot(job.id);
    expect(await ledger.finish(job, { state: 'completed', result: null }, { attempt: 1 })).toBe(false);
    expect(await snapshot(job.id)).toEqual(before);
    expect(await ledger.finish(job, { state: 'completed', result: null }, { attempt: 2 })).toBe(true);
  });

  it('of many racing ends (worker, watchdog, cancel, reconcile), exactly one happens', async () => {
    const conns = Array.from({ length: 4 }, () => redis.duplicate());
    try {
      const ledgers = conns.map(
        (c) => new Ledger(new Store(c, k, { jobRetentionSec: 3600, eventMaxLen: 1000 })),
      );
      for (let round = 0; round < 20; round++) {
        const job = await submitted();
        if (round % 2 === 0) await ledger.start(job, 'h1');
        const ends: Parameters<Ledger['finish']>[] = [
          [job, { state: 'completed', result: round }],
          [job, { state: 'failed', error: HOST_OFFLINE }],
          [job, { state: 'cancelled' }, { from: ['queued'] }],
          [
            job,
            { state: 'failed', error: { code: 'LXCQ_REDIS_UNAVAILABLE', message: 'cut off' } },
            { from: ['queued'] },
          ],
        ];
        const won = await Promise.all(ends.map((args, i) => (ledgers[i] as Ledger).finish(...args)));
        expect(won.filter(Boolean)).toHaveLength(1);
        const endEvents = (await eventsOf(job.id)).filter((e) =>
          /^job\.(completed|failed|cancelled)$/.test(e.type),
        );
        expect(endEvents).toHaveLength(1);
        expect(endEvents[0]?.type).toBe(`job.${(await store.getJob(job.id))?.state}`);
        expect(await redis.lrange(k.jobLog(job.id), 0, -1)).toHaveLength(round % 2 === 0 ? 3 : 2);
      }
    } finally {
      for (const c of conns) c.disconnect();
    }
  });
});

describe('release', () => {
  it('tidies only after a job that has ended (or whose record is gone)', async () => {
    const job = await submitted({ operation: 'create', container: 'rel1', locks: ['rel1'] }, ['rel1']);
    expect(await ledger.release(job)).toBe(false);
    expect(await redis.get(k.nameClaim('rel1'))).toBe(job.id);
    expect(await redis.zscore(k.pending('rel1'), job.id)).not.toBeNull();
    // Ended by hand (as a record written before the ledger could be): release tidies after it.
    await redis.hset(k.job(job.id), 'state', JSON.stringify('completed'));
    expect(await ledger.release(job)).toBe(true);
    expect(await redis.get(k.nameClaim('rel1'))).toBeNull();
    expect(await redis.zscore(k.pending('rel1'), job.id)).toBeNull();
    const gone = { id: randomUUID(), locks: ['rel2'] };
    await redis.set(k.nameClaim('rel2'), gone.id);
    await redis.zadd(k.pending('rel2'), 1, gone.id);
    expect(await ledger.release(gone)).toBe(true);
    expect(await redis.get(k.nameClaim('rel2'))).toBeNull();
    expect(await redis.zcard(k.pending('rel2'))).toBe(0);
  });
});

describe('scripts', () => {
  it('are loaded again when Redis has forgotten them (NOSCRIPT: EVALSHA falls back to EVAL)', async () => {
    await redis.script('FLUSH');
    const job = await submitted();
    expect(await ledger.start(job, 'h1')).toMatchObject({ attempt: 1 });
    expect(await ledger.finish(job, { state: 'completed', result: 1 })).toBe(true);
  });

  it('pass every operation name into event data as JSON', async () => {
    for (const operation of ['config.set', 'snapshot.create'] as OperationName[]) {
      const job = await submitted({ operation });
      await ledger.start(job, 'h1');
      const evs = await eventsOf(job.id);
      expect(evs.map((e) => (e.data as { operation: string }).operation)).toEqual([operation, operation]);
    }
  });
});
