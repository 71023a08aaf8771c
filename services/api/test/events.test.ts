// Live events over WebSocket with a real API, worker, Redis and containers: order, filters,
// resume by cursor without gap or duplicate, resync, auth, and slow or dead clients.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG, TOKEN, type Job } from './harness.ts';
import { Sub, type Msg } from './ws-client.ts';

let s: Stack;
const subs: Sub[] = [];
beforeAll(async () => {
  s = await Stack.start({ apiEnv: { LXCQ_WS_MAX_BUFFER: '65536', LXCQ_WS_PING_MS: '60000' } });
});
afterAll(async () => {
  for (const x of subs) await x.close();
  await s?.close();
});

async function sub(
  query = '',
  opts: { token?: string; protocols?: string[] } = { token: TOKEN },
): Promise<Sub> {
  const x = await Sub.open(s.url, query, opts);
  subs.push(x);
  return x;
}

const jobDone = (id: string) => (m: Msg[]) =>
  m.some((x) => x.job === id && (x.type === 'job.completed' || x.type === 'job.failed'));

describe('events', () => {
  it('says hello with a cursor, then streams a job and the state change it causes, in order', async () => {
    const a = await sub();
    await a.until((m) => m[0]?.type === 'hello');
    expect(a.messages[0]?.cursor).toMatch(/^\d+-\d+$/);
    const r = await s.http<Job>('POST', '/v1/containers', {
      name: 'e1',
      template: 'busybox',
      config: TEST_CONFIG,
      start: true,
    });
    await a.until(jobDone(r.body.id));
    const mine = a.events().filter((m) => m.job === r.body.id);
    const types = mine.map((m) => m.type);
    expect(types[0]).toBe('job.queued');
    expect(types[1]).toBe('job.active');
    expect(types).toContain('job.progress');
    expect(types).toContain('container.created');
    expect(types.at(-1)).toBe('job.completed');
    // liblxc's monitor announces each step of the start, tagged with the job that caused it.
    const states = mine.filter((m) => m.type === 'container.state');
    expect(states.map((m) => m.data?.to)).toEqual(['STARTING', 'RUNNING']);
    expect(states[1]).toMatchObject({
      container: 'e1',
      host: s.hostId,
      data: { from: 'STARTING', to: 'RUNNING', source: 'api' },
    });
    // ids are strictly increasing cursors
    const ids = a.events().map((m) => m.id as string);
    expect(
      [...ids].sort((x, y) =>
        BigInt(x.split('-')[0]!) === BigInt(y.split('-')[0]!)
          ? Number(x.split('-')[1]) - Number(y.split('-')[1])
          : Number(BigInt(x.split('-')[0]!) - BigInt(y.split('-')[0]!)),
      ),
    ).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('filters select exactly what they name', async () => {
    const jobsOfE1 = await sub('?types=job.*&container=e1');
    const states = await sub('?types=container.state');
    const otherHost = await sub('?host=elsewhere');
    const r = await s.http<Job>('POST', '/v1/containers/e1/stop');
    await jobsOfE1.until(jobDone(r.body.id));
    await states.until((m) => m.some((x) => x.type === 'container.state' && x.data?.to === 'STOPPED'));
    expect(jobsOfE1.events().every((m) => m.type.startsWith('job.') && m.container === 'e1')).toBe(true);
    expect(states.events().every((m) => m.type === 'container.state')).toBe(true);
    const q = await sub(`?job=${r.body.id}`);
    await q.until((m) => m[0]?.type === 'hello');
    expect(otherHost.events()).toEqual([]);
  });

  it('a client that reconnects with its cursor gets exactly the events it missed, in order, then live ones', async () => {
    const all = await sub('?container=e1');
    const a = await sub('?container=e1');
    await a.until((m) => m[0]?.type === 'hello');
    const r1 = await s.http<Job>('POST', '/v1/containers/e1/start');
    await a.until(jobDone(r1.body.id));
    const cursor = a.events().at(-1)?.id as string;
    await a.close();
    // missed while away:
    const r2 = await s.http<Job>('POST', '/v1/containers/e1/freeze');
    const r3 = await s.http<Job>('POST', '/v1/containers/e1/unfreeze');
    await all.until(jobDone(r3.body.id));
    const b = await sub(`?container=e1&since=${cursor}`);
    await b.until(jobDone(r3.body.id));
    const missed = all.events().filter((m) => BigInt(m.id!.split('-')[0]!) >= 0n);
    const afterCursor = missed.slice(missed.findIndex((m) => m.id === cursor) + 1);
    expect(b.events().map((m) => m.id)).toEqual(afterCursor.map((m) => m.id));
    expect(afterCursor.some((m) => m.job === r2.body.id)).toBe(true);
    // and then live
    const r4 = await s.http<Job>('POST', '/v1/containers/e1/stop');
    await b.until(jobDone(r4.body.id));
    await all.until(jobDone(r4.body.id));
    const tail = all.events().slice(all.events().findIndex((m) => m.id === cursor) + 1);
    expect(b.events().map((m) => m.id)).toEqual(tail.map((m) => m.id));
  });

  it('changes made outside lxcq (lxc-stop, lxc-start, an init that exits) reach subscribers as source external', async () => {
    const w = await sub('?types=container.state&container=e1');
    await w.until((m) => m[0]?.type === 'hello');
    await s.run('POST', '/v1/containers/e1/start');
    const t0 = Date.now();
    execFileSync('lxc-stop', ['-P', s.lxcpath, '-n', 'e1', '-k']);
    await w.until((m) => m.some((x) => x.data?.to === 'STOPPED' && x.data.source === 'external'));
    const stopped = w.events().find((x) => x.data?.to === 'STOPPED' && x.data.source === 'external');
    expect(stopped).toMatchObject({
      container: 'e1',
      host: s.hostId,
      data: { from: expect.any(String) as unknown, exitStatus: 137 },
    });
    // Announced by liblxc's monitor at once, not by the periodic reconciliation.
    expect(Date.now() - t0).toBeLessThan(1500);
    expect((await s.http<{ state: string }>('GET', '/v1/containers/e1')).body.state).toBe('STOPPED');
    execFileSync('lxc-start', ['-P', s.lxcpath, '-n', 'e1']);
    await w.until((m) => m.some((x) => x.data?.to === 'RUNNING' && x.data.source === 'external'));
    const external = w
      .events()
      .filter((x) => x.data?.source === 'external')
      .map((x) => x.data?.to);
    expect(external).toEqual(expect.arrayContaining(['STOPPING', 'STOPPED', 'STARTING', 'RUNNING']));
    execFileSync('lxc-stop', ['-P', s.lxcpath, '-n', 'e1', '-k']);
    await w.until(
      (m) => m.filter((x) => x.data?.to === 'STOPPED' && x.data.source === 'external').length === 2,
    );
  });

  it('a cursor older than retention gets resync-required, then live events', async () => {
    const first = (await s.redis.xrange('lxcq:events', '-', '+', 'COUNT', 1))[0]?.[0] as string;
    await s.redis.xtrim('lxcq:events', 'MINID', `${BigInt(first.split('-')[0]!) + 1n}-0`);
    // A client whose cursor precedes a trimmed event cannot be given a gap-free replay.
    const c = await sub(`?since=${BigInt(first.split('-')[0]!) - 1n}-0`);
    await c.until((m) => m.some((x) => x.type === 'resync-required'));
    expect(c.messages.map((m) => m.type).slice(0, 2)).toEqual(['hello', 'resync-required']);
  });

  it('authenticates by header or bearer subprotocol and refuses bad upgrades with a code', async () => {
    const viaProto = await sub('', { protocols: ['lxcq.v1', `bearer.${TOKEN}`] });
    await viaProto.until((m) => m[0]?.type === 'hello');
    expect(viaProto.ws.protocol).toBe('lxcq.v1');
    for (const [query, opts, status, code] of [
      ['', {}, 401, 'LXCQ_UNAUTHORIZED'],
      ['', { token: 'nope-nope-nope-nope' }, 401, 'LXCQ_UNAUTHORIZED'],
      ['?types=bogus', { token: TOKEN }, 400, 'LXCQ_VALIDATION'],
      ['?since=yesterday', { token: TOKEN }, 400, 'LXCQ_VALIDATION'],
      ['?container=../etc', { token: TOKEN }, 400, 'LXCQ_VALIDATION'],
    ] as const) {
      const err = (await Sub.open(s.url, query, opts).then(
        () => null,
        (e: unknown) => e,
      )) as { status: number; body: string } | null;
      expect(err, query).not.toBeNull();
      expect(err?.status).toBe(status);
      expect((JSON.parse(err?.body ?? '{}') as { error: { code: string } }).error.code).toBe(code);
    }
  });

  it('closes a client that stops reading with 4008, without hurting the others', async () => {
    const good = await sub('?types=job.progress');
    const slow = await sub('?types=job.progress');
    await slow.until((m) => m[0]?.type === 'hello');
    // Stop reading: the kernel buffers fill, then the server's send buffer passes its bound.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    // Enough to fill the paused socket's kernel buffers (several MB on loopback) and then some.
    const big = 'x'.repeat(8000);
    const before = good.events().length;
    for (let i = 0; i < 4000; i++)
      await s.redis.xadd(
        'lxcq:events',
        '*',
        'type',
        'job.progress',
        'time',
        new Date().toISOString(),
        'data',
        JSON.stringify({ percent: i % 100, stage: big }),
      );
    await good.until((m) => m.filter((x) => x.type === 'job.progress').length >= before + 4000, 30_000);
    const status = () => s.api.ctx.events?.stats;
    for (let i = 0; i < 100 && (status()?.slowClosed ?? 0) === 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(status()?.slowClosed).toBeGreaterThan(0);
    // the slow one saw every event up to where it was cut off, and none of it twice
    const got = slow.events().map((m) => m.id);
    expect(new Set(got).size).toBe(got.length);
    expect(s.api.ctx.events?.clientCount).toBeLessThan(subs.length);
    // the server still serves
    expect((await s.http('GET', '/v1/health', undefined, { token: null })).status).toBe(200);
  });
});

describe('dead clients', () => {
  let api: Stack;
  beforeAll(async () => {
    api = await Stack.start({ noWorker: true, apiEnv: { LXCQ_WS_PING_MS: '300' } });
  });
  afterAll(async () => {
    await api?.close();
  });

  it('pings each client once per period, the clients spread over it', async () => {
    const clients = await Promise.all(
      Array.from({ length: 20 }, () => Sub.open(api.url, '', { token: TOKEN })),
    );
    subs.push(...clients);
    const pings: number[][] = clients.map(() => []);
    clients.forEach((c, i) => c.ws.on('ping', () => pings[i]?.push(Date.now())));
    await new Promise((r) => setTimeout(r, 1000)); // a little over 3 periods of 300 ms
    for (const p of pings) expect(p.length).toBeGreaterThanOrEqual(2);
    // Not one moment for all: the first pings of the 20 clients span most of a period.
    const firsts = pings.map((p) => p[0] as number);
    expect(Math.max(...firsts) - Math.min(...firsts)).toBeGreaterThan(100);
    for (const c of clients) c.ws.close();
  });

  it('drops a client that stops answering pings', async () => {
    const dead = await Sub.open(api.url, '', { token: TOKEN });
    subs.push(dead);
    await dead.until((m) => m[0]?.type === 'hello');
    (dead.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    for (let i = 0; i < 100 && (api.api.ctx.events?.stats.deadDropped ?? 0) === 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(api.api.ctx.events?.stats.deadDropped).toBe(1);
    expect(api.api.ctx.events?.clientCount).toBe(0);
  });
});
