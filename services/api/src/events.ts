import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Redis } from 'ioredis';
import { WebSocketServer, type WebSocket } from 'ws';
import type { FastifyBaseLogger } from 'fastify';
import {
  LxcqError,
  Store,
  compareCursors,
  matchesFilter,
  parseEventFilter,
  toLxcqError,
  type EventFilter,
  type Keys,
  type LxcqEvent,
} from '@lxcq/shared';
import type { Tokens } from './auth.ts';
import { refuse } from './errors.ts';

export interface EventHubOptions {
  /** Ping period; a client that has not answered the previous ping by then is dropped. */
  pingMs: number;
  /** A client whose unsent data passes this many bytes is closed with 4008. */
  maxBufferedBytes: number;
  log: FastifyBaseLogger;
}

interface Client {
  ws: WebSocket;
  /** The client's TCP socket, corked around each batch so a burst leaves in one write. */
  socket: Duplex;
  filter: EventFilter;
  /** Live events arriving while the replay runs, sent after it. */
  pending: { id: string; json: string; ev: LxcqEvent }[] | null;
  /** Events at or before this cursor were sent (or predate the subscription) and are skipped. */
  floor: string;
  alive: boolean;
}

const PROTOCOL = 'lxcq.v1';

/**
 * Fans the durable event stream out to WebSocket subscribers. One reader per API process follows
 * the Redis stream; a subscriber with `since` first gets the retained events in (since, head],
 * where head is where the reader stood when it subscribed, then every event after head from the
 * reader: no gap and no duplicate across the switch. Any number of API processes can serve any
 * client, since each follows the same stream.
 */
export class EventHub {
  private readonly reader: Redis;
  private readonly clients = new Set<Client>();
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 4096,
    handleProtocols: (protocols) =>
      protocols.has(PROTOCOL) ? PROTOCOL : ([...protocols].find((p) => p.startsWith('bearer.')) ?? false),
  });
  private head = '0-0';
  private running = false;
  private loop: Promise<void> | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  /** Counters for metrics and tests. */
  readonly stats = { delivered: 0, slowClosed: 0, deadDropped: 0 };

  constructor(
    private readonly redisUrl: string,
    private readonly keys: Keys,
    private readonly store: Store,
    private readonly tokens: Tokens,
    private readonly opts: EventHubOptions,
  ) {
    this.reader = new Redis(redisUrl, { maxRetriesPerRequest: null });
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
    this.running = true;
    this.loop = this.follow();
    this.pingTimer = setInterval(() => this.ping(), this.opts.pingMs);
  }

  async close(): Promise<void> {
    this.running = false;
    if (this.pingTimer) clearInterval(this.pingTimer);
    for (const c of this.clients) c.ws.close(1001, 'server shutting down: reconnect with since=<last id>');
    this.reader.disconnect();
    await this.loop?.catch(() => undefined);
    this.wss.close();
  }

  private async follow(): Promise<void> {
    while (this.running) {
      let res: [string, [string, string[]][]][] | null;
      try {
        res = await this.reader.xread('COUNT', 1000, 'BLOCK', 5000, 'STREAMS', this.keys.events, this.head);
      } catch (err) {
        if (!this.running) return;
        this.opts.log.warn({ err }, 'event stream read failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      for (const [, entries] of res ?? []) {
        // Serialise each event once; then per client, every event of the batch goes out in one
        // write (cork/uncork): a syscall per socket per event is most of the fan-out's cost.
        const batch = entries.map(([id, fields]) => {
          const ev = Store.parseEvent(id, fields);
          return { id, ev, json: JSON.stringify(ev) };
        });
        const last = batch[batch.length - 1];
        if (!last) continue;
        this.head = last.id;
        for (const c of this.clients) {
          c.socket.cork();
          for (const b of batch) this.offer(c, b.id, b.json, b.ev);
          c.socket.uncork();
        }
      }
    }
  }

  private offer(c: Client, id: string, json: string, ev: LxcqEvent): void {
    if (!matchesFilter(c.filter, ev)) return;
    if (c.pending) c.pending.push({ id, json, ev });
    else this.send(c, id, json);
  }

  private send(c: Client, id: string, json: string): boolean {
    if (compareCursors(id, c.floor) <= 0) return true;
    if (c.ws.readyState !== c.ws.OPEN) return false;
    if (c.ws.bufferedAmount > this.opts.maxBufferedBytes) {
      this.stats.slowClosed++;
      c.ws.close(4008, `too slow: resume with since=${c.floor}`);
      this.clients.delete(c);
      return false;
    }
    c.ws.send(json);
    c.floor = id;
    this.stats.delivered++;
    return true;
  }

  private ping(): void {
    for (const c of this.clients) {
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
    const c: Client = { ws, socket, filter, pending: filter.since ? [] : null, floor: start, alive: true };
    this.clients.add(c);
    ws.on('pong', () => (c.alive = true));
    ws.on('close', () => this.clients.delete(c));
    ws.on('error', () => this.clients.delete(c));
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
        for (const [id, fields] of page) {
          const ev = Store.parseEvent(id, fields);
          if (matchesFilter(filter, ev) && !this.send(c, id, JSON.stringify(ev))) return;
        }
        if (page.length < 500) break;
        from = `(${page[page.length - 1]?.[0] ?? start}`;
        await this.drained(c);
      }
      if (compareCursors(c.floor, start) < 0) c.floor = start;
    }
    const queued = c.pending ?? [];
    c.pending = null;
    for (const p of queued) if (!this.send(c, p.id, p.json)) return;
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
