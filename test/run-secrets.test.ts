/**
 * No secret reaches a container: lxcq started the way `scripts/run.sh` starts it (scripts/local.ts:
 * its own Redis with a password, the API, one worker), then `exec env` in a real container. The
 * command's environment, the API's and the worker's own environment and the container's
 * `[lxc monitor]` (an lxc-start the worker ran) hold no LXCQ_* setting, no token and no Redis
 * password; the token and the Redis URL reach the services in 0600 files instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeLxcpath } from '../services/api/test/harness.ts';

const repo = fileURLToPath(new URL('../', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'lxcq-run-data-'));
const lxcpath = mkdtempSync(join(tmpdir(), 'lxcq-lxcpath-run-'));
const hostId = `run-${randomBytes(3).toString('hex')}`;
let port = 0;
let base = '';
let runner: ChildProcess | undefined;
let out = '';
let token = '';
let redisPassword = '';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port: p } = server.address() as net.AddressInfo;
      server.close(() => resolve(p));
    });
  });
}

async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as T };
}

interface Job {
  state: string;
  result?: { stdout?: string; exitCode?: number };
  error?: unknown;
}

/** The environment a process was started with (NUL-separated NAME=value). */
const environ = (pid: number | string): string[] =>
  readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').filter(Boolean);
const children = (pid: number): number[] =>
  readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);

beforeAll(async () => {
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {};
  // Only what a shell running `sudo bash scripts/run.sh` would have, plus the run's own settings.
  for (const k of ['PATH', 'HOME', 'LANG']) if (process.env[k]) env[k] = process.env[k];
  runner = spawn(process.execPath, ['--import', 'tsx', 'scripts/local.ts'], {
    cwd: repo,
    env: {
      ...env,
      LXCQ_DATA_DIR: dataDir,
      LXCQ_LXCPATH: lxcpath,
      LXCQ_PORT: String(port),
      LXCQ_HOST_ID: hostId,
      LXCQ_HEARTBEAT_MS: '500',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  runner.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  runner.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 1800 && !out.includes('lxcq is running'); i++) {
    if (runner.exitCode !== null) throw new Error(`local.ts exited (${runner.exitCode}):\n${out}`);
    await sleep(100);
  }
  expect(out, out).toContain('lxcq is running');
  token = /^ {2}token {4}(\S+)$/m.exec(out)?.[1] ?? '';
  expect(token.length).toBeGreaterThanOrEqual(16);
  redisPassword =
    /^requirepass (\S+)$/m.exec(readFileSync(join(dataDir, 'redis/redis.conf'), 'utf8'))?.[1] ?? '';
  expect(redisPassword.length).toBeGreaterThanOrEqual(16);
  // the worker's host is online (run.sh's "registered" is best effort)
  for (let i = 0; i < 600; i++) {
    const h = await api<{ status?: string }>('GET', `/v1/hosts/${hostId}`);
    if (h.body.status === 'online') break;
    await sleep(100);
  }
}, 240_000);

afterAll(async () => {
  if (runner && runner.exitCode === null && runner.signalCode === null) {
    const done = new Promise((r) => runner?.once('exit', r));
    runner.kill('SIGTERM');
    await done;
  }
  removeLxcpath(lxcpath);
  rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

describe('run.sh (scripts/local.ts): no secret in any environment a container or a tool sees', () => {
  it('hands the token and the Redis URL over in 0600 files, not in the environment', () => {
    const pid = runner?.pid as number;
    const services = children(pid).filter((c) =>
      /services\/(api|worker)\//.test(readFileSync(`/proc/${c}/cmdline`, 'latin1')),
    );
    expect(services).toHaveLength(2);
    for (const s of services) {
      const env = environ(s);
      expect(env.filter((e) => e.startsWith('LXCQ_TOKEN=') || e.startsWith('LXCQ_REDIS_URL='))).toEqual([]);
      expect(env.join('\n')).not.toContain(token);
      expect(env.join('\n')).not.toContain(redisPassword);
    }
    for (const f of ['api/token', 'api/redis-url', 'worker/redis-url']) {
      const st = statSync(join(dataDir, 'secrets', f));
      expect(st.mode & 0o777, f).toBe(0o600);
    }
    // the worker gets no API token at all
    expect(readdirSync(join(dataDir, 'secrets/worker'))).toEqual(['redis-url']);
  });

  it('exec env in a container shows no LXCQ_*, no token and no Redis password; PATH, HOME, TERM and the request env', async () => {
    let j = await api<Job>('POST', '/v1/containers?wait=120', {
      name: 'envc',
      template: 'busybox',
      config: { 'lxc.net.0.type': 'empty' },
      start: true,
    });
    expect(j.body.state, JSON.stringify(j.body)).toBe('completed');
    j = await api<Job>('POST', '/v1/containers/envc/exec?wait=60', {
      argv: ['env'],
      env: { GREETING: 'hi' },
    });
    expect(j.body.state, JSON.stringify(j.body)).toBe('completed');
    const env = (j.body.result?.stdout ?? '').split('\n').filter(Boolean);
    expect(env.filter((e) => e.startsWith('LXCQ_'))).toEqual([]);
    expect(env.join('\n')).not.toContain(token);
    expect(env.join('\n')).not.toContain(redisPassword);
    expect(env.join('\n')).not.toMatch(/redis/i);
    expect(env).toContain('GREETING=hi');
    expect(env).toContain('HOME=/root');
    expect(env).toContain('TERM=dumb');
    expect(env.some((e) => /^PATH=.*\/usr\/bin/.test(e))).toBe(true);

    // The container's monitor is the lxc-start the worker ran: its environment (what hooks would
    // get) is scrubbed too.
    const monitor = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .find((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'latin1').startsWith(`[lxc monitor] ${lxcpath} envc`);
        } catch {
          return false;
        }
      });
    expect(monitor).toBeDefined();
    const menv = environ(monitor as string);
    expect(menv.filter((e) => e.startsWith('LXCQ_'))).toEqual([]);
    expect(menv.join('\n')).not.toContain(token);
    expect(menv.join('\n')).not.toContain(redisPassword);
  });
});
