/**
 * The fault suite's own view of the event stream, read straight from Redis (XREAD): it tells the
 * moment to strike ("the job went active", "it reported progress") within a millisecond or so, and
 * it is the reference that WebSocket subscribers' streams are compared with.
 */
import { Redis } from 'ioredis';
import { Store, type Keys, type LxcqEvent } from '@lxcq/shared';

export class EventTap {
  readonly events: LxcqEvent[] = [];
  private readonly conn: Redis;
  private running = true;
  private readonly loop: Promise<void>;
  private waiters: (() => void)[] = [];

  /** Starts reading after `from` (default: the stream's newest event now). */
  private constructor(
    redisUrl: string,
    private readonly keys: Keys,
    private cursor: string,
  ) {
    this.conn = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.conn.on('error', () => undefined);
    this.loop = this.follow();
  }

  static async open(redisUrl: string, keys: Keys, from?: string): Promise<EventTap> {
    let cursor = from;
    if (cursor === undefined) {
      const r = new Redis(redisUrl, { maxRetriesPerRequest: null });
      r.on('error', () => undefined);
      try {
        cursor = (await r.xrevrange(keys.events, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
      } finally {
        r.disconnect();
      }
    }
    return new EventTap(redisUrl, keys, cursor);
  }

  private async follow(): Promise<void> {
    while (this.running) {
      try {
        const res = await this.conn.xread(
          'COUNT',
          1000,
          'BLOCK',
          500,
          'STREAMS',
          this.keys.events,
          this.cursor,
        );
        for (const [, entries] of res ?? []) {
          for (const [id, fields] of entries) {
            this.events.push(Store.parseEvent(id, fields));
            this.cursor = id;
          }
        }
        if (res) for (const w of this.waiters.splice(0)) w();
      } catch {
        if (!this.running) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Resolves with the first event (from `fromIndex` on) that `pred` accepts. */
  async waitFor(pred: (e: LxcqEvent) => boolean, timeoutMs = 60_000, fromIndex = 0): Promise<LxcqEvent> {
    const deadline = Date.now() + timeoutMs;
    let i = fromIndex;
    for (;;) {
      for (; i < this.events.length; i++) {
        const e = this.events[i] as LxcqEvent;
        if (pred(e)) return e;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for an event');
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async close(): Promise<void> {
    this.running = false;
    this.conn.disconnect();
    await this.loop;
  }
}
