import { WebSocket } from 'ws';

export interface Msg {
  type: string;
  id?: string;
  cursor?: string;
  container?: string;
  host?: string;
  job?: string;
  data?: Record<string, unknown>;
}

/** A test subscriber: collects every message, and lets a test wait for the ones it expects. */
export class Sub {
  readonly messages: Msg[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      this.messages.push(JSON.parse(d.toString()) as Msg);
      this.wake();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  static open(url: string, query = '', opts: { token?: string; protocols?: string[] } = {}): Promise<Sub> {
    const headers = opts.token ? { authorization: `Bearer ${opts.token}` } : undefined;
    const ws = new WebSocket(
      `${url.replace(/^http/, 'ws')}/v1/events${query}`,
      opts.protocols ?? [],
      headers ? { headers } : {},
    );
    const sub = new Sub(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(sub));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () =>
          reject(
            Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body }),
          ),
        );
      });
      ws.once('error', reject);
    });
  }

  events(): Msg[] {
    return this.messages.filter((m) => m.type !== 'hello' && m.type !== 'resync-required');
  }

  /** Waits until `pred` holds over the messages received so far (or the socket closes). */
  async until(pred: (msgs: Msg[]) => boolean, timeoutMs = 20_000): Promise<Msg[]> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.messages)) {
      if (this.closed)
        throw new Error(
          `socket closed (${this.closed.code} ${this.closed.reason}) before the expected messages`,
        );
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; got ${JSON.stringify(this.messages.map((m) => m.type))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.messages;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((r) => {
      // A socket a test paused never sees the closing handshake: cut it after a moment.
      const t = setTimeout(() => this.ws.terminate(), 500);
      this.ws.once('close', () => {
        clearTimeout(t);
        r();
      });
      this.ws.close();
    });
  }
}
