// Failure paths through real HTTP: every bad input is a 4xx with a code, nothing is half-made,
// and the process keeps serving.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { ERROR_CODES, Ledger, Store, keys } from '@lxcq/shared';
import { Validator } from '@seriousme/openapi-schema-validator';
import { pino } from 'pino';
import { buildApp } from '../src/app.ts';
import { sha256 } from '../src/auth.ts';
import { apiConfig } from '../src/config.ts';
import { Stack, TEST_CONFIG, TOKEN, rawRequest, type Job } from './harness.ts';

let s: Stack;
const dir = mkdtempSync(join(tmpdir(), 'lxcq-tokens-'));
const tokensFile = join(dir, 'tokens.json');
writeFileSync(
  tokensFile,
  JSON.stringify({
    tokens: [
      { name: 'viewer', token: 'viewer-token-0123456789', scopes: ['read'] },
      { name: 'operator', token: 'operator-token-0123456789', scopes: ['operate'] },
    ],
  }),
);

beforeAll(async () => {
  s = await Stack.start({ tokensFile, apiEnv: { LXCQ_BODY_LIMIT: '4096', LXCQ_SUBMIT_GRACE_MS: '500' } });
  const j = await s.run('POST', '/v1/containers', { name: 'c1', template: 'busybox', config: TEST_CONFIG });
  expect(j.state).toBe('completed');
});
afterAll(async () => {
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

type Err = { error: { code: string; message: string; details?: Record<string, unknown> } };

async function expectError(
  p: Promise<{ status: number; body: Err }>,
  status: number,
  code: keyof typeof ERROR_CODES,
) {
  const r = await p;
  expect(r.body.error?.code, JSON.stringify(r.body)).toBe(code);
  expect(r.status).toBe(status);
  expect(ERROR_CODES[code].status).toBe(status);
  expect(r.body.error.message.length).toBeGreaterThan(5);
  return r.body.error;
}

describe('authentication and scopes', () => {
  it('health needs no token; everything else does', async () => {
    expect((await s.http('GET', '/v1/health', undefined, { token: null })).status).toBe(200);
    await expectError(
      s.http<Err>('GET', '/v1/containers', undefined, { token: null }),
      401,
      'LXCQ_UNAUTHORIZED',
    );
    await expectError(
      s.http<Err>('GET', '/v1/containers', undefined, { token: 'wrong-token-0123456789' }),
      401,
      'LXCQ_UNAUTHORIZED',
    );
    await expectError(
      s.http<Err>('GET', '/v1/jobs', undefined, { headers: { authorization: 'Basic abc' }, token: null }),
      401,
      'LXCQ_UNAUTHORIZED',
    );
  });
  it('read tokens read but cannot operate; operate tokens cannot drain hosts', async () => {
    expect(
      (await s.http('GET', '/v1/containers', undefined, { token: 'viewer-token-0123456789' })).status,
    ).toBe(200);
    const e = await expectError(
      s.http<Err>('POST', '/v1/containers/c1/start', undefined, { token: 'viewer-token-0123456789' }),
      403,
      'LXCQ_FORBIDDEN',
    );
    expect(e.details).toMatchObject({ need: 'operate', have: ['read'] });
    await expectError(
      s.http<Err>('POST', `/v1/hosts/${s.hostId}/drain`, undefined, { token: 'operator-token-0123456789' }),
      403,
      'LXCQ_FORBIDDEN',
    );
    const r = await s.http<Job>('POST', '/v1/containers/c1/start?wait=30', undefined, {
      token: 'operator-token-0123456789',
    });
    expect(r.body.state).toBe('completed');
    await s.run('POST', '/v1/containers/c1/stop');
  });
});

describe('bad input is a 4xx with a code', () => {
  it('malformed JSON, wrong types, unknown fields, missing fields', async () => {
    await expectError(
      s.http<Err>('POST', '/v1/containers', undefined, { raw: '{"name": "x",' }),
      400,
      'LXCQ_BAD_REQUEST',
    );
    await expectError(
      s.http<Err>('POST', '/v1/containers', { name: 'x1', template: 'busybox', start: 'yes' }),
      400,
      'LXCQ_VALIDATION',
    );
    await expectError(
      s.http<Err>('POST', '/v1/containers', { name: 'x1', template: 'busybox', bogus: 1 }),
      400,
      'LXCQ_VALIDATION',
    );
    await expectError(s.http<Err>('POST', '/v1/containers', { name: 'x1' }), 400, 'LXCQ_VALIDATION');
    await expectError(
      s.http<Err>('POST', '/v1/containers', { name: 'x1', template: 'ubuntu' }),
      400,
      'LXCQ_VALIDATION',
    );
    await expectError(s.http<Err>('POST', '/v1/containers', [1, 2]), 400, 'LXCQ_VALIDATION');
    await expectError(s.http<Err>('POST', '/v1/containers/c1/exec', { argv: [] }), 400, 'LXCQ_VALIDATION');
    await expectError(
      s.http<Err>('POST', '/v1/containers/c1/exec', { argv: ['ls'], cwd: 'relative' }),
      400,
      'LXCQ_VALIDATION',
    );
    await expectError(s.http<Err>('PUT', '/v1/containers/c1/limits', {}), 400, 'LXCQ_VALIDATION');
    await expectError(
      s.http<Err>('PUT', '/v1/containers/c1/limits', { memory: '12 parsecs' }),
      400,
      'LXCQ_VALIDATION',
    );
    await expectError(s.http<Err>('PATCH', '/v1/containers/c1/config', {}), 400, 'LXCQ_VALIDATION');
    await expectError(s.http<Err>('GET', '/v1/jobs?limit=100000'), 400, 'LXCQ_VALIDATION');
    await expectError(s.http<Err>('GET', '/v1/jobs/not-a-uuid'), 400, 'LXCQ_VALIDATION');
    await expectError(
      s.http<Err>('POST', '/v1/containers/c1/start', undefined, {
        headers: { 'idempotency-key': 'x'.repeat(200) },
      }),
      400,
      'LXCQ_BAD_REQUEST',
    );
  });

  it.each(['../etc', 'a/b', '.hidden', 'a..b', 'x'.repeat(65), 'sp ace', '-dash'])(
    'refuses the name %j before it reaches anything',
    async (name) => {
      const r = await s.http<Err>('POST', '/v1/containers', { name, template: 'busybox' });
      expect(r.status).toBe(400);
      expect(['LXCQ_VALIDATION', 'LXCQ_INVALID_NAME']).toContain(r.body.error.code);
      const r2 = await s.http<Err>('POST', `/v1/containers/${encodeURIComponent(name)}/start`);
      expect([400, 404]).toContain(r2.status);
      const r3 = await s.http<Err>('POST', '/v1/containers/c1/rename', { newName: name });
      expect(r3.status).toBe(400);
    },
  );

  it('bodies over the bound are 413', async () => {
    await expectError(
      s.http<Err>('POST', '/v1/containers/c1/exec', { argv: ['echo', 'x'.repeat(10_000)] }),
      413,
      'LXCQ_BODY_TOO_LARGE',
    );
  });

  it('a 20 MB body: the 413 reaches the client every time, never a reset connection', async () => {
    // Seen once elsewhere: a reset instead of the 413 in about one try in ten. Not reproduced on
    // this machine (0 of 80 with bare Fastify, 0 of 15 here); this guards the behaviour.
    const big = JSON.stringify({ argv: ['echo', 'x'.repeat(20 * 1024 * 1024)] });
    for (let i = 0; i < 15; i++) {
      await expectError(
        s.http<Err>('POST', '/v1/containers/c1/exec', undefined, { raw: big }),
        413,
        'LXCQ_BODY_TOO_LARGE',
      );
    }
    expect((await s.http('GET', '/v1/health')).status).toBe(200);
  });

  it('an empty body sent as application/json means {} (curl -X POST -H content-type: json)', async () => {
    const r = await s.http<Job>('POST', '/v1/containers/c1/freeze?wait=0', undefined, { raw: '' });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body.operation).toBe('freeze');
    expect((await s.wait(r.body.id)).state).toBe('failed'); // c1 is stopped: nothing to freeze
    // A body route still validates the empty object as {}: a 400 naming the missing field.
    const c = await s.http<Err>('POST', '/v1/containers', undefined, { raw: ' ' });
    expect(c.status).toBe(400);
    expect(c.body.error.code).toBe('LXCQ_VALIDATION');
    expect(c.body.error.message).toMatch(/name|template/);
  });

  it('unknown routes are 404 with a code', async () => {
    await expectError(s.http<Err>('GET', '/v1/nothing'), 404, 'LXCQ_NOT_FOUND');
  });
});

describe('requests refused before routing still get an lxcq error', () => {
  const port = () => Number(new URL(s.url).port);
  const parsed = async (p: Promise<{ status: number; body: string }>, status: number, code: string) => {
    const r = await p;
    expect(r.status, r.body).toBe(status);
    const body = JSON.parse(r.body) as Err;
    expect(body.error.code).toBe(code);
    expect(ERROR_CODES[code as keyof typeof ERROR_CODES].status).toBe(status);
    expect(body.error.message.length).toBeGreaterThan(5);
  };
  const req = (line: string, headers: string[] = []) =>
    rawRequest(port(), [line, 'Host: x', 'Connection: close', ...headers, '', ''].join('\r\n'));

  it('not HTTP, an unknown method, a NUL in the path: 400 LXCQ_BAD_REQUEST', async () => {
    await parsed(req('FOO /v1/hosts HTTP/1.1'), 400, 'LXCQ_BAD_REQUEST');
    await parsed(req('GET /v1/containers/a\0b HTTP/1.1'), 400, 'LXCQ_BAD_REQUEST');
    await parsed(rawRequest(port(), 'hello\r\n\r\n'), 400, 'LXCQ_BAD_REQUEST');
    await parsed(
      req('POST /v1/containers HTTP/1.1', ['Transfer-Encoding: chunked', 'Content-Length: 3']),
      400,
      'LXCQ_BAD_REQUEST',
    );
  });

  it('headers over 16 KiB: 431 LXCQ_HEADERS_TOO_LARGE', async () => {
    await parsed(
      req('GET /v1/hosts HTTP/1.1', [`Authorization: Bearer ${'x'.repeat(20_000)}`]),
      431,
      'LXCQ_HEADERS_TOO_LARGE',
    );
  });

  it('a URL the router cannot take: 400 LXCQ_BAD_REQUEST', async () => {
    await parsed(req('POST /v1/containers/%/start HTTP/1.1'), 400, 'LXCQ_BAD_REQUEST');
    await parsed(req(`GET /v1/containers/${'a'.repeat(300)} HTTP/1.1`), 400, 'LXCQ_BAD_REQUEST');
  });

  it('a broken WebSocket handshake, or one to another path, gets a JSON error', async () => {
    const ws = ['Upgrade: websocket', 'Connection: Upgrade', `Authorization: Bearer ${TOKEN}`];
    const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==';
    await parsed(
      req('GET /v1/events HTTP/1.1', [...ws, 'Sec-WebSocket-Version: 13']),
      400,
      'LXCQ_BAD_REQUEST',
    );
    await parsed(
      req('GET /v1/events HTTP/1.1', [...ws, key, 'Sec-WebSocket-Version: 7']),
      400,
      'LXCQ_BAD_REQUEST',
    );
    await parsed(
      req('GET /v1/events HTTP/1.1', [
        ...ws,
        key,
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Protocol: a b',
      ]),
      400,
      'LXCQ_BAD_REQUEST',
    );
    await parsed(
      req('GET /v1/other HTTP/1.1', [...ws, key, 'Sec-WebSocket-Version: 13']),
      404,
      'LXCQ_NOT_FOUND',
    );
    // and it still serves
    expect((await s.http('GET', '/v1/health', undefined, { token: null })).status).toBe(200);
  });
});

describe('the OpenAPI document', () => {
  it('/docs/json is a valid OpenAPI 3.0.3 document (a validator made for OpenAPI, strict)', async () => {
    const r = await s.http<Record<string, unknown>>('GET', '/docs/json');
    expect(r.status).toBe(200);
    expect(r.body['openapi']).toBe('3.0.3');
    const res = await new Validator().validate(r.body);
    expect(res.errors ?? [], JSON.stringify(res.errors, null, 1)?.slice(0, 2000)).toEqual([]);
    expect(res.valid).toBe(true);
    // exec's timeout: exclusive in 3.0's form, so a generator keeps the bound
    const text = JSON.stringify(r.body);
    expect(text).not.toMatch(/"exclusiveMinimum":\d/);
    expect(text).toContain('"exclusiveMinimum":true');
  });
});

describe('an API process that is stopping', () => {
  it("answers 503 LXCQ_SHUTTING_DOWN (an lxcq error, not Fastify's) to requests that still arrive", async () => {
    const other = await buildApp(
      apiConfig({ LXCQ_REDIS_URL: s.redisServer.url, LXCQ_TOKEN: TOKEN }, sha256),
      {
        logger: pino({ level: 'silent' }),
      },
    );
    const get = () =>
      other.app.inject({ method: 'GET', url: '/v1/hosts', headers: { authorization: `Bearer ${TOKEN}` } });
    expect((await get()).statusCode).toBe(200);
    const closed = other.close();
    const r = await get();
    await closed;
    expect(r.statusCode).toBe(503);
    const body = JSON.parse(r.body) as Err;
    expect(body.error.code).toBe('LXCQ_SHUTTING_DOWN');
    expect(ERROR_CODES.LXCQ_SHUTTING_DOWN.status).toBe(503);
  });
});

describe('a submission cut off half-way', () => {
  it('is failed with LXCQ_REDIS_UNAVAILABLE and frees its names, instead of staying queued forever', async () => {
    // What a submission leaves when Redis (or the API) goes away after the job's record was
    // written and before the job reached its host's queue: the client got an error.
    // The ledger's submit records the job, claims its name and marks it as being submitted in one
    // step; what a cut-off submission leaves is that, and no job in the host's queue.
    const ledger = new Ledger(new Store(s.redis, keys()));
    const id = randomUUID();
    const created = await ledger.submit(
      {
        id,
        operation: 'create',
        container: 'cut1',
        host: s.hostId,
        payload: { template: 'busybox' },
        createdAt: new Date(Date.now() - 60_000).toISOString(),
        locks: ['cut1'],
      },
      { claims: ['cut1'] },
    );
    expect(created.recorded).toBe(true);
    expect(await s.redis.get('lxcq:claim:cut1')).toBe(id);
    expect(await s.redis.zscore('lxcq:submitting', id)).not.toBeNull();
    let j: Job | undefined;
    for (let i = 0; i < 200; i++) {
      j = (await s.http<Job>('GET', `/v1/jobs/${id}`)).body;
      if (j.state !== 'queued') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(j?.state).toBe('failed');
    expect(j?.error?.code).toBe('LXCQ_REDIS_UNAVAILABLE');
    expect(await s.redis.get('lxcq:claim:cut1')).toBeNull();
    expect(await s.redis.zscore('lxcq:submitting', id)).toBeNull();
    // an ordinary submission is not touched: it leaves the set once queued
    const ok = await s.run('POST', '/v1/containers/c1/exec', { argv: ['true'] }).catch(() => null);
    expect(ok === null || ok.state !== 'queued').toBe(true);
    expect(await s.redis.zcard('lxcq:submitting')).toBe(0);
  });
});

describe('policy, existence and state', () => {
  it('refuses hook, host mount and other dangerous config keys with 403, creating nothing', async () => {
    const e = await expectError(
      s.http<Err>('POST', '/v1/containers', {
        name: 'evil',
        template: 'busybox',
        config: {
          'lxc.hook.pre-start': '/bin/sh -c "touch /tmp/pwned"',
          'lxc.mount.entry': '/etc etc none bind 0 0',
        },
      }),
      403,
      'LXCQ_CONFIG_FORBIDDEN',
    );
    expect((e.details?.refused as unknown[]).length).toBe(2);
    await expectError(
      s.http<Err>('PATCH', '/v1/containers/c1/config', { set: { 'lxc.apparmor.profile': 'unconfined' } }),
      403,
      'LXCQ_CONFIG_FORBIDDEN',
    );
    await expectError(
      s.http<Err>('PATCH', '/v1/containers/c1/config', {
        set: { 'lxc.environment': 'A=1\nlxc.hook.start = /x' },
      }),
      403,
      'LXCQ_CONFIG_FORBIDDEN',
    );
    expect(s.lxcLs()).toEqual(['c1']);
    expect((await s.http('GET', '/v1/containers/evil')).status).toBe(404);
  });

  it('unknown container, job and host are 404', async () => {
    await expectError(s.http<Err>('POST', '/v1/containers/ghost/start'), 404, 'LXCQ_CONTAINER_NOT_FOUND');
    await expectError(s.http<Err>('GET', '/v1/containers/ghost'), 404, 'LXCQ_CONTAINER_NOT_FOUND');
    await expectError(
      s.http<Err>('GET', '/v1/jobs/00000000-0000-0000-0000-000000000000'),
      404,
      'LXCQ_JOB_NOT_FOUND',
    );
    await expectError(s.http<Err>('GET', '/v1/hosts/nohost'), 404, 'LXCQ_HOST_NOT_FOUND');
    await expectError(
      s.http<Err>('POST', '/v1/containers', { name: 'x2', template: 'busybox', host: 'nohost' }),
      404,
      'LXCQ_HOST_NOT_FOUND',
    );
  });

  it('a taken name is 409, also while its create is still queued', async () => {
    await expectError(
      s.http<Err>('POST', '/v1/containers', { name: 'c1', template: 'busybox' }),
      409,
      'LXCQ_CONTAINER_EXISTS',
    );
    const first = await s.http<Job>('POST', '/v1/containers', {
      name: 'c2',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(first.status).toBe(202);
    await expectError(
      s.http<Err>('POST', '/v1/containers', { name: 'c2', template: 'busybox' }),
      409,
      'LXCQ_CONTAINER_EXISTS',
    );
    await expectError(
      s.http<Err>('POST', '/v1/containers/c1/clone', { newName: 'c2' }),
      409,
      'LXCQ_CONTAINER_EXISTS',
    );
    const done = await s.http<Job>('GET', `/v1/jobs/${first.body.id}/wait?timeout=60`);
    expect(done.body.state).toBe('completed');
  });

  it('an operation impossible in the current state fails its job with LXCQ_INVALID_STATE and liblxc untouched', async () => {
    for (const [op, body] of [
      ['freeze', undefined],
      ['exec', { argv: ['true'] }],
      ['checkpoint', {}],
    ] as const) {
      const j = await s.run('POST', `/v1/containers/c1/${op}`, body);
      expect(j.state, op).toBe('failed');
      expect(j.error?.code, `${op}: ${j.error?.message ?? ''}`).toBe('LXCQ_INVALID_STATE');
      expect(j.error?.message).toMatch(/c1 is STOPPED/);
    }
    await s.run('POST', '/v1/containers/c1/start');
    const j = await s.run('POST', '/v1/containers/c1/rename', { newName: 'c1-new' });
    expect(j.error?.code).toBe('LXCQ_INVALID_STATE');
    expect(s.lxcLs()).toContain('c1');
    // liblxc cannot snapshot a running directory-backed container (lxc-snapshot exits 1, silently)
    const snap = await s.run('POST', '/v1/containers/c1/snapshots', { name: 'live' });
    expect(snap.error?.code).toBe('LXCQ_INVALID_STATE');
    expect(snap.error?.message).toMatch(/c1 is RUNNING.*stop/);
    expect((await s.http<unknown[]>('GET', '/v1/containers/c1/snapshots')).body).toEqual([]);
    await s.run('POST', '/v1/containers/c1/stop');
  });

  it('a directory in the lxcpath that is no container is neither overwritten nor removed', async () => {
    mkdirSync(join(s.lxcpath, 'notmine', 'rootfs'), { recursive: true });
    writeFileSync(join(s.lxcpath, 'notmine', 'rootfs', 'data'), 'keep me');
    const c = await s.run('POST', '/v1/containers', {
      name: 'notmine',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(c.error?.code).toBe('LXCQ_CONTAINER_EXISTS');
    expect(c.error?.message).toMatch(/is not a container/);
    const k = await s.run('POST', '/v1/containers/c1/clone', { newName: 'notmine' });
    expect(k.error?.code).toBe('LXCQ_CONTAINER_EXISTS');
    expect(readFileSync(join(s.lxcpath, 'notmine', 'rootfs', 'data'), 'utf8')).toBe('keep me');
    rmSync(join(s.lxcpath, 'notmine'), { recursive: true, force: true });
  });

  it('a missing snapshot or checkpoint fails with its 404 code', async () => {
    const j = await s.run('POST', '/v1/containers/c1/snapshots/nosnap/restore');
    expect(j.error?.code).toBe('LXCQ_SNAPSHOT_NOT_FOUND');
    const k = await s.run('POST', '/v1/containers/c1/restore', { checkpoint: 'cp-none' });
    expect(k.error?.code).toBe('LXCQ_CHECKPOINT_NOT_FOUND');
  });

  it('migrate to a host that never registered fails with LXCQ_HOST_NOT_FOUND', async () => {
    const j = await s.run('POST', '/v1/containers/c1/migrate', { targetHost: 'h2' });
    expect(j.error?.code).toBe('LXCQ_HOST_NOT_FOUND');
  });

  it('a local image that is not on the host fails with LXCQ_IMAGE_NOT_FOUND and leaves nothing behind', async () => {
    const j = await s.run('POST', '/v1/containers', {
      name: 'img1',
      template: 'local',
      local: { rootfs: 'missing.tar.xz', metadata: 'meta.tar.xz' },
    });
    expect(j.error?.code).toBe('LXCQ_IMAGE_NOT_FOUND');
    expect(s.lxcLs()).not.toContain('img1');
    // the name is free again
    expect((await s.http('GET', '/v1/containers/img1')).status).toBe(404);
  });
});

describe('cancel', () => {
  it('cancels a queued job (it never runs); refuses to cancel a running or ended one', async () => {
    await s.run('POST', '/v1/containers/c1/start');
    const busy = await s.http<Job>('POST', '/v1/containers/c1/exec', { argv: ['sleep', '2'] });
    const queued = await s.http<Job>('POST', '/v1/containers/c1/stop');
    expect(queued.body.state).toBe('queued');
    // wait until the exec is running
    for (
      let i = 0;
      i < 50 && (await s.http<Job>('GET', `/v1/jobs/${busy.body.id}`)).body.state !== 'active';
      i++
    )
      await new Promise((r) => setTimeout(r, 50));
    await expectError(s.http<Err>('DELETE', `/v1/jobs/${busy.body.id}`), 409, 'LXCQ_JOB_NOT_CANCELLABLE');
    const c = await s.http<Job>('DELETE', `/v1/jobs/${queued.body.id}`);
    expect(c.status).toBe(200);
    expect(c.body.state).toBe('cancelled');
    await s.http('GET', `/v1/jobs/${busy.body.id}/wait?timeout=30`);
    await new Promise((r) => setTimeout(r, 300));
    expect((await s.http<Job>('GET', `/v1/jobs/${queued.body.id}`)).body.state).toBe('cancelled');
    expect(s.lxcState('c1')).toBe('RUNNING'); // the cancelled stop never ran
    await expectError(s.http<Err>('DELETE', `/v1/jobs/${busy.body.id}`), 409, 'LXCQ_JOB_NOT_CANCELLABLE');
    await s.run('POST', '/v1/containers/c1/stop');
  });
});

describe('hosts', () => {
  it('lists the worker host with its capabilities; a drained host takes no new containers', async () => {
    const hosts = await s.http<{ id: string; status: string; capabilities: Record<string, unknown> }[]>(
      'GET',
      '/v1/hosts',
    );
    expect(hosts.body).toHaveLength(1);
    expect(hosts.body[0]).toMatchObject({ id: s.hostId, status: 'online' });
    expect(hosts.body[0]?.capabilities).toMatchObject({
      liblxcVersion: expect.stringMatching(/^\d+\.\d+/) as unknown,
      cores: expect.any(Number) as unknown,
    });
    expect((await s.http('POST', `/v1/hosts/${s.hostId}/drain`)).status).toBe(200);
    await expectError(
      s.http<Err>('POST', '/v1/containers', { name: 'x3', template: 'busybox' }),
      503,
      'LXCQ_NO_HOST',
    );
    expect((await s.http('POST', `/v1/hosts/${s.hostId}/undrain`)).status).toBe(200);
    const health = await s.http<{ checks: { name: string; status: string }[] }>(
      'GET',
      '/v1/health',
      undefined,
      {
        token: null,
      },
    );
    expect(health.status).toBe(200);
    // (a host without CRIU makes the whole 'degraded', not failed: look at the hosts check itself)
    expect(health.body.checks.find((c) => c.name === 'hosts')?.status).toBe('ok');
  });
});
