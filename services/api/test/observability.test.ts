// Observability on a real stack: Prometheus metrics of the API and of the worker after real jobs,
// request ids from the HTTP request to every worker log line of its job, and GET /v1/health
// telling what is wrong (no online host, Redis down, a host without CRIU).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG, TOKEN, startRedis, type Job, type RedisServer } from './harness.ts';
import { Sub } from './ws-client.ts';

const METRICS_TOKEN = 'scrape-only-token-0123456789';
const VIEWER = 'viewer-token-0123456789';
const OPERATOR = 'operator-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'lxcq-obs-'));
const tokensFile = join(dir, 'tokens.json');
writeFileSync(
  tokensFile,
  JSON.stringify({
    tokens: [
      { name: 'viewer', token: VIEWER, scopes: ['read'] },
      { name: 'operator', token: OPERATOR, scopes: ['operate'] },
    ],
  }),
);

let s: Stack;
const subs: Sub[] = [];

beforeAll(async () => {
  s = await Stack.start({
    tokensFile,
    apiEnv: { LXCQ_METRICS_TOKEN: METRICS_TOKEN, LXCQ_WS_PING_MS: '300' },
    workerEnv: { LXCQ_METRICS_BIND: '127.0.0.1:0', LXCQ_METRICS_TOKEN: METRICS_TOKEN },
  });
  const j = await s.run('POST', '/v1/containers', { name: 'obs1', template: 'busybox', config: TEST_CONFIG });
  expect(j.state, JSON.stringify(j.error)).toBe('completed');
});
afterAll(async () => {
  for (const sub of subs) sub.ws.terminate();
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One sample of a Prometheus text exposition: the value of `name` whose labels include `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      have[l[1] as string] = l[2] as string;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function scrape(url: string, token: string | null = METRICS_TOKEN): Promise<string> {
  const res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  expect(res.status, await res.clone().text()).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

async function workerMetricsUrl(): Promise<string> {
  const h = await s.http<{ metrics?: string }>('GET', `/v1/hosts/${s.hostId}`);
  expect(h.body.metrics, 'the host record advertises the worker metrics address').toMatch(
    /^127\.0\.0\.1:\d+$/,
  );
  return `http://${h.body.metrics}/metrics`;
}

const apiMetrics = () => scrape(`${s.url}/metrics`);

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(v)} after ${ms} ms`);
    await sleep(100);
  }
}

describe('metrics', () => {
  it('GET /metrics on the API needs a read token or the scrape-only metrics token', async () => {
    const none = await fetch(`${s.url}/metrics`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('LXCQ_UNAUTHORIZED');
    const wrong = await fetch(`${s.url}/metrics`, {
      headers: { authorization: 'Bearer not-a-token-0123456' },
    });
    expect(wrong.status).toBe(401);
    for (const token of [METRICS_TOKEN, VIEWER, OPERATOR, TOKEN]) await scrape(`${s.url}/metrics`, token);
    // the metrics token opens /metrics and nothing else
    const other = await s.http('GET', '/v1/containers', undefined, { token: METRICS_TOKEN });
    expect(other.status).toBe(401);
  });

  it("the worker's metrics server needs its token and serves only GET /metrics", async () => {
    const url = await workerMetricsUrl();
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(401);
    expect((await fetch(url.replace('/metrics', '/other'))).status).toBe(404);
    const text = await scrape(url);
    // default process metrics, labelled with the host
    expect(sample(text, 'process_cpu_user_seconds_total', { host: s.hostId })).toBeGreaterThan(0);
    expect(sample(text, 'nodejs_eventloop_lag_p99_seconds', { host: s.hostId })).toBeGreaterThan(0);
    expect(sample(text, 'lxcq_pool_threads', { host: s.hostId })).toBe(4);
  });

  it('job counters and duration histograms grow with real jobs, on the API and on the worker', async () => {
    const wurl = await workerMetricsUrl();
    const [a0, w0] = await Promise.all([apiMetrics(), scrape(wurl)]);
    const n = (t: string, name: string, l: Record<string, string>) => sample(t, name, l) ?? 0;

    let j = await s.run('POST', '/v1/containers/obs1/start');
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    j = await s.run('POST', '/v1/containers/obs1/stop');
    expect(j.state).toBe('completed');
    // a job that fails: a stopped container cannot be frozen
    j = await s.run('POST', '/v1/containers/obs1/freeze');
    expect(j.error?.code).toBe('LXCQ_INVALID_STATE');

    const w1 = await scrape(wurl);
    const start = { operation: 'start', outcome: 'completed' };
    expect(n(w1, 'lxcq_jobs_total', start) - n(w0, 'lxcq_jobs_total', start)).toBe(1);
    expect(
      n(w1, 'lxcq_jobs_total', { operation: 'freeze', outcome: 'failed' }) -
        n(w0, 'lxcq_jobs_total', { operation: 'freeze', outcome: 'failed' }),
    ).toBe(1);
    const frozen = { operation: 'freeze', code: 'LXCQ_INVALID_STATE' };
    expect(n(w1, 'lxcq_job_failures_total', frozen) - n(w0, 'lxcq_job_failures_total', frozen)).toBe(1);
    expect(
      n(w1, 'lxcq_job_duration_seconds_count', start) - n(w0, 'lxcq_job_duration_seconds_count', start),
    ).toBe(1);
    const startSeconds =
      n(w1, 'lxcq_job_duration_seconds_sum', start) - n(w0, 'lxcq_job_duration_seconds_sum', start);
    expect(startSeconds).toBeGreaterThan(0);
    expect(startSeconds).toBeLessThan(60);
    // the start took longer than the smallest bucket, so it is not in it but is in +Inf
    expect(
      n(w1, 'lxcq_job_duration_seconds_bucket', { ...start, le: '+Inf' }) -
        n(w0, 'lxcq_job_duration_seconds_bucket', { ...start, le: '+Inf' }),
    ).toBe(1);
    expect(n(w1, 'lxcq_job_queue_wait_seconds_count', { operation: 'start' })).toBeGreaterThan(0);
    // liblxc steps: each start job calls the thread's `start` once
    expect(
      n(w1, 'lxcq_lxc_call_duration_seconds_count', { fn: 'start' }) -
        n(w0, 'lxcq_lxc_call_duration_seconds_count', { fn: 'start' }),
    ).toBe(1);
    expect(n(w1, 'lxcq_pool_wait_seconds_count', {})).toBeGreaterThan(
      n(w0, 'lxcq_pool_wait_seconds_count', {}),
    );
    expect(n(w1, 'lxcq_pool_busy_seconds_total', {})).toBeGreaterThan(
      n(w0, 'lxcq_pool_busy_seconds_total', {}),
    );
    // from the periodic inventory (every 2 s here)
    await until(
      'the inventory counting obs1',
      () => scrape(wurl),
      (t) => (sample(t, 'lxcq_worker_containers', { state: 'all' }) ?? 0) >= 1,
    );

    const a1 = await until(
      'the API counting the freeze failure from the event stream',
      apiMetrics,
      (t) =>
        n(t, 'lxcq_cluster_jobs_ended_total', { operation: 'freeze', outcome: 'failed' }) >
        n(a0, 'lxcq_cluster_jobs_ended_total', { operation: 'freeze', outcome: 'failed' }),
    );
    for (const op of ['start', 'stop', 'freeze'])
      expect(
        n(a1, 'lxcq_jobs_submitted_total', { operation: op }) -
          n(a0, 'lxcq_jobs_submitted_total', { operation: op }),
      ).toBe(1);
    expect(
      n(a1, 'lxcq_cluster_jobs_ended_total', start) - n(a0, 'lxcq_cluster_jobs_ended_total', start),
    ).toBe(1);
    const route = { method: 'POST', route: '/v1/containers/:name/start' };
    expect(
      n(a1, 'lxcq_http_request_duration_seconds_count', route) -
        n(a0, 'lxcq_http_request_duration_seconds_count', route),
    ).toBe(1);
    expect(
      n(a1, 'lxcq_http_requests_total', { ...route, status: '200' }) -
        n(a0, 'lxcq_http_requests_total', { ...route, status: '200' }),
    ).toBe(1);
    // the cluster as Redis holds it
    expect(sample(a1, 'lxcq_host_up', { host: s.hostId })).toBe(1);
    expect(sample(a1, 'lxcq_host_heartbeat_age_seconds', { host: s.hostId })).toBeLessThan(5);
    expect(sample(a1, 'lxcq_host_criu_available', { host: s.hostId })).toBeGreaterThanOrEqual(0);
    expect(sample(a1, 'lxcq_queue_jobs', { host: s.hostId, state: 'waiting' })).toBe(0);
    expect(sample(a1, 'lxcq_event_stream_lag_seconds')).toBe(0);
    expect(sample(a1, 'lxcq_event_reader_silence_seconds')).toBeLessThan(6);
    expect(sample(a1, 'nodejs_eventloop_lag_p99_seconds')).toBeGreaterThan(0);
  });

  it('shows jobs waiting behind each other on one container, and forgets the container once drained', async () => {
    const wurl = await workerMetricsUrl();
    expect((await s.run('POST', '/v1/containers/obs1/start')).state).toBe('completed');
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await s.http<Job>('POST', '/v1/containers/obs1/exec', { argv: ['sleep', '1'] });
      expect(r.status).toBe(202);
      ids.push(r.body.id);
    }
    const busy = await until(
      'three execs waiting behind the first',
      () => scrape(wurl),
      (t) => sample(t, 'lxcq_container_waiting_jobs', { container: 'obs1' }) === 3,
    );
    expect(sample(busy, 'lxcq_containers_with_waiting_jobs')).toBe(1);
    expect(sample(busy, 'lxcq_container_waiting_jobs_max')).toBe(3);
    expect(sample(busy, 'lxcq_jobs_in_flight')).toBe(4);
    const a = await apiMetrics();
    expect(sample(a, 'lxcq_queue_jobs', { host: s.hostId, state: 'active' })).toBeGreaterThanOrEqual(1);
    for (const id of ids) {
      const r = await s.http<Job>('GET', `/v1/jobs/${id}/wait?timeout=30`);
      expect(r.body.state).toBe('completed');
    }
    const idle = await scrape(wurl);
    expect(sample(idle, 'lxcq_container_waiting_jobs', { container: 'obs1' })).toBeUndefined();
    expect(sample(idle, 'lxcq_containers_with_waiting_jobs')).toBe(0);
    expect((await s.run('POST', '/v1/containers/obs1/stop')).state).toBe('completed');
  });

  it('counts WebSocket clients, and the dead ones the server drops', async () => {
    const before = await apiMetrics();
    const live = await Sub.open(s.url, '', { token: TOKEN });
    const dead = await Sub.open(s.url, '', { token: TOKEN });
    subs.push(live, dead);
    await dead.until((m) => m[0]?.type === 'hello');
    let t = await apiMetrics();
    expect(sample(t, 'lxcq_ws_clients')).toBe((sample(before, 'lxcq_ws_clients') ?? 0) + 2);
    // stops reading: no pong, so the server drops it at the next ping round (LXCQ_WS_PING_MS=300)
    (dead.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    t = await until(
      'the dead client dropped',
      apiMetrics,
      (x) =>
        (sample(x, 'lxcq_ws_clients_dropped_total', { reason: 'dead' }) ?? 0) >
        (sample(before, 'lxcq_ws_clients_dropped_total', { reason: 'dead' }) ?? 0),
    );
    expect(sample(t, 'lxcq_ws_clients')).toBe((sample(before, 'lxcq_ws_clients') ?? 0) + 1);
    expect(sample(t, 'lxcq_ws_clients_dropped_total', { reason: 'slow' })).toBe(0);
    expect(sample(t, 'lxcq_ws_events_sent_total')).toBeGreaterThanOrEqual(0);
  });
});

describe('request ids and logs', () => {
  it('takes X-Request-Id, answers it, keeps it with the job, and the worker logs it on every line of the job', async () => {
    const r = await s.http<Job & { requestId?: string }>(
      'POST',
      '/v1/containers/obs1/start?wait=60',
      undefined,
      { headers: { 'x-request-id': 'obs-req-42' } },
    );
    expect(r.status).toBe(200);
    expect(r.headers.get('x-request-id')).toBe('obs-req-42');
    expect(r.body.requestId).toBe('obs-req-42');
    const stored = await s.http<{ requestId?: string }>('GET', `/v1/jobs/${r.body.id}`);
    expect(stored.body.requestId).toBe('obs-req-42');
    // tracing is off here: nothing but the job travels in the queue
    const bull = await s.api.ctx.jobs.queue(s.hostId).getJob(r.body.id);
    expect(bull?.data.requestId).toBe('obs-req-42');
    expect(bull?.data.trace).toBeUndefined();

    const lines = await until(
      'the worker logging the job to its end',
      () =>
        Promise.resolve(
          s.workerLog
            .split('\n')
            .filter((l) => l.includes(r.body.id))
            .map((l) => JSON.parse(l) as Record<string, unknown>),
        ),
      (ls) => ls.some((l) => l.msg === 'job completed'),
    );
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['job started', 'job completed']));
    for (const l of lines) {
      expect(l).toMatchObject({
        jobId: r.body.id,
        container: 'obs1',
        host: s.hostId,
        operation: 'start',
        requestId: 'obs-req-42',
      });
      expect(typeof l.time).toBe('number');
      expect(typeof l.level).toBe('number');
    }
    expect((await s.run('POST', '/v1/containers/obs1/stop')).state).toBe('completed');
  });

  it('makes up a request id when none or a malformed one is sent, and answers it', async () => {
    for (const given of [undefined, 'has spaces', 'x'.repeat(129), 'quote"d']) {
      const r = await s.http<Job & { requestId?: string }>(
        'POST',
        '/v1/containers/obs1/unfreeze',
        undefined,
        given === undefined ? {} : { headers: { 'x-request-id': given } },
      );
      expect(r.status).toBe(202);
      const id = r.headers.get('x-request-id');
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(r.body.requestId).toBe(id);
      await s.http('GET', `/v1/jobs/${r.body.id}/wait?timeout=30`);
    }
    // reads answer it too
    const h = await s.http('GET', '/v1/hosts', undefined, { headers: { 'x-request-id': 'read:1.a_b-c' } });
    expect(h.headers.get('x-request-id')).toBe('read:1.a_b-c');
  });
});

describe('GET /v1/health', () => {
  type Health = {
    status: string;
    redis: string;
    hosts?: { online: number; total: number };
    problems: string[];
    checks: { name: string; status: string; message: string }[];
  };
  const health = () => s.http<Health>('GET', '/v1/health', undefined, { token: null });
  const check = (h: Health, name: string) => h.checks.find((c) => c.name === name);

  it('is ok with Redis, an online host and a caught-up event reader', async () => {
    const r = await health();
    expect(r.status).toBe(200);
    expect(check(r.body, 'redis')?.status).toBe('ok');
    expect(check(r.body, 'hosts')).toMatchObject({ status: 'ok', message: '1 of 1 hosts online.' });
    expect(check(r.body, 'events')?.status).toBe('ok');
    expect(r.body.hosts).toEqual({ online: 1, total: 1 });
  });

  it("names a host whose CRIU is broken, from the registry's capabilities, without failing", async () => {
    const fake = 'nocriu';
    const { store } = s.api.ctx;
    await store.putHost({
      id: fake,
      status: 'online',
      draining: false,
      lastSeen: new Date().toISOString(),
      startedAt: new Date().toISOString(),
      lxcpath: '/var/lib/lxc',
      capabilities: {
        liblxcVersion: '5.0.2',
        criu: false,
        criuMessage: 'criu check: Unexpected rt vDSO area bounds',
        cores: 2,
        memoryBytes: 1,
        freeMemoryBytes: 1,
        containers: 0,
        running: 0,
      },
    });
    // and one that went silent a minute ago without stopping
    const ghost = 'ghost';
    const record = await store.getHost(fake, 60_000);
    expect(record).not.toBeNull();
    await store.putHost({ ...record!, id: ghost, lastSeen: new Date(Date.now() - 60_000).toISOString() });
    try {
      const r = await health();
      expect(r.status).toBe(200);
      expect(r.body.status).toBe('degraded');
      expect(check(r.body, `host:${ghost}`)).toMatchObject({ status: 'warn' });
      expect(check(r.body, `host:${ghost}`)?.message).toMatch(
        /^Host ghost \(silent, last heartbeat 60 s ago\) is offline: .*LXCQ_HOST_OFFLINE/,
      );
      expect(check(r.body, 'hosts')).toMatchObject({ status: 'ok', message: '2 of 3 hosts online.' });
      expect(check(r.body, `host:${fake}`)).toMatchObject({ status: 'warn' });
      expect(check(r.body, `host:${fake}`)?.message).toMatch(
        /no working CRIU \(criu check: Unexpected rt vDSO/,
      );
      expect(r.body.problems.some((p) => p.includes(fake))).toBe(true);
      const m = await apiMetrics();
      expect(sample(m, 'lxcq_host_criu_available', { host: fake })).toBe(0);
    } finally {
      await s.redis.srem(s.api.ctx.keys.hosts, fake, ghost);
      await s.redis.del(s.api.ctx.keys.host(fake), s.api.ctx.keys.host(ghost));
    }
  });

  it('answers 503 when no host is online, and 200 again once the worker is back', async () => {
    await s.stopWorker('SIGTERM');
    const r = await health();
    expect(r.status).toBe(503);
    expect(r.body.status).toBe('unavailable');
    expect(check(r.body, 'hosts')).toMatchObject({ status: 'fail' });
    expect(check(r.body, 'hosts')?.message).toMatch(
      new RegExp(
        `^No online host, so no job can run: ${s.hostId} \\(its worker stopped, last heartbeat \\d+ s ago\\)`,
      ),
    );
    expect(check(r.body, 'redis')?.status).toBe('ok');
    expect(r.body.hosts).toEqual({ online: 0, total: 1 });
    const m = await apiMetrics();
    expect(sample(m, 'lxcq_host_up', { host: s.hostId })).toBe(0);
    await s.startWorker();
    await until('health back to 200', health, (x) => x.status === 200);
  });

  it('answers 503 naming Redis when it is down, and recovers when it is back', async () => {
    await s.redisServer.stop();
    const t0 = Date.now();
    const r = await health();
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ status: 'unavailable', redis: 'unreachable' });
    expect(check(r.body, 'redis')).toMatchObject({ status: 'fail' });
    expect(check(r.body, 'redis')?.message).toMatch(/Redis cannot be reached .*LXCQ_REDIS_URL/);
    // the same Redis again (same directory, so the same socket and its AOF data)
    const again: RedisServer = await startRedis(s.redisServer.dir);
    (s as { redisServer: RedisServer }).redisServer = again; // so close() stops this one
    const ok = await until('health after Redis came back', health, (x) => x.status === 200, 30_000);
    expect(ok.body.status).not.toBe('unavailable');
    expect(check(ok.body, 'hosts')?.status).toBe('ok');
    // API and worker reconnected by themselves: a job goes through again. (Also what lets the
    // worker stop cleanly afterwards: BullMQ's Worker.close() hangs while its connection is still
    // reconnecting, taskforcesh/bullmq#4656.)
    const j = await s.run('POST', '/v1/containers/obs1/stop', undefined, 60);
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
  });
});
