/**
 * A real lxcq stack for integration tests: its own redis-server (unix socket, temp dir), the API
 * listening on a free port, and a worker as a child process (so tests can SIGKILL it), on a
 * temporary lxcpath. close() stops everything it started, by pid, and removes every container,
 * Redis key and directory it made.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, readdirSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { buildApp, type BuiltApp } from '../src/app.ts';
import { sha256 } from '../src/auth.ts';
import { apiConfig } from '../src/config.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

export interface RedisServer {
  url: string;
  /** The running redis-server's pid (a new one after restart()). */
  pid: number;
  dir: string;
  stop(): Promise<void>;
  /**
   * Stops redis-server with `signal` (SIGKILL: a crash; SIGTERM: a clean shutdown that flushes the
   * AOF) and starts it again on the same socket and data directory, after `downMs`.
   */
  restart(signal?: NodeJS.Signals, downMs?: number): Promise<void>;
}

export interface RedisOptions {
  /**
   * AOF fsync policy. `everysec` (Redis' default) writes every command to the kernel before the
   * reply, so a crash of redis-server alone loses nothing acknowledged, but a crash of the machine
   * can lose the last second; `always` fsyncs before each reply and loses nothing either way.
   */
  appendfsync?: 'always' | 'everysec';
}

/** Starts a private redis-server on a unix socket; AOF on so a restart keeps the data. */
export async function startRedis(
  dir = mkdtempSync(join(tmpdir(), 'lxcq-redis-')),
  opts: RedisOptions = {},
): Promise<RedisServer> {
  const sock = join(dir, 'redis.sock');
  const args = [
    '--port',
    '0',
    '--unixsocket',
    sock,
    '--unixsocketperm',
    '700',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    opts.appendfsync ?? 'everysec',
  ];
  const launch = async (): Promise<ChildProcess> => {
    rmSync(sock, { force: true });
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    for (let i = 0; i < 200 && !existsSync(sock); i++) {
      if (child.exitCode !== null) break;
      await sleep(50);
    }
    if (!existsSync(sock))
      throw new Error('redis-server did not start (is it installed? run scripts/setup-host.sh)');
    return child;
  };
  let child = await launch();
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
    }
  };
  const server: RedisServer = {
    url: sock,
    pid: child.pid as number,
    dir,
    stop: () => halt('SIGTERM'),
    restart: async (signal = 'SIGKILL', downMs = 0) => {
      await halt(signal);
      if (downMs > 0) await sleep(downMs);
      child = await launch();
      server.pid = child.pid as number;
    },
  };
  return server;
}

export interface StackOptions {
  hostId?: string;
  /** Extra worker environment (LXCQ_LOCK_MS, LXCQ_CONFIG_POLICY, ...). */
  workerEnv?: Record<string, string>;
  apiEnv?: Record<string, string>;
  tokensFile?: string;
  /** Start no worker (API-only tests). */
  noWorker?: boolean;
}

export const TOKEN = 'test-admin-token-0123456789';

/** Config for test containers: no network device, so no bridge is needed and no traffic leaves. */
export const TEST_CONFIG = { 'lxc.net.0.type': 'empty' } as const;

export class Stack {
  worker: ChildProcess | null = null;
  workerLog = '';
  private constructor(
    readonly redisServer: RedisServer,
    readonly redis: Redis,
    readonly api: BuiltApp,
    readonly url: string,
    readonly lxcpath: string,
    readonly opts: StackOptions,
  ) {}

  static async start(opts: StackOptions = {}): Promise<Stack> {
    const redisServer = await startRedis();
    const lxcpath = mkdtempSync(join(tmpdir(), 'lxcq-lxcpath-'));
    const env: Record<string, string> = {
      LXCQ_REDIS_URL: redisServer.url,
      LXCQ_TOKEN: TOKEN,
      // Well over a restarted worker's start-up on a loaded 2-core machine (tests of the watchdog set less).
      LXCQ_HOST_OFFLINE_MS: '30000',
      ...(opts.tokensFile ? { LXCQ_TOKENS_FILE: opts.tokensFile } : {}),
      ...opts.apiEnv,
    };
    let api: BuiltApp | undefined;
    let stack: Stack | undefined;
    try {
      api = await buildApp(apiConfig(env, sha256), { logger: pino({ level: 'silent' }) });
      const address = await api.app.listen({ port: 0, host: '127.0.0.1' });
      stack = new Stack(redisServer, new Redis(redisServer.url), api, address, lxcpath, opts);
      if (!opts.noWorker) await stack.startWorker();
      return stack;
    } catch (err) {
      // Leave nothing behind when the stack cannot come up (a failing beforeAll skips afterAll's close).
      if (stack) await stack.close().catch(() => undefined);
      else {
        await api?.close().catch(() => undefined);
        removeLxcpath(lxcpath);
        await redisServer.stop();
        rmSync(redisServer.dir, { recursive: true, force: true });
      }
      throw err;
    }
  }

  get hostId(): string {
    return this.opts.hostId ?? 'h1';
  }

  /** Spawns the worker process and waits until its host is online. */
  async startWorker(env: Record<string, string> = {}): Promise<void> {
    const w = await spawnWorker(this.redisServer.url, this.hostId, this.lxcpath, {
      ...this.opts.workerEnv,
      ...env,
    });
    this.worker = w.child;
    this.workerLog = w.log();
    w.child.stdout?.on('data', (d: Buffer) => (this.workerLog += d.toString()));
    w.child.stderr?.on('data', (d: Buffer) => (this.workerLog += d.toString()));
  }

  async stopWorker(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await stopChild(this.worker, signal);
    this.worker = null;
  }

  /** More simulated hosts: a worker process each, with its own host id and lxcpath. */
  readonly hosts = new Map<
    string,
    { child: ChildProcess | null; lxcpath: string; log: () => string; netns?: string }
  >();

  /** `netns`: run the worker inside that network namespace (the test made it, with a link out). */
  async addHost(
    id: string,
    env: Record<string, string> = {},
    opts: { netns?: string } = {},
  ): Promise<string> {
    const lxcpath = mkdtempSync(join(tmpdir(), `lxcq-lxcpath-${id}-`));
    const w = await spawnWorker(this.redisServer.url, id, lxcpath, { ...this.opts.workerEnv, ...env }, opts);
    this.hosts.set(id, { child: w.child, lxcpath, log: w.log, ...opts });
    return lxcpath;
  }

  /** Stops host `id`'s worker (if it still runs) and starts a new one on the same lxcpath. */
  async restartHost(id: string, env: Record<string, string> = {}): Promise<void> {
    const h = this.hosts.get(id);
    if (!h) throw new Error(`no host ${id}`);
    await stopChild(h.child, 'SIGTERM');
    const ns = h.netns ? { netns: h.netns } : {};
    const w = await spawnWorker(this.redisServer.url, id, h.lxcpath, { ...this.opts.workerEnv, ...env }, ns);
    this.hosts.set(id, { child: w.child, lxcpath: h.lxcpath, log: w.log, ...ns });
  }

  async stopHost(id: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const h = this.hosts.get(id);
    if (h) {
      await stopChild(h.child, signal);
      h.child = null;
    }
  }

  async http<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    opts: { token?: string | null; headers?: Record<string, string>; raw?: string } = {},
  ): Promise<{ status: number; body: T; headers: Headers }> {
    const headers: Record<string, string> = { ...opts.headers };
    const token = opts.token === undefined ? TOKEN : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined = opts.raw;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    } else if (opts.raw !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      ...(payload !== undefined ? { body: payload } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as T, headers: res.headers };
  }

  /** Submits and waits for the job to end; returns the ended job. */
  /** Waits for a submitted job to end; returns the ended job. */
  async wait(id: string, timeoutSec = 120): Promise<Job> {
    const r = await this.http<Job>('GET', `/v1/jobs/${id}/wait?timeout=${timeoutSec}`);
    if (r.status !== 200)
      throw new Error(`job ${id} did not end in ${timeoutSec} s: ${JSON.stringify(r.body)}`);
    return r.body;
  }

  async run(method: string, path: string, body?: unknown, wait = 120): Promise<Job> {
    const sep = path.includes('?') ? '&' : '?';
    const r = await this.http<Job>(method, `${path}${sep}wait=${wait}`, body);
    if (r.status !== 200)
      throw new Error(`${method} ${path} answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** Containers in the lxcpath, as lxc-ls sees them. */
  lxcLs(): string[] {
    return execFileSync('lxc-ls', ['-P', this.lxcpath, '-1'], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .sort();
  }

  lxcState(name: string): string {
    const out = execFileSync('lxc-info', ['-P', this.lxcpath, '-n', name, '-s'], { encoding: 'utf8' });
    return /State:\s+(\S+)/.exec(out)?.[1] ?? 'UNKNOWN';
  }

  async close(): Promise<void> {
    await this.stopWorker('SIGTERM');
    for (const [id, h] of this.hosts) {
      await this.stopHost(id);
      removeLxcpath(h.lxcpath);
    }
    await this.api.close();
    removeLxcpath(this.lxcpath);
    this.redis.disconnect();
    await this.redisServer.stop();
    rmSync(this.redisServer.dir, { recursive: true, force: true });
  }
}

/**
 * The environment a process under test inherits: this one's without any `LXCQ_*` name. The test
 * passes the settings it means explicitly; the test run's own variables (LXCQ_FAULT_SEED,
 * LXCQ_TEST_TIMEOUT, a developer's LXCQ_TOKEN) would otherwise reach the API or worker, which
 * refuse an unknown setting and would run with settings nobody chose.
 */
export function inheritedEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LXCQ_')));
}

/** Spawns a worker process (node + tsx, as in production) and waits until it is ready. */
export async function spawnWorker(
  redisUrl: string,
  hostId: string,
  lxcpath: string,
  extraEnv: Record<string, string>,
  opts: { netns?: string } = {},
): Promise<{ child: ChildProcess; log: () => string }> {
  const env = {
    ...inheritedEnv(),
    LXCQ_REDIS_URL: redisUrl,
    LXCQ_HOST_ID: hostId,
    LXCQ_LXCPATH: lxcpath,
    LXCQ_HEARTBEAT_MS: '500',
    LXCQ_INVENTORY_MS: '2000',
    LXCQ_LOCK_MS: '4000',
    LXCQ_THREADS: '4',
    ...extraEnv,
  };
  const argv = [process.execPath, '--import', 'tsx', join(repo, 'services/worker/src/main.ts')];
  // `ip netns exec` enters the namespace and execs node: the pid stays the worker's.
  const [cmd, ...args] = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...argv] : argv;
  const child = spawn(cmd as string, args, {
    env,
    cwd: repo,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  // Generous: a loaded CI machine can take a while to load tsx, koffi and liblxc.
  for (let i = 0; i < 1200; i++) {
    if (child.exitCode !== null) throw new Error(`worker ${hostId} exited (${child.exitCode}):\n${log}`);
    if (log.includes('worker ready')) return { child, log: () => log };
    await sleep(50);
  }
  await stopChild(child, 'SIGKILL');
  throw new Error(`worker ${hostId} did not become ready:\n${log}`);
}

/**
 * Sends `request` byte for byte to 127.0.0.1:`port` (for input a polite client refuses to send:
 * broken request lines, oversized headers, bad upgrades) and returns the answer's status and body.
 */
export function rawRequest(
  port: number,
  request: string | Buffer,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      const all = Buffer.concat(chunks).toString('utf8');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(all);
      const at = all.indexOf('\r\n\r\n');
      if (!m || at < 0) reject(new Error(`no HTTP answer: ${JSON.stringify(all.slice(0, 200))}`));
      else resolve({ status: Number(m[1]), body: all.slice(at + 4) });
    });
    sock.end(request);
  });
}

/** A TCP port free on 127.0.0.1 right now (for a process that must come back on the same port). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * Spawns the API as a process of its own (services/api/src/server.ts, as in production) listening
 * on 127.0.0.1:`port`, and waits until it answers. Tests that kill or restart the API use this.
 */
export async function spawnApi(
  env: Record<string, string>,
  port: number,
): Promise<{ child: ChildProcess; log: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repo, 'services/api/src/server.ts')], {
    env: { ...inheritedEnv(), LXCQ_PORT: String(port), LXCQ_HOST_BIND: '127.0.0.1', ...env },
    cwd: repo,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  for (let i = 0; i < 1200; i++) {
    if (child.exitCode !== null) throw new Error(`api exited (${child.exitCode}):\n${log}`);
    try {
      await fetch(`http://127.0.0.1:${port}/v1/health`);
      return { child, log: () => log };
    } catch {
      await sleep(50);
    }
  }
  await stopChild(child, 'SIGKILL');
  throw new Error(`api did not start listening on ${port}:\n${log}`);
}

/** Sends `signal` to a child process (by its pid) and waits until it has exited. */
export async function stopChild(child: ChildProcess | null, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/** Mount points at or under `dir` (this process's mount namespace), deepest first. */
export function mountsBelow(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    const point = field.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (point === dir || point.startsWith(`${dir}/`)) out.push(point);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Stops and destroys every container of a test lxcpath, then removes it. */
export function removeLxcpath(lxcpath: string): void {
  if (!existsSync(lxcpath)) return;
  for (const name of readdirSync(lxcpath)) {
    if (!existsSync(join(lxcpath, name, 'config'))) continue;
    try {
      execFileSync('lxc-stop', ['-P', lxcpath, '-n', name, '-k'], { stdio: 'ignore' });
    } catch {
      // already stopped
    }
    try {
      execFileSync('lxc-destroy', ['-P', lxcpath, '-n', name, '-s'], { stdio: 'ignore' });
    } catch {
      // removed below with the directory
    }
  }
  // A pool a test left mounted under the lxcpath is unmounted by its exact mount point (a loop
  // pool's loop device is detached with it: autoclear); its loop file goes with the directory.
  for (const point of mountsBelow(lxcpath)) execFileSync('umount', [point], { stdio: 'ignore' });
  rmSync(lxcpath, { recursive: true, force: true });
}

export interface Job {
  id: string;
  operation: string;
  container: string;
  host: string;
  state: string;
  queuePosition?: number;
  progress?: { percent: number; stage: string };
  result?: Record<string, unknown>;
  error?: { code: string; message: string; details?: Record<string, unknown> };
  attempts?: number;
}
