import { randomUUID } from 'node:crypto';

/** What a caller's `X-Request-Id` may be: 1-128 of letters, digits, `_`, `.`, `:`, `-`. */
export const REQUEST_ID_RE = /^[\w.:-]{1,128}$/;

/**
 * The request id of a call: the caller's `X-Request-Id` when it is well-formed (one header,
 * REQUEST_ID_RE), else a new UUID. An id is never refused: the answer's `X-Request-Id` header
 * says which one was used, and it is logged on every line of the request and of its job.
 */
export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && REQUEST_ID_RE.test(header) ? header : randomUUID();
}
