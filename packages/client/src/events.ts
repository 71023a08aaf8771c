import type { EventType, LxcqEvent } from '@lxcq/shared';
import { compareCursors, isCursor, parseEventFilter } from './shared-runtime.ts';
import {
  messageText,
  type CloseEventLike,
  type ErrorEventLike,
  type MessageEventLike,
  type WebSocketConstructor,
  type WebSocketLike,
} from './websocket.ts';

/** An event whose `type` narrows its `data` (a discriminated union over the given types). */
export type EventOf<T extends EventType = EventType> = { [K in T]: LxcqEvent<K> }[T];

/** What `types` accepts: exact event types, a family (`job.*`) or everything (`*`). */
export type EventSelector = EventType | 'job.*' | 'container.*' | 'host.*' | '*';

/** The event types a list of selectors picks. */
export type Selected<S extends EventSelector> = S extends '*'
  ? EventType
  : S extends `${infer F}.*`
    ? Extract<EventType, `${F}.${string}`>
    : Extract<S, EventType>;

/**
 * Yielded when the server could not replay everything after the last cursor (it was trimmed from
 * retention): the caller should list again (containers, jobs) and go on reading.
 */
export interface ResyncRequired {
  type: 'resync-required';
  /** Where the stream resumes. */
  cursor?: string;
}

export interface EventsOptions<S extends EventSelector = EventSelector> {
  types?: readonly S[];
  container?: string;
  host?: string;
  job?: string;
  /** Replay events after this cursor (an event id) first. */
  since?: string;
  /** With `container.usage` in `types`: at most one update per host every this many seconds. */
  interval?: number;
  /** First reconnect delay; doubles up to `maxBackoffMs` (with jitter). Default 250 ms. */
  minBackoffMs?: number;
  /** Default 10 s. */
  maxBackoffMs?: number;
  /** Called before each reconnect attempt (the connection dropped or could not be made). */
  onReconnect?: (info: { attempt: number; delayMs: number; error?: Error }) => void;
  /**
   * Called on each connection's `hello` with the newest cursor at that moment: events up to it
   * are replayed (with `since`), later ones are live.
   */
  onHello?: (cursor: string) => void;
  /** Stop waiting and end the stream when this aborts. */
  signal?: AbortSignal;
}

/** What the stream needs from its client. */
export interface EventStreamDeps {
  /** ws:// or wss:// URL of /v1/events, without a query. */
  url: string;
  token: string | undefined;
  /** 'header' (Node's `ws`), 'subprotocol' (browsers) or both. */
  auth: 'header' | 'subprotocol' | 'both';
  webSocket: () => Promise<WebSocketConstructor>;
  /**
   * Called when a connection could not be opened: throws a permanent error (a refused token) to
   * end the stream, returns to retry.
   */
  diagnose: (err: Error) => Promise<void>;
}

type Item<E> = E | ResyncRequired;

/**
 * Live events as an async iterator. It connects on the first `next()`, reconnects by itself with
 * backoff, resumes from the last cursor it received (so nothing is missed or repeated across a
 * reconnect), and closes its socket when the loop ends (`break`, `return()`, `close()`).
 */
export class EventStream<E extends { id: string } = EventOf> implements AsyncIterableIterator<Item<E>> {
  private readonly buffer: Item<E>[] = [];
  private waiters: (() => void)[] = [];
  private socket: WebSocketLike | null = null;
  private started = false;
  private closed = false;
  private failure: Error | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastCursor: string | undefined;
  private readonly query: string;
  /** Connections opened so far (1 + reconnects). */
  connections = 0;

  constructor(
    private readonly deps: EventStreamDeps,
    private readonly opts: EventsOptions = {},
  ) {
    const q: Record<string, string> = {};
    if (opts.types && opts.types.length > 0) q.types = opts.types.join(',');
    if (opts.container !== undefined) q.container = opts.container;
    if (opts.host !== undefined) q.host = opts.host;
    if (opts.job !== undefined) q.job = opts.job;
    if (opts.since !== undefined) q.since = opts.since;
    if (opts.interval !== undefined) q.interval = String(opts.interval);
    // The server's own parser: a bad filter fails here, not as a refused upgrade.
    parseEventFilter(q);
    delete q.since;
    this.query = new URLSearchParams(q).toString();
    this.lastCursor = opts.since;
    opts.signal?.addEventListener('abort', () => this.close(), { once: true });
    if (opts.signal?.aborted) this.closed = true;
  }

  /** The newest cursor received: pass it as `since` to resume later. */
  get cursor(): string | undefined {
    return this.lastCursor;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Item<E>, undefined>> {
    if (!this.started && !this.closed) {
      this.started = true;
      void this.connect();
    }
    for (;;) {
      const item = this.buffer.shift();
      if (item !== undefined) return { done: false, value: item };
      if (this.failure) {
        const f = this.failure;
        this.failure = null;
        this.close();
        throw f;
      }
      if (this.closed) return { done: true, value: undefined };
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  return(): Promise<IteratorResult<Item<E>, undefined>> {
    this.buffer.length = 0;
    this.close();
    return Promise.resolve({ done: true, value: undefined });
  }

  /** Closes the socket; the iteration yields what was already received, then ends. */
  close(): void {
    if (this.closed && !this.socket && !this.timer) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onopen = null;
      s.onmessage = null;
      s.onclose = null;
      s.onerror = () => undefined;
      try {
        s.close(1000, 'client done');
      } catch {
        // closing a socket that never opened
      }
    }
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private push(item: Item<E>): void {
    this.buffer.push(item);
    this.wake();
  }

  private fail(err: Error): void {
    this.failure = err;
    this.closed = true;
    this.wake();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    let Impl: WebSocketConstructor;
    try {
      Impl = await this.deps.webSocket();
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (this.closed) return;
    const q = new URLSearchParams(this.query);
    if (this.lastCursor !== undefined) q.set('since', this.lastCursor);
    const qs = q.toString();
    const url = `${this.deps.url}${qs ? `?${qs}` : ''}`;
    const token = this.deps.token;
    const protocols = ['lxcq.v1'];
    let socket: WebSocketLike;
    try {
      if (token !== undefined && this.deps.auth !== 'header') protocols.push(`bearer.${token}`);
      socket =
        token !== undefined && this.deps.auth !== 'subprotocol'
          ? new Impl(url, protocols, { headers: { authorization: `Bearer ${token}` } })
          : new Impl(url, protocols);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.socket = socket;
    let opened = false;
    let error: Error | undefined;
    socket.onopen = () => {
      opened = true;
      this.connections++;
    };
    socket.onmessage = (ev: MessageEventLike) => {
      if (socket !== this.socket) return;
      this.onMessage(ev.data);
    };
    socket.onerror = (ev: ErrorEventLike) => {
      error =
        ev.error instanceof Error
          ? ev.error
          : new Error(typeof ev.message === 'string' ? ev.message : 'WebSocket error');
    };
    socket.onclose = (ev: CloseEventLike) => {
      if (socket !== this.socket) return;
      this.socket = null;
      if (this.closed) return;
      const why =
        error ?? new Error(`events connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`);
      void this.retry(why, opened);
    };
  }

  private onMessage(data: unknown): void {
    const text = messageText(data);
    if (text === null) return;
    let msg: { type?: unknown; id?: unknown; cursor?: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    if (msg.type === 'hello') {
      // Connected: the next failure starts the backoff over. Without a cursor of our own, the
      // hello's is where this subscription began (events after it will come).
      this.attempt = 0;
      if (typeof msg.cursor === 'string' && isCursor(msg.cursor)) {
        if (this.lastCursor === undefined) this.lastCursor = msg.cursor;
        this.opts.onHello?.(msg.cursor);
      }
      return;
    }
    if (msg.type === 'resync-required') {
      const cursor = typeof msg.cursor === 'string' && isCursor(msg.cursor) ? msg.cursor : undefined;
      if (cursor !== undefined) this.lastCursor = cursor;
      this.push(cursor === undefined ? { type: 'resync-required' } : { type: 'resync-required', cursor });
      return;
    }
    if (msg.type === 'container.usage') {
      // Live only, not in the stream: no cursor to keep.
      this.push(msg as unknown as E);
      return;
    }
    if (typeof msg.id !== 'string' || !isCursor(msg.id) || typeof msg.type !== 'string') return;
    // The server never repeats one; this guards a resume against it all the same.
    if (this.lastCursor !== undefined && compareCursors(msg.id, this.lastCursor) <= 0) return;
    this.lastCursor = msg.id;
    this.push(msg as unknown as E);
  }

  private async retry(err: Error, opened: boolean): Promise<void> {
    if (!opened) {
      try {
        await this.deps.diagnose(err);
      } catch (permanent) {
        this.fail(permanent instanceof Error ? permanent : new Error(String(permanent)));
        return;
      }
    }
    if (this.closed) return;
    const min = this.opts.minBackoffMs ?? 250;
    const max = this.opts.maxBackoffMs ?? 10_000;
    const base = Math.min(max, min * 2 ** this.attempt);
    const delayMs = Math.round(base / 2 + (Math.random() * base) / 2);
    this.attempt++;
    this.opts.onReconnect?.({ attempt: this.attempt, delayMs, error: err });
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, delayMs);
  }
}

/** Turns http(s)://host/base into ws(s)://host/base/v1/events. */
export function eventsUrl(base: string): string {
  const u = new URL(base);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/events`;
  u.search = '';
  u.hash = '';
  return u.toString();
}

export function isResync<E>(item: E | ResyncRequired): item is ResyncRequired {
  return (item as { type?: unknown }).type === 'resync-required';
}
