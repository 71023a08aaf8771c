// The SDK against a real lxcq stack (private Redis, API, worker process, real busybox containers):
// JobHandles, typed results and errors, the event iterator, its reconnect-and-resume across an
// API restart, and resync after the stream was trimmed.
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type BuiltApp } from '../../../services/api/src/app.ts';
import { sha256 } from '../../../services/api/src/auth.ts';
import { apiConfig } from '../../../services/api/src/config.ts';
import { Stack, TEST_CONFIG, TOKEN } from '../../../services/api/test/harness.ts';
import { Store, compareCursors } from '@lxcq/shared';
import { collect, freePort, waitFor } from './helpers.ts';
import {
  JobCancelledError,
  JobFailedError,
  LxcqClient,
  LxcqConnectionError,
  LxcqError,
  WaitTimeoutError,
  isResync,
  type EventOf,
  type JobEvent,
  type ResyncRequired,
} from '../src/index.ts';

type Item = EventOf | ResyncRequired;
/** The events among a stream's items (without resync markers). */
const evs = (xs: readonly Item[]): EventOf[] => xs.filter((x): x is EventOf => !isResync(x));
const ended = (id: string | undefined) => (xs: readonly Item[]) =>
  evs(xs).some((x) => x.job === id && (x.type === 'job.completed' || x.type === 'job.failed'));
const ids = (xs: readonly Item[]) => xs.map((x) => (isResync(x) ? 'resync' : x.id));

let s: Stack;
let lxcq: LxcqClient;
beforeAll(async () => {
  s = await Stack.start({ apiEnv: { LXCQ_WS_PING_MS: '60000' } });
  lxcq = new LxcqClient({ url: s.url, token: TOKEN });
});
afterAll(async () => {
  await s?.close();
});

describe('SDK against a real stack', () => {
  it('create, start, exec, stop, destroy: each JobHandle resolves with its typed result', async () => {
    const h = lxcq.containers.create({ name: 'sdk1', template: 'busybox', config: TEST_CONFIG });
    const queued = await h.submitted;
    expect(queued).toMatchObject({ operation: 'create', container: 'sdk1', host: s.hostId });
    expect(h.id).toBe(queued.id);
    expect(h.job.id).toBe(queued.id);
    const created = await h;
    expect(created).toMatchObject({ name: 'sdk1', host: s.hostId, state: 'STOPPED' });

    const started = await lxcq.containers.start('sdk1');
    expect(started.state).toBe('RUNNING');
    expect(started.pid).toBeGreaterThan(1);
    expect(s.lxcState('sdk1')).toBe('RUNNING');

    const out = await lxcq.containers.exec('sdk1', {
      argv: ['sh', '-c', 'echo "hello $WHO"; echo oops >&2; exit 7'],
      env: { WHO: 'sdk' },
    });
    expect(out).toMatchObject({ exitCode: 7, stdout: 'hello sdk\n', stderr: 'oops\n', timedOut: false });

    expect((await lxcq.containers.get('sdk1')).state).toBe('RUNNING');
    expect((await lxcq.containers.list({ state: 'RUNNING' })).map((c) => c.name)).toContain('sdk1');
    const cfg = await lxcq.containers.patchConfig('sdk1', { set: { 'lxc.environment': 'A=1' } });
    expect(cfg.config['lxc.environment']).toBe('A=1');
    expect((await lxcq.containers.config('sdk1'))['lxc.net.0.type']).toBe('empty');
    const limits = await lxcq.containers.setLimits('sdk1', { pids: 100 });
    expect(Object.values(limits.limits)).toContain('100');

    const stopped = await lxcq.containers.stop('sdk1');
    expect(stopped.state).toBe('STOPPED');
    const snap = await lxcq.snapshots.create('sdk1', { name: 'first' });
    expect(snap.name).toBe('first');
    expect((await lxcq.snapshots.list('sdk1')).map((x) => x.name)).toEqual(['first']);
    const gone = await lxcq.containers.destroy('sdk1', { withSnapshots: true });
    expect(gone).toEqual({ destroyed: 'sdk1' });
    expect(s.lxcLs()).not.toContain('sdk1');

    const jobs = await lxcq.jobs.list({ container: 'sdk1', limit: 3 });
    expect(jobs.jobs.map((j) => j.operation)).toEqual(['destroy', 'snapshot.create', 'stop']);
    expect(await lxcq.jobs.log(queued.id)).toEqual(expect.any(Array));
    const ended = await lxcq.jobs.wait(queued.id, { timeoutMs: 5000 });
    expect(ended.state).toBe('completed');
    expect((await lxcq.hosts.list()).map((x) => x.id)).toEqual([s.hostId]);
    // ok, or degraded on a host without CRIU; never unavailable with a live worker
    expect(['ok', 'degraded']).toContain((await lxcq.health()).status);
  });

  it('a failing job rejects with an LxcqError carrying the job error code; HTTP errors too', async () => {
    await lxcq.containers.create({ name: 'sdk2', template: 'busybox', config: TEST_CONFIG });
    // freezing a stopped container is impossible in its state
    const h = lxcq.containers.freeze('sdk2');
    const err = await h.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LxcqError);
    expect(err).toBeInstanceOf(JobFailedError);
    expect((err as JobFailedError).code).toBe('LXCQ_INVALID_STATE');
    expect((err as JobFailedError).job.id).toBe(h.id);
    expect((err as JobFailedError).message).toMatch(/\S/);

    // refused at submission: 409 name taken, 404 unknown container, 400 bad name
    await expect(
      lxcq.containers.create({ name: 'sdk2', template: 'busybox', config: TEST_CONFIG }),
    ).rejects.toMatchObject({ code: 'LXCQ_CONTAINER_EXISTS' });
    await expect(lxcq.containers.get('nope')).rejects.toMatchObject({
      name: 'LxcqError',
      code: 'LXCQ_CONTAINER_NOT_FOUND',
    });
    const bad = lxcq.containers.start('../etc');
    await expect(bad.submitted).rejects.toMatchObject({ code: 'LXCQ_VALIDATION' });
    await expect(bad).rejects.toBeInstanceOf(LxcqError);

    // wait bound: the job goes on
    const slow = lxcq.containers.start('sdk2');
    const e2 = lxcq.containers.exec('sdk2', { argv: ['sleep', '2'] });
    await expect(e2.wait({ timeoutMs: 200 })).rejects.toBeInstanceOf(WaitTimeoutError);
    await slow;
    expect((await e2).exitCode).toBe(0);

    // a queued job cancelled rejects with JobCancelledError
    const busy = lxcq.containers.exec('sdk2', { argv: ['sleep', '2'] });
    const queued = lxcq.containers.freeze('sdk2');
    await busy.submitted;
    const cancelled = await queued.cancel();
    expect(cancelled.state).toBe('cancelled');
    await expect(queued).rejects.toBeInstanceOf(JobCancelledError);
    await busy;
    await lxcq.containers.destroy('sdk2', { force: true });
  });

  it('says clearly when the token is wrong and when the server is unreachable', async () => {
    const wrong = new LxcqClient({ url: s.url, token: 'not-the-token-at-all' });
    await expect(wrong.containers.list()).rejects.toMatchObject({
      code: 'LXCQ_UNAUTHORIZED',
      message: expect.stringMatching(/refused the token \(wrong or missing\)/) as unknown,
    });
    const none = new LxcqClient({ url: s.url });
    await expect(none.hosts.list()).rejects.toMatchObject({ code: 'LXCQ_UNAUTHORIZED' });
    expect(['ok', 'degraded']).toContain((await none.health()).status);
    // a port nothing listens on
    const port = await freePort();
    const dead = new LxcqClient({ url: `http://127.0.0.1:${port}`, token: TOKEN });
    const err = await dead.containers.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LxcqConnectionError);
    expect((err as Error).message).toBe(
      `cannot reach lxcq at http://127.0.0.1:${port}: ECONNREFUSED; is it running?`,
    );
    // the event stream gives up on a refused token instead of retrying forever
    const events = wrong.events();
    await expect(events.next()).rejects.toMatchObject({ code: 'LXCQ_UNAUTHORIZED' });
    // bad filters are refused before connecting
    expect(() => lxcq.events({ container: '../x' })).toThrow(LxcqError);
  });

  it('the events iterator receives typed job events; progress() follows one job to its end', async () => {
    const stream = lxcq.events({ types: ['job.*', 'container.state'], container: 'sdk3' });
    const c = collect<Item>(stream);
    // connects on the first next(): wait until it is live
    await waitFor(() => stream.connections === 1);
    const h = lxcq.containers.create({ name: 'sdk3', template: 'busybox', config: TEST_CONFIG, start: true });
    const id = (await h.submitted).id;
    await c.until(ended(id));
    const mine = evs(c.items).filter((x) => x.job === id);
    expect(mine[0]?.type).toBe('job.queued');
    expect(mine.map((x) => x.type)).toContain('job.progress');
    const states = mine.flatMap((x) => (x.type === 'container.state' ? [x.data.to] : []));
    expect(states).toEqual(['STARTING', 'RUNNING']);
    const last = mine.at(-1);
    expect(last?.type).toBe('job.completed');
    if (last?.type === 'job.completed') expect(last.data.result).toMatchObject({ state: 'RUNNING' });
    expect(evs(c.items).every((x) => x.type.startsWith('job.') || x.type === 'container.state')).toBe(true);
    expect(stream.cursor).toBe(evs(c.items).at(-1)?.id);
    await c.stop();
    expect(await stream.next()).toEqual({ done: true, value: undefined });
    await waitFor(() => (s.api.ctx.events?.clientCount ?? 0) === 0);

    // progress() of a job already ended replays its events, then ends
    const seen: JobEvent[] = [];
    for await (const ev of h.progress()) seen.push(ev);
    expect(seen[0]?.type).toBe('job.queued');
    expect(seen.map((x) => x.type)).toContain('job.progress');
    expect(seen.at(-1)?.type).toBe('job.completed');
    // and live for a new one
    const stop = lxcq.containers.stop('sdk3');
    const live: string[] = [];
    for await (const ev of stop.progress()) live.push(ev.type);
    expect(live[0]).toBe('job.queued');
    expect(live.at(-1)).toBe('job.completed');
    expect((await stop).state).toBe('STOPPED');
    await waitFor(() => (s.api.ctx.events?.clientCount ?? 0) === 0);
  });

  it('reconnects by itself across an API restart and resumes without missing or repeating an event', async () => {
    const port = Number(new URL(s.url).port);
    const reconnects: number[] = [];
    const stream = lxcq.events({
      container: 'sdk3',
      minBackoffMs: 100,
      maxBackoffMs: 400,
      onReconnect: (i) => reconnects.push(i.attempt),
    });
    const c = collect<Item>(stream);
    await waitFor(() => stream.connections === 1);
    const from = (await s.redis.xrevrange('lxcq:events', '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
    // Jobs queued now run on the worker while the API is down; their events land in Redis.
    const start = lxcq.containers.start('sdk3');
    const startId = (await start.submitted).id;
    const freeze = lxcq.containers.freeze('sdk3');
    const freezeId = (await freeze.submitted).id;
    const down = await restartApi(port, () =>
      waitFor(async () => (await s.redis.hget(`lxcq:job:${freezeId}`, 'state')) === '"completed"', 60_000),
    );
    await c.until(ended(freezeId));
    expect(reconnects.length).toBeGreaterThan(0);
    expect(stream.connections).toBeGreaterThan(1);
    // live after the reconnect, too
    const unfreeze = lxcq.containers.unfreeze('sdk3');
    expect((await unfreeze).state).toBe('RUNNING');
    await c.until(ended(unfreeze.id));
    await c.stop();

    // In order, nothing twice, nothing missing: exactly what Redis holds for the container.
    const got = ids(c.items);
    const stored = (await s.redis.xrange('lxcq:events', `(${from}`, '+'))
      .map(([id, f]) => Store.parseEvent(id, f))
      .filter((e) => e.container === 'sdk3' && compareCursors(e.id, got.at(-1) ?? '0-0') <= 0)
      .map((e) => e.id);
    expect(new Set(got).size).toBe(got.length);
    expect(got).not.toContain('resync');
    expect(got).toEqual(stored);
    const startEvents = evs(c.items)
      .filter((x) => x.job === startId)
      .map((x) => x.type);
    expect(startEvents[0]).toBe('job.queued');
    expect(startEvents.at(-1)).toBe('job.completed');
    // among them, those published while the API was down (and no socket could be open)
    const whileDown = stored.filter(
      (id) => compareCursors(id, down.from) > 0 && compareCursors(id, down.to) <= 0,
    );
    expect(whileDown.length).toBeGreaterThan(2);
    expect(got).toEqual(expect.arrayContaining(whileDown));
  });

  it('works as in a browser: injected fetch, WebSocket without headers, token as a subprotocol', async () => {
    const urls: string[] = [];
    const offered: (string | string[] | undefined)[] = [];
    // A browser's WebSocket takes (url, protocols) and cannot send headers.
    class BrowserWebSocket extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        offered.push(protocols);
        super(url, protocols);
      }
    }
    const browser = new LxcqClient({
      url: `${s.url}/`,
      token: TOKEN,
      fetch: (url, init) => {
        urls.push(`${init.method} ${url}`);
        return fetch(url, init);
      },
      WebSocket: BrowserWebSocket,
    });
    const stream = browser.events({ types: ['job.*'], container: 'sdk3' });
    const c = collect<Item>(stream);
    await waitFor(() => stream.connections === 1);
    const h = browser.containers.start('sdk3');
    await h;
    await c.until(ended(h.id));
    await c.stop();
    expect(offered).toEqual([['lxcq.v1', `bearer.${TOKEN}`]]);
    expect(urls[0]).toBe(`POST ${s.url}/v1/containers/sdk3/start`);
    expect(urls.some((u) => u.startsWith(`GET ${s.url}/v1/jobs/${h.id}/wait?timeout=`))).toBe(true);
    // a refused token ends the stream there too (found out over HTTP, as browsers hide the status)
    const wrong = new LxcqClient({
      url: s.url,
      token: 'wrong-wrong-wrong',
      WebSocket: BrowserWebSocket,
    });
    await expect(wrong.events().next()).rejects.toMatchObject({ code: 'LXCQ_UNAUTHORIZED' });
  });

  it('yields resync-required when its cursor was trimmed, then goes on with live events', async () => {
    const first = (await s.redis.xrange('lxcq:events', '-', '+', 'COUNT', 1))[0]?.[0] as string;
    await s.redis.xtrim('lxcq:events', 'MINID', `${BigInt(first.split('-')[0]!) + 1n}-0`);
    const stream = lxcq.events({ container: 'sdk3', since: `${BigInt(first.split('-')[0]!) - 1n}-0` });
    const c = collect<Item>(stream);
    await c.until((xs) => xs.length > 0);
    expect(c.items[0]).toMatchObject({ type: 'resync-required' });
    const job = lxcq.containers.stop('sdk3');
    const id = (await job.submitted).id;
    await c.until(ended(id));
    expect(c.items.filter(isResync)).toHaveLength(1);
    await job;
    await c.stop();
    await lxcq.containers.destroy('sdk3', { force: true });
  });
});

/** Closes the stack's API (its sockets see 1001), runs `meanwhile`, then serves again on the same port. */
async function restartApi(
  port: number,
  meanwhile: () => Promise<void>,
): Promise<{ from: string; to: string }> {
  const newest = async () => (await s.redis.xrevrange('lxcq:events', '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
  await s.api.close();
  const from = await newest();
  await meanwhile();
  const to = await newest();
  const env = {
    LXCQ_REDIS_URL: s.redisServer.url,
    LXCQ_TOKEN: TOKEN,
    LXCQ_HOST_OFFLINE_MS: '3000',
    LXCQ_WS_PING_MS: '60000',
  };
  const api: BuiltApp = await buildApp(apiConfig(env, sha256), { logger: false });
  await api.app.listen({ port, host: '127.0.0.1' });
  (s as unknown as { api: BuiltApp }).api = api;
  return { from, to };
}
