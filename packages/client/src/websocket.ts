/**
 * The little of the WebSocket API the SDK uses, met by the browser's `WebSocket` and by the `ws`
 * package alike. Handler parameters are typed `never` so that both implementations' own event
 * types are accepted; the SDK reads only `data` (message), `code` and `reason` (close), and
 * `message` (error, `ws` only) from them.
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: never) => void) | null;
  onmessage: ((ev: never) => void) | null;
  onclose: ((ev: never) => void) | null;
  onerror: ((ev: never) => void) | null;
  close(code?: number, reason?: string): void;
}

/**
 * A WebSocket constructor: the browser's `WebSocket` or `ws`'s. The third argument (headers) is
 * understood by `ws` only; a browser ignores it, so there the token travels as a subprotocol.
 */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
  options?: { headers?: Record<string, string> },
) => WebSocketLike;

export interface MessageEventLike {
  data: unknown;
}
export interface CloseEventLike {
  code: number;
  reason: string;
}
export interface ErrorEventLike {
  message?: string;
  error?: unknown;
}

/** True under Node.js (where `ws` can send an Authorization header), false in browsers. */
export function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

/**
 * The WebSocket implementation to use when none was given: `ws` under Node (loaded on demand, so
 * browser bundles never execute it), the global `WebSocket` elsewhere.
 */
export async function defaultWebSocket(): Promise<WebSocketConstructor> {
  if (isNode()) {
    const mod = await import('ws');
    return mod.WebSocket;
  }
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!global)
    throw new Error('This environment has no WebSocket: pass one as new LxcqClient({ WebSocket }).');
  return global;
}

/** Text of a message event's data (string in browsers, Buffer or string with `ws`). */
export function messageText(data: unknown): string | null {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  if (ArrayBuffer.isView(data))
    return new TextDecoder().decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return null;
}
