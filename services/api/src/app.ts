import Fastify, { LogController, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyBaseLogger } from 'fastify';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  Ledger,
  LxcqError,
  Store,
  keys as makeKeys,
  redisClient,
  stopStep,
  withholdConfidential,
  type Scope,
  type StoredJob,
} from '@lxcq/shared';
import { logRedisConnection, requestIdFrom } from '@lxcq/telemetry';
import { EventHub } from './events.ts';
import { HostWatchdog } from './watchdog.ts';
import { Tokens } from './auth.ts';
import type { ApiConfig } from './config.ts';
import type { ApiContext } from './context.ts';
import { dashboardRoutes } from './dashboard.ts';
import { clientErrorHandler, frameworkErrors, installErrorHandlers, refuse } from './errors.ts';
import { JobService } from './jobs.ts';
import { ApiMetrics } from './metrics.ts';
import { RequestObserver } from './observe.ts';
import { operationRoutes } from './routes/operations.ts';
import { readRoutes } from './routes/reads.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a route needs; routes without one need admin unless `public`. */
    scope?: Scope;
    public?: boolean;
  }
}

export interface BuiltApp {
  app: FastifyInstance;
  ctx: ApiContext;
  close(): Promise<void>;
}

/** Builds the API (routes, auth, errors, docs) without listening; server.ts listens. */
/**
 * The route schemas are JSON Schema (draft 7: `exclusiveMinimum: 0` is a number, as Fastify's
 * validator wants), but an OpenAPI 3.0 document must say `minimum: 0, exclusiveMinimum: true`;
 * code generators that follow 3.0 break on the number. Rewrites the published document only.
 */
export function openApi30<T>(doc: T): T {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== 'object') return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = walk(x);
    for (const [ex, bound] of [
      ['exclusiveMinimum', 'minimum'],
      ['exclusiveMaximum', 'maximum'],
    ] as const) {
      const n = out[ex];
      if (typeof n !== 'number') continue;
      const other = out[bound];
      // keep the tighter bound: an inclusive one at or past the exclusive one wins
      if (typeof other === 'number' && (bound === 'minimum' ? other > n : other < n)) delete out[ex];
      else {
        out[bound] = n;
        out[ex] = true;
      }
    }
    return out;
  };
  return walk(doc) as T;
}

export async function buildApp(
  config: ApiConfig,
  opts: { logger?: FastifyBaseLogger | boolean } = {},
): Promise<BuiltApp> {
  const redis = redisClient(config.redisUrl, { maxRetriesPerRequest: 2, enableOfflineQueue: true });
  const subscriber = redisClient(config.redisUrl, { maxRetriesPerRequest: null });
  const keys = makeKeys(config.prefix);
  const store = new Store(redis, keys, {
    jobRetentionSec: config.jobRetentionSec,
    eventMaxLen: config.eventMaxLen,
  });
  // The one writer of job state and job.* events (submit, cancel, reconcile, watchdog).
  const ledger = new Ledger(store);
  const jobs = new JobService(store, ledger, keys, redis, subscriber, {
    policy: config.policy,
    hostOfflineMs: config.hostOfflineMs,
    onAccepted: (job) => metrics.jobsSubmitted.inc({ operation: job.operation }),
  });
  await jobs.init();

  const app: FastifyInstance = Fastify({
    ...(opts.logger && typeof opts.logger === 'object'
      ? { loggerInstance: opts.logger }
      : { logger: opts.logger === true }),
    bodyLimit: config.bodyLimit,
    // One line per request drowns the operator's view; errors are logged by the error handler.
    logController: new LogController({
      disableRequestLogging: !config.logRequests,
      requestIdLogLabel: 'requestId',
    }),
    // Strict bodies: unknown properties are refused, not silently dropped.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
    // X-Request-Id (1-128 of letters, digits, _ . : -) or a new UUID; echoed in the answer's
    // X-Request-Id, stored with the job, and logged as `requestId` by the API and the worker.
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) =>
      requestIdFrom(req.headers['x-request-id']),
    routerOptions: { maxParamLength: 200 },
    frameworkErrors,
    clientErrorHandler,
    // Fastify's own 503 while closing has no lxcq code: the onRequest hook below answers instead.
    return503OnClosing: false,
  });
  // An empty body sent as application/json means `{}`: curl's `-H 'Content-Type:
  // application/json' -X POST` and generated clients send exactly that to bodiless routes.
  const jsonParser = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = body.toString();
    if (text.trim() === '') done(null, {});
    else void jsonParser(req, text, done);
  });
  installErrorHandlers(app);
  logRedisConnection(redis, 'api', app.log);
  logRedisConnection(subscriber, 'api-subscriber', app.log);
  const metrics = new ApiMetrics({
    store,
    queue: (host) => jobs.queue(host),
    hostOfflineMs: config.hostOfflineMs,
    log: app.log,
  });
  const observer = new RequestObserver(metrics);
  observer.install(app);
  const ctx: ApiContext = {
    config,
    redis,
    store,
    keys,
    jobs,
    tokens: new Tokens(config.tokens),
    events: null,
    observer,
    publicJob: (job: StoredJob, req: { headers: IncomingHttpHeaders }) => {
      const { locks: _l, seq: _s, admin: _a, ...rest } = job;
      return ctx.tokens.mayRead(req, 'operate') ? rest : withholdConfidential(rest);
    },
  };

  let closing = false;
  app.addHook('onRequest', async (req, reply) => {
    void reply.header('x-request-id', req.id);
    if (closing) {
      void reply.header('connection', 'close');
      throw new LxcqError(
        'LXCQ_SHUTTING_DOWN',
        'This API process is stopping; nothing was accepted. Retry: another API process, or this one once restarted, answers.',
      );
    }
    const rc = req.routeOptions.config;
    if (req.routeOptions.url === undefined || req.routeOptions.url.startsWith('/docs') || rc.public) return;
    ctx.tokens.authorize(req, rc.scope ?? 'admin');
  });
  // A request still running when the stop began ends its keep-alive connection with its answer:
  // otherwise the stop waits for the client to let it go idle (Fastify's keep-alive is 72 s).
  app.addHook('onSend', async (_req, reply) => {
    if (closing) void reply.header('connection', 'close');
  });

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'lxcq',
        version: '1',
        description:
          'LXC containers as asynchronous jobs. The contract (what every route, field, job state, event and error means) is docs/api.md in the lxcq repository; error codes are in docs/errors.md.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transformObject: (doc) => ('openapiObject' in doc ? openApi30(doc.openapiObject) : doc.swaggerObject),
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  readRoutes(app, ctx);
  operationRoutes(app, ctx);
  await dashboardRoutes(app, config.dashboardDir, app.log);

  const hub = new EventHub(config.redisUrl, keys, store, ctx.tokens, {
    pingMs: config.wsPingMs,
    maxBufferedBytes: config.wsMaxBufferedBytes,
    log: app.log,
    onEvents: (events) => metrics.onEvents(events),
  });
  metrics.attachHub(hub);
  await hub.start();
  const watchdog = new HostWatchdog(store, ledger, (h) => jobs.queue(h), {
    offlineMs: config.hostOfflineMs,
    log: app.log,
  });
  watchdog.start();
  const trim = setInterval(() => {
    store
      .trimEvents(config.eventRetentionSec * 1000)
      .catch((err: unknown) => app.log.warn({ err }, 'event trim failed'));
  }, 60_000);
  trim.unref();
  const reconcile = setInterval(
    () =>
      void jobs
        .reconcile(config.submitGraceMs)
        .catch((err: unknown) => app.log.warn({ err }, 'reconciling cut-off submissions failed')),
    Math.max(100, Math.min(5000, Math.floor(config.submitGraceMs / 2))),
  );
  reconcile.unref();
  ctx.events = hub;
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if ((req.url ?? '').split('?')[0] === '/v1/events') hub.handleUpgrade(req, socket, head);
    else
      refuse(
        socket,
        new LxcqError(
          'LXCQ_NOT_FOUND',
          `No WebSocket endpoint at ${(req.url ?? '').split('?')[0] ?? ''}; use /v1/events.`,
        ),
      );
  });
  app.get(
    '/metrics',
    {
      config: { public: true },
      schema: {
        tags: ['observability'],
        summary:
          'Prometheus metrics (text format). Needs a token with the read scope, or LXCQ_METRICS_TOKEN.',
      },
    },
    async (req, reply) => {
      ctx.tokens.authorizeMetrics(req, config.metricsTokenSha256);
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );
  app.get(
    '/v1/events',
    {
      config: { scope: 'read' },
      schema: { tags: ['events'], summary: 'WebSocket: live events (see docs/api.md, "Events")' },
    },
    () => {
      throw new LxcqError(
        'LXCQ_BAD_REQUEST',
        'GET /v1/events is a WebSocket endpoint: connect with a WebSocket client (ws://.../v1/events).',
      );
    },
  );

  return {
    app,
    ctx,
    close: async () => {
      closing = true;
      clearInterval(trim);
      clearInterval(reconcile);
      // Each step that needs Redis gets a bound: with the connection reconnecting it could wait
      // for ever, and a stop must end.
      await stopStep('the host watchdog', watchdog.stop(), app.log);
      await stopStep('the event hub', hub.close(), app.log);
      jobs.release();
      await app.close();
      await stopStep('closing the job queues', jobs.close(), app.log);
      subscriber.disconnect();
      redis.disconnect();
    },
  };
}
