import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RedisConnection as Redis } from '@lxcq/shared';
import { WebSocketServer, type WebSocket } from 'ws';
import type { FastifyBaseLogger } from 'fastify';
import {
  LxcqError,
  Store,
  compareCursors,
  eventResult,
  matchesFilter,
  parseEventFilter,
  redisClient,
  toLxcqError,
  type EventFilter,
  type Keys,
  type LxcqEvent,
  type UsagePublished,
  USAGE_EVENT,
} from '@lxcq/shared';
import { logRedisConnection } from '@lxcq/telemetry';
import type { Tokens } from './auth.ts';
import { refuse } from './errors.ts';

export interface EventHubOptions {
  /** Ping period; a client that has not answered the previous ping by then is dropped. */
  pingMs: number;
  /** A client whose unsent data passes this many bytes is closed with 4008. */
  maxBufferedBytes: number;
  log: FastifyBaseLogger;
  /** Told about every batch the reader takes from the stream (the API's metrics count job ends). */
  onEvents?: (events: readonly LxcqEvent[]) => void;
}

interface Client {
  ws: WebSocket;
  /** The client's TCP socket, corked around each batch so a burst leaves in one write. */
  socket: Duplex;
  filter: EventFilter;
  /** The filter selects every event (no types, container, host or job). */
  everything: boolean;
  /** Live events arriving while the replay runs, sent after it. */
  pending: Outgoing[] | null;
  /** Events at or before this cursor were sent (or predate the subscription) and are skipped. */
  floor: string;
  alive: boolean;
  /** Which of the PING_SLICES rounds of the ping period pings this client. */
  pingSlot: number;
  /** Set when the client asked for container.usage: its interval, and when each host's last went out. */
  usage: { intervalMs: number; sentAt: Map<string, number> } | null;
}

const PROTOCOL = 'lxcq.v1';

/**
 * The clients are pinged in this many groups spread over the ping period rather than all at once:
 * a round of 1,000 pings and the 1,000 pongs it draws is about as much work as fanning out one
 * event to them, and would hold up the event that arrives meanwhile. Each client is still pinged
 * once per period and dropped when it has not answered the previous ping.
 */
const PING_SLICES = 10;

/** One event of a read batch, serialised and framed once for every client. */
interface Outgoing {
  id: string;
  ev: LxcqEvent;
  /** The complete WebSocket text frame (header + payload), written as is to each socket. */
  frame: Buffer;
}

/** A batch of events read from the stream, with every frame of it joined (built on first use). */
class Batch {
  private joined: Buffer | null = null;
  constructor(readonly items: Outgoing[]) {}
  all(): Buffer {
    return (this.joined ??= Buffer.concat(this.items.map((i) => i.frame)));
  }
}

/**
 * An unmasked, final WebSocket text frame (RFC 6455 section 5.2) holding `json`. Servers never mask,
 * and the hub's server negotiates no extension, so the frame is the same bytes for every client:
 * built once per event instead of once per event per client inside `ws.send`.
 */
export function textFrame(json: string): Buffer {
  const len = Buffer.byteLength(json);
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const buf = Buffer.allocUnsafe(head + len);
  buf[0] = 0x81;
  if (len < 126) buf[1] = len;
  else if (len < 65536) {
    buf[1] = 126;
    buf.writeUInt16BE(len, 2);
  } else {
    buf[1] = 127;
    buf.writeBigUInt64BE(BigInt(len), 2);
  }
  buf.write(json, head, 'utf8');
  return buf;
}

function outgoing(id: string, raw: LxcqEvent): Outgoing {
  // Workers leave an exec's output out of the stream; an event written before they did (or by an
  // older worker) is cut here, so no subscriber gets it either way.
  const ev =
    raw.type === 'job.completed'
      ? {
          ...raw,
          data: {
            ...(raw as LxcqEvent<'job.completed'>).data,
            result: eventResult(
              (raw as LxcqEvent<'job.completed'>).data.operation,
              (raw as LxcqEvent<'job.completed'>).data.result,
            ),
          },
        }
      : raw;
  return { id, ev, frame: textFrame(JSON.stringify(ev)) };
}

/**
 * Fans the durable event stream out to WebSocket subscribers. One reader per API process follows
 * the Redis stream; a subscriber with `since` first gets the retained events in (since, head],
 * where head is where the reader stood when it subscribed, then every event after head from the
 * reader: no gap and no duplicate across the switch. Any number of API processes can serve any
 * client, since each follows the same stream.
 */
export class EventHub {
  private readonly reader: Redis;
  /** Subscribed to the usage channel (container.usage events come from there, not the stream). */
  private readonly usageSub: Redis;
  private readonly clients = new Set<Client>();
  /** Clients that asked for container.usage. */
  private usageClients = 0;
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 4096,
    // Frames are pre-built and written straight to the sockets (see textFrame): no extensions.
    perMessageDeflate: false,
    // Only ever lxcq.v1: the chosen subprotocol is echoed in the answer, and `bearer.<token>`
    // would put the token there (in proxies' and browsers' logs of the handshake).
    handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
  });
  private head = '0-0';
  private running = false;
  private loop: Promise<void> | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private pingSlice = 0;
  private nextPingSlot = 0;
  /** Counters for metrics and tests. */
  readonly stats = { delivered: 0, slowClosed: 0, deadDropped: 0, usageDelivered: 0 };
  /** When the reader last heard from Redis (a batch, or an empty blocking read), ms since epoch. */
  lastReadAt = Date.now();
  /** The reader's last read failure, cleared by the next good read (for GET /v1/health). */
  lastReadError: string | null = null;

  constructor(
    private readonly redisUrl: string,
    private readonly keys: Keys,
    private readonly store: Store,
    private readonly tokens: Tokens,
    private readonly opts: EventHubOptions,
  ) {
    this.reader = redisClient(redisUrl, { maxRetriesPerRequest: null });
    logRedisConnection(this.reader, 'event-reader', opts.log);
    this.usageSub = redisClient(redisUrl, { maxRetriesPerRequest: null });
    logRedisConnection(this.usageSub, 'usage-subscriber', opts.log);
    this.usageSub.on('message', (_channel: string, message: string) => this.onUsage(message));
    // A broken handshake (no key, an unknown version, a malformed subprotocol list) gets an lxcq
    // error body like any other bad request, instead of ws's plain-text answer.
    this.wss.on('wsClientError', (err: Error, socket: Duplex) =>
      refuse(socket, new LxcqError('LXCQ_BAD_REQUEST', `Not a valid WebSocket upgrade: ${err.message}.`)),
    );
  }

  get clientCount(): number {
    return this.clients.size;
  }

  async start(): Promise<void> {
    const newest = await this.reader.xrevrange(this.keys.events, '+', '-', 'COUNT', 1);
    this.head = newest[0]?.[0] ?? '0-0';
    await this.usageSub.subscribe(this.keys.usageChannel);
    this.running = true;
    this.loop = this.follow();
    this.pingTimer = setInterval(() => this.ping(), Math.max(1, Math.round(this.opts.pingMs / PING_SLICES)));
  }

  async close(): Promise<void> {
    this.running = false;
    if (this.pingTimer) clearInterval(this.pingTimer);
    for (const c of this.clients) c.ws.close(1001, 'server shutting down: reconnect with since=<last id>');
    this.reader.disconnect();
    this.usageSub.disconnect();
    await this.loop?.catch(() => undefined);
    this.wss.close();
  }

  private async follow(): Promise<void> {
    while (this.running) {
      let res: [string, [string, string[]][]][] | null;
      try {
        res = await this.reader.xread('COUNT', 1000, 'BLOCK', 5000, 'STREAMS', this.keys.events, this.head);
        this.lastReadAt = Date.now();
        this.lastReadError = null;
      } catch (err) {
        if (!this.running) return;
        this.lastReadError = (err as Error).message;
        this.opts.log.warn({ err }, 'event stream read failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      for (const [, entries] of res ?? []) {
        // Serialise and frame each event once; then each client gets its share of the batch in
        // one write of ready-made bytes: the syscall per socket is most of the fan-out's cost.
        const batch = new Batch(entries.map(([id, fields]) => outgoing(id, Store.parseEvent(id, fields))));
        const last = batch.items[batch.items.length - 1];
        if (!last) continue;
        this.head = last.id;
        this.opts.onEvents?.(batch.items.map((b) => b.ev));
        for (const c of this.clients) {
          if (c.pending) {
            for (const o of batch.items) if (matchesFilter(c.filter, o.ev)) c.pending.push(o);
          } else this.deliver(c, batch);
        }
      }
    }
  }

  /**
   * One usage pass of one host (published by its worker): container.usage events to the clients
   * that asked for them, each at most once per its interval per host. Nothing is parsed while no
   * client wants usage. A pass that comes within half a collection period of a client's interval
   * counts as due, so an interval that is a multiple of the period is kept without drift.
   */
  private onUsage(message: string): void {
    if (this.usageClients === 0) return;
    let p: UsagePublished;
    try {
      p = JSON.parse(message) as UsagePublished;
    } catch {
      return;
    }
    const host = p.pass.host;
    const now = Date.now();
    const slack = p.pass.intervalMs / 2;
    const frames = new Map<string, Buffer>();
    const frameOf = (i: number): Buffer => {
      const u = p.containers[i]!;
      let f = frames.get(u.name);
      if (!f) {
        const ev = { id: '', type: USAGE_EVENT, time: u.collectedAt, host, container: u.name, data: u };
        f = textFrame(JSON.stringify(ev));
        frames.set(u.name, f);
      }
      return f;
    };
    for (const c of this.clients) {
      if (!c.usage || c.pending || c.ws.readyState !== c.ws.OPEN) continue;
      if (c.filter.host !== undefined && c.filter.host !== host) continue;
      if (c.filter.job !== undefined) continue;
      const last = c.usage.sentAt.get(host);
      if (last !== undefined && now - last < c.usage.intervalMs - slack) continue;
      const out: Buffer[] = [];
      for (let i = 0; i < p.containers.length; i++) {
        if (c.filter.container !== undefined && p.containers[i]!.name !== c.filter.container) continue;
        out.push(frameOf(i));
      }
      c.usage.sentAt.set(host, now);
      if (out.length === 0) continue;
      if (c.ws.bufferedAmount > this.opts.maxBufferedBytes) {
        this.stats.slowClosed++;
        c.ws.close(4008, `too slow: resume with since=${c.floor}`);
        this.clients.delete(c);
        continue;
      }
      c.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
      this.stats.usageDelivered += out.length;
    }
  }

  /**
   * How far the reader is behind the stream: the age (by Redis' clock) of the oldest event it has
   * not read yet, and whether there is one. 0 when it has read everything.
   */
  async lag(): Promise<{ seconds: number; behind: boolean }> {
    const [next, time] = await Promise.all([
      this.store.redis.xrange(this.keys.events, `(${this.head}`, '+', 'COUNT', 1),
      this.store.redis.time(),
    ]);
    const id = next[0]?.[0];
    if (!id) return { seconds: 0, behind: false };
    const nowMs = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    return { seconds: Math.max(0, nowMs - Number(id.split('-')[0])) / 1000, behind: true };
  }

  /**
   * Writes the events of `batch` that `c` wants and has not had, in one write. False when the
   * client is gone or was just closed for being too slow.
   */
  private deliver(c: Client, batch: Batch): boolean {
    if (c.ws.readyState !== c.ws.OPEN) return false;
    if (c.ws.bufferedAmount > this.opts.maxBufferedBytes) {
      this.stats.slowClosed++;
      c.ws.close(4008, `too slow: resume with since=${c.floor}`);
      this.clients.delete(c);
      return false;
    }
    const items = batch.items;
    const first = items[0];
    if (!first) return true;
    if (c.everything && compareCursors(first.id, c.floor) > 0) {
      // The common case: a client of every event, behind the whole batch.
      c.socket.write(batch.all());
      c.floor = (items[items.length - 1] as Outgoing).id;
      this.stats.delivered += items.length;
      return true;
    }
    let picked: Outgoing[] | null = null;
    for (let i = 0; i < items.length; i++) {
      const o = items[i] as Outgoing;
      const wanted = compareCursors(o.id, c.floor) > 0 && matchesFilter(c.filter, o.ev);
      if (wanted) picked?.push(o);
      else picked ??= items.slice(0, i);
    }
    const n = picked ? picked.length : items.length;
    if (n === 0) return true;
    c.socket.write(
      picked === null
        ? batch.all()
        : n === 1
          ? (picked[0] as Outgoing).frame
          : Buffer.concat(picked.map((o) => o.frame)),
    );
    c.floor = (picked ? (picked[n - 1] as Outgoing) : (items[items.length - 1] as Outgoing)).id;
    this.stats.delivered += n;
    return true;
  }

  /** One ping round: the clients of the current slice (see PING_SLICES). */
  private ping(): void {
    const slice = this.pingSlice;
    this.pingSlice = (slice + 1) % PING_SLICES;
    for (const c of this.clients) {
      if (c.pingSlot !== slice) continue;
      if (!c.alive) {
        this.stats.deadDropped++;
        c.ws.terminate();
        this.clients.delete(c);
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }

  /** Handles `GET /v1/events` upgrades: auth (header or `bearer.<token>` subprotocol), filters, then subscribe. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let filter: EventFilter;
    try {
      const offered = req.headers['sec-websocket-protocol'];
      if (typeof offered === 'string' && !offered.split(',').some((p) => p.trim() === PROTOCOL))
        // A browser fails a handshake whose answer names none of the subprotocols it offered.
        throw new LxcqError(
          'LXCQ_BAD_REQUEST',
          `Offer the WebSocket subprotocol ${PROTOCOL} (next to bearer.<token>): the server answers with it, never with the token.`,
        );
      this.tokens.authorize(req, 'read');
      const url = new URL(req.url ?? '/', 'http://x');
      const q: Record<string, string> = {};
      for (const [k, v] of url.searchParams) q[k] = v;
      filter = parseEventFilter(q);
    } catch (err) {
      refuse(socket, toLxcqError(err));
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      void this.subscribe(ws, socket, filter).catch((err: unknown) => {
        this.opts.log.warn({ err }, 'subscription failed');
        ws.close(1011, 'subscription failed');
      });
    });
  }

  private async subscribe(ws: WebSocket, socket: Duplex, filter: EventFilter): Promise<void> {
    const start = this.head;
    const everything =
      filter.types.exact.size === 0 &&
      filter.types.prefixes.length === 0 &&
      filter.container === undefined &&
      filter.host === undefined &&
      filter.job === undefined;
    const c: Client = {
      ws,
      socket,
      filter,
      everything,
      pending: filter.since ? [] : null,
      floor: start,
      alive: true,
      pingSlot: this.nextPingSlot++ % PING_SLICES,
      usage: filter.types.exact.has(USAGE_EVENT)
        ? { intervalMs: filter.usageIntervalMs ?? 0, sentAt: new Map() }
        : null,
    };
    this.clients.add(c);
    if (c.usage) this.usageClients++;
    let gone = false;
    const drop = () => {
      this.clients.delete(c);
      if (c.usage && !gone) this.usageClients--;
      gone = true;
    };
    ws.on('pong', () => (c.alive = true));
    ws.on('close', drop);
    ws.on('error', drop);
    // Clients only listen; anything they send is ignored (maxPayload bounds it).
    ws.on('message', () => undefined);
    ws.send(JSON.stringify({ type: 'hello', cursor: start }));
    if (!filter.since) return;
    const since = filter.since;
    c.floor = since;
    if (await this.trimmedAfter(since)) {
      ws.send(JSON.stringify({ type: 'resync-required', cursor: start }));
      c.floor = start;
    } else {
      // Replay (since, start]; everything after start comes from the reader.
      let from = `(${since}`;
      for (;;) {
        if (compareCursors(since, start) >= 0) break;
        const page = await this.store.redis.xrange(this.keys.events, from, start, 'COUNT', 500);
        const items = page.map(([id, fields]) => ({ id, ev: Store.parseEvent(id, fields) }));
        const wanted = items.filter((o) => matchesFilter(filter, o.ev)).map((o) => outgoing(o.id, o.ev));
        if (wanted.length > 0 && !this.deliver(c, new Batch(wanted))) return;
        if (page.length < 500) break;
        from = `(${page[page.length - 1]?.[0] ?? start}`;
        await this.drained(c);
      }
      if (compareCursors(c.floor, start) < 0) c.floor = start;
    }
    const queued = c.pending ?? [];
    c.pending = null;
    if (queued.length > 0) this.deliver(c, new Batch(queued));
  }

  /** Waits (bounded) while a replaying client's socket holds more than half the buffer bound. */
  private async drained(c: Client): Promise<void> {
    for (let i = 0; i < 500 && c.ws.bufferedAmount > this.opts.maxBufferedBytes / 2; i++)
      await new Promise((r) => setTimeout(r, 10));
  }

  /**
   * True when events after `since` may have been trimmed from retention. Trimming removes the
   * oldest entries, so when the stream ever lost entries (entries-added > length), a cursor older
   * than the first retained entry may have missed some: conservatively, resync. Entries removed
   * one by one (XDEL) are covered by max-deleted-entry-id.
   */
  private async trimmedAfter(since: string): Promise<boolean> {
    const raw = (await this.store.redis.xinfo('STREAM', this.keys.events).catch(() => null)) as
      unknown[] | null;
    if (!raw) return false;
    const info = new Map<string, unknown>();
    const str = (v: unknown, d: string) => (typeof v === 'string' ? v : d);
    for (let i = 0; i + 1 < raw.length; i += 2) info.set(String(raw[i]), raw[i + 1]);
    const maxDeleted = str(info.get('max-deleted-entry-id'), '0-0');
    if (compareCursors(since, maxDeleted) < 0) return true;
    const added = Number(info.get('entries-added') ?? 0);
    const length = Number(info.get('length') ?? 0);
    const first = info.get('first-entry');
    const firstId = Array.isArray(first)
      ? str(first[0], '0-0')
      : str(info.get('recorded-first-entry-id'), '0-0');
    return added > length && compareCursors(since, firstId) < 0;
  }
}
