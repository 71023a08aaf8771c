// Transfers between workers (migrate, cross-host clone) are mutual TLS pinned to the certificates
// the host registry holds, plus the one-time token, and a refusal is clear:
// - each worker makes a key and a self-signed certificate at its first start (0600) and publishes
//   the certificate and its fingerprint; a cold move goes through over TLS;
// - an upload with an unknown token gets 401 LXCQ_UNAUTHORIZED, even while it is still streaming;
// - a sender with a valid token but not the source host's certificate gets 403
//   LXCQ_TRANSFER_UNTRUSTED and leaves nothing;
// - a target that does not show its registered certificate (an impostor at its address) gets
//   nothing: the move fails with LXCQ_TRANSFER_UNTRUSTED and the container stays on its source.
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateIdentity, type TransferIdentity } from '../../worker/src/tls-identity.ts';
import { Stack, TEST_CONFIG, freePort } from './harness.ts';

let s: Stack;
let h2 = '';
let h3 = '';
let stranger: TransferIdentity;
let impostor: Server;
let impostorRequests = 0;
const scratch = mkdtempSync(join(tmpdir(), 'lxcq-transfer-'));
beforeAll(async () => {
  s = await Stack.start({ hostId: 'h1' });
  h2 = await s.addHost('h2');
  // A TLS server with a certificate of its own where h3's transfers are sent.
  stranger = await loadOrCreateIdentity(join(scratch, 'stranger'), 'stranger');
  impostor = createServer({ key: stranger.key, cert: stranger.cert }, (req, res) => {
    impostorRequests++;
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
  h3 = await s.addHost('h3', {
    LXCQ_TRANSFER_BIND: `127.0.0.1:${await freePort()}`,
    LXCQ_TRANSFER_ADVERTISE: `127.0.0.1:${(impostor.address() as AddressInfo).port}`,
  });
}, 180_000);
afterAll(async () => {
  await s?.close();
  await new Promise((r) => (impostor ? impostor.close(r) : r(undefined)));
  rmSync(scratch, { recursive: true, force: true });
});

interface HostRecord {
  transfer?: string;
  transferCert?: string;
  transferFingerprint?: string;
}
const hostRecord = async (host: string): Promise<HostRecord> =>
  JSON.parse((await s.redis.hget(`lxcq:host:${host}`, 'info')) ?? '{}') as HostRecord;
const incoming = (lxcpath: string) => {
  const d = join(lxcpath, '.lxcq', 'incoming');
  return existsSync(d) ? readdirSync(d) : [];
};

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
  client?: TransferIdentity,
): Promise<{ status: number; body: string } | { error: string }> {
  return new Promise((done) => {
    const req = request(`https://${address}/receive/intruder`, {
      // an intruder: trusts anything, shows no client certificate unless given one
      rejectUnauthorized: false,
      ...(client ? { key: client.key, cert: client.cert } : {}),
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
  it('publishes its certificate; a cold move goes over TLS; the key is kept 0600', async () => {
    const rec = await hostRecord('h2');
    expect(rec.transferFingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(rec.transferCert).toContain('BEGIN CERTIFICATE');
    const key = join(h2, '.lxcq', 'tls', 'key.pem');
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(statSync(join(h2, '.lxcq', 'tls')).mode & 0o777).toBe(0o700);
    let j = await s.run('POST', '/v1/containers', {
      name: 't1',
      template: 'busybox',
      config: TEST_CONFIG,
      host: 'h1',
    });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    j = await s.run('POST', '/v1/containers/t1/migrate', { targetHost: 'h2' });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect(existsSync(join(h2, 't1', 'config'))).toBe(true);
    expect(existsSync(join(s.lxcpath, 't1'))).toBe(false);
    // plain HTTP is not spoken at all
    const plain = await fetch(`http://${rec.transfer}/receive/t2`, { method: 'PUT', body: 'x' }).then(
      (r) => r.status,
      () => 0,
    );
    expect(plain).not.toBe(200);
  });

  it("refuses a sender with a valid token but not the source host's certificate: 403, nothing kept", async () => {
    const addr = (await hostRecord('h2')).transfer as string;
    for (const client of [stranger, undefined]) {
      const token = randomBytes(32).toString('hex');
      const grant = {
        id: randomUUID(),
        job: randomUUID(),
        mode: 'migrate',
        from: 'h1',
        to: 'h2',
        name: 'intruder',
        srcDir: '/nonexistent',
        newName: 'intruder',
      };
      await s.redis.set(`lxcq:xfer:token:${token}`, JSON.stringify(grant), 'EX', 60);
      const r = await streamingPut(addr, { authorization: `Bearer ${token}` }, 4 * 1024 * 1024, client);
      expect(r).toMatchObject({ status: 403 });
      if ('body' in r)
        expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'LXCQ_TRANSFER_UNTRUSTED' } });
    }
    expect(existsSync(join(h2, 'intruder'))).toBe(false);
    expect(incoming(h2)).toEqual([]);
  });

  it('sends nothing to a target that does not show its registered certificate; the container stays', async () => {
    let j = await s.run('POST', '/v1/containers', {
      name: 't3',
      template: 'busybox',
      config: TEST_CONFIG,
      host: 'h1',
    });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    j = await s.run('POST', '/v1/containers/t3/migrate', { targetHost: 'h3' });
    expect(j.state).toBe('failed');
    expect(j.error?.code).toBe('LXCQ_TRANSFER_UNTRUSTED');
    expect(j.error?.message).toContain('did not prove to be host h3');
    expect(impostorRequests).toBe(0);
    expect(existsSync(join(s.lxcpath, 't3', 'config'))).toBe(true);
    expect((await s.http<{ host: string }>('GET', '/v1/containers/t3')).body.host).toBe('h1');
    expect(readdirSync(h3).filter((n) => n !== '.lxcq')).toEqual([]);
    j = await s.run('POST', '/v1/containers/t3/start');
    expect(j.result).toMatchObject({ state: 'RUNNING', host: 'h1' });
  });

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
