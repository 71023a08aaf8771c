// docs/api.md is the contract a user of a cloned repository reads: every route the API serves
// (its OpenAPI document) must have its section there, and every section must be a real route.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { buildApp, type BuiltApp } from '../src/app.ts';
import { sha256 } from '../src/auth.ts';
import { apiConfig } from '../src/config.ts';
import { TOKEN, startRedis, type RedisServer } from './harness.ts';

const DOC = fileURLToPath(new URL('../../../docs/api.md', import.meta.url));
const METHODS = new Set(['get', 'post', 'put', 'patch', 'delete', 'head', 'options']);

interface OpenApi {
  info: { description?: string };
  paths: Record<string, Record<string, { summary?: string; description?: string }>>;
}

/** `METHOD /path` for each operation of the document, in Fastify's `:param` style. */
function openApiRoutes(doc: OpenApi): string[] {
  const out: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) {
      if (METHODS.has(method)) out.push(`${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`);
    }
  }
  return out.sort();
}

/** Routes the doc gives a section: headings of the form #### `METHOD /path`. */
function documentedRoutes(markdown: string): string[] {
  return [...markdown.matchAll(/^#{2,4} `([A-Z]+ \/[^`\s]*)`\s*$/gm)].map((m) => m[1] as string).sort();
}

let redis: RedisServer;
let built: BuiltApp;
let openapi: OpenApi;

beforeAll(async () => {
  redis = await startRedis();
  built = await buildApp(apiConfig({ LXCQ_REDIS_URL: redis.url, LXCQ_TOKEN: TOKEN }, sha256), {
    logger: pino({ level: 'silent' }),
  });
  const res = await built.app.inject({ method: 'GET', url: '/docs/json' });
  expect(res.statusCode).toBe(200);
  openapi = res.json<OpenApi>();
});
afterAll(async () => {
  await built?.close();
  await redis?.stop();
});

describe('docs/api.md', () => {
  it('has a section for every route of the OpenAPI document', () => {
    const routes = openApiRoutes(openapi);
    // The API has dozens of routes; a handful would mean the document was not read right.
    expect(routes.length).toBeGreaterThan(20);
    const documented = new Set(documentedRoutes(readFileSync(DOC, 'utf8')));
    const missing = routes.filter((r) => !documented.has(r));
    expect(
      missing,
      `routes missing from docs/api.md (add a "#### \`METHOD /path\`" section for each): ${missing.join(', ')}`,
    ).toEqual([]);
  });

  it('documents no route the API does not serve', () => {
    const routes = new Set(openApiRoutes(openapi));
    const stale = documentedRoutes(readFileSync(DOC, 'utf8')).filter((r) => !routes.has(r));
    expect(stale, `sections of docs/api.md for routes the API does not serve: ${stale.join(', ')}`).toEqual(
      [],
    );
  });

  it('the OpenAPI text points to docs/api.md and cites nothing a user cannot read', () => {
    expect(openapi.info.description).toContain('docs/api.md');
    const text = JSON.stringify(openapi);
    expect(text).not.toContain('DESIGN');
    expect(openapi.paths['/v1/events']?.get?.summary).toContain('docs/api.md');
  });
});

describe('the route matcher', () => {
  it('maps OpenAPI paths to Fastify style and finds only route headings', () => {
    expect(
      openApiRoutes({
        info: {},
        paths: { '/v1/x/{name}/y/{snap}': { get: {}, delete: {}, parameters: {} } },
      }),
    ).toEqual(['DELETE /v1/x/:name/y/:snap', 'GET /v1/x/:name/y/:snap']);
    expect(
      documentedRoutes(
        '### `GET /v1/a`\nsee `POST /v1/b` here\n### `PUT /v1/c/:name`\n#### `DELETE /v1/d` more\n',
      ),
    ).toEqual(['GET /v1/a', 'PUT /v1/c/:name']);
  });
});
