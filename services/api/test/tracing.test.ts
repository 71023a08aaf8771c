// OpenTelemetry tracing through the real stack: the API (in this process) and the worker (a child
// process) export spans over OTLP/HTTP to a small receiver on loopback, and one trace runs from the
// caller's traceparent through the HTTP request, the enqueue, the worker's job, to the liblxc call.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing, type Tracing } from '@lxcq/telemetry';
import { Stack, TEST_CONFIG, type Job } from './harness.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
  status?: { code?: number };
}
interface Received extends OtlpSpan {
  service: string;
}

/** A minimal OTLP/HTTP JSON receiver: keeps every span posted to /v1/traces. */
async function receiver(): Promise<{ server: Server; url: string; spans: Received[] }> {
  const spans: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      if (req.url === '/v1/traces' && req.headers['content-type']?.startsWith('application/json')) {
        const doc = JSON.parse(body) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: { stringValue?: string } }[] };
            scopeSpans: { spans: OtlpSpan[] }[];
          }[];
        };
        for (const rs of doc.resourceSpans) {
          const service =
            rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
          for (const ss of rs.scopeSpans) for (const sp of ss.spans) spans.push({ ...sp, service });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans };
}

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes?.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : undefined);
};
// OTLP span kinds
const SERVER = 2;
const PRODUCER = 4;
const CONSUMER = 5;
const INTERNAL = 1;

let s: Stack;
let rx: Awaited<ReturnType<typeof receiver>>;
let tracing: Tracing;

beforeAll(async () => {
  rx = await receiver();
  // The API runs in this process: the same startTracing its server.ts calls, pointed at the receiver.
  tracing = await startTracing({ service: 'lxcq-api', env: { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url } });
  s = await Stack.start({
    workerEnv: { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_BSP_SCHEDULE_DELAY: '100' },
  });
});
afterAll(async () => {
  await s?.close();
  await tracing?.shutdown();
  rx?.server.close();
});

describe('tracing', () => {
  it('is on only when configured', async () => {
    expect(tracing.enabled).toBe(true);
    expect(tracing.url).toBe(`${rx.url}/v1/traces`);
    const off = await startTracing({ service: 'x', env: {} });
    expect(off.enabled).toBe(false);
    expect(
      (await startTracing({ service: 'x', env: { LXCQ_TRACING: '0', OTEL_EXPORTER_OTLP_ENDPOINT: rx.url } }))
        .enabled,
    ).toBe(false);
    await expect(startTracing({ service: 'x', env: { LXCQ_TRACING: 'maybe' } })).rejects.toThrow(
      /LXCQ_TRACING=maybe must be 1/,
    );
    await expect(
      startTracing({ service: 'x', env: { LXCQ_TRACING: '1', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' } }),
    ).rejects.toThrow(/OTLP\/HTTP JSON only/);
  });

  it('follows one job from the HTTP request through the enqueue and the worker to the liblxc call', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const r = await s.http<Job & { requestId?: string }>(
      'POST',
      '/v1/containers?wait=120',
      { name: 'tr1', template: 'busybox', config: TEST_CONFIG },
      { headers: { traceparent: `00-${traceId}-${callerSpan}-01`, 'x-request-id': 'trace-req-1' } },
    );
    expect(r.status).toBe(200);
    expect(r.body.state, JSON.stringify(r.body.error)).toBe('completed');
    // the job data carried the trace context to the worker
    const bull = await s.api.ctx.jobs.queue(s.hostId).getJob(r.body.id);
    expect(bull?.data.trace?.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));

    await tracing.flush();
    const inTrace = () => rx.spans.filter((x) => x.traceId === traceId);
    for (let i = 0; i < 100 && !inTrace().some((x) => x.name === 'liblxc create'); i++) await sleep(100);
    const spans = inTrace();
    const one = (name: string, service: string) => {
      const found = spans.filter((x) => x.name === name && x.service === service);
      expect(
        found,
        `${name} from ${service} in ${JSON.stringify(spans.map((x) => [x.service, x.name]))}`,
      ).toHaveLength(1);
      return found[0] as Received;
    };

    const http = one('POST /v1/containers', 'lxcq-api');
    expect(http.kind).toBe(SERVER);
    expect(http.parentSpanId).toBe(callerSpan);
    expect(attr(http, 'http.response.status_code')).toBe(200);
    expect(attr(http, 'lxcq.request_id')).toBe('trace-req-1');

    const enqueue = one('enqueue create', 'lxcq-api');
    expect(enqueue.kind).toBe(PRODUCER);
    expect(enqueue.parentSpanId).toBe(http.spanId);
    expect(attr(enqueue, 'lxcq.job.id')).toBe(r.body.id);
    expect(attr(enqueue, 'lxcq.host')).toBe(s.hostId);

    const job = one('job create', 'lxcq-worker');
    expect(job.kind).toBe(CONSUMER);
    expect(job.parentSpanId).toBe(enqueue.spanId);
    expect(attr(job, 'lxcq.job.id')).toBe(r.body.id);
    expect(attr(job, 'lxcq.container')).toBe('tr1');
    expect(attr(job, 'lxcq.request_id')).toBe('trace-req-1');
    expect(attr(job, 'lxcq.attempt')).toBe(1);

    const call = one('lxc create', 'lxcq-worker');
    expect(call.kind).toBe(INTERNAL);
    expect(call.parentSpanId).toBe(job.spanId);
    expect(attr(call, 'lxcq.container')).toBe('tr1');
    const liblxc = one('liblxc create', 'lxcq-worker');
    expect(liblxc.parentSpanId).toBe(call.spanId);
    // the job's other liblxc steps (the inventory read after it) nest under the job too
    const steps = spans.filter((x) => x.service === 'lxcq-worker' && x.name.startsWith('lxc '));
    for (const step of steps) expect(step.parentSpanId).toBe(job.spanId);
    // and the worker logged the trace id with the job
    const logged = s.workerLog
      .split('\n')
      .filter((l) => l.includes(r.body.id))
      .map((l) => JSON.parse(l) as { traceId?: string });
    expect(logged.length).toBeGreaterThan(0);
    for (const l of logged) expect(l.traceId).toBe(traceId);
  });

  it('carries the trace to the target worker of a migration', async () => {
    await s.addHost('h2');
    const r = await s.http<Job>('POST', '/v1/containers/tr1/migrate?wait=120', { targetHost: 'h2' });
    expect(r.body.state, JSON.stringify(r.body.error)).toBe('completed');
    await tracing.flush();
    // Each worker exports on its own schedule: wait for the target's receive and the source's job.
    let receive: Received | undefined;
    let job: Received | undefined;
    for (let i = 0; i < 150 && !(receive && job); i++) {
      receive = rx.spans.find(
        (x) => x.name === 'transfer receive migrate' && attr(x, 'lxcq.job.id') === r.body.id,
      );
      job = rx.spans.find((x) => x.name === 'job migrate' && x.traceId === receive?.traceId);
      if (!(receive && job)) await sleep(100);
    }
    expect(receive, 'the target worker traced the receive').toBeDefined();
    expect(job, "the source's job span is in the same trace").toBeDefined();
    expect(attr(receive as Received, 'lxcq.host')).toBe('h2');
    const trace = rx.spans.filter((x) => x.traceId === receive?.traceId);
    expect(attr(job as Received, 'lxcq.host')).toBe(s.hostId);
    // the receive's parent is a span of the source's job (the job span itself, as it streams)
    expect(trace.find((x) => x.spanId === receive?.parentSpanId)?.name).toBe('job migrate');
    // the target's liblxc steps nest under the receive
    expect(trace.some((x) => x.name.startsWith('lxc ') && x.parentSpanId === receive?.spanId)).toBe(true);
    // back to h1, so the next test finds tr1 where it expects
    const back = await s.http<Job>('POST', '/v1/containers/tr1/migrate?wait=120', { targetHost: s.hostId });
    expect(back.body.state, JSON.stringify(back.body.error)).toBe('completed');
  });

  it('marks a failed job and its liblxc step as errors', async () => {
    const r = await s.http<Job>('POST', '/v1/containers/tr1/freeze?wait=60');
    expect(r.body.error?.code).toBe('LXCQ_INVALID_STATE');
    await tracing.flush();
    let job: Received | undefined;
    for (let i = 0; i < 100 && !job; i++) {
      job = rx.spans.find((x) => x.name === 'job freeze' && attr(x, 'lxcq.job.id') === r.body.id);
      if (!job) await sleep(100);
    }
    expect(job?.status?.code).toBe(2); // STATUS_CODE_ERROR
    expect(attr(job as Received, 'lxcq.error.code')).toBe('LXCQ_INVALID_STATE');
    // a request without traceparent starts its own trace, which the job continues
    const http = rx.spans.find(
      (x) => x.traceId === job?.traceId && x.name === 'POST /v1/containers/:name/freeze',
    );
    expect(http, 'the failed job continues the trace of its request').toBeDefined();
    expect(http?.parentSpanId ?? '').toBe('');
  });
});
