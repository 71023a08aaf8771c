// The transfer server (migrate, cross-host clone) checks what it received against the sender's
// sha256, not only its length: a stream altered on the way, to the same length, is refused, and
// nothing of it lands on the target. Driven directly, with a valid one-time grant, so the altered
// byte is exactly where the test puts it.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG } from './harness.ts';
import { identityDir, loadOrCreateIdentity } from '../../worker/src/tls-identity.ts';

let s: Stack;
let h2 = '';
beforeAll(async () => {
  s = await Stack.start({ hostId: 'h1' });
  h2 = await s.addHost('h2');
}, 300_000);
afterAll(async () => {
  await s?.close();
});

const ls = (lxcpath: string) =>
  execFileSync('lxc-ls', ['-P', lxcpath, '-1'], { encoding: 'utf8' }).split('\n').filter(Boolean);
const incoming = (lxcpath: string) => {
  const d = join(lxcpath, '.lxcq', 'incoming');
  return existsSync(d) ? readdirSync(d) : [];
};

/** Pids of tar processes extracting into `dir` (the receiver's, found by their command line). */
function tarInto(dir: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'latin1').split('\0');
      if (argv[0] === 'tar' && argv[1] === '-C' && argv[2] === dir) pids.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('transfer integrity', () => {
  it('a stream of the right length with a byte changed is refused; nothing lands on the target', async () => {
    const j = await s.run('POST', '/v1/containers', {
      name: 'm9',
      template: 'busybox',
      config: TEST_CONFIG,
      host: 'h1',
    });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    const srcDir = join(s.lxcpath, 'm9');
    const probe = 'lxcq-integrity-probe:'.repeat(512);
    writeFileSync(join(srcDir, 'rootfs', 'probe'), probe);
    // The archive as the sender makes it, and the same with one byte of a file's content flipped:
    // tar unpacks it without a complaint (file contents carry no checksum in tar).
    const archive = execFileSync('tar', ['-C', srcDir, '--numeric-owner', '-cpf', '-', '.'], {
      maxBuffer: 256 * 1024 * 1024,
    });
    const sum = createHash('sha256').update(archive).digest('hex');
    const at = archive.indexOf(probe) + 100;
    expect(at).toBeGreaterThan(100);
    const altered = Buffer.from(archive);
    altered[at] = (altered[at] as number) ^ 0x20;
    const h2info = JSON.parse((await s.redis.hget('lxcq:host:h2', 'info')) ?? '{}') as {
      transfer: string;
      transferCert: string;
    };
    const addr = h2info.transfer;
    // Sent as h1 sends it: over TLS with h1's own certificate, the one its host record pins.
    const h1 = await loadOrCreateIdentity(identityDir(s.lxcpath), 'h1');

    /** Uploads `body` to h2 under a new one-time grant, with the original's length and sha256. */
    const upload = async (
      body: Buffer,
      mode: 'migrate' | 'clone',
      newName: string,
      beforeTrailers: () => Promise<void> = async () => {},
    ) => {
      const token = randomBytes(32).toString('hex');
      const grant = {
        id: randomUUID(),
        job: randomUUID(),
        mode,
        from: 'h1',
        to: 'h2',
        name: 'm9',
        srcDir,
        newName,
      };
      await s.redis.set(`lxcq:xfer:token:${token}`, JSON.stringify(grant), 'EX', 60);
      const res = await new Promise<{ status: number; body: string }>((ok, ko) => {
        const req = request(`https://${addr}/receive/${newName}`, {
          method: 'PUT',
          key: h1.key,
          cert: h1.cert,
          ca: h2info.transferCert,
          checkServerIdentity: () => undefined,
          headers: {
            authorization: `Bearer ${token}`,
            'transfer-encoding': 'chunked',
            trailer: 'x-lxcq-size, x-lxcq-sha256',
          },
        });
        req.on('error', ko);
        req.on('response', (r) => {
          let text = '';
          r.setEncoding('utf8');
          r.on('data', (d: string) => (text += d));
          r.on('end', () => ok({ status: r.statusCode ?? 0, body: text }));
        });
        req.write(body);
        void beforeTrailers().then(() => {
          req.addTrailers({ 'x-lxcq-size': String(archive.length), 'x-lxcq-sha256': sum });
          req.end();
        }, ko);
      });
      return { ...res, outcome: await s.redis.get(`lxcq:xfer:outcome:${grant.id}`) };
    };

    const bad = await upload(altered, 'migrate', 'm9');
    expect(bad.status, bad.body).toBe(422);
    const err = (JSON.parse(bad.body) as { error: { code: string; message: string } }).error;
    expect(err.code).toBe('LXCQ_VALIDATION');
    expect(err.message).toMatch(/corrupt/);
    expect(err.message).toContain(sum);
    expect(bad.outcome).toBeNull();
    expect(ls(h2)).not.toContain('m9');
    expect(existsSync(join(h2, 'm9'))).toBe(false);
    expect(existsSync(join(h2, '.lxcq', 'creating', 'm9'))).toBe(false);
    expect(incoming(h2)).toEqual([]);
    // the source and the registry never noticed
    expect((await s.http<{ host: string }>('GET', '/v1/containers/m9')).body.host).toBe('h1');
    expect(ls(s.lxcpath)).toContain('m9');
    expect(readFileSync(join(srcDir, 'rootfs', 'probe'), 'utf8')).toBe(probe);

    // The same upload unaltered is taken: the refusal above was the content's, nothing else's.
    const good = await upload(archive, 'clone', 'm9copy');
    expect(good.status, good.body).toBe(200);
    expect(good.outcome).toBe('done');
    expect(readFileSync(join(h2, 'm9copy', 'rootfs', 'probe'), 'utf8')).toBe(probe);
    // tar exits as soon as it reads the archive's end marker, before the request's last chunk (the
    // trailers with the size and sha256) has come: the receiver must still wait for them. Here
    // they are sent only once the receiver's tar has exited.
    const late = await upload(archive, 'clone', 'm9late', async () => {
      const staging = join(h2, '.lxcq', 'incoming', 'm9late');
      const extracting = () => tarInto(staging).length > 0;
      await until(extracting, 'the receiver started tar');
      await until(() => !extracting(), "the receiver's tar exited");
    });
    expect(late.status, late.body).toBe(200);
    expect(readFileSync(join(h2, 'm9late', 'rootfs', 'probe'), 'utf8')).toBe(probe);
    for (const n of ['m9late', 'm9copy', 'm9'])
      expect((await s.run('DELETE', `/v1/containers/${n}`)).state, n).toBe('completed');
  });
});
