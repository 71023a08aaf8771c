import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a Prometheus registry offers (prom-client's `Registry`), so this file needs no prom-client. */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** True when the request carries `Authorization: Bearer <token>`; compared in constant time. */
export function bearerMatches(req: { headers: IncomingMessage['headers'] }, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m?.[1] !== undefined && timingSafeEqual(digest(m[1]), digest(token));
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export interface MetricsServer {
  /** host:port it listens on (the port picked when the bind asked for 0). */
  address: string;
  close(): Promise<void>;
}

/**
 * A small HTTP server answering `GET /metrics` in Prometheus' text format (the worker's; the API
 * serves /metrics on its own port). With a token, a scrape needs `Authorization: Bearer <token>`.
 */
export async function serveMetrics(o: {
  bind: { host: string; port: number };
  source: MetricsSource;
  token?: string | undefined;
  log: { warn(obj: object, msg: string): void };
}): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      return sendError(res, 404, 'LXCQ_NOT_FOUND', 'Only GET /metrics is served here.');
    }
    if (o.token !== undefined && !bearerMatches(req, o.token)) {
      return sendError(
        res,
        401,
        'LXCQ_UNAUTHORIZED',
        'Send "Authorization: Bearer <LXCQ_METRICS_TOKEN>" to scrape these metrics.',
      );
    }
    o.source.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': o.source.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        o.log.warn({ err }, 'metrics collection failed');
        sendError(res, 500, 'LXCQ_INTERNAL', 'Collecting the metrics failed; see the worker log.');
      },
    );
  });
  // Scrapes are small requests: bound what a client may hold open.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((ok, ko) => {
    server.once('error', ko);
    server.listen(o.bind.port, o.bind.host, () => ok());
  });
  const a = server.address() as AddressInfo;
  return {
    address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
