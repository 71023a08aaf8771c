import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { isFinal, LxcqError, type HostInfo, type JobState } from '@lxcq/shared';
import type { ApiContext } from '../context.ts';
import { checkHealth } from '../health.ts';
import {
  ContainerInfo,
  ContainerStateSchema,
  ErrorSchema,
  HostTotals,
  HostParams,
  IdParams,
  JobSchema,
  NameParams,
  SnapshotInfo,
} from '../schemas.ts';

const err = { '4xx': ErrorSchema, '5xx': ErrorSchema };
const Host = Type.Object({
  id: Type.String(),
  status: Type.String(),
  draining: Type.Boolean(),
  lastSeen: Type.String(),
  startedAt: Type.String(),
  lxcpath: Type.String(),
  /** Where the host's worker serves Prometheus metrics, when it does (LXCQ_METRICS_BIND). */
  metrics: Type.Optional(Type.String()),
  capabilities: Type.Record(Type.String(), Type.Unknown()),
  totals: Type.Optional(HostTotals),
});
const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded'), Type.Literal('unavailable')]),
  redis: Type.String(),
  hosts: Type.Optional(Type.Object({ online: Type.Integer(), total: Type.Integer() })),
  problems: Type.Array(Type.String()),
  checks: Type.Array(
    Type.Object({
      name: Type.String(),
      status: Type.Union([Type.Literal('ok'), Type.Literal('warn'), Type.Literal('fail')]),
      message: Type.String(),
    }),
  ),
});
const StateFilter = Type.Union(
  ['STOPPED', 'STARTING', 'RUNNING', 'STOPPING', 'ABORTING', 'FREEZING', 'FROZEN', 'THAWED'].map((s) =>
    Type.Literal(s),
  ),
);
const JobStateFilter = Type.Union(
  ['queued', 'active', 'completed', 'failed', 'cancelled'].map((s) => Type.Literal(s)),
);

/** Every GET route (and host drain), answered from Redis: the API never calls liblxc. */
export function readRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get(
    '/v1/health',
    {
      config: { public: true },
      schema: {
        tags: ['health'],
        summary:
          'What is wrong, if anything: Redis, hosts (online, draining, CRIU), the event reader. 200 ok or degraded, 503 unavailable.',
        response: { 200: HealthSchema, 503: HealthSchema },
      },
    },
    async (_req, reply) => {
      const health = await checkHealth(ctx);
      return reply.status(health.status === 'unavailable' ? 503 : 200).send(health);
    },
  );

  /**
   * Hosts with their totals: container and running counts from the registry, which every worker
   * rewrites as a container changes (so they are current at once, where the heartbeat's counts
   * trail by up to a heartbeat), and CPU and memory from the host's last usage pass. The
   * heartbeat's `capabilities.containers` and `running` are replaced by the registry's too.
   */
  const withTotals = async (hosts: HostInfo[]) => {
    const containers = await ctx.store.listContainers();
    const passes = await ctx.store.usagePasses(hosts.map((h) => h.id));
    return hosts.map((h) => {
      const mine = containers.filter((c) => c.host === h.id);
      const running = mine.filter((c) => c.state !== 'STOPPED').length;
      const pass = passes.get(h.id) ?? null;
      return {
        ...h,
        capabilities: { ...h.capabilities, containers: mine.length, running },
        totals: {
          containers: mine.length,
          running,
          cpuPercent: pass?.cpuPercent ?? null,
          memoryBytes: pass?.memoryBytes ?? null,
          usageCollectedAt: pass?.at ?? null,
        },
      };
    });
  };
  app.get(
    '/v1/hosts',
    { config: { scope: 'read' }, schema: { tags: ['hosts'], response: { 200: Type.Array(Host), ...err } } },
    async () => withTotals(await ctx.store.listHosts(ctx.config.hostOfflineMs)),
  );
  app.get(
    '/v1/hosts/:id',
    {
      config: { scope: 'read' },
      schema: { tags: ['hosts'], params: HostParams, response: { 200: Host, ...err } },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      const h = await ctx.store.getHost(id, ctx.config.hostOfflineMs);
      if (!h) throw new LxcqError('LXCQ_HOST_NOT_FOUND', `No host ${id} has registered.`);
      return (await withTotals([h]))[0];
    },
  );
  for (const [action, draining] of [
    ['drain', true],
    ['undrain', false],
  ] as const) {
    app.post(
      `/v1/hosts/:id/${action}`,
      {
        config: { scope: 'admin' },
        schema: { tags: ['hosts'], params: HostParams, response: { 200: Host, ...err } },
      },
      async (req) => {
        const { id } = req.params as { id: string };
        if (!(await ctx.store.getHost(id, ctx.config.hostOfflineMs)))
          throw new LxcqError('LXCQ_HOST_NOT_FOUND', `No host ${id} has registered.`);
        await ctx.store.setHostFlag(id, 'draining', draining);
        await ctx.store.addEvent('host.draining', { draining }, { host: id });
        return ctx.store.getHost(id, ctx.config.hostOfflineMs);
      },
    );
  }

  app.delete(
    '/v1/hosts/:id',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['hosts'],
        summary: 'Forget an offline host',
        description:
          'Removes an offline host from the registry. Refused while the host is online, while jobs for it have not ended, and while it holds containers unless `force=true`, which drops their records too (the containers themselves stay on that machine). A worker that starts again on the host registers it again.',
        params: HostParams,
        querystring: Type.Object({ force: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
        response: {
          200: Type.Object({ forgotten: Type.String(), containers: Type.Array(Type.String()) }),
          ...err,
        },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      const force = (req.query as { force?: boolean }).force === true;
      const lastSeen = await ctx.store.hostLastSeenRaw(id);
      const host = await ctx.store.getHost(id, ctx.config.hostOfflineMs);
      if (!host) throw new LxcqError('LXCQ_HOST_NOT_FOUND', `No host ${id} has registered.`);
      if (host.status !== 'offline')
        throw new LxcqError(
          'LXCQ_INVALID_STATE',
          `Host ${id} is ${host.status} (last heartbeat ${host.lastSeen}); only an offline host can be forgotten. Stop its worker first.`,
        );
      const queue = ctx.jobs.queue(id);
      const open: string[] = [];
      for (const bull of await queue.getJobs(['waiting', 'delayed', 'prioritized', 'active'])) {
        const job = bull.id ? await ctx.store.getJob(bull.id) : null;
        if (job && !isFinal(job.state)) open.push(job.id);
      }
      if (open.length > 0)
        throw new LxcqError(
          'LXCQ_INVALID_STATE',
          `${open.length} job(s) for host ${id} have not ended (${open.slice(0, 5).join(', ')}); the host watchdog fails them now that it is offline. Retry in a few seconds.`,
        );
      const held = (await ctx.store.listContainers()).filter((c) => c.host === id).map((c) => c.name);
      if (held.length > 0 && !force)
        throw new LxcqError(
          'LXCQ_INVALID_STATE',
          `Host ${id} still holds ${held.length} container(s) in the registry (${held.slice(0, 10).join(', ')}). Bring the host back and move or destroy them, or pass force=true to drop their records too (the containers stay on that machine).`,
        );
      if (!(await ctx.store.forgetHost(id, lastSeen, held)))
        throw new LxcqError(
          'LXCQ_INVALID_STATE',
          `Host ${id} sent a heartbeat while it was being forgotten; it is back and stays registered.`,
        );
      await queue
        .obliterate({ force: true })
        .catch((e: unknown) =>
          req.log.warn({ err: e, host: id }, "could not remove the forgotten host's job queue"),
        );
      await ctx.store.addEvent('host.forgotten', { containers: held }, { host: id });
      return { forgotten: id, containers: held };
    },
  );

  app.get(
    '/v1/containers',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['containers'],
        querystring: Type.Object(
          { host: Type.Optional(NameParams.properties.name), state: Type.Optional(StateFilter) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Array(ContainerInfo), ...err },
      },
    },
    async (req) => {
      const q = req.query as { host?: string; state?: string };
      return (await ctx.store.listContainers()).filter(
        (c) => (!q.host || c.host === q.host) && (!q.state || c.state === q.state),
      );
    },
  );
  const getContainer = async (name: string) => {
    const c = await ctx.store.getContainer(name);
    if (!c)
      throw new LxcqError('LXCQ_CONTAINER_NOT_FOUND', `No container named ${name} is known on any host.`);
    return c;
  };
  app.get(
    '/v1/containers/:name',
    {
      config: { scope: 'read' },
      schema: { tags: ['containers'], params: NameParams, response: { 200: ContainerInfo, ...err } },
    },
    async (req) => getContainer((req.params as { name: string }).name),
  );
  app.get(
    '/v1/containers/:name/state',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['containers'],
        summary:
          'What the container uses: CPU, memory, pids, network, disk, uptime, with the limits in force',
        description:
          "From its host's last usage pass (every LXCQ_USAGE_INTERVAL_MS). A stopped container has `disk` only; `collectedAt: null` when its host has no recent pass (worker down or just started).",
        params: NameParams,
        response: { 200: ContainerStateSchema, ...err },
      },
    },
    async (req) => {
      const c = await getContainer((req.params as { name: string }).name);
      const { pass, usage } = await ctx.store.containerUsage(c.host, c.name);
      // The registry's state is the current one; the figures are the pass's.
      const running = c.state !== 'STOPPED';
      return {
        ...(usage && running ? usage : {}),
        name: c.name,
        host: c.host,
        state: c.state,
        collectedAt: usage?.collectedAt ?? null,
        intervalMs: pass?.intervalMs ?? null,
        disk: usage?.disk ?? null,
      };
    },
  );
  app.get(
    '/v1/containers/:name/snapshots',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['containers'],
        params: NameParams,
        response: { 200: Type.Array(SnapshotInfo), ...err },
      },
    },
    async (req) => (await getContainer((req.params as { name: string }).name)).snapshots ?? [],
  );
  app.get(
    '/v1/containers/:name/config',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['containers'],
        params: NameParams,
        response: { 200: Type.Object({ config: Type.Record(Type.String(), Type.String()) }), ...err },
      },
    },
    async (req) => ({ config: (await getContainer((req.params as { name: string }).name)).config ?? {} }),
  );

  app.get(
    '/v1/jobs',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['jobs'],
        querystring: Type.Object(
          {
            container: Type.Optional(NameParams.properties.name),
            host: Type.Optional(NameParams.properties.name),
            state: Type.Optional(JobStateFilter),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
            cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,16}$' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ jobs: Type.Array(JobSchema), next: Type.Union([Type.String(), Type.Null()]) }),
          ...err,
        },
      },
    },
    async (req) => {
      const q = req.query as {
        container?: string;
        host?: string;
        state?: JobState;
        limit?: number;
        cursor?: string;
      };
      const page = await ctx.store.listJobs({ ...q, limit: q.limit ?? 50 });
      return { jobs: page.jobs.map((j) => ctx.publicJob(j, req)), next: page.next };
    },
  );
  app.get(
    '/v1/jobs/:id',
    {
      config: { scope: 'read' },
      schema: { tags: ['jobs'], params: IdParams, response: { 200: JobSchema, ...err } },
    },
    async (req) => ctx.publicJob(await ctx.jobs.get((req.params as { id: string }).id), req),
  );
  app.get(
    '/v1/jobs/:id/wait',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['jobs'],
        params: IdParams,
        querystring: Type.Object(
          { timeout: Type.Optional(Type.Number({ minimum: 0, maximum: 3600 })) },
          { additionalProperties: false },
        ),
        response: { 200: JobSchema, 202: JobSchema, ...err },
      },
    },
    async (req, reply) => {
      const { timeout } = req.query as { timeout?: number };
      const job = await ctx.jobs.wait(
        (req.params as { id: string }).id,
        Math.min(timeout ?? 30, ctx.config.maxWaitSec) * 1000,
      );
      const ended = job.state === 'completed' || job.state === 'failed' || job.state === 'cancelled';
      return reply.status(ended ? 200 : 202).send(ctx.publicJob(job, req));
    },
  );
  app.get(
    '/v1/jobs/:id/log',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['jobs'],
        params: IdParams,
        response: { 200: Type.Object({ lines: Type.Array(Type.String()) }), ...err },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      await ctx.jobs.get(id);
      return { lines: await ctx.store.jobLog(id) };
    },
  );
  app.delete(
    '/v1/jobs/:id',
    {
      config: { scope: 'operate' },
      schema: { tags: ['jobs'], params: IdParams, response: { 200: JobSchema, ...err } },
    },
    async (req) => ctx.publicJob(await ctx.jobs.cancel((req.params as { id: string }).id), req),
  );
}
