// The worker-to-worker transfer server refuses what it was not granted, clearly: an upload with an
// unknown token gets a 401 with a code, even while its sender is still streaming a large body.
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './harness.ts';

let s: Stack;
let h2 = '';
beforeAll(async () => {
  s = await Stack.start({ hostId: 'h1' });
  h2 = await s.addHost('h2');
});
afterAll(async () => {
  await s?.close();
});

async function transferAddress(host: string): Promise<string> {
  const raw = await s.redis.hget(`lxcq:host:${host}`, 'info');
  const addr = (JSON.parse(raw ?? '{}') as { transfer?: string }).transfer;
  expect(addr).toMatch(/^127\.0\.0\.1:\d+$/);
  return addr as string;
}

/** A PUT that streams `total` bytes as the source worker does (chunked), answering the status and body. */
function streamingPut(
  address: string,
  headers: Record<string, string>,
  total: number,
): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((done) => {
    const req = request(`http://${address}/receive/intruder`, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/x-tar', 'transfer-encoding': 'chunked' },
    });
    let answer: { status: number; body: string } | null = null;
    req.on('response', (res) => {
      const got = (answer = { status: res.statusCode ?? 0, body: '' });
      res.setEncoding('utf8');
      res.on('data', (d: string) => (got.body += d));
      res.on('end', () => done(got));
    });
    req.on('error', (e) => done(answer ?? { error: e.message }));
    const chunk = randomBytes(64 * 1024);
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

describe('the transfer server', () => {
  it('answers 401 LXCQ_UNAUTHORIZED to an upload with an unknown or no token, while it is still streaming', async () => {
    const addr = await transferAddress('h2');
    for (const headers of [{ authorization: `Bearer ${randomBytes(32).toString('hex')}` }, {}]) {
      const r = await streamingPut(addr, headers, 64 * 1024 * 1024);
      expect(r).toMatchObject({ status: 401 });
      if ('body' in r) expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'LXCQ_UNAUTHORIZED' } });
    }
    expect(existsSync(join(h2, 'intruder'))).toBe(false);
    const incoming = join(h2, '.lxcq', 'incoming');
    expect(existsSync(incoming) ? readdirSync(incoming) : []).toEqual([]);
  });
});
