// The API as several processes on one port (LXCQ_API_PROCESSES): every process follows the event
// stream and serves any subscriber, a process that dies is replaced and its subscribers resume
// elsewhere by cursor, SIGTERM stops them all, and a bad setting stops the API instead of looping.
import { rmSync } from 'node:fs';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LxcqClient } from '../../../packages/client/src/index.ts';
import { collect, freePort, waitFor } from '../../../packages/client/test/helpers.ts';
import { TOKEN, startRedis, type RedisServer } from './harness.ts';

const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url));

function startApi(env: Record<string, string>): { proc: ChildProcess; out: () => string } {
  let out = '';
  const proc = spawn(process.execPath, ['--import', 'tsx', SERVER], {
    env: { PATH: process.env.PATH, LXCQ_TOKEN: TOKEN, LXCQ_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return { proc, out: () => out };
}

/** The API processes the supervisor forked (tsx's esbuild service is a child too: not counted). */
function children(pid: number): number[] {
  try {
    return execFileSync('ps', ['--ppid', String(pid), '-o', 'pid=,comm='], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter(([, comm]) => comm === 'node')
      .map(([p]) => Number(p));
  } catch {
    return []; // ps exits 1 when there are none
  }
}

function exited(p: ChildProcess, ms: number): Promise<number | null> {
  if (p.exitCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`pid ${p.pid} still running after ${ms} ms`)), ms);
    p.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

describe('API processes sharing one port', () => {
  let redis: RedisServer;
  let pub: Redis;
  let api: ReturnType<typeof startApi> | null = null;

  beforeAll(async () => {
    redis = await startRedis();
    pub = new Redis(redis.url);
  });

  afterAll(async () => {
    if (api?.proc.pid && api.proc.exitCode === null) {
      for (const c of children(api.proc.pid)) process.kill(c, 'SIGKILL');
      api.proc.kill('SIGKILL');
    }
    pub.disconnect();
    await redis.stop();
    rmSync(redis.dir, { recursive: true, force: true });
  });

  const publish = async (from: number, n: number) => {
    for (let i = from; i < from + n; i++)
      await pub.xadd(
        'lxcq:events',
        '*',
        'type',
        'job.progress',
        'time',
        new Date().toISOString(),
        'data',
        JSON.stringify({ percent: i % 100, stage: `seq ${i}` }),
      );
  };

  it('fans out from every process, replaces a killed one, and its subscribers resume with nothing missed', async () => {
    const port = await freePort();
    api = startApi({ LXCQ_REDIS_URL: redis.url, LXCQ_PORT: String(port), LXCQ_API_PROCESSES: '2' });
    const url = `http://127.0.0.1:${port}`;
    await waitFor(
      () =>
        fetch(`${url}/v1/health`).then(
          () => true,
          () => false,
        ),
      60_000,
    );
    const pid = api.proc.pid as number;
    // Both processes listening (each logs it), so the primary deals connections to both.
    const listening = () =>
      new Set(
        api
          ?.out()
          .split('\n')
          .filter((l) => l.includes('Server listening'))
          .map((l) => (JSON.parse(l) as { pid: number }).pid),
      );
    await waitFor(() => listening().size === 2, 60_000);
    const first = children(pid);
    expect(new Set(first)).toEqual(listening());

    const lxcq = new LxcqClient({ url, token: TOKEN });
    const streams = Array.from({ length: 12 }, () =>
      lxcq.events({ types: ['job.progress'], minBackoffMs: 100, maxBackoffMs: 400 }),
    );
    const cs = streams.map((s) => collect(s));
    await waitFor(() => streams.every((s) => s.connections === 1), 30_000);

    await publish(0, 40);
    for (const c of cs) await c.until((x) => x.length >= 40);

    // Kill one process outright: its subscribers lose their connection, the others keep theirs.
    const victim = first[0] as number;
    process.kill(victim, 'SIGKILL');
    await waitFor(() => streams.some((s) => s.connections > 1), 30_000);
    await publish(40, 40);
    await waitFor(() => children(pid).length === 2 && !children(pid).includes(victim), 30_000);
    await publish(80, 20);
    for (const c of cs) await c.until((x) => x.length >= 100, 30_000);

    const moved = streams.filter((s) => s.connections > 1).length;
    // Connections were dealt to both processes: some moved, some never had to.
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThan(streams.length);
    for (const c of cs) {
      const seqs = c.items.map((e) => ('data' in e ? (e.data as { stage: string }).stage : '?'));
      expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => `seq ${i}`));
    }
    for (const c of cs) await c.stop();

    // SIGTERM stops every process cleanly.
    const all = children(pid);
    api.proc.kill('SIGTERM');
    expect(await exited(api.proc, 30_000)).toBe(0);
    expect(all.filter((c) => children(pid).includes(c))).toEqual([]);
    expect(api.out()).toContain('an API process died; starting another');
  }, 120_000);

  it('stops with the configuration error instead of restarting processes that refuse it', async () => {
    api = startApi({ LXCQ_REDIS_URL: redis.url, LXCQ_PORT: 'seventy', LXCQ_API_PROCESSES: '2' });
    expect(await exited(api.proc, 60_000)).toBe(2);
    expect(api.out()).toContain('LXCQ_PORT=seventy is not a whole number');
    expect(api.out()).not.toContain('starting another');
  }, 90_000);

  it('refuses a bad LXCQ_API_PROCESSES with a clear message', async () => {
    api = startApi({ LXCQ_REDIS_URL: redis.url, LXCQ_API_PROCESSES: '0' });
    expect(await exited(api.proc, 60_000)).toBe(2);
    expect(api.out()).toContain('LXCQ_API_PROCESSES=0 is not a whole number in 1..64');
  }, 90_000);
});
