/**
 * LXCQ_REDIS_URL=redis-sentinel://...: the API and a worker process find the Redis master through a
 * real Redis Sentinel, run a real container job, and carry on after the Sentinel fails the master
 * over to its replica (the old master killed with SIGKILL). Everything on 127.0.0.1, by pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sentinelOptions } from '@lxcq/shared';
import { buildApp, type BuiltApp } from '../src/app.ts';
import { sha256 } from '../src/auth.ts';
import { apiConfig } from '../src/config.ts';
import { TEST_CONFIG, TOKEN, removeLxcpath, spawnWorker, type Job } from './harness.ts';
import { ask, http, until } from './redis-nodes.ts';

const dir = mkdtempSync(join(tmpdir(), 'lxcq-sentinel-'));
const lxcpath = mkdtempSync(join(tmpdir(), 'lxcq-lxcpath-sentinel-'));
const processes: ChildProcess[] = [];
let api: BuiltApp | undefined;
let base = '';
let worker: ChildProcess | undefined;
let master: ChildProcess;
let ports: { master: number; replica: number; sentinel: number };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function start(args: string[]): ChildProcess {
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  processes.push(child);
  return child;
}

beforeAll(async () => {
  ports = { master: await freePort(), replica: await freePort(), sentinel: await freePort() };
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  master = start(['--port', String(ports.master), '--dir', mkdtempSync(join(dir, 'm-')), ...common]);
  start([
    '--port',
    String(ports.replica),
    '--dir',
    mkdtempSync(join(dir, 'r-')),
    '--replicaof',
    '127.0.0.1',
    String(ports.master),
    ...common,
  ]);
  await until('the replica in sync', async () =>
    /master_link_status:up/.test(String(await ask(ports.replica, ['INFO', 'replication'])))
      ? true
      : undefined,
  );
  const conf = join(dir, 'sentinel.conf'); // Sentinel rewrites its own config file
  writeFileSync(
    conf,
    [
      `port ${ports.sentinel}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor lxcqm 127.0.0.1 ${ports.master} 1`,
      'sentinel down-after-milliseconds lxcqm 1000',
      'sentinel failover-timeout lxcqm 10000',
      '',
    ].join('\n'),
  );
  start([conf, '--sentinel']);
  await until('the sentinel to know the replica', async () => {
    const replicas = (await ask(ports.sentinel, ['SENTINEL', 'REPLICAS', 'lxcqm'])) as unknown[];
    return replicas.length === 1 ? true : undefined;
  });

  const url = `redis-sentinel://127.0.0.1:${ports.sentinel}/lxcqm`;
  api = await buildApp(apiConfig({ LXCQ_REDIS_URL: url, LXCQ_TOKEN: TOKEN }, sha256), {
    logger: pino({ level: 'silent' }),
  });
  base = await api.app.listen({ port: 0, host: '127.0.0.1' });
  worker = (await spawnWorker(url, 'hs', lxcpath, {})).child;
});

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker?.once('exit', r));
    worker.kill('SIGTERM');
    await exited;
  }
  await api?.close();
  removeLxcpath(lxcpath);
  for (const p of processes) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('Redis Sentinel (LXCQ_REDIS_URL=redis-sentinel://...)', () => {
  it('parses the URL into ioredis Sentinel options', () => {
    expect(
      sentinelOptions(
        'redis-sentinel://:p%40ss@10.0.0.1:26379,[::1],h3:26380/mymaster?db=2&sentinelPassword=s',
      ),
    ).toEqual({
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '::1', port: 26379 },
        { host: 'h3', port: 26380 },
      ],
      name: 'mymaster',
      password: 'p@ss',
      db: 2,
      sentinelPassword: 's',
    });
    expect(() => sentinelOptions('redis-sentinel://h1:26379')).toThrow('a Sentinel URL is redis-sentinel://');
    expect(() => sentinelOptions('redis-sentinel://h1:26379/m?tls=1')).toThrow(
      'unknown Sentinel URL parameter "tls"',
    );
  });

  it('the API and the worker reach the master through the sentinel and run a container job', async () => {
    const created = await http<Job>(base, 'POST', '/v1/containers?wait=120', {
      name: 'sen1',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(created.status).toBe(200);
    expect(created.body.state).toBe('completed');
    // the job's record is on the master the sentinel named
    expect(await ask(ports.master, ['EXISTS', `lxcq:job:${created.body.id}`])).toBe(1);
  });

  it('after a failover (the master killed), both follow the new master and jobs run again', async () => {
    await until('the replica to have the data', async () =>
      (await ask(ports.replica, ['EXISTS', 'lxcq:container:sen1'])) === 1 ? true : undefined,
    );
    const exited = new Promise((r) => master.once('exit', r));
    master.kill('SIGKILL');
    await exited;
    await until(
      'the sentinel to promote the replica',
      async () => {
        const addr = (await ask(ports.sentinel, [
          'SENTINEL',
          'GET-MASTER-ADDR-BY-NAME',
          'lxcqm',
        ])) as string[];
        return addr[1] === String(ports.replica) ? true : undefined;
      },
      60_000,
    );
    const job = await until(
      'a job through the new master',
      async () => {
        const r = await http<Job>(base, 'POST', '/v1/containers/sen1/start?wait=60');
        return r.status === 200 && r.body.state === 'completed' ? r.body : undefined;
      },
      90_000,
    );
    expect(job.result).toMatchObject({ state: 'RUNNING' });
    expect(await ask(ports.replica, ['EXISTS', `lxcq:job:${job.id}`])).toBe(1);
    const stopped = await http<Job>(base, 'POST', '/v1/containers/sen1/stop?wait=60');
    expect(stopped.body.state).toBe('completed');
  });
});
