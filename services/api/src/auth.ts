import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { LxcqError, scopeSatisfies, type Scope } from '@lxcq/shared';
import type { TokenEntry } from './config.ts';

export function sha256(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Token lookup by hash, compared in constant time; tokens themselves are never stored. */
export class Tokens {
  constructor(private readonly entries: readonly TokenEntry[]) {}

  find(token: string): TokenEntry | null {
    const h = Buffer.from(sha256(token), 'hex');
    for (const e of this.entries) {
      if (timingSafeEqual(h, Buffer.from(e.sha256, 'hex'))) return e;
    }
    return null;
  }

  /** The bearer token of a request: the Authorization header, or the `bearer.<token>` WebSocket subprotocol. */
  static fromRequest(req: { headers: IncomingHttpHeaders }): string | null {
    const auth = req.headers.authorization;
    if (typeof auth === 'string') {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      return m?.[1] ?? null;
    }
    const proto = req.headers['sec-websocket-protocol'];
    if (typeof proto === 'string') {
      for (const p of proto.split(',').map((s) => s.trim()))
        if (p.startsWith('bearer.')) return p.slice('bearer.'.length);
    }
    return null;
  }

  /**
   * `GET /metrics`: the scrape-only LXCQ_METRICS_TOKEN (when configured, by its sha256), or any
   * token with the read scope.
   */
  authorizeMetrics(req: { headers: IncomingHttpHeaders }, metricsSha256: string | undefined): void {
    const token = Tokens.fromRequest(req);
    if (
      token &&
      metricsSha256 &&
      timingSafeEqual(Buffer.from(sha256(token), 'hex'), Buffer.from(metricsSha256, 'hex'))
    )
      return;
    this.authorize(req, 'read');
  }

  /**
   * Whether the request's token has `scope` (for what a route shows, after authorize() let it in).
   * Answered once per request object: a job list asks for every job.
   */
  mayRead(req: { headers: IncomingHttpHeaders }, scope: Scope): boolean {
    let seen = this.scopesOf.get(req);
    if (!seen) {
      const token = Tokens.fromRequest(req);
      seen = (token ? this.find(token)?.scopes : undefined) ?? [];
      this.scopesOf.set(req, seen);
    }
    return scopeSatisfies(seen, scope);
  }

  private readonly scopesOf = new WeakMap<object, readonly Scope[]>();

  authorize(req: { headers: IncomingHttpHeaders }, need: Scope): TokenEntry {
    const token = Tokens.fromRequest(req);
    if (!token)
      throw new LxcqError(
        'LXCQ_UNAUTHORIZED',
        'Send "Authorization: Bearer <token>" (the token lxcq printed at start, or one from LXCQ_TOKENS_FILE).',
      );
    const entry = this.find(token);
    if (!entry) throw new LxcqError('LXCQ_UNAUTHORIZED', 'Unknown token.');
    if (!scopeSatisfies(entry.scopes, need)) {
      throw new LxcqError(
        'LXCQ_FORBIDDEN',
        `This route needs the ${need} scope; token ${entry.name} has ${entry.scopes.join(', ')}.`,
        {
          details: { need, have: entry.scopes },
        },
      );
    }
    return entry;
  }
}
