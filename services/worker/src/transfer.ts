/**
 * Worker-to-worker container transfer (migrate, cross-host clone). The source worker streams a
 * tar of the container's directory straight to the target worker's transfer server in one
 * `PUT /receive/<name>` over mutual TLS, each side accepting only the certificate the host
 * registry holds for the other host (tls-identity.ts); the target checks the one-time token and
 * that the sender is the grant's source host, unpacks into a staging directory,
 * verifies size and sha256 (HTTP trailers), rewrites the config's paths, renames the directory
 * into place, restores it with CRIU when live, registers it and answers its info. Nothing big
 * goes through Redis: only the token and the transfer's outcome.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join, resolve } from 'node:path';
import type { RedisConnection as Redis } from '@lxcq/shared';
import type { Logger } from 'pino';
import { toolEnv } from '@lxcq/lxc-ffi/host';
import {
  LxcqError,
  assertName,
  assertStoredConfig,
  toLxcqError,
  type ConfigPolicy,
  type ContainerInfo,
  type ErrorBody,
  type HostInfo,
  type Keys,
} from '@lxcq/shared';
import { SpanKind } from '@opentelemetry/api';
import { extractTrace, inSpan, injectTrace } from '@lxcq/telemetry';
import { removeMarker, writeMarker } from './handlers/markers.ts';
import { checkpointDir } from './paths.ts';
import type { LxcPool } from './pool.ts';
import { certFingerprint, type TransferIdentity } from './tls-identity.ts';

export type TransferMode = 'migrate' | 'live' | 'clone';

/** What the source grants the target under a one-time token. */
export interface TransferGrant {
  id: string;
  job: string;
  mode: TransferMode;
  from: string;
  to: string;
  /** The container's name on the source, its directory there, and its name on the target. */
  name: string;
  srcDir: string;
  newName: string;
  /** Live: the checkpoint (inside the container directory) the target restores from. */
  checkpoint?: string;
  /** The job was submitted with an admin token: the received config may hold the raw keys the host allows admins. */
  admin?: boolean;
}

export type Outcome = 'restoring' | 'done' | 'failed' | 'aborted';

export const TOKEN_TTL_SEC = 120;
/** How long the outcome of a transfer is kept (long enough for a source to read it). */
const OUTCOME_TTL_SEC = 3600;
/** How long a sender waits, once everything is sent, for the target to restore and register it. */
const AFTER_UPLOAD_MS = 120_000;

/** What the transfer server needs of its worker. */
export interface ReceiverDeps {
  hostId: string;
  /** This worker's TLS key and certificate. */
  identity: TransferIdentity;
  lxcpath: string;
  redis: Redis;
  keys: Keys;
  pool: LxcPool;
  log: Logger;
  /** Holds the name against inventory and other jobs while it is received. */
  lock(name: string): Promise<() => void>;
  /** Registers the received container as this host's; the moment ownership changes. */
  adopt(grant: TransferGrant): Promise<ContainerInfo>;
  /** A transfer connection silent this long is cut (the link died); default 60 s. */
  idleMs?: number;
  /** The host's config policy: a received config passes it as if it were a create. */
  policy: ConfigPolicy;
}

export interface ReceiveReply {
  info: ContainerInfo;
  bytes: number;
  sha256: string;
  restoreMs?: number;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function fail(res: ServerResponse, err: unknown): void {
  const e = toLxcqError(err);
  const status =
    e.code === 'LXCQ_UNAUTHORIZED'
      ? 401
      : e.code === 'LXCQ_TRANSFER_UNTRUSTED' || e.code === 'LXCQ_CONFIG_FORBIDDEN'
        ? 403
        : e.code === 'LXCQ_CONTAINER_EXISTS'
          ? 409
          : 422;
  send(res, status, { error: e.toJSON() });
}

/** How long a refused upload is read (and thrown away) after the answer, so its sender reads it. */
const REFUSED_DRAIN_MS = 2000;

/**
 * Answers an upload refused before its body was read (a wrong token, a name taken): the answer
 * first, then the rest of the body is read and dropped for a moment before the connection is cut.
 * Closed at once (or with `Connection: close`), the sender, still writing, gets a reset or a
 * broken pipe before it has read the answer, and cannot say why.
 */
function refuseUpload(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  fail(res, err);
  req.resume();
  const cut = setTimeout(() => req.destroy(), REFUSED_DRAIN_MS);
  cut.unref();
  req.once('close', () => clearTimeout(cut));
}

/**
 * Rewrites a received config: every path under the source's container directory now lives under
 * the target's, and a clone takes its new name as hostname.
 */
export function rewriteConfig(text: string, srcDir: string, dstDir: string, utsName?: string): string {
  const from = srcDir.replace(/\/+$/, '');
  let out = text.split(from).join(dstDir);
  out = out.replace(/^(\s*lxc\.rootfs\.path\s*=\s*)(?:dir:)?.*$/m, `$1dir:${join(dstDir, 'rootfs')}`);
  if (utsName !== undefined) out = out.replace(/^(\s*lxc\.uts\.name\s*=\s*).*$/m, `$1${utsName}`);
  return out;
}

/**
 * The received directory's `config` is a file and its `rootfs` a directory, not symlinks: the
 * config is rewritten in place (a link would have a host file written), and a rootfs linked to
 * `/` would make the host's root the container's.
 */
function assertReceivedLayout(staging: string): void {
  const kind = (p: string) => (existsSync(p) || isLink(p) ? lstatSync(p) : null);
  const cfg = kind(join(staging, 'config'));
  const rootfs = kind(join(staging, 'rootfs'));
  if (!cfg?.isFile() || !rootfs?.isDirectory())
    throw new LxcqError(
      'LXCQ_CONFIG_FORBIDDEN',
      'The received container must hold a config file and a rootfs directory (not links or anything else).',
    );
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * A received container's config, and each of its snapshots' configs (a snapshot restore makes
 * one the container's), pass the host's policy as if they were a create. Anyone who can store a
 * grant (Redis access) could otherwise push a container whose hooks run as root here. An operate
 * token cannot move or copy a container holding raw keys any more than it could create one.
 */
export function assertReceivedConfig(
  staging: string,
  config: string,
  grant: TransferGrant,
  final: string,
  policy: ConfigPolicy,
): void {
  const check = (text: string, rootfsDirs: string[], what: string) =>
    assertStoredConfig(text, { policy, who: { admin: grant.admin === true }, rootfsDirs, what });
  check(config, [join(final, 'rootfs')], `The received config of ${grant.newName}`);
  const snaps = join(staging, 'snaps');
  if (!existsSync(snaps)) return;
  for (const snap of readdirSync(snaps)) {
    const file = join(snaps, snap, 'config');
    if (!existsSync(file)) continue;
    // Snapshot configs travel as they were: their rootfs is still named under the source's directory.
    const dirs = [grant.srcDir.replace(/\/+$/, ''), final].map((d) => join(d, 'snaps', snap, 'rootfs'));
    check(readFileSync(file, 'utf8'), dirs, `The received config of snapshot ${snap} of ${grant.newName}`);
  }
}

/** The transfer server of one worker. */
export class TransferServer {
  private server?: Server;
  private readonly active = new Set<IncomingMessage>();

  constructor(private readonly deps: ReceiverDeps) {}

  /** Listens; answers the address it is bound to (host:port). */
  async listen(bind: { host: string; port: number }): Promise<string> {
    const { key, cert } = this.deps.identity;
    // Mutual TLS: a client certificate is asked for, and checked against the registry once the
    // grant names the sending host (verifyPeer); no CA would know these self-signed ones.
    const server = createServer(
      { key, cert, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' },
      (req, res) => void this.handle(req, res),
    );
    // A stream of a whole rootfs may take long; a stalled one is cut by the idle timeout.
    server.requestTimeout = 0;
    server.timeout = this.deps.idleMs ?? 60_000;
    await new Promise<void>((ok, ko) => {
      server.once('error', ko);
      server.listen(bind.port, bind.host, () => ok());
    });
    this.server = server;
    const a = server.address() as AddressInfo;
    return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  async close(): Promise<void> {
    for (const r of this.active) r.destroy();
    await new Promise<void>((ok) => (this.server ? this.server.close(() => ok()) : ok()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { log } = this.deps;
    const m = /^\/receive\/([^/?]+)$/.exec(req.url ?? '');
    if (req.method !== 'PUT' || !m?.[1]) {
      req.resume();
      return send(res, 404, { error: { code: 'LXCQ_NOT_FOUND', message: 'No such route.' } });
    }
    this.active.add(req);
    let grant: TransferGrant | null = null;
    try {
      const g = (grant = await this.authorize(req, decodeURIComponent(m[1])));
      await this.verifyPeer(req, g);
      // The receive is part of the source's job: same trace (its traceparent), same job id in the log.
      const reply = await inSpan(
        `transfer receive ${g.mode}`,
        {
          kind: SpanKind.SERVER,
          parent: extractTrace(req.headers),
          attributes: { 'lxcq.job.id': g.job, 'lxcq.container': g.newName, 'lxcq.host': this.deps.hostId },
        },
        () => this.receive(req, g),
      );
      send(res, 200, reply);
    } catch (err) {
      log.warn(
        {
          err: toLxcqError(err).message,
          ...(grant ? { jobId: grant.job, container: grant.newName, from: grant.from } : {}),
        },
        'transfer refused or failed',
      );
      if (req.complete) fail(res, err);
      else refuseUpload(req, res, err);
    } finally {
      this.active.delete(req);
    }
  }

  /** The one-time token: read and deleted in one step, so it serves exactly one upload. */
  private async authorize(req: IncomingMessage, name: string): Promise<TransferGrant> {
    const token = /^Bearer ([0-9a-f]{64})$/.exec(req.headers.authorization ?? '')?.[1];
    const raw = token ? await this.deps.redis.getdel(this.deps.keys.transferToken(token)) : null;
    if (!raw) throw new LxcqError('LXCQ_UNAUTHORIZED', 'Missing, wrong or used transfer token.');
    const grant = JSON.parse(raw) as TransferGrant;
    if (grant.to !== this.deps.hostId || grant.newName !== name)
      throw new LxcqError('LXCQ_UNAUTHORIZED', 'The transfer token is for another host or container.');
    return grant;
  }

  /** The sender must hold the certificate the registry publishes for the grant's source host. */
  private async verifyPeer(req: IncomingMessage, grant: TransferGrant): Promise<void> {
    const peer = (req.socket as TLSSocket).getPeerCertificate();
    const raw = await this.deps.redis.hget(this.deps.keys.host(grant.from), 'info');
    const want = raw ? (JSON.parse(raw) as HostInfo).transferFingerprint : undefined;
    const got = peer.raw ? certFingerprint(peer.raw) : undefined;
    if (!want || got !== want)
      throw new LxcqError(
        'LXCQ_TRANSFER_UNTRUSTED',
        got
          ? `The sender's certificate (sha256 ${got}) is not the one host ${grant.from} registered${want ? ` (${want})` : ' (none)'}.`
          : `The sender showed no client certificate; host ${grant.from}'s is required.`,
      );
  }

  private async receive(req: IncomingMessage, grant: TransferGrant): Promise<ReceiveReply> {
    const { lxcpath, redis, keys, pool } = this.deps;
    assertName('container', grant.newName);
    const release = await this.deps.lock(grant.newName);
    const incoming = join(lxcpath, '.lxcq', 'incoming');
    const staging = join(incoming, grant.newName);
    const final = join(lxcpath, grant.newName);
    let placed = false;
    try {
      const existing = await pool.call({ fn: 'info', name: grant.newName, lxcpath });
      if (existing.defined || existsSync(final))
        throw new LxcqError(
          'LXCQ_CONTAINER_EXISTS',
          `A container named ${grant.newName} exists on ${grant.to}.`,
        );
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging, { recursive: true, mode: 0o700 });
      const { bytes, sha256 } = await unpackInto(req, staging);
      const wantSize = Number(req.trailers['x-lxcq-size']);
      const wantHash = req.trailers['x-lxcq-sha256'];
      if (wantSize !== bytes || wantHash !== sha256)
        throw new LxcqError(
          'LXCQ_VALIDATION',
          `Transfer incomplete or corrupt: got ${bytes} bytes sha256 ${sha256}, sender says ${wantSize} bytes sha256 ${String(wantHash)}.`,
        );
      const cfg = join(staging, 'config');
      assertReceivedLayout(staging);
      const rewritten = rewriteConfig(
        readFileSync(cfg, 'utf8'),
        grant.srcDir,
        final,
        grant.mode === 'clone' ? grant.newName : undefined,
      );
      // Before anything of it is in place: liblxc must never read a config the policy refuses.
      assertReceivedConfig(staging, rewritten, grant, final, this.deps.policy);
      writeFileSync(cfg, rewritten);
      // A marker first: a worker dying from here on leaves a half-made container its sweep removes.
      writeMarker(lxcpath, grant.newName, grant.job);
      renameSync(staging, final);
      placed = true;
      let restoreMs: number | undefined;
      const outcome = keys.transferOutcome(grant.id);
      if (grant.mode === 'live' && grant.checkpoint) {
        if ((await redis.set(outcome, 'restoring', 'EX', OUTCOME_TTL_SEC, 'NX')) !== 'OK')
          throw new LxcqError('LXCQ_INVALID_STATE', 'The source gave the transfer up.');
        const t0 = performance.now();
        try {
          await pool.call({
            fn: 'restore',
            name: grant.newName,
            lxcpath,
            dir: checkpointDir(lxcpath, grant.newName, grant.checkpoint),
          });
        } catch (err) {
          await this.purge(grant.newName);
          placed = false;
          await redis.set(outcome, 'failed', 'EX', OUTCOME_TTL_SEC);
          throw err;
        }
        restoreMs = performance.now() - t0;
        await redis.set(outcome, 'done', 'EX', OUTCOME_TTL_SEC);
        rmSync(checkpointDir(lxcpath, grant.newName, grant.checkpoint), { recursive: true, force: true });
      } else if ((await redis.set(outcome, 'done', 'EX', OUTCOME_TTL_SEC, 'NX')) !== 'OK') {
        throw new LxcqError('LXCQ_INVALID_STATE', 'The source gave the transfer up.');
      }
      removeMarker(lxcpath, grant.newName);
      const info = await this.deps.adopt(grant);
      return { info, bytes, sha256, ...(restoreMs !== undefined ? { restoreMs } : {}) };
    } catch (err) {
      rmSync(staging, { recursive: true, force: true });
      if (placed) await this.purge(grant.newName);
      throw err;
    } finally {
      release();
    }
  }

  private async purge(name: string): Promise<void> {
    try {
      await this.deps.pool.call({ fn: 'purge', name, lxcpath: this.deps.lxcpath });
      removeMarker(this.deps.lxcpath, name);
    } catch (err) {
      this.deps.log.error(
        { err, container: name },
        'could not remove a received container; the start-up sweep will',
      );
    }
  }
}

/**
 * GNU tar's flags for a container directory, both ways: numeric owners (an unprivileged
 * container's shifted ids must not be remapped by name), every extended attribute (file
 * capabilities such as ping's cap_net_raw live in security.capability) and POSIX ACLs; device
 * nodes, sockets, hard links and sparse files are carried as they are. GNU tar is what LXC's own
 * tools and every distribution's backup scripts trust with a rootfs; on extraction it strips
 * leading `/`, refuses `..` members and sets up symlinks only after every file is written, so an
 * archive cannot write outside the target directory.
 */
const TAR_FLAGS = ['--numeric-owner', '--xattrs', '--xattrs-include=*', '--acls'];

/** Ends with the last lines tar wrote to stderr, for the error a user sees. */
function tarFailure(what: string, code: number | null, signal: string | null, stderr: string): Error {
  const tail = stderr.trim().split('\n').slice(-3).join('; ');
  return new Error(`tar ${what} failed (${code ?? signal})${tail ? `: ${tail}` : ''}`);
}

/**
 * Streams the request body through a hash into GNU tar's extractor; resolves once tar has written
 * everything and the whole request, trailers included, has been read. Both are needed: tar exits
 * as soon as it reads the archive's end marker, which can be before the request's last chunk (the
 * sender's size and hash, in the trailers) has arrived; reading the trailers then would find none.
 */
function unpackInto(req: IncomingMessage, dir: string): Promise<{ bytes: number; sha256: string }> {
  return new Promise((ok, ko) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let failed = false;
    let stderr = '';
    /** tar has exited, or closed its input: what comes after is hashed, not written. */
    let tarGone = false;
    let tarDone = false;
    let ended = false;
    // -p: modes exactly as packed (no umask); as root, owners too.
    const unpack = spawn('tar', ['-C', dir, ...TAR_FLAGS, '-xpf', '-'], {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: toolEnv(),
    });
    unpack.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const bad = (err: unknown) => {
      if (failed) return;
      failed = true;
      req.destroy();
      unpack.kill('SIGKILL');
      ko(
        err instanceof LxcqError
          ? err
          : new LxcqError('LXCQ_VALIDATION', `Transfer cut or unreadable: ${(err as Error).message}`),
      );
    };
    const settle = () => {
      if (!failed && tarDone && ended) ok({ bytes, sha256: hash.digest('hex') });
    };
    unpack.on('error', bad);
    // A broken pipe means tar stopped reading: its exit status (below) says whether that was the
    // archive's end or a failure; the rest of the request is still read for the hash.
    unpack.stdin.on('error', () => {
      tarGone = true;
      req.resume();
    });
    req.on('error', bad);
    req.on('aborted', () => bad(new Error('the sender went away mid-stream')));
    req.on('close', () => {
      if (!req.complete) bad(new Error('the connection closed mid-stream'));
    });
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
      if (!tarGone && !unpack.stdin.write(chunk)) req.pause();
    });
    unpack.stdin.on('drain', () => req.resume());
    req.on('end', () => {
      if (failed) return;
      // Uploaded: the sender now waits for the restore and registration, which may be slow
      // and send nothing; the idle bound was for the stream.
      req.socket.setTimeout(0);
      if (!tarGone) unpack.stdin.end();
      ended = true;
      settle();
    });
    unpack.on('close', (code, signal) => {
      tarGone = true;
      if (failed) return;
      if (code !== 0) return bad(tarFailure('extract', code, signal, stderr));
      tarDone = true;
      req.resume();
      settle();
    });
  });
}

/** Bytes of regular files under dir (for progress; the tar adds headers on top). */
export function treeSize(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) total += lstatSync(p).size;
    }
  };
  walk(dir);
  return total;
}

export interface SendOptions {
  redis: Redis;
  keys: Keys;
  /** The target's transfer address (host:port) from its host record. */
  address: string;
  /** This worker's TLS key and certificate (its client certificate). */
  identity: TransferIdentity;
  /** The target's certificate and its fingerprint, from its host record: the only ones accepted. */
  peer: { cert: string; fingerprint: string };
  grant: Omit<TransferGrant, 'id'>;
  /** The transfer's id (its outcome key); a new one when absent. */
  id?: string;
  /** The target silent this long (a dead link, a hung host) ends the transfer; default 60 s. */
  idleMs?: number;
  onProgress?: (sent: number, total: number) => void;
}

export type SendResult =
  | { ok: true; reply: ReceiveReply; bytes: number }
  | { ok: false; error: ErrorBody; bytes: number; outcome: Outcome | null; id: string };

/** Streams the container directory to the target and reads its answer. Never throws. */
export async function sendContainer(o: SendOptions): Promise<SendResult> {
  const id = o.id ?? randomUUID();
  const grant: TransferGrant = { ...o.grant, id };
  const token = randomBytes(32).toString('hex');
  await o.redis.set(o.keys.transferToken(token), JSON.stringify(grant), 'EX', TOKEN_TTL_SEC);
  const total = treeSize(grant.srcDir);
  let bytes = 0;
  const hash = createHash('sha256');
  const url = new URL(`https://${o.address}/receive/${encodeURIComponent(grant.newName)}`);
  // Set once the target proved it holds the registered certificate: an error before that is a
  // refused identity (or no connection), and nothing was sent.
  let secured = false;
  const result = await new Promise<{ status: number; body: string } | { error: Error }>((done) => {
    let settled = false;
    const end = (v: { status: number; body: string } | { error: Error }) => {
      if (!settled) {
        settled = true;
        done(v);
      }
    };
    const req = request(url, {
      // The target's own certificate as the only CA: a handshake with any other fails inside
      // TLS, before the token or a byte of the container leaves this host.
      key: o.identity.key,
      cert: o.identity.cert,
      ca: o.peer.cert,
      minVersion: 'TLSv1.3',
      checkServerIdentity: (_host, c) =>
        certFingerprint(c.raw) === o.peer.fingerprint
          ? undefined
          : Object.assign(
              new Error(`certificate sha256 ${certFingerprint(c.raw)} is not the registered one`),
              {
                code: 'ERR_LXCQ_PIN',
              },
            ),
      method: 'PUT',
      headers: {
        authorization: `Bearer ${token}`,
        ...injectTrace(),
        'content-type': 'application/x-tar',
        'transfer-encoding': 'chunked',
        trailer: 'x-lxcq-size, x-lxcq-sha256',
      },
    });
    req.on('socket', (sock) => (sock as TLSSocket).once('secureConnect', () => (secured = true)));
    const idleMs = o.idleMs ?? 60_000;
    req.setTimeout(idleMs, () =>
      req.destroy(
        new Error(`the target stopped answering (nothing for ${idleMs} ms: link down or host hung)`),
      ),
    );
    // An answer before the whole archive was sent is a refusal (a wrong token, the name taken):
    // the target closes the connection after it, so the write errors that follow are not the cause.
    let answer: { status: number; body: string } | null = null;
    req.on('error', (error) => end(answer ?? { error }));
    req.on('response', (res) => {
      const got = (answer = { status: res.statusCode ?? 0, body: '' });
      if (got.status !== 200 && pack.exitCode === null) pack.kill('SIGKILL');
      res.setEncoding('utf8');
      res.on('data', (d: string) => (got.body += d));
      res.on('end', () => end(got));
      res.on('error', (error) => end(got.status !== 200 ? got : { error }));
    });
    let stderr = '';
    const pack = spawn('tar', ['-C', grant.srcDir, ...TAR_FLAGS, '--sparse', '-cpf', '-', '.'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: toolEnv(),
    });
    pack.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    pack.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
      o.onProgress?.(bytes, total);
      if (!req.write(chunk)) pack.stdout.pause();
    });
    req.on('drain', () => pack.stdout.resume());
    req.on('close', () => {
      if (pack.exitCode === null) pack.kill('SIGKILL');
    });
    pack.on('error', (error) => req.destroy(error));
    // Only a complete archive gets its trailers: a tar that failed part-way (an unreadable file)
    // cuts the request, and the target keeps nothing.
    pack.on('close', (code, signal) => {
      if (code !== 0) {
        req.destroy(tarFailure('create', code, signal, stderr));
        return;
      }
      req.addTrailers({ 'x-lxcq-size': String(bytes), 'x-lxcq-sha256': hash.digest('hex') });
      req.end();
      // Sent: the target restores and registers it before answering, silent meanwhile.
      req.setTimeout(Math.max(idleMs, AFTER_UPLOAD_MS));
    });
  });
  if ('status' in result && result.status === 200) {
    return { ok: true, reply: JSON.parse(result.body) as ReceiveReply, bytes };
  }
  let error: ErrorBody;
  if ('error' in result && !secured && untrusted(result.error)) {
    error = {
      code: 'LXCQ_TRANSFER_UNTRUSTED',
      message: `The transfer server at ${o.address} did not prove to be host ${grant.to} (its registered certificate, sha256 ${o.peer.fingerprint}): ${result.error.message}. Nothing was sent.`,
    };
  } else if ('error' in result) {
    error = { code: 'LXCQ_INTERNAL', message: `Transfer to ${grant.to} broke off: ${result.error.message}` };
  } else {
    try {
      error = (JSON.parse(result.body) as { error: ErrorBody }).error;
    } catch {
      error = { code: 'LXCQ_INTERNAL', message: `Target ${grant.to} answered ${result.status}` };
    }
  }
  // The token may still be unused (the target never got that far): it must not serve anyone else.
  await o.redis.del(o.keys.transferToken(token));
  return { ok: false, error, bytes, outcome: await decide(o.redis, o.keys, id), id };
}

/** A TLS handshake that failed on the peer's certificate (not a refused or cut connection). */
function untrusted(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_LXCQ_PIN|ERR_SSL|ERR_TLS/.test(code);
}

/**
 * After a failed or cut transfer: the source claims the outcome (`aborted`) unless the target
 * already did; a target still restoring is waited for. `done` means the target owns the container.
 */
export async function decide(redis: Redis, keys: Keys, id: string, polls = 600): Promise<Outcome | null> {
  const k = keys.transferOutcome(id);
  if ((await redis.set(k, 'aborted', 'EX', OUTCOME_TTL_SEC, 'NX')) === 'OK') return 'aborted';
  for (let i = 0; i < polls; i++) {
    const v = (await redis.get(k)) as Outcome | null;
    if (v !== 'restoring') return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  return 'restoring';
}

export function resolveDir(lxcpath: string, name: string): string {
  return resolve(lxcpath, name);
}
