/**
 * "Stopping lxcq-worker does not stop containers", checked at the level systemd works at: the
 * worker runs in a cgroup of its own, as a service does (name=systemd + unified on a hybrid
 * host, the one v2 tree otherwise). The containers it starts must live outside that cgroup, so
 * that killing every process in it (what `systemctl stop` does with KillMode=control-group; the
 * unit's KillMode=process signals even less) leaves them running. systemd itself is not PID 1 here.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG } from '../services/api/test/harness.ts';

const repo = fileURLToPath(new URL('../', import.meta.url));
const name = `lxcq-test-svc-${randomBytes(3).toString('hex')}`;
// the hierarchies systemd tracks a service in
const roots = existsSync('/sys/fs/cgroup/cgroup.controllers')
  ? ['/sys/fs/cgroup']
  : ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'].filter((d) => existsSync(d));
const dirs = roots.map((r) => join(r, name));

let s: Stack;
let worker: ChildProcess | undefined;
let log = '';

function procs(dir: string): number[] {
  return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}

beforeAll(async () => {
  s = await Stack.start({ noWorker: true });
  for (const d of dirs) mkdirSync(d);
  // the worker as a unit's main process: moved into the service cgroup, then exec'd
  worker = spawn(
    'sh',
    [
      '-c',
      'for d in "$@"; do echo $$ > "$d/cgroup.procs"; done; exec "$0" --import tsx services/worker/src/main.ts',
      process.execPath,
      ...dirs,
    ],
    {
      cwd: repo,
      env: {
        ...process.env,
        LXCQ_REDIS_URL: s.redisServer.url,
        LXCQ_HOST_ID: s.hostId,
        LXCQ_LXCPATH: s.lxcpath,
        LXCQ_HEARTBEAT_MS: '500',
        LXCQ_INVENTORY_MS: '2000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  worker.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  worker.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  for (let i = 0; i < 1200 && !log.includes('worker ready'); i++) {
    if (worker.exitCode !== null) throw new Error(`worker exited (${worker.exitCode}):\n${log}`);
    await sleep(50);
  }
  if (!log.includes('worker ready')) throw new Error(`worker not ready:\n${log}`);
});

afterAll(async () => {
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    for (const pid of procs(d)) process.kill(pid, 'SIGKILL'); // only the worker this file started, and its children
    for (let i = 0; i < 100 && procs(d).length > 0; i++) await sleep(50);
    rmdirSync(d);
  }
  await s?.close();
});

describe('the worker in a service cgroup', () => {
  it('starts containers outside its cgroup; killing the whole cgroup leaves them running', async () => {
    expect(dirs.length).toBeGreaterThan(0);
    for (const d of dirs) expect(procs(d)).toContain(worker?.pid);

    const job = await s.run('POST', '/v1/containers', {
      name: 'cg1',
      template: 'busybox',
      config: TEST_CONFIG,
      start: true,
    });
    expect(job.state).toBe('completed');
    const init = Number(
      execFileSync('lxc-info', ['-P', s.lxcpath, '-n', 'cg1', '-p', '-H'], { encoding: 'utf8' }),
    );
    expect(init).toBeGreaterThan(1);
    const monitor = Number(
      execFileSync('pgrep', ['-f', `^\\[lxc monitor\\] ${s.lxcpath} cg1$`], { encoding: 'utf8' })
        .trim()
        .split('\n')[0],
    );
    expect(monitor).toBeGreaterThan(1);
    for (const pid of [init, monitor]) {
      const cgroups = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      expect(cgroups, `pid ${pid}`).not.toContain(`/${name}`);
      for (const d of dirs) expect(procs(d)).not.toContain(pid);
    }

    // what systemctl stop does with KillMode=control-group: SIGKILL to every process in the cgroup
    const killed = new Set<number>();
    for (const d of dirs) for (const pid of procs(d)) killed.add(pid);
    expect(killed.has(worker?.pid as number)).toBe(true);
    for (const pid of killed) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 200 && dirs.some((d) => procs(d).length > 0); i++) await sleep(50);
    for (const d of dirs) expect(procs(d)).toEqual([]);

    expect(s.lxcState('cg1')).toBe('RUNNING');
    expect(existsSync(`/proc/${init}`)).toBe(true);

    // a worker started again finds the container running
    await s.startWorker();
    let state = '';
    for (let i = 0; i < 200 && state !== 'RUNNING'; i++) {
      state = (await s.http<{ state: string }>('GET', '/v1/containers/cg1')).body.state;
      if (state !== 'RUNNING') await sleep(100);
    }
    expect(state).toBe('RUNNING');
    const stopped = await s.run('POST', '/v1/containers/cg1/stop');
    expect(stopped.state).toBe('completed');
  });
});
