import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LxcqError, toLxcqError } from '@lxcq/shared';

/** Writes an lxcq error as a whole HTTP answer on a raw socket, then closes it. */
export function refuse(socket: Duplex, e: LxcqError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: e.toJSON() });
  socket.end(
    `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (not HTTP, an unknown method, a NUL
 * in the path, headers past 16 KiB, too slow): answered with an lxcq error like everything else.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let e: LxcqError;
  if (err.code === 'HPE_HEADER_OVERFLOW')
    e = new LxcqError(
      'LXCQ_HEADERS_TOO_LARGE',
      'The request headers are larger than 16 KiB in all; send a shorter token or fewer headers.',
    );
  else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    e = new LxcqError('LXCQ_REQUEST_TIMEOUT', 'The request did not arrive whole in time.');
  else
    e = new LxcqError(
      'LXCQ_BAD_REQUEST',
      `The request is not valid HTTP/1.1 (${err.code ?? 'parse error'}); check the request line and headers.`,
    );
  refuse(socket, e);
}

/** URLs the router cannot take: bad percent-encoding, a path segment past maxParamLength. */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const e =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new LxcqError(
          'LXCQ_BAD_REQUEST',
          'A path segment is longer than the API accepts (names are at most 64 characters).',
        )
      : new LxcqError('LXCQ_BAD_REQUEST', `The URL is not valid: ${err.message}`);
  void reply.status(e.status).send({ error: e.toJSON() });
}

/** Every error leaves as `{"error": {code, message, details?}}` with the code's status; never a bare 500. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | LxcqError | Error, req, reply) => {
    let e: LxcqError;
    const fe = err as FastifyError;
    if (err instanceof LxcqError) e = err;
    else if (fe.validation) {
      const first = fe.validation[0];
      const where = fe.validationContext ?? 'request';
      const field = first?.instancePath ? `${where}${first.instancePath}` : where;
      e = new LxcqError(
        'LXCQ_VALIDATION',
        `Invalid ${field}: ${first?.message ?? 'does not match the schema'}.`,
        {
          details: {
            problems: fe.validation.map((v) => ({
              path: `${where}${v.instancePath}`,
              message: v.message,
              params: v.params,
            })),
          },
        },
      );
    } else if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      e = new LxcqError(
        'LXCQ_BODY_TOO_LARGE',
        `The request body is larger than ${app.initialConfig.bodyLimit ?? 0} bytes.`,
      );
    } else if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      // Fastify's own 4xx: bad JSON, wrong content type, empty body, bad URL, ...
      e = new LxcqError('LXCQ_BAD_REQUEST', fe.message);
    } else if (
      (fe as { code?: string }).code === 'ECONNREFUSED' ||
      /Connection is closed|ECONNREFUSED|MaxRetriesPerRequest/i.test(err.message)
    ) {
      e = new LxcqError(
        'LXCQ_REDIS_UNAVAILABLE',
        'Redis cannot be reached; nothing was accepted. Retry later.',
        { cause: err },
      );
    } else {
      e = toLxcqError(err);
    }
    if (e.status >= 500) req.log.error({ err }, 'request failed');
    void reply.status(e.status).send({ error: e.toJSON() });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({
      error: { code: 'LXCQ_NOT_FOUND', message: `No route ${req.method} ${req.url.split('?')[0] ?? ''}.` },
    });
  });
}
