// A worker killed with SIGKILL mid-operation, stopped gracefully mid-job, and containers changed
// behind lxcq's back: jobs still end definitely, nothing half-made stays, the registry matches lxc-ls.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Store, keys } from '@lxcq/shared';
import { unmadeContainers } from './fault/audit.ts';
import { Stack, TEST_CONFIG, type Job } from './harness.ts';

let s: Stack;
beforeAll(async () => {
  s = await Stack.start({ workerEnv: { LXCQ_LOCK_MS: '3000' } });
});
afterAll(async () => {
  await s?.close();
});

async function waitActive(id: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if ((await s.http<Job>('GET', `/v1/jobs/${id}`)).body.state === 'active') return;
    await sleep(10);
  }
  throw new Error(`job ${id} never became active`);
}

/** Snapshot directories of a container, as on disk. */
function snapsOf(name: string): string[] {
  const d = join(s.lxcpath, name, 'snaps');
  return existsSync(d) ? readdirSync(d).sort() : [];
}

/** Pids of processes named `comm` (read from /proc: quicker than ps). */
function toolsRunning(comm: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/comm`, 'utf8').trim() === comm) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** lxc-copy, lxc-snapshot and their rsync working on the test's lxcpath. */
function helpers(which = /lxc-copy|rsync/): number[] {
  return execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(s.lxcpath) && which.test(l))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

function alive(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}

/** Waits until the job runs again for the `attempt`-th time. */
async function waitAttempt(id: string, attempt: number): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    const j = (await s.http<Job>('GET', `/v1/jobs/${id}`)).body;
    if (j.state === 'active' && (j.attempts ?? 0) >= attempt) return;
    if (j.state !== 'active' && j.state !== 'queued') return;
    await sleep(10);
  }
  throw new Error(`job ${id} never ran a ${attempt}th time`);
}

async function registry(): Promise<string[]> {
  return (await s.http<{ name: string }[]>('GET', '/v1/containers')).body.map((c) => c.name).sort();
}

describe('a worker killed mid-operation', () => {
  it('create: the job finishes on the restarted worker and no half-made container stays', async () => {
    const r = await s.http<Job>('POST', '/v1/containers', {
      name: 'k1',
      template: 'busybox',
      config: TEST_CONFIG,
      start: true,
    });
    await waitActive(r.body.id);
    await s.stopWorker('SIGKILL');
    await s.startWorker();
    const done = (await s.http<Job>('GET', `/v1/jobs/${r.body.id}/wait?timeout=60`)).body;
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    expect(done.attempts).toBe(2);
    expect(s.lxcState('k1')).toBe('RUNNING');
    expect(existsSync(join(s.lxcpath, '.lxcq', 'creating', 'k1'))).toBe(false);
    const log = (await s.http<{ lines: string[] }>('GET', `/v1/jobs/${r.body.id}/log`)).body.lines.join('\n');
    expect(log).toMatch(/attempt 2/);
  });

  it('exec: the command is not run twice; the job fails with LXCQ_WORKER_LOST', async () => {
    const r = await s.http<Job>('POST', '/v1/containers/k1/exec', {
      argv: ['sh', '-c', 'echo ran >> /runs; sleep 2'],
    });
    await waitActive(r.body.id);
    await sleep(200);
    await s.stopWorker('SIGKILL');
    await s.startWorker();
    const done = (await s.http<Job>('GET', `/v1/jobs/${r.body.id}/wait?timeout=60`)).body;
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('LXCQ_WORKER_LOST');
    const runs = await s.run('POST', '/v1/containers/k1/exec', { argv: ['sh', '-c', 'wc -l < /runs'] });
    expect((runs.result as { stdout: string }).stdout.trim()).toBe('1');
  });

  it('jobs queued while the worker is down run once it is back, in order', async () => {
    await s.stopWorker('SIGKILL');
    const a = await s.http<Job>('POST', '/v1/containers/k1/stop');
    const b = await s.http<Job>('POST', '/v1/containers/k1/snapshots', { name: 'while-down' });
    expect([a.body.state, b.body.state]).toEqual(['queued', 'queued']);
    await s.startWorker();
    const da = (await s.http<Job>('GET', `/v1/jobs/${a.body.id}/wait?timeout=60`)).body;
    const db = (await s.http<Job>('GET', `/v1/jobs/${b.body.id}/wait?timeout=60`)).body;
    expect([da.state, db.state]).toEqual(['completed', 'completed']);
    expect(s.lxcState('k1')).toBe('STOPPED');
  });

  it("a container's jobs handed out by BullMQ out of submission order still run in it", async () => {
    const made = await s.run('POST', '/v1/containers', {
      name: 'ord1',
      template: 'busybox',
      config: TEST_CONFIG,
      start: true,
    });
    expect(made.state, JSON.stringify(made.error)).toBe('completed');
    // Paused, the host's queue keeps what it is given; its worker stays up (heartbeats go on).
    const queue = new Queue(`host.${s.hostId}`, { connection: s.redis, prefix: 'lxcq:bull' });
    await queue.pause();
    const a = await s.http<Job>('POST', '/v1/containers/ord1/exec', {
      argv: ['sh', '-c', 'sleep 1; echo A >> /order'],
    });
    const b = await s.http<Job>('POST', '/v1/containers/ord1/exec', {
      argv: ['sh', '-c', 'cat /order; echo B >> /order'],
    });
    // BullMQ's wait list: jobs are pushed on the left and handed out from the right. Put B on the
    // right, as BullMQ's racing fetches sometimes do: the worker is handed B first.
    const wait = `lxcq:bull:host.${s.hostId}:wait`;
    expect(await s.redis.lrange(wait, 0, -1)).toEqual([b.body.id, a.body.id]);
    await s.redis.multi().del(wait).rpush(wait, a.body.id, b.body.id).exec();
    await queue.resume();
    await queue.close();
    const da = await s.wait(a.body.id, 60);
    const db = await s.wait(b.body.id, 60);
    expect([da.state, db.state], JSON.stringify([da.error, db.error])).toEqual(['completed', 'completed']);
    const at = (j: Job, f: 'startedAt' | 'finishedAt') =>
      Date.parse((j as unknown as Record<string, string>)[f] ?? '');
    expect(at(db, 'startedAt')).toBeGreaterThanOrEqual(at(da, 'finishedAt'));
    // B saw what A wrote: A's effect came first in the container too
    expect((db.result as { stdout: string }).stdout).toBe('A\n');
    const order = await s.run('POST', '/v1/containers/ord1/exec', { argv: ['cat', '/order'] });
    expect((order.result as { stdout: string }).stdout).toBe('A\nB\n');
    expect((await s.run('DELETE', '/v1/containers/ord1?force=true')).state).toBe('completed');
  });

  it('a create that ended while its worker was away is removed by the next worker, and the name is free', async () => {
    // The worker dies with the container made and its creating-marker still there; while it is
    // away the host watchdog fails the job (LXCQ_HOST_OFFLINE), so no re-run will clean up: the
    // next worker's start-up sweep must remove the container, not just its marker.
    await s.stopWorker('SIGTERM');
    await s.startWorker({ LXCQ_FAILPOINTS: 'make.before-unmark' });
    const dead = new Promise((r) => s.worker?.once('exit', r));
    const r = await s.http<Job>('POST', '/v1/containers', {
      name: 'half1',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(r.status).toBe(202);
    await dead;
    await s.stopWorker('SIGKILL');
    const marker = join(s.lxcpath, '.lxcq', 'creating', 'half1');
    expect(readFileSync(marker, 'utf8')).toBe(r.body.id);
    expect(s.lxcLs()).toContain('half1');
    const failed = await s.wait(r.body.id, 60);
    expect(failed.state).toBe('failed');
    expect(failed.error?.code).toBe('LXCQ_HOST_OFFLINE');
    // the audit of the fault suite sees the container the failed job left
    const store = new Store(s.redis, keys());
    expect(await unmadeContainers(store, s.lxcpath)).toEqual([
      `container half1 is on disk, but the create job ${r.body.id} making it ended LXCQ_HOST_OFFLINE (not removed)`,
    ]);
    await s.startWorker();
    expect(existsSync(join(s.lxcpath, 'half1'))).toBe(false);
    expect(s.lxcLs()).not.toContain('half1');
    expect(existsSync(marker)).toBe(false);
    expect(await unmadeContainers(store, s.lxcpath)).toEqual([]);
    const again = await s.run('POST', '/v1/containers', {
      name: 'half1',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(again.state, JSON.stringify(again.error)).toBe('completed');
    expect((await s.run('DELETE', '/v1/containers/half1')).state).toBe('completed');
  });

  it('clone: the copy a killed worker left running is stopped before the clone runs again', async () => {
    // A big rootfs, so lxc-copy's rsync is still copying when the worker dies.
    const made = await s.run('POST', '/v1/containers', {
      name: 'big1',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(made.state, JSON.stringify(made.error)).toBe('completed');
    execFileSync(
      'dd',
      ['if=/dev/urandom', `of=${join(s.lxcpath, 'big1', 'rootfs', 'pad')}`, 'bs=1M', 'count=200'],
      {
        stdio: 'ignore',
      },
    );
    const r = await s.http<Job>('POST', '/v1/containers/big1/clone', { newName: 'big2' });
    await waitActive(r.body.id);
    let copies: number[] = [];
    for (let i = 0; i < 200 && copies.length === 0; i++) {
      copies = helpers();
      if (copies.length === 0) await sleep(10);
    }
    expect(copies.length, 'lxc-copy never started').toBeGreaterThan(0);
    await s.stopWorker('SIGKILL');
    // Orphaned, the copy goes on writing into big2. Paused here, it stands for a copy that outlasts
    // the worker's restart (a bigger rootfs, a slower disk) ...
    const orphans = helpers().filter((p) => copies.includes(p));
    expect(orphans.length).toBeGreaterThan(0);
    for (const p of orphans) process.kill(p, 'SIGSTOP');
    try {
      await s.startWorker();
      // ... until the next worker stops it, before it runs the clone again.
      expect(orphans.filter(alive)).toEqual([]);
    } finally {
      for (const p of orphans.filter(alive)) process.kill(p, 'SIGKILL');
    }
    const done = (await s.http<Job>('GET', `/v1/jobs/${r.body.id}/wait?timeout=120`)).body;
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    expect(statSync(join(s.lxcpath, 'big2', 'rootfs', 'pad')).size).toBe(200 * 1024 * 1024);
    expect(helpers()).toEqual([]);
    for (const n of ['big2', 'big1'])
      expect((await s.run('DELETE', `/v1/containers/${n}`)).state).toBe('completed');
  });

  it('snapshot: a re-run after a kill mid-copy leaves exactly the one snapshot asked for', async () => {
    const made = await s.run('POST', '/v1/containers', {
      name: 'snapk',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(made.state, JSON.stringify(made.error)).toBe('completed');
    execFileSync(
      'dd',
      ['if=/dev/urandom', `of=${join(s.lxcpath, 'snapk', 'rootfs', 'pad')}`, 'bs=1M', 'count=100'],
      {
        stdio: 'ignore',
      },
    );
    for (const body of [{ name: 'keep' }, {}]) {
      const before = snapsOf('snapk');
      const r = await s.http<Job>('POST', '/v1/containers/snapk/snapshots', body);
      await waitActive(r.body.id);
      let copying = false;
      for (let i = 0; i < 300 && !copying; i++) {
        copying = helpers(/lxc-snapshot|rsync/).length > 0;
        if (!copying) await sleep(10);
      }
      expect(copying, 'lxc-snapshot never started').toBe(true);
      await s.stopWorker('SIGKILL');
      await s.startWorker();
      const done = (await s.http<Job>('GET', `/v1/jobs/${r.body.id}/wait?timeout=120`)).body;
      expect(done.state, JSON.stringify(done.error)).toBe('completed');
      const name = (done.result as { name: string }).name;
      // one new snapshot, the one the job answered with: none half-made, none unrecorded
      expect(snapsOf('snapk')).toEqual([...before, name].sort());
      const reg = (await s.http<{ name: string }[]>('GET', '/v1/containers/snapk/snapshots')).body;
      expect(reg.map((x) => x.name).sort()).toEqual([...before, name].sort());
    }
    // Killed after the copy is whole but before the job is recorded as done: the re-run finds the
    // snapshot its earlier attempt made (it carries the job's id) instead of making a second one.
    let caught = false;
    for (let i = 0; i < 5 && !caught; i++) {
      const before = snapsOf('snapk');
      const r = await s.http<Job>('POST', '/v1/containers/snapk/snapshots', {});
      // lxc-snapshot has made the new snapshot and exited: the copy is whole.
      const whole = () =>
        snapsOf('snapk').length > before.length && toolsRunning('lxc-snapshot').length === 0;
      const deadline = Date.now() + 60_000;
      while (!whole() && Date.now() < deadline) await new Promise((res) => setImmediate(res));
      const pid = s.worker?.pid as number;
      process.kill(pid, 'SIGSTOP');
      const j = (await s.http<Job>('GET', `/v1/jobs/${r.body.id}`)).body;
      caught = j.state === 'active';
      await s.stopWorker('SIGKILL');
      await s.startWorker();
      const done = (await s.http<Job>('GET', `/v1/jobs/${r.body.id}/wait?timeout=120`)).body;
      expect(done.state, JSON.stringify(done.error)).toBe('completed');
      expect(snapsOf('snapk')).toEqual([...before, (done.result as { name: string }).name].sort());
    }
    expect(caught, 'never stopped the worker between the copy and the end of the job').toBe(true);
    expect(existsSync(join(s.lxcpath, '.lxcq', 'snapshotting', 'snapk'))).toBe(false);
    expect((await s.run('DELETE', '/v1/containers/snapk?withSnapshots=true')).state).toBe('completed');
  });

  it('a job handed out again after it ended frees the names it reserved', async () => {
    // As when a worker dies between ending a rename and freeing its new name: BullMQ hands the
    // job out again, and the next worker finds its record ended.
    const made = await s.run('POST', '/v1/containers', {
      name: 'rn1',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(made.state, JSON.stringify(made.error)).toBe('completed');
    await s.stopWorker('SIGTERM');
    const r = await s.http<Job>('POST', '/v1/containers/rn1/rename', { newName: 'rn2' });
    expect(r.status).toBe(202);
    expect(await s.redis.get(`lxcq:claim:rn2`)).toBe(r.body.id);
    await s.redis.hset(`lxcq:job:${r.body.id}`, 'state', JSON.stringify('completed'));
    expect(await s.redis.zscore('lxcq:pending:rn1', r.body.id)).not.toBeNull();
    await s.startWorker();
    for (let i = 0; i < 200 && (await s.redis.get('lxcq:claim:rn2')) !== null; i++) await sleep(50);
    expect(await s.redis.get('lxcq:claim:rn2')).toBeNull();
    // nor does it stay in the container's lock queue (it would count in later queue positions)
    expect(await s.redis.zscore('lxcq:pending:rn1', r.body.id)).toBeNull();
    expect(await s.redis.zscore('lxcq:pending:rn2', r.body.id)).toBeNull();
    // the name is free: a create may take it
    const again = await s.run('POST', '/v1/containers', {
      name: 'rn2',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(again.state, JSON.stringify(again.error)).toBe('completed');
    for (const n of ['rn1', 'rn2'])
      expect((await s.run('DELETE', `/v1/containers/${n}`)).state).toBe('completed');
  });

  it('a job whose worker dies twice is given up; what it half-made goes and its name is free again', async () => {
    // Killed on its first run and again on its re-run, a create is given up (LXCQ_WORKER_LOST).
    // Nothing of it may stay: no half-made container, and no reservation of the name (which
    // would refuse the name for a day with LXCQ_CONTAINER_EXISTS).
    let given: Job | null = null;
    for (let i = 0; i < 3 && !given; i++) {
      const name = `twice${i}`;
      const r = await s.http<Job>('POST', '/v1/containers', {
        name,
        template: 'busybox',
        config: TEST_CONFIG,
        start: true,
      });
      await waitActive(r.body.id);
      await s.stopWorker('SIGKILL');
      await s.startWorker();
      await waitAttempt(r.body.id, 2);
      await s.stopWorker('SIGKILL');
      await s.startWorker();
      const done = (await s.http<Job>('GET', `/v1/jobs/${r.body.id}/wait?timeout=60`)).body;
      // The second kill may land after the re-run finished: then try again with a new name.
      if (done.state === 'completed') continue;
      given = done;
      expect(done.state).toBe('failed');
      expect(done.error?.code).toBe('LXCQ_WORKER_LOST');
      expect(existsSync(join(s.lxcpath, '.lxcq', 'creating', name))).toBe(false);
      expect(s.lxcLs()).not.toContain(name);
      expect(existsSync(join(s.lxcpath, name))).toBe(false);
      const again = await s.run('POST', '/v1/containers', { name, template: 'busybox', config: TEST_CONFIG });
      expect(again.state, JSON.stringify(again.error)).toBe('completed');
      expect((await s.run('DELETE', `/v1/containers/${name}`)).state).toBe('completed');
    }
    expect(given, 'the second kill never landed while the job ran').not.toBeNull();
  });

  it('the registry matches lxc-ls after all that', async () => {
    expect(await registry()).toEqual(s.lxcLs());
  });
});

describe('graceful stop', () => {
  it('SIGTERM lets the running job finish before the worker exits', async () => {
    await s.run('POST', '/v1/containers/k1/start');
    const r = await s.http<Job>('POST', '/v1/containers/k1/exec', { argv: ['sleep', '1'] });
    await waitActive(r.body.id);
    await s.stopWorker('SIGTERM');
    const j = (await s.http<Job>('GET', `/v1/jobs/${r.body.id}`)).body;
    expect(j.state).toBe('completed');
    const hosts = await s.http<{ status: string }[]>('GET', '/v1/hosts');
    expect(hosts.body[0]?.status).toBe('offline');
    await s.startWorker();
  });
});

describe('changes made outside lxcq', () => {
  it('a container made with lxc-create appears; one destroyed with lxc-destroy disappears', async () => {
    execFileSync('lxc-create', ['-P', s.lxcpath, '-n', 'outside1', '-t', 'busybox'], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !(await registry()).includes('outside1'); i++) await sleep(100);
    expect(await registry()).toContain('outside1');
    // and lxcq can operate on it
    const j = await s.run('DELETE', '/v1/containers/outside1');
    expect(j.state).toBe('completed');
    execFileSync('lxc-stop', ['-P', s.lxcpath, '-n', 'k1', '-k'], { stdio: 'ignore' });
    execFileSync('lxc-destroy', ['-P', s.lxcpath, '-n', 'k1', '-s'], { stdio: 'ignore' });
    for (let i = 0; i < 100 && (await registry()).includes('k1'); i++) await sleep(100);
    expect(await registry()).toEqual([]);
    expect(readdirSync(s.lxcpath).filter((d) => d !== '.lxcq')).toEqual([]);
  });
});
