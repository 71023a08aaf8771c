// What an exec may carry (its argv, env and output can hold anything, secrets included) and what
// the worker holds (the token, the Redis URL) stay where they belong, with a real API, worker,
// Redis and container:
// - the worker started with its secrets in the environment (the compatible way) removes them at
//   start: `exec env` shows no LXCQ_* setting, no token, no Redis URL;
// - a read token sees an exec job without argv, env, stdout and stderr on every route, and no
//   event of the shared stream carries them; an operate token sees them;
// - the WebSocket handshake never echoes `bearer.<token>`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG, TOKEN, type Job } from './harness.ts';
import { Sub } from './ws-client.ts';

const READ = 'read-only-token-0123456789';
const OPERATE = 'operate-token-0123456789';
const METRICS = 'metrics-secret-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'lxcq-secrets-'));
const tokensFile = join(dir, 'tokens.json');
writeFileSync(
  tokensFile,
  JSON.stringify({
    tokens: [
      { name: 'reader', token: READ, scopes: ['read'] },
      { name: 'operator', token: OPERATE, scopes: ['operate'] },
    ],
  }),
);

let s: Stack;
const subs: Sub[] = [];
beforeAll(async () => {
  // As run.sh used to: the admin token, the Redis URL and a metrics token in the worker's
  // environment (LXCQ_REDIS_URL comes from the harness).
  s = await Stack.start({ tokensFile, workerEnv: { LXCQ_TOKEN: TOKEN, LXCQ_METRICS_TOKEN: METRICS } });
  const j = await s.run('POST', '/v1/containers', {
    name: 'sc1',
    template: 'busybox',
    config: TEST_CONFIG,
    start: true,
  });
  expect(j.state, JSON.stringify(j.error)).toBe('completed');
});
afterAll(async () => {
  for (const x of subs) await x.close();
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('exec: a clean environment', () => {
  it('exec env shows no LXCQ_* setting, no token, no Redis URL, even when the worker got them in its environment', async () => {
    const j = await s.run('POST', '/v1/containers/sc1/exec', { argv: ['env'] });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    const env = String(j.result?.stdout).split('\n').filter(Boolean);
    expect(env.some((e) => e.startsWith('PATH='))).toBe(true);
    expect(env.filter((e) => e.startsWith('LXCQ_'))).toEqual([]);
    const all = env.join('\n');
    for (const secret of [TOKEN, METRICS, s.redisServer.url]) expect(all).not.toContain(secret);
  });
});

describe('scopes for outputs', () => {
  const OUT = 'out-marker-7d1c';
  const ERR = 'err-marker-93fa';
  const ARG = 'arg-marker-55be';
  const ENV = 'env-marker-c0a2';
  const markers = [OUT, ERR, ARG, ENV];
  let id = '';
  let cursor = '';

  beforeAll(async () => {
    cursor = (await s.redis.xrevrange('lxcq:events', '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
    const r = await s.http<Job>(
      'POST',
      '/v1/containers/sc1/exec?wait=60',
      {
        argv: ['sh', '-c', `echo ${OUT}; echo ${ERR} >&2; echo $SECRET; exit 3 # ${ARG}`],
        env: { SECRET: ENV },
      },
      { token: OPERATE },
    );
    expect(r.status).toBe(200);
    id = r.body.id;
    // The submitting (operate) token gets the output in the ?wait= answer.
    expect(r.body.result).toMatchObject({ exitCode: 3, stdout: `${OUT}\n${ENV}\n`, stderr: `${ERR}\n` });
  });

  const leaks = (v: unknown) => markers.filter((m) => JSON.stringify(v).includes(m));

  it('a read token reads the job without argv, env and output on every route; it learns what was withheld', async () => {
    const one = await s.http<Job & { withheld?: string[]; payload: Record<string, unknown> }>(
      'GET',
      `/v1/jobs/${id}`,
      undefined,
      { token: READ },
    );
    expect(one.status).toBe(200);
    expect(leaks(one.body)).toEqual([]);
    expect(one.body.result).toMatchObject({ exitCode: 3, timedOut: false });
    expect(one.body.withheld?.sort()).toEqual([
      'payload.argv',
      'payload.env',
      'result.stderr',
      'result.stdout',
    ]);
    const waited = await s.http(`GET`, `/v1/jobs/${id}/wait?timeout=1`, undefined, { token: READ });
    expect(waited.status).toBe(200);
    expect(leaks(waited.body)).toEqual([]);
    const list = await s.http<{ jobs: Job[] }>('GET', '/v1/jobs?container=sc1&limit=500', undefined, {
      token: READ,
    });
    expect(list.body.jobs.some((j) => j.id === id)).toBe(true);
    expect(leaks(list.body)).toEqual([]);
    const all = await s.http('GET', '/v1/jobs?limit=500', undefined, { token: READ });
    expect(leaks(all.body)).toEqual([]);
    const log = await s.http('GET', `/v1/jobs/${id}/log`, undefined, { token: READ });
    expect(log.status).toBe(200);
    expect(leaks(log.body)).toEqual([]);
  });

  it('an operate token (and admin) reads all of it', async () => {
    for (const token of [OPERATE, TOKEN]) {
      const one = await s.http<Job & { withheld?: string[]; payload: { argv: string[]; env: object } }>(
        'GET',
        `/v1/jobs/${id}`,
        undefined,
        { token },
      );
      expect(one.body.withheld).toBeUndefined();
      expect(one.body.payload.env).toEqual({ SECRET: ENV });
      expect(one.body.payload.argv.join(' ')).toContain(ARG);
      expect(one.body.result).toMatchObject({ stdout: `${OUT}\n${ENV}\n`, stderr: `${ERR}\n` });
      const list = await s.http<{ jobs: Job[] }>('GET', '/v1/jobs?container=sc1', undefined, { token });
      expect(leaks(list.body.jobs.find((j) => j.id === id)).sort()).toEqual([...markers].sort());
    }
  });

  it('no event carries the argv, env or output: job.completed has the exit code (replayed and live)', async () => {
    const replay = await Sub.open(s.url, `?since=${cursor}&job=${id}`, { token: READ });
    subs.push(replay);
    await replay.until((m) => m.some((x) => x.type === 'job.completed'));
    const done = replay.events().find((e) => e.type === 'job.completed');
    expect((done?.data?.result as { exitCode: number }).exitCode).toBe(3);
    expect(replay.events().map((e) => e.type)).toEqual(
      expect.arrayContaining(['job.queued', 'job.active', 'job.completed']),
    );
    expect(leaks(replay.messages)).toEqual([]);
    // Not even in the stream itself (kept for days): the worker never wrote the output there.
    expect(leaks(await s.redis.xrange('lxcq:events', `(${cursor}`, '+'))).toEqual([]);

    const live = await Sub.open(s.url, '?types=job.*', { token: OPERATE });
    subs.push(live);
    await live.until((m) => m[0]?.type === 'hello');
    const r = await s.http<Job>(
      'POST',
      '/v1/containers/sc1/exec',
      { argv: ['echo', OUT] },
      { token: OPERATE },
    );
    await live.until((m) => m.some((x) => x.job === r.body.id && x.type === 'job.completed'));
    expect(leaks(live.messages)).toEqual([]);
  });
});

describe('the WebSocket handshake', () => {
  it('answers lxcq.v1 and never echoes bearer.<token>; offering only the bearer one is refused with a code', async () => {
    const ok = await Sub.open(s.url, '', { protocols: ['lxcq.v1', `bearer.${READ}`] });
    subs.push(ok);
    await ok.until((m) => m[0]?.type === 'hello');
    expect(ok.ws.protocol).toBe('lxcq.v1');
    const refused = await Sub.open(s.url, '', { protocols: [`bearer.${READ}`] }).then(
      (x): { status: number; body: string } => {
        subs.push(x);
        return { status: 101, body: x.ws.protocol };
      },
      (e: unknown) => e as { status: number; body: string },
    );
    expect(refused.status).toBe(400);
    expect(refused.body).not.toContain(READ);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'LXCQ_BAD_REQUEST' } });
  });
});
