// Every operation of the pipeline through real HTTP, a real worker process, real Redis and real
// busybox containers, checked against what liblxc's own tools (lxc-ls, lxc-info) see.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG, type Job } from './harness.ts';

let s: Stack;
beforeAll(async () => {
  s = await Stack.start();
});
afterAll(async () => {
  await s?.close();
});

describe('container lifecycle through the API', () => {
  it('create answers 202 with a queued job at once, and the job ends with the container', async () => {
    const r = await s.http<Job>('POST', '/v1/containers', {
      name: 'web1',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ operation: 'create', container: 'web1', host: s.hostId, state: 'queued' });
    expect(r.headers.get('x-request-id')).toBeTruthy();
    const done = await s.http<Job>('GET', `/v1/jobs/${r.body.id}/wait?timeout=60`);
    expect(done.status).toBe(200);
    expect(done.body.state).toBe('completed');
    expect(done.body.result).toMatchObject({ name: 'web1', host: s.hostId, state: 'STOPPED' });
    expect(s.lxcLs()).toContain('web1');
    const c = await s.http('GET', '/v1/containers/web1');
    expect(c.body).toMatchObject({ name: 'web1', state: 'STOPPED', host: s.hostId });
    expect((c.body.config as Record<string, string>)['lxc.net.0.type']).toBe('empty');
  });

  it('start, freeze, unfreeze, exec, reboot, shutdown and stop change the real state', async () => {
    let j = await s.run('POST', '/v1/containers/web1/start');
    expect(j.result).toMatchObject({ state: 'RUNNING' });
    expect(s.lxcState('web1')).toBe('RUNNING');
    expect((j.result as { pid: number }).pid).toBeGreaterThan(1);

    // start of a running container succeeds without harm (safe to re-run)
    j = await s.run('POST', '/v1/containers/web1/start');
    expect(j.state).toBe('completed');

    j = await s.run('POST', '/v1/containers/web1/freeze');
    expect(j.result).toMatchObject({ state: 'FROZEN' });
    expect(s.lxcState('web1')).toBe('FROZEN');
    j = await s.run('POST', '/v1/containers/web1/unfreeze');
    expect(j.result).toMatchObject({ state: 'RUNNING' });

    j = await s.run('POST', '/v1/containers/web1/exec', {
      argv: ['sh', '-c', 'echo $GREETING from $(pwd); echo oops >&2; exit 7'],
      env: { GREETING: 'hello' },
      cwd: '/tmp',
    });
    expect(j.result).toMatchObject({
      exitCode: 7,
      stdout: 'hello from /tmp\n',
      stderr: 'oops\n',
      timedOut: false,
    });

    j = await s.run('POST', '/v1/containers/web1/exec', { argv: ['sleep', '30'], timeout: 0.5 });
    expect(j.result).toMatchObject({ timedOut: true });

    j = await s.run('POST', '/v1/containers/web1/reboot', { timeout: 20 });
    expect(j.state).toBe('completed');
    expect(j.result).toMatchObject({ state: 'RUNNING' });

    j = await s.run('POST', '/v1/containers/web1/shutdown', { timeout: 20, force: true });
    expect(j.state).toBe('completed');
    expect(s.lxcState('web1')).toBe('STOPPED');

    await s.run('POST', '/v1/containers/web1/start');
    j = await s.run('POST', '/v1/containers/web1/stop');
    expect(j.result).toMatchObject({ state: 'STOPPED' });
    expect(s.lxcState('web1')).toBe('STOPPED');
  });

  it('snapshots: create (auto and named), list, restore in place and to a new container, destroy', async () => {
    let j = await s.run('POST', '/v1/containers/web1/snapshots', {});
    expect(j.state).toBe('completed');
    expect(j.result).toMatchObject({ name: 'snap0' });
    j = await s.run('POST', '/v1/containers/web1/snapshots', {
      name: 'before-upgrade',
      comment: 'state before the upgrade',
    });
    expect(j.result).toMatchObject({ name: 'before-upgrade', comment: 'state before the upgrade' });
    const list = await s.http<{ name: string }[]>('GET', '/v1/containers/web1/snapshots');
    expect(list.body.map((x) => x.name).sort()).toEqual(['before-upgrade', 'snap0']);

    // change the rootfs, then restore the snapshot over it
    await s.run('POST', '/v1/containers/web1/start');
    await s.run('POST', '/v1/containers/web1/exec', { argv: ['sh', '-c', 'echo changed > /marker'] });
    await s.run('POST', '/v1/containers/web1/stop');
    j = await s.run('POST', '/v1/containers/web1/snapshots/before-upgrade/restore');
    expect(j.state).toBe('completed');
    await s.run('POST', '/v1/containers/web1/start');
    j = await s.run('POST', '/v1/containers/web1/exec', { argv: ['test', '-e', '/marker'] });
    expect(j.result).toMatchObject({ exitCode: 1 });
    await s.run('POST', '/v1/containers/web1/stop');

    j = await s.run('POST', '/v1/containers/web1/snapshots/snap0/restore', { newName: 'web1-restored' });
    expect(j.state).toBe('completed');
    expect(s.lxcLs()).toContain('web1-restored');

    j = await s.run('DELETE', '/v1/containers/web1/snapshots/snap0');
    expect(j.result).toEqual({ destroyed: 'snap0' });
    const after = await s.http<{ name: string }[]>('GET', '/v1/containers/web1/snapshots');
    expect(after.body.map((x) => x.name)).toEqual(['before-upgrade']);
  });

  it('clone (copy and overlayfs copy-on-write) and rename', async () => {
    let j = await s.run('POST', '/v1/containers/web1/clone', { newName: 'web1-copy' });
    expect(j.state).toBe('completed');
    expect(j.result).toMatchObject({ name: 'web1-copy', state: 'STOPPED' });
    j = await s.run('POST', '/v1/containers/web1/clone', { newName: 'web1-cow', snapshot: true });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect(s.lxcLs()).toEqual(expect.arrayContaining(['web1-copy', 'web1-cow']));
    j = await s.run('POST', '/v1/containers/web1-cow/start');
    expect(j.result).toMatchObject({ state: 'RUNNING' });
    await s.run('POST', '/v1/containers/web1-cow/stop');

    // An overlayfs clone cannot be renamed by liblxc: refused before any work, with what to do.
    j = await s.run('POST', '/v1/containers/web1-cow/rename', { newName: 'web1-cow2' });
    expect(j.state).toBe('failed');
    expect(j.error?.code).toBe('LXCQ_UNSUPPORTED');
    expect(j.error?.message).toMatch(/copy-on-write clone.*Clone it to web1-cow2/);
    expect(s.lxcLs()).toContain('web1-cow');
    expect(s.lxcLs()).not.toContain('web1-cow2');

    j = await s.run('POST', '/v1/containers/web1-copy/rename', { newName: 'web2' });
    expect(j.result).toMatchObject({ name: 'web2' });
    expect(s.lxcLs()).toContain('web2');
    expect(s.lxcLs()).not.toContain('web1-copy');
    expect((await s.http('GET', '/v1/containers/web1-copy')).status).toBe(404);
    expect((await s.http('GET', '/v1/containers/web2')).status).toBe(200);
  });

  it('config get/set/clear and cgroup limits', async () => {
    let j = await s.run('PATCH', '/v1/containers/web2/config', {
      set: { 'lxc.environment': 'APP=demo', 'lxc.uts.name': 'webtwo' },
    });
    expect(j.state).toBe('completed');
    expect((j.result as { config: Record<string, string> }).config).toMatchObject({
      'lxc.uts.name': 'webtwo',
    });
    j = await s.run('PATCH', '/v1/containers/web2/config', { clear: ['lxc.environment'] });
    expect((j.result as { config: Record<string, string> }).config['lxc.environment']).toBeUndefined();
    const cfg = await s.http<{ config: Record<string, string> }>('GET', '/v1/containers/web2/config');
    expect(cfg.body.config['lxc.uts.name']).toBe('webtwo');

    // A key the template wrote is replaced where it stands, not appended a second time.
    const file = () => readFileSync(join(s.lxcpath, 'web2', 'config'), 'utf8');
    const linesOf = (key: string) =>
      file()
        .split('\n')
        .filter((l) => l.startsWith(`${key} =`));
    const ttyAt = file()
      .split('\n')
      .findIndex((l) => l.startsWith('lxc.tty.max ='));
    expect(ttyAt).toBeGreaterThan(-1);
    j = await s.run('PATCH', '/v1/containers/web2/config', { set: { 'lxc.tty.max': '0' } });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect(linesOf('lxc.tty.max')).toEqual(['lxc.tty.max = 0']);
    expect(
      file()
        .split('\n')
        .findIndex((l) => l.startsWith('lxc.tty.max =')),
    ).toBe(ttyAt);
    expect(linesOf('lxc.uts.name')).toEqual(['lxc.uts.name = webtwo']);
    const after = await s.http<{ config: Record<string, string> }>('GET', '/v1/containers/web2/config');
    expect(after.body.config['lxc.tty.max']).toBe('0');

    await s.run('POST', '/v1/containers/web2/start');
    j = await s.run('PUT', '/v1/containers/web2/limits', { memory: '256M' });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    j = await s.run('PUT', '/v1/containers/web2/limits', { memory: '128M', pids: 64 });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    // A limit set again replaces the first: one line, the value in force on the next start.
    const mem = existsSync('/sys/fs/cgroup/cgroup.controllers')
      ? 'lxc.cgroup2.memory.max'
      : 'lxc.cgroup.memory.limit_in_bytes';
    expect(linesOf(mem)).toHaveLength(1);
    expect(linesOf(mem)[0]).toMatch(/ = (128M|134217728)$/);
    j = await s.run('POST', '/v1/containers/web2/exec', { argv: ['hostname'] });
    expect(j.result).toMatchObject({ stdout: 'webtwo\n' });
    await s.run('POST', '/v1/containers/web2/stop');
  });

  it('lists containers with filters, and jobs with filters and paging, and keeps a job log', async () => {
    const all = await s.http<{ name: string }[]>('GET', '/v1/containers');
    expect(all.body.map((c) => c.name)).toEqual(
      expect.arrayContaining(['web1', 'web2', 'web1-cow', 'web1-restored']),
    );
    const running = await s.http<{ name: string }[]>('GET', '/v1/containers?state=RUNNING');
    expect(running.body).toEqual([]);
    const byHost = await s.http<{ name: string }[]>(`GET`, `/v1/containers?host=${s.hostId}`);
    expect(byHost.body.length).toBe(all.body.length);

    const page1 = await s.http<{ jobs: Job[]; next: string | null }>(
      'GET',
      '/v1/jobs?container=web1&limit=3',
    );
    expect(page1.body.jobs).toHaveLength(3);
    expect(page1.body.jobs.every((x) => x.container === 'web1')).toBe(true);
    expect(page1.body.next).not.toBeNull();
    const page2 = await s.http<{ jobs: Job[] }>(
      'GET',
      `/v1/jobs?container=web1&limit=3&cursor=${page1.body.next}`,
    );
    const ids1 = new Set(page1.body.jobs.map((x) => x.id));
    expect(page2.body.jobs.some((x) => ids1.has(x.id))).toBe(false);
    const failed = await s.http<{ jobs: Job[] }>('GET', '/v1/jobs?state=completed&limit=500');
    expect(failed.body.jobs.every((x) => x.state === 'completed')).toBe(true);

    const log = await s.http<{ lines: string[] }>('GET', `/v1/jobs/${page1.body.jobs[0]?.id}/log`);
    expect(log.body.lines.join('\n')).toMatch(/queued for host h1[\s\S]*active on host h1[\s\S]*completed/);
  });

  it('runs operations on one container one at a time in submission order, showing queue positions', async () => {
    await s.run('POST', '/v1/containers/web2/start');
    // A slow first job holds the container, so the next three queue behind it.
    const first = await s.http<Job>('POST', '/v1/containers/web2/exec', { argv: ['sleep', '1'] });
    const ids: string[] = [first.body.id];
    const positions: number[] = [];
    for (const op of ['freeze', 'unfreeze', 'stop']) {
      const r = await s.http<Job>('POST', `/v1/containers/web2/${op}`);
      expect(r.status).toBe(202);
      ids.push(r.body.id);
      positions.push(r.body.queuePosition ?? -1);
    }
    expect(positions).toEqual([1, 2, 3]);
    const queued = await s.http<Job>('GET', `/v1/jobs/${ids[3]}`);
    expect(queued.body).toMatchObject({ state: 'queued', queuePosition: expect.any(Number) as unknown });
    const jobs: Job[] = [];
    for (const id of ids) jobs.push((await s.http<Job>('GET', `/v1/jobs/${id}/wait?timeout=60`)).body);
    expect(jobs.map((x) => x.state)).toEqual(['completed', 'completed', 'completed', 'completed']);
    const times = jobs.map(
      (x) =>
        [
          Date.parse((x as unknown as { startedAt: string }).startedAt),
          Date.parse((x as unknown as { finishedAt: string }).finishedAt),
        ] as const,
    );
    for (let i = 1; i < times.length; i++) expect(times[i]![0]).toBeGreaterThanOrEqual(times[i - 1]![1]);
  });

  it('Idempotency-Key returns the first job for a repeated key', async () => {
    const headers = { 'idempotency-key': 'create-idem-1' };
    const body = { name: 'idem1', template: 'busybox', config: TEST_CONFIG };
    const a = await s.http<Job>('POST', '/v1/containers', body, { headers });
    const b = await s.http<Job>('POST', '/v1/containers', body, { headers });
    expect(a.status).toBe(202);
    expect(b.body.id).toBe(a.body.id);
    const c = await s.http<{ error: { code: string } }>(
      'POST',
      '/v1/containers',
      { ...body, name: 'idem2' },
      { headers },
    );
    expect(c.status).toBe(409);
    expect(c.body.error.code).toBe('LXCQ_IDEMPOTENCY_CONFLICT');
    await s.http('GET', `/v1/jobs/${a.body.id}/wait?timeout=60`);
  });

  it('a repeated Idempotency-Key on start, exec and stop returns the first job; nothing runs twice', async () => {
    const made = await s.run('POST', '/v1/containers', {
      name: 'idem3',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(made.state, JSON.stringify(made.error)).toBe('completed');
    const twice = async (path: string, body: unknown, key: string): Promise<Job> => {
      const headers = { 'idempotency-key': key };
      const a = await s.http<Job>('POST', path, body, { headers });
      expect(a.status, JSON.stringify(a.body)).toBe(202);
      // once while the first is queued or running, once after it ended
      const b = await s.http<Job>('POST', path, body, { headers });
      expect(b.body.id, `${path} repeated at once`).toBe(a.body.id);
      const done = await s.wait(a.body.id, 60);
      expect(done.state, JSON.stringify(done.error)).toBe('completed');
      const c = await s.http<Job>('POST', path, body, { headers });
      expect(c.status).toBe(200);
      expect(c.body.id, `${path} repeated after it ended`).toBe(a.body.id);
      expect(c.body.state).toBe('completed');
      return done;
    };
    await twice('/v1/containers/idem3/start', undefined, 'idem-start-1');
    const ran = await twice(
      '/v1/containers/idem3/exec',
      { argv: ['sh', '-c', 'echo ran >> /runs'] },
      'idem-exec-1',
    );
    expect(ran.result).toMatchObject({ exitCode: 0 });
    const count = await s.run('POST', '/v1/containers/idem3/exec', { argv: ['sh', '-c', 'wc -l < /runs'] });
    expect((count.result as { stdout: string }).stdout.trim()).toBe('1');
    await twice('/v1/containers/idem3/stop', undefined, 'idem-stop-1');
    expect(s.lxcState('idem3')).toBe('STOPPED');
    const jobs = (await s.http<{ jobs: Job[] }>('GET', '/v1/jobs?container=idem3')).body.jobs;
    expect(jobs.map((j) => j.operation).sort()).toEqual(['create', 'exec', 'exec', 'start', 'stop']);
    expect((await s.run('DELETE', '/v1/containers/idem3')).state).toBe('completed');
  });

  it('destroy removes the container and its snapshots; a container with snapshots needs withSnapshots', async () => {
    let j = await s.run('DELETE', '/v1/containers/web1');
    expect(j.state).toBe('failed');
    expect(j.error?.code).toBe('LXCQ_INVALID_STATE');
    // web1-cow is an overlay clone on web1's rootfs: it goes first, and the refusal says so.
    j = await s.run('DELETE', '/v1/containers/web1?withSnapshots=true&force=true');
    expect(j.state).toBe('failed');
    expect(j.error?.code).toBe('LXCQ_INVALID_STATE');
    expect(j.error?.message).toMatch(/copy-on-write clones \(web1-cow\)/);
    expect(s.lxcLs()).toContain('web1');
    j = await s.run('DELETE', '/v1/containers/web1-cow');
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    j = await s.run('DELETE', '/v1/containers/web1?withSnapshots=true');
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    // withSnapshots on a container that has none is a plain destroy (liblxc itself fails there).
    for (const n of ['web2', 'web1-restored', 'idem1']) {
      j = await s.run('DELETE', `/v1/containers/${n}?force=true&withSnapshots=true`);
      expect(j.state, n).toBe('completed');
    }
    expect(s.lxcLs()).toEqual([]);
    expect((await s.http<unknown[]>('GET', '/v1/containers')).body).toEqual([]);
  });
});
