/**
 * LXD 5.0 as a side-by-side reference for benchmarks, measured in the same run as lxcq.
 *
 *   const lxd = await startLxd({ storage: 'dir' });
 *   try { await lxd.client.lifecycle('x1', lxd.image); } finally { await lxd.stop(); }
 *
 * startLxd installs Debian's `lxd` and `lxd-client` with apt if `lxd` is missing (and btrfs-progs
 * for a btrfs pool), then runs its own `lxd --group root` daemon (no systemd as PID 1 here) with a
 * private LXD_DIR under a temporary directory, so the host's own /var/lib/lxd (if any) is neither
 * used nor touched. The preseed makes one storage pool (dir, or btrfs on a loop file LXD creates
 * inside that LXD_DIR) and NO managed network: no lxdbr0, and the default profile has only a root
 * disk, so instances get no NIC, like lxcq's benchmark containers with lxc.net.0.type = empty.
 * The image is a busybox rootfs built from the busybox-static binary plus a metadata.yaml,
 * imported through the REST API. The client speaks LXD's REST API on the daemon's unix socket.
 *
 * stop() deletes the instances, images, profile device and pool it made, stops the daemon by its
 * pid (SIGTERM, then SIGKILL), unmounts whatever is left mounted under the LXD_DIR and removes it.
 * The `lxc` binary of lxd-client is LXD's client; nothing here uses or shadows the lxc-* tools.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

export type LxdStorage = 'dir' | 'btrfs';

export interface LxdOptions {
  storage?: LxdStorage;
  /** Progress lines (apt install, daemon start, image import); stdout by default. */
  log?: (line: string) => void;
  /**
   * security.privileged on the default profile: true runs containers as the host's root, like
   * lxcq's busybox containers (no lxc.idmap); false (LXD's default) maps them to a subordinate range.
   */
  privileged?: boolean;
  /** How long to wait for the daemon to answer, ms. */
  readyTimeoutMs?: number;
}

export interface Lxd {
  /** The daemon's version (GET /1.0 environment.server_version). */
  version: string;
  storage: LxdStorage;
  privileged: boolean;
  /** The daemon's pid (for CPU accounting; stop() is how it ends). */
  pid: number;
  /** The daemon's private LXD_DIR (its logs are under logs/). */
  dir: string;
  /** Fingerprint of the imported busybox image. */
  image: string;
  client: LxdClient;
  /** Deletes everything it made, stops the daemon by pid, removes the LXD_DIR. Idempotent. */
  stop(): Promise<void>;
}

export const POOL = 'lxcqbench';

// ---- pure parts (unit-tested) ----------------------------------------------------------------

/** The `lxd init --preseed` document (YAML; JSON is valid YAML). No networks, no NIC device. */
export function preseed(storage: LxdStorage, privileged = false): string {
  return JSON.stringify({
    config: {},
    networks: [],
    storage_pools: [
      // btrfs: LXD makes and loop-mounts <LXD_DIR>/disks/<pool>.img itself, so it goes with the dir.
      { name: POOL, driver: storage, config: storage === 'btrfs' ? { size: '3GiB' } : {} },
    ],
    profiles: [
      {
        name: 'default',
        config: privileged ? { 'security.privileged': 'true' } : {},
        devices: { root: { path: '/', pool: POOL, type: 'disk' } },
      },
    ],
  });
}

/** metadata.yaml of a unified image tarball. */
export function imageMetadata(arch: string, createdUnixS: number): string {
  return [
    `architecture: ${arch}`,
    `creation_date: ${Math.floor(createdUnixS)}`,
    'properties:',
    '  description: busybox (lxcq benchmark)',
    '  os: busybox',
    '',
  ].join('\n');
}

/** LXD's architecture name for node's process.arch. */
export function lxdArch(nodeArch: string): string {
  const m: Record<string, string> = {
    x64: 'x86_64',
    arm64: 'aarch64',
    ia32: 'i686',
    ppc64: 'ppc64le',
    s390x: 's390x',
  };
  const a = m[nodeArch];
  if (!a) throw new Error(`no LXD architecture name for ${nodeArch}`);
  return a;
}

/** One REST answer of LXD: sync (with metadata), async (with an operation path) or error. */
export type LxdResponse =
  | { type: 'sync'; status: number; metadata: unknown }
  | { type: 'async'; operation: string; metadata: unknown }
  | { type: 'error'; code: number; error: string };

/** Parses LXD's response envelope; anything else is an error with the HTTP status. */
export function parseResponse(httpStatus: number, body: string): LxdResponse {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return { type: 'error', code: httpStatus, error: `not JSON (HTTP ${httpStatus}): ${body.slice(0, 200)}` };
  }
  if (typeof v !== 'object' || v === null) return { type: 'error', code: httpStatus, error: 'not an object' };
  const o = v as Record<string, unknown>;
  if (o.type === 'sync')
    return { type: 'sync', status: Number(o.status_code ?? httpStatus), metadata: o.metadata };
  if (o.type === 'async' && typeof o.operation === 'string')
    return { type: 'async', operation: o.operation, metadata: o.metadata };
  return {
    type: 'error',
    code: Number(o.error_code ?? httpStatus),
    error: typeof o.error === 'string' && o.error ? o.error : `HTTP ${httpStatus}`,
  };
}

/** Operation metadata as /1.0/operations/<id>/wait returns it: success, or why not. */
export function operationOutcome(
  meta: unknown,
): { ok: true; metadata: unknown } | { ok: false; error: string } {
  if (typeof meta !== 'object' || meta === null) return { ok: false, error: 'operation without metadata' };
  const m = meta as Record<string, unknown>;
  if (m.status_code === 200) return { ok: true, metadata: m.metadata };
  const err = typeof m.err === 'string' && m.err ? m.err : `operation ${String(m.status ?? m.status_code)}`;
  return { ok: false, error: err };
}

/** Mount points at or under `dir` in /proc/self/mountinfo text, deepest first. */
export function mountsUnder(mountinfo: string, dir: string): string[] {
  const base = dir.replace(/\/+$/, '');
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    // Field 5 is the mount point, with spaces etc. octal-escaped.
    const mp = f[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp && (mp === base || mp.startsWith(base + '/'))) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}

// ---- the REST client -------------------------------------------------------------------------

export interface LxdLifecycle {
  create: number;
  start: number;
  stop: number;
  destroy: number;
  total: number;
}

export class LxdClient {
  constructor(readonly socketPath: string) {}

  /** One request; an error envelope or a non-2xx status throws with LXD's message. */
  async request(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<LxdResponse & { type: 'sync' | 'async' }> {
    const raw =
      body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {};
    if (raw) {
      headers['content-type'] = Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json';
      headers['content-length'] = String(raw.length);
    }
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(raw);
    });
    const r = parseResponse(status, text);
    if (r.type === 'error') throw new Error(`LXD ${method} ${path}: ${r.error} (${r.code})`);
    return r;
  }

  /** Runs a request and, if LXD answers with an operation, waits for it; returns its metadata. */
  async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const r = await this.request(method, path, body);
    return r.type === 'async' ? this.wait(r.operation) : r.metadata;
  }

  /** Waits for an operation (its path, /1.0/operations/<id>) to end; throws with its error. */
  async wait(operation: string, timeoutS = 120): Promise<unknown> {
    const r = await this.request('GET', `${operation}/wait?timeout=${timeoutS}`);
    const o = operationOutcome(r.metadata);
    if (!o.ok) throw new Error(`LXD operation ${operation}: ${o.error}`);
    return o.metadata;
  }

  create(name: string, fingerprint: string): Promise<unknown> {
    return this.call('POST', '/1.0/instances', {
      name,
      type: 'container',
      source: { type: 'image', fingerprint },
    });
  }

  start(name: string): Promise<unknown> {
    return this.call('PUT', `/1.0/instances/${name}/state`, { action: 'start', timeout: -1 });
  }

  /** force: kill, as liblxc's stop() (lxcq's stop) does; without it LXD asks init to shut down. */
  stop(name: string, force = true): Promise<unknown> {
    return this.call('PUT', `/1.0/instances/${name}/state`, { action: 'stop', force, timeout: -1 });
  }

  delete(name: string): Promise<unknown> {
    return this.call('DELETE', `/1.0/instances/${name}`);
  }

  /** Instance names. */
  async instances(): Promise<string[]> {
    const urls = (await this.call('GET', '/1.0/instances')) as string[];
    return urls.map((u) => decodeURIComponent(u.split('/').pop() ?? ''));
  }

  /** Create from the image, start, stop (forced), delete; ms per step as the caller saw it. */
  async lifecycle(name: string, fingerprint: string): Promise<LxdLifecycle> {
    const t0 = performance.now();
    await this.create(name, fingerprint);
    const t1 = performance.now();
    await this.start(name);
    const t2 = performance.now();
    await this.stop(name);
    const t3 = performance.now();
    await this.delete(name);
    const t4 = performance.now();
    return { create: t1 - t0, start: t2 - t1, stop: t3 - t2, destroy: t4 - t3, total: t4 - t0 };
  }
}

// ---- set-up and tear-down --------------------------------------------------------------------

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function aptInstall(pkgs: string[], log: (s: string) => void): void {
  log(`lxd: installing ${pkgs.join(' ')} with apt-get (not installed yet)`);
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

function busyboxPath(): string {
  for (const p of ['/bin/busybox', '/usr/bin/busybox']) if (existsSync(p)) return p;
  throw new Error('busybox-static is not installed (/bin/busybox missing)');
}

/** A unified image tarball: metadata.yaml + rootfs/ holding the static busybox and an idle init. */
function buildImage(dir: string): string {
  const src = join(dir, 'image-src');
  const rootfs = join(src, 'rootfs');
  for (const d of ['bin', 'sbin', 'etc', 'dev', 'proc', 'sys', 'tmp', 'root', 'run', 'var'])
    mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(busyboxPath(), join(rootfs, 'bin', 'busybox'));
  execFileSync('chmod', ['0755', join(rootfs, 'bin', 'busybox')]);
  symlinkSync('busybox', join(rootfs, 'bin', 'sh'));
  symlinkSync('../bin/busybox', join(rootfs, 'sbin', 'init'));
  // busybox init with no respawn entries just waits; without an inittab it would spawn shells on ttys.
  writeFileSync(join(rootfs, 'etc', 'inittab'), '::sysinit:/bin/busybox true\n');
  writeFileSync(join(src, 'metadata.yaml'), imageMetadata(lxdArch(process.arch), Date.now() / 1000));
  const tarball = join(dir, 'busybox.tar.gz');
  execFileSync('tar', ['-C', src, '--numeric-owner', '-czf', tarball, 'metadata.yaml', 'rootfs']);
  rmSync(src, { recursive: true, force: true });
  return tarball;
}

export async function startLxd(opts: LxdOptions = {}): Promise<Lxd> {
  const storage = opts.storage ?? 'dir';
  const privileged = opts.privileged ?? false;
  const log = opts.log ?? ((s: string) => process.stdout.write(s + '\n'));
  const missing: string[] = [];
  if (!has('lxd')) missing.push('lxd', 'lxd-client');
  if (storage === 'btrfs' && !has('mkfs.btrfs')) missing.push('btrfs-progs');
  if (missing.length) aptInstall(missing, log);
  if (!has('lxd')) throw new Error('lxd is not on PATH after apt-get install');

  const top = mkdtempSync(join(tmpdir(), 'lxcq-lxd-'));
  const lxdDir = join(top, 'lxd');
  // mkdtemp makes 0700; the containers' root (a mapped uid when unprivileged) must traverse it.
  execFileSync('chmod', ['0711', top]);
  mkdirSync(lxdDir, { mode: 0o711 });
  const socketPath = join(lxdDir, 'unix.socket');
  const client = new LxdClient(socketPath);
  const made = { instances: new Set<string>(), image: '', pool: false };
  let daemon: ChildProcess | null = null;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
      await attempt('list instances', async () => {
        for (const n of await client.instances()) {
          const st = (await client.call('GET', `/1.0/instances/${n}`)) as { status?: string };
          if (st.status !== 'Stopped') await attempt(`stop ${n}`, () => client.stop(n));
          await attempt(`delete ${n}`, () => client.delete(n));
        }
      });
      if (made.image) await attempt('delete image', () => client.call('DELETE', `/1.0/images/${made.image}`));
      if (made.pool) {
        await attempt('profile', () =>
          client.call('PUT', '/1.0/profiles/default', { config: {}, devices: {} }),
        );
        await attempt('delete pool', () => client.call('DELETE', `/1.0/storage-pools/${POOL}`));
      }
      await stopDaemon(daemon);
    }
    for (const mp of mountsUnder(readFileSync('/proc/self/mountinfo', 'utf8'), top)) {
      try {
        execFileSync('umount', ['-l', mp], { stdio: 'ignore' });
      } catch (err) {
        errors.push(`umount ${mp}: ${String(err)}`);
      }
    }
    rmSync(top, { recursive: true, force: true });
    // A loop device LXD attached for btrfs is released by the kernel once its file system is unmounted.
    if (errors.length) log(`lxd: clean-up had errors: ${errors.join('; ')}`);
  };

  try {
    const out = openSync(join(top, 'lxd.log'), 'a');
    daemon = spawn('lxd', ['--group', 'root', '--logfile', join(top, 'lxd.log')], {
      env: { ...process.env, LXD_DIR: lxdDir },
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    const exited = new Promise<never>((_, reject) =>
      daemon?.once('exit', (code, sig) =>
        reject(
          new Error(`lxd exited (${code ?? sig}) before it was ready; log: ${tail(join(top, 'lxd.log'))}`),
        ),
      ),
    );
    exited.catch(() => undefined);
    const info = (await Promise.race([waitReady(client, opts.readyTimeoutMs ?? 60_000), exited])) as Record<
      string,
      unknown
    >;
    const env = (info.environment ?? {}) as Record<string, unknown>;
    const version = typeof env.server_version === 'string' ? env.server_version : '?';
    log(
      `lxd: ${version} running as pid ${daemon.pid}, LXD_DIR ${lxdDir}; ${storage} pool, no managed network (instances get no NIC), ${privileged ? 'privileged' : 'unprivileged'} containers`,
    );

    execFileSync('lxd', ['init', '--preseed'], {
      input: preseed(storage, privileged),
      env: { ...process.env, LXD_DIR: lxdDir },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    made.pool = true;
    const tarball = buildImage(top);
    const op = (await client.call('POST', '/1.0/images', readFileSync(tarball))) as Record<string, unknown>;
    made.image = typeof op.fingerprint === 'string' ? op.fingerprint : '';
    if (!made.image) throw new Error('image import returned no fingerprint');
    return {
      version,
      storage,
      privileged,
      pid: daemon.pid ?? 0,
      dir: lxdDir,
      image: made.image,
      client,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitReady(client: LxdClient, timeoutMs: number): Promise<unknown> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      // /internal/ready answers once the daemon has finished starting (what `lxd waitready` polls).
      await client.request('GET', '/internal/ready');
      return (await client.request('GET', '/1.0')).metadata;
    } catch (err) {
      last = err;
      await sleep(200);
    }
  }
  throw new Error(`lxd did not answer on ${client.socketPath} within ${timeoutMs} ms: ${String(last)}`);
}

/** SIGTERM by pid (LXD leaves instances as they are on SIGTERM; ours are deleted already), then SIGKILL. */
async function stopDaemon(p: ChildProcess): Promise<void> {
  const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.kill('SIGTERM');
  const t = await Promise.race([gone.then(() => 'exited'), sleep(30_000).then(() => 'timeout')]);
  if (t === 'timeout') {
    p.kill('SIGKILL');
    await gone;
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-8).join(' | ');
  } catch {
    return '(no log)';
  }
}
