import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { extractTrace, tracer } from '@lxcq/telemetry';
import type { ApiMetrics } from './metrics.ts';

/** Routes polled by machines: no span each time (a scrape every 15 s would drown the traces). */
const UNTRACED = new Set(['/metrics', '/v1/health']);

/**
 * Per-request metrics and trace spans. A request's span continues the caller's trace when it
 * sends a W3C `traceparent` header; the job it submits continues the request's span. With tracing
 * off, the spans are the API's no-op ones.
 */
export class RequestObserver {
  private readonly spans = new WeakMap<FastifyRequest, Span>();

  constructor(private readonly metrics: ApiMetrics) {}

  install(app: FastifyInstance): void {
    app.addHook('onRequest', (req, _reply, done) => {
      const route = req.routeOptions.url;
      if (route === undefined || UNTRACED.has(route)) return done();
      const span = tracer().startSpan(
        `${req.method} ${route}`,
        {
          kind: SpanKind.SERVER,
          attributes: {
            'http.request.method': req.method,
            'http.route': route,
            'lxcq.request_id': req.id,
          },
        },
        extractTrace(req.headers),
      );
      this.spans.set(req, span);
      done();
    });
    app.addHook('onResponse', (req, reply, done) => {
      const route = req.routeOptions.url ?? 'unmatched';
      const status = reply.statusCode;
      this.metrics.httpRequests.inc({ method: req.method, route, status });
      this.metrics.httpDuration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
      const span = this.spans.get(req);
      if (span) {
        span.setAttribute('http.response.status_code', status);
        if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
      done();
    });
  }

  /** The trace context of a request (its span), for the work it starts. */
  contextOf(req: FastifyRequest): Context {
    const span = this.spans.get(req);
    return span ? trace.setSpan(ROOT_CONTEXT, span) : ROOT_CONTEXT;
  }
}
