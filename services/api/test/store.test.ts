// Store.jobAhead, the check that keeps one container's jobs in submission order, against a real
// redis-server: one Lua script per call.
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ledger, Store, keys } from '@lxcq/shared';
import { startRedis, type RedisServer } from './harness.ts';

let server: RedisServer;
let redis: Redis;
const k = keys('storetest');
let store: Store;
let ledger: Ledger;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
  store = new Store(redis, k);
  ledger = new Ledger(store);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  if (server) rmSync(server.dir, { recursive: true, force: true });
});

/** A job record as the store writes it (only the state matters here) and its place in its locks. */
async function job(id: string, state: string | null, locks: Record<string, number>): Promise<void> {
  if (state !== null) await redis.hset(k.job(id), 'state', JSON.stringify(state));
  for (const [lock, seq] of Object.entries(locks)) await redis.zadd(k.pending(lock), seq, id);
}

describe('Store.jobAhead', () => {
  it('names the first unfinished job submitted earlier on any of the locks', async () => {
    await job('a1', 'active', { c1: 1 });
    await job('b1', 'queued', { c1: 2 });
    await job('c1', 'queued', { c1: 3, c2: 3 });
    await job('d1', 'queued', { c2: 1 });
    expect(await store.jobAhead({ id: 'a1', locks: ['c1'] })).toBeNull();
    expect(await store.jobAhead({ id: 'b1', locks: ['c1'] })).toBe('a1');
    expect(await store.jobAhead({ id: 'c1', locks: ['c2', 'c1'] })).toBe('d1');
    // A job on none of the sets (already left them) has nothing ahead.
    expect(await store.jobAhead({ id: 'zz', locks: ['c1'] })).toBeNull();
    expect(await store.jobAhead({ id: 'zz', locks: [] })).toBeNull();
  });

  it('drops ended and expired jobs from the way and lets the next one through', async () => {
    await job('a2', 'completed', { c3: 1 });
    await job('b2', null, { c3: 2 }); // its record expired
    await job('c2', 'cancelled', { c3: 3 });
    await job('d2', 'queued', { c3: 4 });
    await job('e2', 'queued', { c3: 5 });
    expect(await store.jobAhead({ id: 'e2', locks: ['c3'] })).toBe('d2');
    expect(await redis.zrange(k.pending('c3'), '0', '-1')).toEqual(['d2', 'e2']);
    await redis.hset(k.job('d2'), 'state', JSON.stringify('failed'));
    expect(await store.jobAhead({ id: 'e2', locks: ['c3'] })).toBeNull();
    expect(await redis.zrange(k.pending('c3'), '0', '-1')).toEqual(['e2']);
  });
});

describe('Store.jobAhead on jobs as the API records them', () => {
  const submit = async (id: string, container: string) => {
    const r = await ledger.submit({
      id,
      operation: 'start',
      container,
      host: 'h1',
      payload: {},
      createdAt: new Date().toISOString(),
      locks: [container],
    });
    if (!r.recorded) throw new Error(`job ${id} not recorded: ${r.reason}`);
    return r.job;
  };

  it('keeps submission order whatever order the jobs are asked in, until the earlier one ends', async () => {
    const a = await submit('ord-a', 'ord');
    const b = await submit('ord-b', 'ord');
    const other = await submit('ord-x', 'elsewhere');
    // b is handed out first: a is ahead of it; a itself, and a job of another container, go on
    expect(await store.jobAhead(b)).toBe(a.id);
    expect(await store.jobAhead(a)).toBeNull();
    expect(await store.jobAhead(other)).toBeNull();
    // running (active) still blocks b; ended lets it through
    expect(await ledger.start(a, 'h1')).toMatchObject({ attempt: 1 });
    expect(await store.jobAhead(b)).toBe(a.id);
    expect(await ledger.finish(a, { state: 'completed', result: null })).toBe(true);
    expect(await store.jobAhead(b)).toBeNull();
  });
});
