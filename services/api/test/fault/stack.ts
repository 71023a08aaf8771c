/**
 * The stack the fault suite breaks: a private redis-server (AOF on, restartable on the same socket
 * and data directory), the API and a worker each as a process of its own (production entry
 * points, killed and restarted by pid), on a temporary lxcpath. Built from the test harness.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Store, keys as makeKeys } from '@lxcq/shared';
import {
  TOKEN,
  freePort,
  removeLxcpath,
  spawnApi,
  spawnWorker,
  startRedis,
  stopChild,
  type RedisOptions,
  type RedisServer,
} from '../harness.ts';

export interface FaultStackOptions extends RedisOptions {
  hostId?: string;
  workerEnv?: Record<string, string>;
  apiEnv?: Record<string, string>;
}

/** Keeps the last `max` characters of a process's output (enough to explain a failure). */
class Tail {
  text = '';
  constructor(private readonly max = 256 * 1024) {}
  add(d: Buffer | string): void {
    this.text += d.toString();
    if (this.text.length > this.max * 2) this.text = this.text.slice(-this.max);
  }
}

export class FaultStack {
  api: ChildProcess | null = null;
  worker: ChildProcess | null = null;
  readonly apiLog = new Tail();
  readonly workerLog = new Tail();
  readonly keys = makeKeys('lxcq');
  readonly store: Store;
  /** Counts of what was done to the processes, for the report. */
  readonly faults = { workerKills: 0, apiRestarts: 0, redisRestarts: 0 };

  private constructor(
    readonly redisServer: RedisServer,
    /** The suite's own Redis client (reconnects by itself across a Redis restart). */
    readonly redis: Redis,
    readonly lxcpath: string,
    readonly port: number,
    readonly opts: FaultStackOptions,
  ) {
    this.store = new Store(redis, this.keys);
  }

  static async start(opts: FaultStackOptions = {}): Promise<FaultStack> {
    const redisServer = await startRedis(undefined, opts);
    const lxcpath = mkdtempSync(join(tmpdir(), 'lxcq-fault-'));
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
    // It reconnects by itself when a case restarts Redis; the errors meanwhile are expected.
    redis.on('error', () => undefined);
    const s = new FaultStack(redisServer, redis, lxcpath, await freePort(), opts);
    try {
      await s.startApi();
      await s.startWorker();
      return s;
    } catch (err) {
      await s.close().catch(() => undefined);
      throw err;
    }
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get hostId(): string {
    return this.opts.hostId ?? 'h1';
  }

  apiEnv(): Record<string, string> {
    return {
      LXCQ_REDIS_URL: this.redisServer.url,
      LXCQ_TOKEN: TOKEN,
      LXCQ_HOST_OFFLINE_MS: '20000',
      LXCQ_SUBMIT_GRACE_MS: '3000',
      LXCQ_LOG_LEVEL: 'warn',
      ...this.opts.apiEnv,
    };
  }

  async startApi(): Promise<void> {
    const a = await spawnApi(this.apiEnv(), this.port);
    this.api = a.child;
    this.apiLog.add(a.log());
    a.child.stdout?.on('data', (d: Buffer) => this.apiLog.add(d));
    a.child.stderr?.on('data', (d: Buffer) => this.apiLog.add(d));
  }

  async stopApi(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await stopChild(this.api, signal);
    this.api = null;
  }

  async restartApi(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.stopApi(signal);
    this.faults.apiRestarts++;
    await this.startApi();
  }

  async startWorker(): Promise<void> {
    const w = await spawnWorker(this.redisServer.url, this.hostId, this.lxcpath, {
      LXCQ_LOCK_MS: '2000',
      LXCQ_INVENTORY_MS: '1000',
      ...this.opts.workerEnv,
    });
    this.worker = w.child;
    this.workerLog.add(w.log());
    w.child.stdout?.on('data', (d: Buffer) => this.workerLog.add(d));
    w.child.stderr?.on('data', (d: Buffer) => this.workerLog.add(d));
  }

  async stopWorker(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (signal === 'SIGKILL' && this.worker?.exitCode === null) this.faults.workerKills++;
    await stopChild(this.worker, signal);
    this.worker = null;
  }

  async restartRedis(signal: NodeJS.Signals = 'SIGKILL', downMs = 0): Promise<void> {
    await this.redisServer.restart(signal, downMs);
    this.faults.redisRestarts++;
  }

  /** True while the process has not exited. */
  static alive(p: ChildProcess | null): boolean {
    return p !== null && p.exitCode === null && p.signalCode === null;
  }

  async http<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    opts: { token?: string | null; headers?: Record<string, string>; raw?: string | Buffer } = {},
  ): Promise<{ status: number; body: T; text: string }> {
    const headers: Record<string, string> = { ...opts.headers };
    const token = opts.token === undefined ? TOKEN : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let payload: string | Buffer | undefined = opts.raw;
    if (body !== undefined) {
      headers['content-type'] ??= 'application/json';
      payload = JSON.stringify(body);
    }
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      ...(payload !== undefined ? { body: payload } : {}),
    });
    const text = await res.text();
    let parsed: unknown = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = { unparsable: text.slice(0, 200) };
    }
    return { status: res.status, body: parsed as T, text };
  }

  /** Containers in the lxcpath, as `lxc-ls -P <lxcpath>` sees them. */
  lxcLs(): string[] {
    return execFileSync('lxc-ls', ['-P', this.lxcpath, '-1'], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .sort();
  }

  lxcState(name: string): string {
    try {
      const out = execFileSync('lxc-info', ['-P', this.lxcpath, '-n', name, '-s'], { encoding: 'utf8' });
      return /State:\s+(\S+)/.exec(out)?.[1] ?? 'UNKNOWN';
    } catch {
      return 'MISSING';
    }
  }

  /** Resident memory of a process in bytes (0 when it is gone). */
  static rss(p: ChildProcess | null): number {
    if (!p?.pid) return 0;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.pid}/status`, 'utf8'));
      return m?.[1] ? Number(m[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  }

  async close(): Promise<void> {
    await this.stopWorker('SIGTERM').catch(() => undefined);
    await this.stopApi('SIGTERM').catch(() => undefined);
    removeLxcpath(this.lxcpath);
    this.redis.disconnect();
    await this.redisServer.stop();
    rmSync(this.redisServer.dir, { recursive: true, force: true });
  }
}
