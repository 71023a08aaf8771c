// Tokens: the API's one gate. Unit tests (no Redis, no HTTP): the routes' use of it is tried
// route by route in scopes.test.ts.
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { LxcqError } from '@lxcq/shared';
import { Tokens, sha256 } from '../src/auth.ts';
import type { TokenEntry } from '../src/config.ts';

const entry = (name: string, token: string, scopes: TokenEntry['scopes']): TokenEntry => ({
  name,
  sha256: sha256(token),
  scopes,
});
const tokens = new Tokens([
  entry('viewer', 'viewer-token-0123456789', ['read']),
  entry('operator', 'operator-token-0123456789', ['operate']),
  entry('root', 'admin-token-0123456789', ['admin']),
]);
const req = (headers: IncomingHttpHeaders) => ({ headers });
const bearer = (t: string) => req({ authorization: `Bearer ${t}` });

/** The LxcqError `fn` throws (the test fails when it throws nothing or something else). */
function refusal(fn: () => unknown): LxcqError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LxcqError);
    return e as LxcqError;
  }
  throw new Error('expected a refusal, nothing was thrown');
}

describe('sha256', () => {
  it('is the hex digest of the token', () => {
    expect(sha256('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('Tokens.find', () => {
  it('finds the entry whose hash matches, and only that one', () => {
    expect(tokens.find('operator-token-0123456789')?.name).toBe('operator');
    expect(tokens.find('admin-token-0123456789')?.name).toBe('root');
    expect(tokens.find('viewer-token-0123456789')?.name).toBe('viewer');
    expect(tokens.find('viewer-token-012345678')).toBeNull();
    expect(tokens.find('')).toBeNull();
    expect(new Tokens([]).find('viewer-token-0123456789')).toBeNull();
  });
});

describe('Tokens.fromRequest', () => {
  it('takes the token of an Authorization: Bearer header (any case, surrounding blanks)', () => {
    expect(Tokens.fromRequest(bearer('abc'))).toBe('abc');
    expect(Tokens.fromRequest(req({ authorization: 'bearer   abc  ' }))).toBe('abc');
    expect(Tokens.fromRequest(req({ authorization: 'BEARER abc' }))).toBe('abc');
  });
  it('refuses other schemes, a missing token and a token with blanks in it', () => {
    expect(Tokens.fromRequest(req({ authorization: 'Basic abc' }))).toBeNull();
    expect(Tokens.fromRequest(req({ authorization: 'Bearer' }))).toBeNull();
    expect(Tokens.fromRequest(req({ authorization: 'Bearer ' }))).toBeNull();
    expect(Tokens.fromRequest(req({ authorization: 'Bearer a b' }))).toBeNull();
    expect(Tokens.fromRequest(req({ authorization: 'xBearer abc' }))).toBeNull();
    expect(Tokens.fromRequest(req({ authorization: 'Bearerabc' }))).toBeNull();
    expect(Tokens.fromRequest(req({}))).toBeNull();
  });
  it('takes the bearer.<token> WebSocket subprotocol when there is no Authorization header', () => {
    expect(Tokens.fromRequest(req({ 'sec-websocket-protocol': 'bearer.abc' }))).toBe('abc');
    expect(Tokens.fromRequest(req({ 'sec-websocket-protocol': 'lxcq.v1, bearer.xyz , other' }))).toBe('xyz');
    expect(Tokens.fromRequest(req({ 'sec-websocket-protocol': 'lxcq.v1, other' }))).toBeNull();
    expect(Tokens.fromRequest(req({ 'sec-websocket-protocol': 'xbearer.abc' }))).toBeNull();
    // the header wins: a client sending both means the header
    expect(
      Tokens.fromRequest(
        req({ authorization: 'Bearer fromheader', 'sec-websocket-protocol': 'bearer.proto' }),
      ),
    ).toBe('fromheader');
    // and a malformed header is not rescued by the subprotocol
    expect(
      Tokens.fromRequest(req({ authorization: 'Basic x', 'sec-websocket-protocol': 'bearer.proto' })),
    ).toBeNull();
  });
});

describe('Tokens.authorize', () => {
  it('no token: 401 LXCQ_UNAUTHORIZED saying how to send one', () => {
    const e = refusal(() => tokens.authorize(req({}), 'read'));
    expect(e.code).toBe('LXCQ_UNAUTHORIZED');
    expect(e.message).toMatch(/Authorization: Bearer/);
  });
  it('an unknown token: 401 LXCQ_UNAUTHORIZED', () => {
    const e = refusal(() => tokens.authorize(bearer('nobody-token-0123456789'), 'read'));
    expect(e.code).toBe('LXCQ_UNAUTHORIZED');
    expect(e.message).toBe('Unknown token.');
  });
  it('a token without the scope: 403 LXCQ_FORBIDDEN naming what is needed and what it has', () => {
    const e = refusal(() => tokens.authorize(bearer('viewer-token-0123456789'), 'operate'));
    expect(e.code).toBe('LXCQ_FORBIDDEN');
    expect(e.details).toEqual({ need: 'operate', have: ['read'] });
    expect(e.message).toBe('This route needs the operate scope; token viewer has read.');
    const f = refusal(() => tokens.authorize(bearer('operator-token-0123456789'), 'admin'));
    expect(f.code).toBe('LXCQ_FORBIDDEN');
    expect(f.details).toEqual({ need: 'admin', have: ['operate'] });
    // a token of several scopes lists them all
    const multi = new Tokens([entry('ci', 'ci-token-0123456789abc', ['read', 'operate'])]);
    const g = refusal(() => multi.authorize(bearer('ci-token-0123456789abc'), 'admin'));
    expect(g.message).toBe('This route needs the admin scope; token ci has read, operate.');
  });
  it('a token with the scope or a higher one: its entry', () => {
    expect(tokens.authorize(bearer('viewer-token-0123456789'), 'read').name).toBe('viewer');
    expect(tokens.authorize(bearer('operator-token-0123456789'), 'read').name).toBe('operator');
    expect(tokens.authorize(bearer('operator-token-0123456789'), 'operate').name).toBe('operator');
    expect(tokens.authorize(bearer('admin-token-0123456789'), 'admin').name).toBe('root');
  });
});

describe('Tokens.authorizeMetrics', () => {
  const metricsSha = sha256('scrape-token-0123456789');
  it('takes the scrape token, by its hash', () => {
    expect(() => tokens.authorizeMetrics(bearer('scrape-token-0123456789'), metricsSha)).not.toThrow();
  });
  it('takes any read token, with or without a scrape token configured', () => {
    expect(() => tokens.authorizeMetrics(bearer('viewer-token-0123456789'), metricsSha)).not.toThrow();
    expect(() => tokens.authorizeMetrics(bearer('viewer-token-0123456789'), undefined)).not.toThrow();
  });
  it('refuses no token, an unknown one, and the scrape token when none is configured', () => {
    expect(refusal(() => tokens.authorizeMetrics(req({}), metricsSha)).code).toBe('LXCQ_UNAUTHORIZED');
    expect(refusal(() => tokens.authorizeMetrics(bearer('other-token-0123456789'), metricsSha)).code).toBe(
      'LXCQ_UNAUTHORIZED',
    );
    expect(refusal(() => tokens.authorizeMetrics(bearer('scrape-token-0123456789'), undefined)).code).toBe(
      'LXCQ_UNAUTHORIZED',
    );
  });
  it('the scrape token opens /metrics only: it is no read token', () => {
    expect(refusal(() => tokens.authorize(bearer('scrape-token-0123456789'), 'read')).code).toBe(
      'LXCQ_UNAUTHORIZED',
    );
  });
});
