/**
 * OpenTelemetry tracing for lxcq, off unless configured. Only `@opentelemetry/api` is loaded
 * statically: with no SDK registered its tracer hands out non-recording spans and its propagator
 * injects nothing, so instrumented code costs next to nothing when tracing is off. The SDK and the
 * OTLP exporter are imported (dynamically) only by `startTracing` when it is on.
 */
import {
  ROOT_CONTEXT,
  SpanStatusCode,
  context,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanKind,
  type Tracer,
} from '@opentelemetry/api';
import { ConfigError } from '@lxcq/shared';

/** Where spans go, decided from the environment (documented in docs/observability.md). */
export interface TracingSettings {
  enabled: boolean;
  /** The OTLP/HTTP (JSON) traces endpoint, when enabled. */
  url?: string;
}

const ON = new Set(['1', 'true', 'on', 'yes']);
const OFF = new Set(['0', 'false', 'off', 'no']);

/**
 * Tracing is on with `LXCQ_TRACING=1`, or when an OTLP endpoint is set
 * (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`); `LXCQ_TRACING=0` or
 * `OTEL_SDK_DISABLED=true` turn it off whatever else is set.
 */
export function tracingSettings(env: NodeJS.ProcessEnv): TracingSettings {
  const flag = env.LXCQ_TRACING?.trim().toLowerCase();
  if (flag && !ON.has(flag) && !OFF.has(flag))
    throw new ConfigError(`LXCQ_TRACING=${env.LXCQ_TRACING} must be 1 (on) or 0 (off).`);
  const tracesUrl = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const baseUrl = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const disabled = (flag && OFF.has(flag)) || env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true';
  if (disabled || !((flag && ON.has(flag)) || tracesUrl || baseUrl)) return { enabled: false };
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL;
  if (protocol && protocol !== 'http/json')
    throw new ConfigError(
      `OTEL_EXPORTER_OTLP_PROTOCOL=${protocol}: lxcq exports traces as OTLP/HTTP JSON only; set it to http/json (collectors take it on port 4318) or leave it unset.`,
    );
  const url =
    tracesUrl || (baseUrl ? `${baseUrl.replace(/\/+$/, '')}/v1/traces` : 'http://localhost:4318/v1/traces');
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw new ConfigError(`The OTLP traces endpoint ${url} is not an http(s) URL.`);
  }
  return { enabled: true, url };
}

export interface Tracing {
  readonly enabled: boolean;
  /** The OTLP endpoint spans are sent to (when enabled). */
  readonly url?: string;
  /** Sends every finished span now. */
  flush(): Promise<void>;
  /** Flushes and stops exporting. */
  shutdown(): Promise<void>;
}

const OFF_TRACING: Tracing = { enabled: false, flush: async () => {}, shutdown: async () => {} };

/**
 * Registers the OpenTelemetry SDK for this process when the environment asks for tracing
 * (see `tracingSettings`), exporting in batches over OTLP/HTTP; otherwise does nothing.
 * The SDK's own OTEL_* settings apply (OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS,
 * OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME).
 */
export async function startTracing(opts: {
  service: string;
  env?: NodeJS.ProcessEnv;
  log?: { info(obj: object, msg: string): void };
}): Promise<Tracing> {
  const settings = tracingSettings(opts.env ?? process.env);
  if (!settings.enabled || !settings.url) return OFF_TRACING;
  const [node, otlp, resources] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const resource = resources
    .defaultResource()
    .merge(resources.resourceFromAttributes({ 'service.name': opts.service }))
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the defaults above.
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new node.NodeTracerProvider({
    resource,
    spanProcessors: [new node.BatchSpanProcessor(new otlp.OTLPTraceExporter({ url: settings.url }))],
  });
  provider.register();
  opts.log?.info({ url: settings.url }, 'tracing on: exporting spans over OTLP/HTTP');
  return {
    enabled: true,
    url: settings.url,
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}

/** lxcq's tracer (a no-op one while no SDK is registered). */
export function tracer(): Tracer {
  return trace.getTracer('lxcq');
}

/** The W3C trace context (`traceparent`, `tracestate`) as it travels in a job's data. */
export type TraceCarrier = { traceparent: string; tracestate?: string };

/** The trace context of `ctx` for a job's data; undefined when there is none (tracing off). */
export function injectTrace(ctx: Context = context.active()): TraceCarrier | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  if (typeof carrier.traceparent !== 'string') return undefined;
  return carrier.tracestate
    ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate }
    : { traceparent: carrier.traceparent };
}

const TRACEPARENT_RE = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * The context a carrier (job data, HTTP headers) names as parent. Anything malformed or oversized
 * is ignored: a job or request with a bad `traceparent` starts a trace of its own.
 */
export function extractTrace(carrier: unknown, base: Context = ROOT_CONTEXT): Context {
  if (typeof carrier !== 'object' || carrier === null) return base;
  const c = carrier as Record<string, unknown>;
  const tp = Array.isArray(c.traceparent) ? (c.traceparent as unknown[])[0] : c.traceparent;
  if (typeof tp !== 'string' || !TRACEPARENT_RE.test(tp)) return base;
  const clean: Record<string, string> = { traceparent: tp };
  if (typeof c.tracestate === 'string' && c.tracestate.length <= 512) clean.tracestate = c.tracestate;
  return propagation.extract(base, clean);
}

/** The trace id of the span active in `ctx`, when it is being recorded (for log lines). */
export function traceIdOf(ctx: Context = context.active()): string | undefined {
  const span = trace.getSpan(ctx);
  return span?.isRecording() ? span.spanContext().traceId : undefined;
}

/**
 * Runs `fn` inside a new span (child of `parent`), made the active span so spans started
 * within (liblxc calls, Redis-backed steps) nest under it; records a thrown error and ends the span.
 */
export async function inSpan<T>(
  name: string,
  opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = opts.parent ?? context.active();
  const span = tracer().startSpan(
    name,
    {
      ...(opts.kind !== undefined ? { kind: opts.kind } : {}),
      ...(opts.attributes ? { attributes: opts.attributes } : {}),
    },
    parent,
  );
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    failSpan(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/** Marks a span failed with an error's code and message. */
export function failSpan(span: Span, err: unknown): void {
  if (!span.isRecording()) return;
  const e = err instanceof Error ? err : new Error(String(err));
  span.recordException(e);
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') span.setAttribute('lxcq.error.code', code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
}
