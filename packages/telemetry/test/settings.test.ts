// Pure logic: when tracing is on and where it exports, request ids, trace context parsing.
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_ID_RE, extractTrace, injectTrace, requestIdFrom, tracingSettings } from '../src/index.ts';

describe('tracingSettings', () => {
  it('is off by default and with LXCQ_TRACING=0 or OTEL_SDK_DISABLED, whatever else is set', () => {
    expect(tracingSettings({})).toEqual({ enabled: false });
    const url = 'http://collector:4318';
    expect(tracingSettings({ LXCQ_TRACING: '0', OTEL_EXPORTER_OTLP_ENDPOINT: url }).enabled).toBe(false);
    expect(tracingSettings({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: url }).enabled).toBe(
      false,
    );
  });

  it('is on with LXCQ_TRACING=1 or an endpoint, and finds the traces URL', () => {
    expect(tracingSettings({ LXCQ_TRACING: '1' })).toEqual({
      enabled: true,
      url: 'http://localhost:4318/v1/traces',
    });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' }).url).toBe(
      'http://c:4318/v1/traces',
    );
    expect(
      tracingSettings({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://t.example/otlp/traces',
      }).url,
    ).toBe('https://t.example/otlp/traces');
    expect(tracingSettings({ LXCQ_TRACING: 'on', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }).enabled).toBe(
      true,
    );
  });

  it('refuses settings it cannot honour, naming them', () => {
    expect(() => tracingSettings({ LXCQ_TRACING: '2' })).toThrow(/LXCQ_TRACING=2/);
    expect(() =>
      tracingSettings({ LXCQ_TRACING: '1', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }),
    ).toThrow(/http\/json/);
    expect(() => tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(
      /not an http\(s\) URL/,
    );
  });
});

describe('requestIdFrom', () => {
  it('keeps a well-formed X-Request-Id and replaces anything else with a UUID', () => {
    expect(requestIdFrom('abc-123_x.y:z')).toBe('abc-123_x.y:z');
    expect(requestIdFrom('a'.repeat(128))).toBe('a'.repeat(128));
    for (const bad of [undefined, '', 'a'.repeat(129), 'has space', 'new\nline', 'é', ['a', 'b']]) {
      const id = requestIdFrom(bad);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(REQUEST_ID_RE.test(id)).toBe(true);
    }
  });
});

describe('trace context', () => {
  it('injects nothing while no SDK is registered (tracing off)', () => {
    expect(injectTrace()).toBeUndefined();
  });

  describe('with the SDK registered', () => {
    beforeAll(async () => {
      const { NodeTracerProvider } = await import('@opentelemetry/sdk-trace-node');
      new NodeTracerProvider().register();
    });

    it('takes a well-formed traceparent, and an oversized tracestate not', () => {
      const parent = { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` };
      const ctx = extractTrace({ ...parent, tracestate: `k=${'x'.repeat(600)}` });
      expect(trace.getSpanContext(ctx)).toMatchObject({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16) });
      expect(trace.getSpanContext(ctx)?.traceState).toBeUndefined();
      expect(trace.getSpanContext(extractTrace({ ...parent, tracestate: 'k=v' }))?.traceState?.get('k')).toBe(
        'v',
      );
      // and a span started under it carries the trace on into a job's data
      const span = trace.getTracer('t').startSpan('s', {}, ctx);
      expect(injectTrace(trace.setSpan(ROOT_CONTEXT, span))?.traceparent).toMatch(
        new RegExp(`^00-${'a'.repeat(32)}-[0-9a-f]{16}-01$`),
      );
      span.end();
    });

    it('ignores a malformed carrier instead of trusting it', () => {
      for (const bad of [
        null,
        'x',
        {},
        { traceparent: 'nonsense' },
        { traceparent: `00-${'g'.repeat(32)}-${'0'.repeat(16)}-01` },
        { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01-extra` },
        { traceparent: 42 },
      ]) {
        expect(trace.getSpanContext(extractTrace(bad))).toBeUndefined();
      }
    });
  });
});
