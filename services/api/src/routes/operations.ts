import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Type, { type TSchema } from 'typebox';
import {
  LxcqError,
  OPERATIONS,
  PoolInfo,
  poolTarget,
  scopeSatisfies,
  type OperationName,
  type PayloadOf,
} from '@lxcq/shared';
import type { ApiContext } from '../context.ts';
import { ErrorSchema, HostParams, JobSchema, NameParams, SnapParams, WaitQuery } from '../schemas.ts';

const IDEMPOTENCY_RE = /^[\x21-\x7e]{1,128}$/;

type Params = { name: string; snap?: string; id?: string; pool?: string };

/**
 * Declares one mutating route: the body schema, how the body and path map onto the operation's
 * payload, and the shared answer (202 with the job, or the ended job when ?wait lets it end).
 */
function route<N extends OperationName>(
  app: FastifyInstance,
  ctx: ApiContext,
  spec: {
    method: 'POST' | 'DELETE' | 'PATCH' | 'PUT';
    url: string;
    operation: N;
    body?: TSchema;
    /** The body may be left out entirely (it then counts as `{}`). */
    bodyOptional?: boolean;
    query?: TSchema;
    params?: TSchema;
    summary?: string;
    /** Refuses what the route's scope allows but this body asks more of (an admin-only field). */
    authorizeBody?: (req: FastifyRequest, body: Record<string, unknown>) => void;
    /** Checks against the records before anything is queued (a clear 4xx instead of a failed job). */
    precheck?: (body: Record<string, unknown>, params: Params) => Promise<void>;
    toPayload: (
      body: Record<string, unknown>,
      params: Params,
      query: Record<string, unknown>,
    ) => { container: string; payload: PayloadOf<N>; host?: string | undefined };
  },
): void {
  app.route({
    method: spec.method,
    url: spec.url,
    config: { scope: OPERATIONS[spec.operation].scope },
    ...(spec.bodyOptional
      ? {
          preValidation: (req: FastifyRequest, _reply: FastifyReply, done: () => void) => {
            req.body ??= {};
            done();
          },
        }
      : {}),
    schema: {
      summary: spec.summary ?? OPERATIONS[spec.operation].summary,
      // The catalogue operation the route queues: clients (and the scope test) map routes by it.
      operationId: spec.operation,
      tags: ['operations'],
      params: spec.params ?? NameParams,
      querystring: spec.query ?? WaitQuery,
      ...(spec.body ? { body: spec.body } : {}),
      response: { 200: JobSchema, 202: JobSchema, '4xx': ErrorSchema, '5xx': ErrorSchema },
    },
    handler: async (req: FastifyRequest, reply: FastifyReply) => {
      const params = req.params as Params;
      const query = req.query as Record<string, unknown> & { wait?: number };
      const key = req.headers['idempotency-key'];
      if (key !== undefined && (typeof key !== 'string' || !IDEMPOTENCY_RE.test(key))) {
        throw new LxcqError('LXCQ_BAD_REQUEST', 'Idempotency-Key must be 1-128 printable ASCII characters.');
      }
      spec.authorizeBody?.(req, (req.body ?? {}) as Record<string, unknown>);
      await spec.precheck?.((req.body ?? {}) as Record<string, unknown>, params);
      const { container, payload, host } = spec.toPayload(
        (req.body ?? {}) as Record<string, unknown>,
        params,
        query,
      );
      const { job } = await ctx.jobs.submit({
        operation: spec.operation,
        container,
        payload,
        host,
        idempotencyKey: key,
        requestId: req.id,
        trace: ctx.observer.contextOf(req),
        // The route needs operate; whether the token is also admin decides the raw config keys.
        admin: scopeSatisfies(ctx.tokens.authorize(req, 'operate').scopes, 'admin'),
      });
      const waitSec = Math.min(query.wait ?? 0, ctx.config.maxWaitSec);
      const out = waitSec > 0 ? await ctx.jobs.wait(job.id, waitSec * 1000) : job;
      const ended = out.state === 'completed' || out.state === 'failed' || out.state === 'cancelled';
      return reply.status(ended ? 200 : 202).send(ctx.publicJob(out, req));
    },
  });
}

const obj = <T extends Record<string, TSchema>>(p: T) => Type.Object(p, { additionalProperties: false });

/** Every mutating route of the REST contract (docs/api.md), each queueing one operation. */
export function operationRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const createBody = Type.Object(
    {
      name: NameParams.properties.name,
      host: Type.Optional(NameParams.properties.name),
      ...OPERATIONS.create.payload.properties,
    },
    { additionalProperties: false },
  );
  route(app, ctx, {
    method: 'POST',
    url: '/v1/containers',
    operation: 'create',
    body: createBody,
    params: Type.Object({}),
    authorizeBody: (req, b) => {
      if (b.privileged !== true) return;
      const token = ctx.tokens.authorize(req, 'operate');
      if (!scopeSatisfies(token.scopes, 'admin'))
        throw new LxcqError(
          'LXCQ_PRIVILEGED_FORBIDDEN',
          `A privileged container (no user namespace: its root is root on the host) needs the admin scope; token ${token.name} has ${token.scopes.join(', ')}. Leave privileged out for an unprivileged container.`,
          { details: { need: 'admin', have: token.scopes } },
        );
    },
    toPayload: (b) => {
      const { name, host, ...payload } = b as { name: string; host?: string } & PayloadOf<'create'>;
      return { container: name, payload, host };
    },
  });
  route(app, ctx, {
    method: 'DELETE',
    url: '/v1/containers/:name',
    operation: 'destroy',
    query: obj({
      wait: WaitQuery.properties.wait,
      withSnapshots: Type.Optional(Type.Boolean()),
      force: Type.Optional(Type.Boolean()),
    }),
    toPayload: (_b, p, q) => ({
      container: p.name,
      payload: {
        ...(q.withSnapshots !== undefined ? { withSnapshots: q.withSnapshots as boolean } : {}),
        ...(q.force !== undefined ? { force: q.force as boolean } : {}),
      },
    }),
  });
  const simple = ['start', 'stop', 'shutdown', 'reboot', 'freeze', 'unfreeze'] as const;
  for (const op of simple) {
    route(app, ctx, {
      method: 'POST',
      url: `/v1/containers/:name/${op}`,
      operation: op,
      body: OPERATIONS[op].payload,
      bodyOptional: true,
      toPayload: (b, p) => ({ container: p.name, payload: b }),
    });
  }
  const bodyOps = [
    ['rename', 'rename'],
    ['clone', 'clone'],
    ['checkpoint', 'checkpoint'],
    ['restore', 'restore'],
    ['migrate', 'migrate'],
    ['exec', 'exec'],
  ] as const;
  for (const [path, op] of bodyOps) {
    route(app, ctx, {
      method: 'POST',
      url: `/v1/containers/:name/${path}`,
      operation: op,
      body: OPERATIONS[op].payload,
      bodyOptional: op === 'checkpoint',
      toPayload: (b, p) => ({ container: p.name, payload: b }),
    });
  }
  // Admin only (the catalogue's scope): the shift rewrites the owner of every file in the container.
  route(app, ctx, {
    method: 'POST',
    url: '/v1/containers/:name/convert',
    operation: 'convert',
    body: OPERATIONS.convert.payload,
    bodyOptional: true,
    toPayload: (b, p) => ({ container: p.name, payload: b }),
  });
  route(app, ctx, {
    method: 'POST',
    url: '/v1/containers/:name/snapshots',
    operation: 'snapshot.create',
    body: OPERATIONS['snapshot.create'].payload,
    bodyOptional: true,
    toPayload: (b, p) => ({ container: p.name, payload: b }),
  });
  route(app, ctx, {
    method: 'POST',
    url: '/v1/containers/:name/snapshots/:snap/restore',
    operation: 'snapshot.restore',
    params: SnapParams,
    body: obj({ newName: Type.Optional(NameParams.properties.name) }),
    bodyOptional: true,
    toPayload: (b, p) => ({
      container: p.name,
      payload: { snapshot: p.snap as string, ...(b as { newName?: string }) },
    }),
  });
  route(app, ctx, {
    method: 'DELETE',
    url: '/v1/containers/:name/snapshots/:snap',
    operation: 'snapshot.destroy',
    params: SnapParams,
    toPayload: (_b, p) => ({ container: p.name, payload: { snapshot: p.snap as string } }),
  });
  route(app, ctx, {
    method: 'PATCH',
    url: '/v1/containers/:name/config',
    operation: 'config.set',
    body: OPERATIONS['config.set'].payload,
    toPayload: (b, p) => {
      const body = b as PayloadOf<'config.set'>;
      if (!body.set && !body.clear)
        throw new LxcqError('LXCQ_VALIDATION', 'PATCH config needs "set" and/or "clear".');
      return { container: p.name, payload: body };
    },
  });
  route(app, ctx, {
    method: 'PUT',
    url: '/v1/containers/:name/limits',
    operation: 'limits.set',
    body: OPERATIONS['limits.set'].payload,
    toPayload: (b, p) => {
      if (Object.keys(b).length === 0)
        throw new LxcqError(
          'LXCQ_VALIDATION',
          'PUT limits needs at least one of memory, memorySwap, cpus, cpuset, cpuWeight, pids, disk.',
        );
      return { container: p.name, payload: b };
    },
  });
  poolRoutes(app, ctx);
}

const PoolParams = Type.Object(
  { id: HostParams.properties.id, pool: NameParams.properties.name },
  { additionalProperties: false },
);

/** Storage pools per host (docs/storage.md): listed from the worker's record, made and removed by jobs on its queue. */
function poolRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const hostKnown = async (id: string) => {
    if (!(await ctx.store.getHost(id, ctx.config.hostOfflineMs)))
      throw new LxcqError('LXCQ_HOST_NOT_FOUND', `No host ${id} has registered.`);
  };
  app.get(
    '/v1/hosts/:id/pools',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['pools'],
        summary: "A host's storage pools with their driver, capacity, used and free space.",
        params: HostParams,
        response: { 200: Type.Array(PoolInfo), '4xx': ErrorSchema, '5xx': ErrorSchema },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      await hostKnown(id);
      return ctx.store.listPools(id);
    },
  );
  route(app, ctx, {
    method: 'POST',
    url: '/v1/hosts/:id/pools',
    operation: 'pool.create',
    params: HostParams,
    body: OPERATIONS['pool.create'].payload,
    toPayload: (b, p) => ({
      container: poolTarget((b as { name: string }).name),
      payload: b as PayloadOf<'pool.create'>,
      host: p.id,
    }),
    precheck: async (b, p) => {
      const body = b as PayloadOf<'pool.create'>;
      const id = p.id as string;
      const host = await ctx.store.getHost(id, ctx.config.hostOfflineMs);
      if (!host) throw new LxcqError('LXCQ_HOST_NOT_FOUND', `No host ${id} has registered.`);
      // Refused before anything is queued when the host said it cannot run the driver.
      const support = host.capabilities.poolDrivers?.[body.driver];
      if (support && !support.available)
        throw new LxcqError(
          body.driver === 'dir' ? 'LXCQ_VALIDATION' : 'LXCQ_POOL_DRIVER_UNAVAILABLE',
          `Host ${id} cannot make a ${body.driver} pool: ${support.reason ?? 'unavailable'}.`,
          { details: { driver: body.driver, host: id } },
        );
      if ((body.size === undefined) === (body.path === undefined))
        throw new LxcqError(
          'LXCQ_VALIDATION',
          'A btrfs pool needs exactly one of size (a loop file lxcq creates, e.g. "4GiB") or path (an existing btrfs mount).',
        );
      if (body.name === 'default' || (await ctx.store.getPool(id, body.name)))
        throw new LxcqError('LXCQ_POOL_EXISTS', `Host ${id} already has a pool named ${body.name}.`);
    },
  });
  route(app, ctx, {
    method: 'DELETE',
    url: '/v1/hosts/:id/pools/:pool',
    operation: 'pool.delete',
    params: PoolParams,
    toPayload: (_b, p) => ({
      container: poolTarget(p.pool as string),
      payload: { name: p.pool as string },
      host: p.id,
    }),
    precheck: async (_b, p) => {
      const id = p.id as string;
      await hostKnown(id);
      if (p.pool === 'default')
        throw new LxcqError('LXCQ_VALIDATION', 'The dir pool `default` (the lxcpath) cannot be removed.');
      if (!(await ctx.store.getPool(id, p.pool as string)))
        throw new LxcqError(
          'LXCQ_POOL_NOT_FOUND',
          `Host ${id} has no pool ${p.pool as string}. GET /v1/hosts/${id}/pools lists its pools.`,
        );
      // The worker checks again (the pool's directory is the truth); this answers with the list at once.
      const held = (await ctx.store.listContainers())
        .filter((c) => c.host === id && c.pool === p.pool)
        .map((c) => c.name)
        .sort();
      if (held.length > 0)
        throw new LxcqError(
          'LXCQ_POOL_IN_USE',
          `Pool ${p.pool as string} on host ${id} still holds ${held.length} container(s): ${held.join(', ')}. Destroy them first.`,
          { details: { containers: held } },
        );
    },
  });
}
