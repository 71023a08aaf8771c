import type { FastifyError, FastifyInstance } from 'fastify';
import { LxcqError, toLxcqError } from '@lxcq/shared';

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
