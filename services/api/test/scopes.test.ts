// Every route of the running API, tried with no token and with a token of each scope. The table
// is the API's own route list (its OpenAPI document): a route queueing a catalogue operation
// needs the operation's scope (`operate`, `admin` for convert); every other route must be named below with its scope, so a new route fails
// this test until someone decides what it needs, and a new operation is covered without a new test.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATIONS, OPERATION_NAMES, isOperationName, type OperationName, type Scope } from '@lxcq/shared';
import { Stack, TOKEN } from './harness.ts';

/** Routes that queue no operation, and the scope each needs (`public`: no token at all). */
const OTHER_ROUTES: Record<string, Scope | 'public'> = {
  'GET /v1/health': 'public',
  'GET /metrics': 'read',
  'GET /v1/events': 'read',
  'GET /v1/hosts': 'read',
  'GET /v1/hosts/{id}': 'read',
  'POST /v1/hosts/{id}/drain': 'admin',
  'POST /v1/hosts/{id}/undrain': 'admin',
  'DELETE /v1/hosts/{id}': 'admin',
  'GET /v1/hosts/{id}/pools': 'read',
  'GET /v1/containers': 'read',
  'GET /v1/containers/{name}': 'read',
  'GET /v1/containers/{name}/snapshots': 'read',
  'GET /v1/containers/{name}/config': 'read',
  'GET /v1/containers/{name}/state': 'read',
  'GET /v1/jobs': 'read',
  'GET /v1/jobs/{id}': 'read',
  'GET /v1/jobs/{id}/wait': 'read',
  'GET /v1/jobs/{id}/log': 'read',
  'DELETE /v1/jobs/{id}': 'operate',
};

/** Catalogue operations no route queues, and why. */
const NOT_ROUTED: Partial<Record<OperationName, string>> = {
  'config.clear': 'PATCH /v1/containers/{name}/config clears keys through config.set',
};

const TOKENS: Record<Scope, string> = {
  read: 'scope-read-token-0123456789',
  operate: 'scope-operate-token-0123456789',
  admin: 'scope-admin-token-0123456789',
};
const RANK: Record<Scope, number> = { read: 0, operate: 1, admin: 2 };

const dir = mkdtempSync(join(tmpdir(), 'lxcq-scopes-'));
const tokensFile = join(dir, 'tokens.json');
writeFileSync(
  tokensFile,
  JSON.stringify({
    tokens: Object.entries(TOKENS).map(([scope, token]) => ({ name: scope, token, scopes: [scope] })),
  }),
);

let s: Stack;
const routes: { method: string; path: string; need: Scope | 'public'; operation?: string }[] = [];

beforeAll(async () => {
  s = await Stack.start({ tokensFile, noWorker: true });
  const doc = s.api.app.swagger() as {
    paths: Record<string, Record<string, { operationId?: string }>>;
  };
  const unlisted: string[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const key = `${method.toUpperCase()} ${path}`;
      const operation = op.operationId;
      const need = isOperationName(operation) ? OPERATIONS[operation].scope : OTHER_ROUTES[key];
      if (need === undefined) unlisted.push(key);
      else routes.push({ method: method.toUpperCase(), path, need, ...(operation ? { operation } : {}) });
    }
  }
  expect(unlisted, 'routes this test does not know: add them to OTHER_ROUTES with their scope').toEqual([]);
});
afterAll(async () => {
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends a request to the route, with its path parameters filled in and a body nothing accepts. */
async function probe(
  method: string,
  path: string,
  token: string | null,
): Promise<{ status: number; body: { error?: { code: string; details?: Record<string, unknown> } } }> {
  // A name for {name}/{snap}, a job id for {id} (a valid name too, so host routes take it as well).
  const url = path
    .replace('{id}', '00000000-0000-4000-8000-000000000000')
    .replace(/\{[a-z]+\}/g, 'scope-probe');
  const withBody = method !== 'GET' && method !== 'DELETE';
  const res = await fetch(`${s.url}${url}`, {
    method,
    headers: {
      ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
      ...(withBody ? { 'content-type': 'application/json' } : {}),
    },
    ...(withBody ? { body: JSON.stringify({ scopeProbe: true }) } : {}),
  });
  const text = await res.text();
  // /metrics answers in Prometheus' text format; errors are always JSON.
  const json = res.headers.get('content-type')?.startsWith('application/json') ?? false;
  return { status: res.status, body: json && text ? (JSON.parse(text) as { error?: never }) : {} };
}

describe('route scopes', () => {
  it('the table covers every route and every operation of the catalogue', () => {
    expect(routes.length).toBeGreaterThanOrEqual(Object.keys(OTHER_ROUTES).length);
    const routed = new Set(routes.flatMap((r) => (r.operation ? [r.operation] : [])));
    const missing = OPERATION_NAMES.filter((op) => !routed.has(op) && NOT_ROUTED[op] === undefined);
    expect(missing, 'operations no route queues').toEqual([]);
    for (const key of Object.keys(OTHER_ROUTES))
      expect(
        routes.some((r) => `${r.method} ${r.path}` === key),
        `${key} is gone`,
      ).toBe(true);
  });

  it('no token: 401 on every route but the public ones', async () => {
    for (const r of routes) {
      const res = await probe(r.method, r.path, null);
      const where = `${r.method} ${r.path} without a token`;
      if (r.need === 'public') expect([401, 403], where).not.toContain(res.status);
      else {
        expect(res.status, where).toBe(401);
        expect(res.body.error?.code, where).toBe('LXCQ_UNAUTHORIZED');
      }
    }
  });

  it.each(Object.keys(TOKENS) as Scope[])(
    'a %s token passes exactly the routes its scope covers',
    async (scope) => {
      for (const r of routes) {
        const res = await probe(r.method, r.path, TOKENS[scope]);
        const where = `${r.method} ${r.path} (needs ${r.need}) with a ${scope} token: ${res.status} ${JSON.stringify(res.body)}`;
        if (r.need !== 'public' && RANK[scope] < RANK[r.need]) {
          expect(res.status, where).toBe(403);
          expect(res.body.error?.code, where).toBe('LXCQ_FORBIDDEN');
          expect(res.body.error?.details, where).toEqual({ need: r.need, have: [scope] });
        } else {
          // Past the gate: the request fails further on (no such container, job or host; a body
          // no schema takes), but never for want of a token.
          expect([401, 403], where).not.toContain(res.status);
        }
      }
    },
  );

  it('the probes queued nothing', async () => {
    const jobs = await s.http<{ jobs: unknown[] }>('GET', '/v1/jobs', undefined, { token: TOKEN });
    expect(jobs.body.jobs).toEqual([]);
  });
});
