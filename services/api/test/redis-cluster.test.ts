/**
 * LXCQ_REDIS_URL=redis-cluster://...: the API and a worker process run real container jobs on a
 * real Redis Cluster (three masters, three replicas, started here on 127.0.0.1 ports), events reach
 * a WebSocket subscriber, and a failover of the master that holds lxcq's slot in the middle of a
 * job loses nothing: the job ends once, and the next jobs run. Everything started here is stopped
 * by pid; the data directories are removed.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, clusterOptions } from '@lxcq/shared';
import { buildApp, type BuiltApp } from '../src/app.ts';
import { sha256 } from '../src/auth.ts';
import { apiConfig } from '../src/config.ts';
import { TEST_CONFIG, TOKEN, freePort, removeLxcpath, spawnWorker, stopChild, type Job } from './harness.ts';
import { Sub } from './ws-client.ts';
import { ask, http, until } from './redis-nodes.ts';

const dir = mkdtempSync(join(tmpdir(), 'lxcq-rcluster-'));
const lxcpath = mkdtempSync(join(tmpdir(), 'lxcq-lxcpath-rcluster-'));
const PREFIX = '{lxcq}';
const nodes: { port: number; child: ChildProcess }[] = [];
let api: BuiltApp | undefined;
let base = '';
let worker: ChildProcess | undefined;
let url = '';

/** The node that is master of lxcq's slot now, and the replica of it. */
async function slotOwners(): Promise<{ master: number; replica: number }> {
  const slot = Number(
    await ask(nodes[0]?.port as number, ['CLUSTER', 'KEYSLOT', PREFIX], { replicaReads: true }),
  );
  const ranges = (await ask(nodes[0]?.port as number, ['CLUSTER', 'SLOTS'], { replicaReads: true })) as [
    number,
    number,
    ...[string, number, string][],
  ][];
  const range = ranges.find(([from, to]) => from <= slot && slot <= to);
  const [, , master, replica] = range ?? [];
  if (!master || !replica) throw new Error(`no master with a replica for slot ${slot}`);
  return { master: master[1], replica: replica[1] };
}

beforeAll(async () => {
  for (let i = 0; i < 6; i++) {
    const port = await freePort();
    const data = join(dir, String(port));
    mkdirSync(data);
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        data,
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        '2000',
        '--save',
        '',
        '--appendonly',
        'yes',
      ],
      { stdio: 'ignore' },
    );
    nodes.push({ port, child });
  }
  for (const n of nodes)
    await until(`redis-server on ${n.port}`, async () =>
      (await ask(n.port, ['PING'], { replicaReads: true })) === 'PONG' ? true : undefined,
    );
  execFileSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ],
    { stdio: 'ignore', timeout: 60_000 },
  );
  for (const n of nodes)
    await until(`cluster state ok on ${n.port}`, async () =>
      /cluster_state:ok/.test(String(await ask(n.port, ['CLUSTER', 'INFO'], { replicaReads: true })))
        ? true
        : undefined,
    );
  await until('every master to have its replica', async () => {
    await slotOwners();
    return true;
  });

  url = `redis-cluster://127.0.0.1:${nodes[0]?.port},127.0.0.1:${nodes[1]?.port}`;
  api = await buildApp(apiConfig({ LXCQ_REDIS_URL: url, LXCQ_PREFIX: PREFIX, LXCQ_TOKEN: TOKEN }, sha256), {
    logger: pino({ level: 'silent' }),
  });
  base = await api.app.listen({ port: 0, host: '127.0.0.1' });
  worker = (await spawnWorker(url, 'hrc', lxcpath, { LXCQ_PREFIX: PREFIX })).child;
}, 180_000);

afterAll(async () => {
  await stopChild(worker ?? null, 'SIGTERM');
  await api?.close();
  removeLxcpath(lxcpath);
  for (const n of nodes) await stopChild(n.child, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('Redis Cluster (LXCQ_REDIS_URL=redis-cluster://...)', () => {
  it('parses the URL, and refuses a key prefix without a hash tag', () => {
    expect(clusterOptions('redis-cluster://:p%40ss@10.0.0.1:7000,[::1],h3:7002')).toEqual({
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '::1', port: 6379 },
        { host: 'h3', port: 7002 },
      ],
      password: 'p@ss',
    });
    expect(() => clusterOptions('redis-cluster://h1:7000/0')).toThrow('a Cluster URL is redis-cluster://');
    expect(() => clusterOptions('redis-cluster://h1:99999')).toThrow('is not host[:port]');
    let refused: unknown;
    try {
      apiConfig({ LXCQ_REDIS_URL: 'redis-cluster://127.0.0.1:7000', LXCQ_TOKEN: TOKEN }, sha256);
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(ConfigError);
    expect(String(refused)).toMatch(/LXCQ_PREFIX "lxcq" has no hash tag.*set LXCQ_PREFIX=\{lxcq\}/);
  });

  it('runs a container through its life, with its events on the WebSocket', async () => {
    const sub = await Sub.open(base, '?container=rc1', { token: TOKEN });
    try {
      const created = await http<Job>(base, 'POST', '/v1/containers?wait=120', {
        name: 'rc1',
        template: 'busybox',
        config: TEST_CONFIG,
      });
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      expect(created.body.state).toBe('completed');
      const started = await http<Job>(base, 'POST', '/v1/containers/rc1/start?wait=60');
      expect(started.body.state).toBe('completed');
      const ran = await http<Job>(base, 'POST', '/v1/containers/rc1/exec?wait=60', {
        argv: ['echo', 'on a cluster'],
      });
      expect(ran.body.result).toMatchObject({ exitCode: 0, stdout: 'on a cluster\n' });
      await sub.until((m) =>
        m.some((e) => e.type === 'container.state' && (e.data as { to?: string }).to === 'RUNNING'),
      );
      // the job's record is on the master of lxcq's slot
      const { master } = await slotOwners();
      expect(await ask(master, ['EXISTS', `${PREFIX}:job:${ran.body.id}`], { replicaReads: true })).toBe(1);
    } finally {
      await sub.close();
    }
  });

  it('a failover of the slot master in the middle of a job loses nothing', async () => {
    const before = await slotOwners();
    await until('the replica to hold the container record', async () =>
      (await ask(before.replica, ['EXISTS', `${PREFIX}:container:rc1`], { replicaReads: true })) === 1
        ? true
        : undefined,
    );
    const sub = await Sub.open(base, '?container=rc1&types=job.*', { token: TOKEN });
    try {
      // a job that runs for 3 s, the failover in its middle
      const job = await http<Job>(base, 'POST', '/v1/containers/rc1/exec', {
        argv: ['sh', '-c', 'sleep 3; echo done'],
      });
      expect(job.status).toBe(202);
      await until('the job to run', async () =>
        (await http<Job>(base, 'GET', `/v1/jobs/${job.body.id}`)).body.state === 'active' ? true : undefined,
      );
      // A manual failover: the replica catches up with its master, then takes its slots over.
      expect(await ask(before.replica, ['CLUSTER', 'FAILOVER'], { replicaReads: true })).toBe('OK');
      await until(
        'the replica to become master of the slot',
        async () => ((await slotOwners()).master === before.replica ? true : undefined),
        60_000,
      );
      const ended = await until(
        'the job to end',
        async () => {
          const r = await http<Job>(base, 'GET', `/v1/jobs/${job.body.id}`);
          return ['completed', 'failed', 'cancelled'].includes(r.body.state) ? r.body : undefined;
        },
        120_000,
      );
      expect(ended.state, JSON.stringify(ended.error)).toBe('completed');
      expect(ended.result).toMatchObject({ exitCode: 0, stdout: 'done\n' });
      // one end, seen once
      await sub.until((m) => m.some((e) => e.type === 'job.completed' && e.job === job.body.id));
      await sleep(500);
      expect(
        sub
          .events()
          .filter((e) => e.job === job.body.id && /^job\.(completed|failed|cancelled)$/.test(e.type)),
      ).toHaveLength(1);
      // nothing lost: every job of the container is still listed, and new jobs run
      const jobs = await http<{ jobs: Job[] }>(base, 'GET', '/v1/jobs?container=rc1');
      expect(jobs.body.jobs.map((j) => j.operation)).toEqual(
        expect.arrayContaining(['create', 'start', 'exec', 'exec']),
      );
      const again = await until(
        'a job through the new master',
        async () => {
          const r = await http<Job>(base, 'POST', '/v1/containers/rc1/stop?wait=60');
          return r.status === 200 && r.body.state === 'completed' ? r.body : undefined;
        },
        90_000,
      );
      expect(again.result).toMatchObject({ state: 'STOPPED' });
      expect(await ask(before.replica, ['EXISTS', `${PREFIX}:job:${again.id}`], { replicaReads: true })).toBe(
        1,
      );
      const destroyed = await http<Job>(base, 'DELETE', '/v1/containers/rc1?wait=60');
      expect(destroyed.body.state).toBe('completed');
    } finally {
      await sub.close();
    }
  });
});
