/**
 * Load and listeners for the fault cases: a job generator over a set of containers (it records
 * every answer: accepted job ids, refusals by code, anything unexpected), and event subscribers of
 * two kinds (the SDK's EventStream, which reconnects by itself, and a raw `ws` client that resumes
 * with `since=<last id>` on its own), each checked against the durable stream afterwards: the events
 * it received must be exactly those the stream holds for its filter, in order, with no gap and no
 * duplicate.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import {
  Store,
  compareCursors,
  matchesFilter,
  parseEventFilter,
  type EventFilter,
  type LxcqEvent,
  type StoredJob,
} from '@lxcq/shared';
// The SDK lives in packages/client (which depends on this package for its own tests): imported
// by path, so the workspace has no dependency cycle.
import { LxcqClient } from '../../../../packages/client/src/index.ts';
import { TEST_CONFIG, TOKEN } from '../harness.ts';
import { percentile } from './report.ts';
import type { FaultStack } from './stack.ts';

export interface JobSpec {
  method: string;
  path: string;
  body?: unknown;
}

/** What one container's lane submits next (round-robin over a small, re-runnable mix). */
export function cheapJob(container: string, i: number): JobSpec {
  switch (i % 5) {
    case 0:
    case 1:
    case 2:
      return { method: 'POST', path: `/v1/containers/${container}/exec`, body: { argv: ['true'] } };
    case 3:
      return {
        method: 'PATCH',
        path: `/v1/containers/${container}/config`,
        body: { set: { 'lxc.environment': `LOAD=${i}` } },
      };
    default:
      return { method: 'PUT', path: `/v1/containers/${container}/limits`, body: { pids: 1000 + i } };
  }
}

export class Loader {
  readonly accepted: string[] = [];
  /** When each accepted job's request was sent, and when its 202 came back (ms since epoch). */
  readonly submittedAt = new Map<string, number>();
  readonly acceptedAt = new Map<string, number>();
  /** Refusals by "status code" (e.g. "503 LXCQ_REDIS_UNAVAILABLE"). */
  readonly refused = new Map<string, number>();
  /** Answers no client should ever see (a 5xx other than 503, a body without an error code). */
  readonly unexpected: string[] = [];
  /** Requests that got no HTTP answer (the API was down). */
  unreachable = 0;
  private running = false;
  private lanes: Promise<void>[] = [];

  constructor(
    private readonly s: FaultStack,
    private readonly containers: readonly string[],
    private readonly opts: {
      perLaneIntervalMs: number;
      job?: (c: string, i: number) => JobSpec;
      max?: number;
    },
  ) {}

  start(): void {
    this.running = true;
    this.lanes = this.containers.map((c, k) => this.lane(c, k));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.lanes);
  }

  get total(): number {
    return this.accepted.length;
  }

  private async lane(container: string, k: number): Promise<void> {
    const job = this.opts.job ?? cheapJob;
    // Spread the lanes' first submissions over one interval.
    await sleep(Math.floor((k * this.opts.perLaneIntervalMs) / Math.max(1, this.containers.length)));
    for (let i = 0; this.running; i++) {
      if (this.opts.max !== undefined && this.accepted.length >= this.opts.max) break;
      await this.submit(job(container, i));
      await sleep(this.opts.perLaneIntervalMs);
    }
  }

  /** One submission; every kind of answer is recorded. */
  async submit(j: JobSpec): Promise<string | null> {
    let res: { status: number; body: { id?: string; error?: { code?: string } }; text: string };
    const t = Date.now();
    try {
      res = await this.s.http(j.method, j.path, j.body);
    } catch {
      this.unreachable++;
      return null;
    }
    if ((res.status === 202 || res.status === 200) && res.body.id) {
      this.accepted.push(res.body.id);
      this.submittedAt.set(res.body.id, t);
      this.acceptedAt.set(res.body.id, Date.now());
      return res.body.id;
    }
    const code = res.body.error?.code;
    const key = `${res.status} ${code ?? 'no-code'}`;
    this.refused.set(key, (this.refused.get(key) ?? 0) + 1);
    if (!code || (res.status >= 500 && res.status !== 503))
      this.unexpected.push(`${j.method} ${j.path}: ${res.status} ${res.text.slice(0, 300)}`);
    return null;
  }
}

/** One subscriber and what it received. */
export interface Listener {
  label: string;
  query: Record<string, string>;
  filter: EventFilter;
  received: LxcqEvent[];
  /** resync-required messages (there should be none: retention is large). */
  resyncs: number;
  /** Connections opened (1 + reconnects). */
  connections: number;
  /** Delivery delays (ms from the event's time to its arrival), sampled. */
  delays: number[];
  close(): void;
}

/** Subscribes with the SDK (packages/client): it reconnects and resumes by cursor by itself. */
export function sdkListener(
  s: FaultStack,
  label: string,
  query: Record<string, string>,
  since: string,
): Listener {
  const client = new LxcqClient({ url: s.url, token: TOKEN });
  const types = query.types ? (query.types.split(',') as never[]) : undefined;
  const stream = client.events({
    ...(types ? { types } : {}),
    ...(query.container ? { container: query.container } : {}),
    ...(query.host ? { host: query.host } : {}),
    since,
    minBackoffMs: 100,
    maxBackoffMs: 1000,
  });
  const l: Listener = {
    label,
    query,
    filter: parseEventFilter({ ...query, since }),
    received: [],
    resyncs: 0,
    connections: 0,
    delays: [],
    close: () => stream.close(),
  };
  void (async () => {
    try {
      for await (const item of stream) {
        l.connections = stream.connections;
        if (item.type === 'resync-required') {
          l.resyncs++;
          continue;
        }
        const ev = item as unknown as LxcqEvent;
        l.received.push(ev);
        if (l.received.length % 10 === 1) l.delays.push(Date.now() - Date.parse(ev.time));
      }
    } catch {
      // closed with an error: the comparison shows what was missed
    }
  })();
  return l;
}

/** A raw `ws` subscriber that resumes with since=<last id> itself whenever its socket closes. */
export function rawListener(
  s: FaultStack,
  label: string,
  query: Record<string, string>,
  since: string,
): Listener {
  let cursor = since;
  let closed = false;
  let ws: WebSocket | null = null;
  const l: Listener = {
    label,
    query,
    filter: parseEventFilter({ ...query, since }),
    received: [],
    resyncs: 0,
    connections: 0,
    delays: [],
    close: () => {
      closed = true;
      ws?.terminate();
    },
  };
  const connect = (): void => {
    if (closed) return;
    const q = new URLSearchParams({ ...query, since: cursor }).toString();
    const sock = new WebSocket(`ws://127.0.0.1:${s.port}/v1/events?${q}`, ['lxcq.v1'], {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    ws = sock;
    sock.on('open', () => l.connections++);
    sock.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString()) as { type: string; id?: string; time?: string };
      if (m.type === 'hello') return;
      if (m.type === 'resync-required') {
        l.resyncs++;
        return;
      }
      if (!m.id) return;
      // Kept even when repeated or out of order: the comparison must see what the server sent.
      if (compareCursors(m.id, cursor) > 0) cursor = m.id;
      const ev = m as unknown as LxcqEvent;
      l.received.push(ev);
      if (l.received.length % 10 === 1) l.delays.push(Date.now() - Date.parse(ev.time));
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (!closed) setTimeout(connect, 100);
    });
  };
  connect();
  return l;
}

/** The events a filter selects in (since, until], read from the stream itself. */
export async function streamEvents(s: FaultStack, since: string, until: string): Promise<LxcqEvent[]> {
  const out: LxcqEvent[] = [];
  let from = `(${since}`;
  for (;;) {
    const page = await s.redis.xrange(s.keys.events, from, until, 'COUNT', 5000);
    for (const [id, fields] of page) out.push(Store.parseEvent(id, fields));
    if (page.length < 5000) return out;
    from = `(${page[page.length - 1]?.[0] ?? until}`;
  }
}

/**
 * Waits until every listener has what the stream holds for it, then compares exactly.
 * Returns one problem line per listener that missed, repeated or reordered anything.
 */
export async function checkListeners(
  s: FaultStack,
  listeners: readonly Listener[],
  since: string,
  timeoutMs = 60_000,
): Promise<{ problems: string[]; expected: number; delivered: number }> {
  const until = (await s.redis.xrevrange(s.keys.events, '+', '-', 'COUNT', 1))[0]?.[0] ?? since;
  const all = await streamEvents(s, since, until);
  const want = listeners.map((l) => all.filter((e) => matchesFilter(l.filter, e)).map((e) => e.id));
  const deadline = Date.now() + timeoutMs;
  const caughtUp = (i: number) => {
    const w = want[i] as string[];
    const got = (listeners[i] as Listener).received;
    const last = w[w.length - 1];
    return last === undefined || got.some((e) => e.id === last);
  };
  while (Date.now() < deadline && !listeners.every((_, i) => caughtUp(i))) await sleep(200);
  const problems: string[] = [];
  let expected = 0;
  let delivered = 0;
  listeners.forEach((l, i) => {
    const w = want[i] as string[];
    const got = l.received.map((e) => e.id).filter((id) => compareCursors(id, until) <= 0);
    expected += w.length;
    delivered += got.length;
    if (l.resyncs > 0) problems.push(`${l.label}: got resync-required ${l.resyncs} times`);
    if (JSON.stringify(got) === JSON.stringify(w)) return;
    const gotSet = new Set(got);
    const missing = w.filter((id) => !gotSet.has(id));
    const dups = got.length - gotSet.size;
    const wantSet = new Set(w);
    const extra = got.filter((id) => !wantSet.has(id));
    problems.push(
      `${l.label} (${new URLSearchParams(l.query).toString() || 'all'}): expected ${w.length} events, got ${got.length}: ` +
        `${missing.length} missing (first ${missing.slice(0, 3).join(',')}), ${dups} repeated, ${extra.length} not matching` +
        (missing.length === 0 && dups === 0 && extra.length === 0 ? ', out of order' : ''),
    );
  });
  return { problems, expected, delivered };
}

export function delaySummary(listeners: readonly Listener[]): string {
  const d = listeners.flatMap((l) => l.delays);
  return `event delivery p50 ${percentile(d, 50)} ms, p99 ${percentile(d, 99)} ms, max ${percentile(d, 100)} ms`;
}

/** The filters listeners use: everything, one family, one container, a mix. */
export function listenerQueries(containers: readonly string[], n: number): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  for (let i = 0; i < n; i++) {
    const c = containers[i % containers.length] as string;
    switch (i % 4) {
      case 0:
        out.push({});
        break;
      case 1:
        out.push({ types: 'job.*' });
        break;
      case 2:
        out.push({ container: c });
        break;
      default:
        out.push({ types: 'job.completed,job.failed,container.state', container: c });
    }
  }
  return out;
}

/**
 * Creates and starts `count` busybox containers named `<prefix>0..`, then subscribes `subscribers`
 * listeners (SDK and raw WebSocket in turn) from the stream's head. The listeners are pushed into
 * `into` as they are made, so the caller's clean-up finds them even when this throws half-way.
 */
export async function runningContainersWithListeners(
  s: FaultStack,
  o: { prefix: string; count: number; subscribers: number; into: Listener[] },
): Promise<{ containers: string[]; since: string }> {
  const containers = Array.from({ length: o.count }, (_, i) => `${o.prefix}${i}`);
  await Promise.all(
    containers.map(async (name) => {
      const r = await s.http<StoredJob>('POST', '/v1/containers?wait=120', {
        name,
        template: 'busybox',
        config: TEST_CONFIG,
        start: true,
      });
      if (r.status !== 200 || r.body.state !== 'completed') throw new Error(`create ${name}: ${r.text}`);
    }),
  );
  const since = (await s.redis.xrevrange(s.keys.events, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
  listenerQueries(containers, o.subscribers).forEach((q, i) =>
    o.into.push(i % 2 === 0 ? sdkListener(s, `sdk#${i}`, q, since) : rawListener(s, `ws#${i}`, q, since)),
  );
  return { containers, since };
}
