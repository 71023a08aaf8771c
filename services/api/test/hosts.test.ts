// Three simulated hosts (a worker process each, own host id and lxcpath): placement, routing,
// drain, and a host that dies with jobs queued for it.
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG, TOKEN, type Job } from './harness.ts';
import { Sub } from './ws-client.ts';

let s: Stack;
const lxcpaths = new Map<string, string>();

beforeAll(async () => {
  s = await Stack.start({ hostId: 'h1', apiEnv: { LXCQ_HOST_OFFLINE_MS: '6000' } });
  lxcpaths.set('h1', s.lxcpath);
  lxcpaths.set('h2', await s.addHost('h2'));
  lxcpaths.set('h3', await s.addHost('h3'));
});
afterAll(async () => {
  await s?.close();
});

const ls = (host: string) =>
  execFileSync('lxc-ls', ['-P', lxcpaths.get(host) as string, '-1'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);

describe('hosts', () => {
  it('lists three online hosts with their capabilities', async () => {
    const hosts = (
      await s.http<{ id: string; status: string; capabilities: { cores: number } }[]>('GET', '/v1/hosts')
    ).body;
    expect(hosts.map((h) => [h.id, h.status])).toEqual([
      ['h1', 'online'],
      ['h2', 'online'],
      ['h3', 'online'],
    ]);
  });

  it('spreads creates across hosts, and honours an explicit host', async () => {
    const placed: string[] = [];
    for (let i = 0; i < 6; i++) {
      const j = await s.run('POST', '/v1/containers', {
        name: `p${i}`,
        template: 'busybox',
        config: TEST_CONFIG,
      });
      expect(j.state, JSON.stringify(j.error)).toBe('completed');
      placed.push(j.host);
    }
    expect(new Set(placed)).toEqual(new Set(['h1', 'h2', 'h3']));
    for (const h of ['h1', 'h2', 'h3']) expect(placed.filter((x) => x === h)).toHaveLength(2);
    const j = await s.run('POST', '/v1/containers', {
      name: 'pinned',
      template: 'busybox',
      config: TEST_CONFIG,
      host: 'h3',
    });
    expect(j.host).toBe('h3');
    expect(ls('h3')).toContain('pinned');
  }, 300_000); // seven creates one after another: over 80 s under the whole suite's load

  it('sends every later operation to the owning host', async () => {
    const c = (await s.http<{ host: string }>('GET', '/v1/containers/p1')).body;
    const j = await s.run('POST', '/v1/containers/p1/start');
    expect(j.host).toBe(c.host);
    expect(j.result).toMatchObject({ state: 'RUNNING', host: c.host });
    expect(ls(c.host)).toContain('p1');
    for (const other of ['h1', 'h2', 'h3'].filter((h) => h !== c.host)) expect(ls(other)).not.toContain('p1');
    await s.run('POST', '/v1/containers/p1/stop');
  });

  it('a drained host gets no new containers; undrained, it does again', async () => {
    expect((await s.http('POST', '/v1/hosts/h2/drain')).status).toBe(200);
    const hosts = (await s.http<{ id: string; status: string }[]>('GET', '/v1/hosts')).body;
    expect(hosts.find((h) => h.id === 'h2')?.status).toBe('draining');
    for (let i = 0; i < 4; i++) {
      const j = await s.run('POST', '/v1/containers', {
        name: `d${i}`,
        template: 'busybox',
        config: TEST_CONFIG,
      });
      expect(j.host).not.toBe('h2');
    }
    const pinned = await s.http<{ error: { code: string } }>('POST', '/v1/containers', {
      name: 'dx',
      template: 'busybox',
      host: 'h2',
    });
    expect(pinned.status).toBe(503);
    expect(pinned.body.error.code).toBe('LXCQ_HOST_DRAINING');
    // existing containers on a draining host still take operations
    const onH2 = (await s.http<{ name: string; host: string }[]>('GET', '/v1/containers?host=h2')).body;
    expect(onH2.length).toBeGreaterThan(0);
    const j = await s.run('POST', `/v1/containers/${onH2[0]?.name}/start`);
    expect(j.state).toBe('completed');
    await s.run('POST', `/v1/containers/${onH2[0]?.name}/stop`);
    expect((await s.http('POST', '/v1/hosts/h2/undrain')).status).toBe(200);
  });

  it('a host that dies: its queued jobs fail with LXCQ_HOST_OFFLINE, events say so, new jobs are refused', async () => {
    const events = await Sub.open(s.url, '?types=host.*,job.failed', { token: TOKEN });
    const victim = (await s.http<{ name: string }[]>('GET', '/v1/containers?host=h3')).body[0]
      ?.name as string;
    await s.stopHost('h3', 'SIGKILL');
    const queued = await s.http<Job>('POST', `/v1/containers/${victim}/start`);
    expect(queued.status).toBe(202);
    // Bounded by the wait: offline after 6 s of silence, found by the watchdog's next sweep, long
    // before the 30 s the wait gives it (still queued then, the job would not be failed here).
    const done = (await s.http<Job>('GET', `/v1/jobs/${queued.body.id}/wait?timeout=30`)).body;
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('LXCQ_HOST_OFFLINE');
    await events.until((m) => m.some((x) => x.type === 'host.offline' && x.host === 'h3'));
    await events.until((m) => m.some((x) => x.type === 'job.failed' && x.job === queued.body.id));
    const hosts = (await s.http<{ id: string; status: string }[]>('GET', '/v1/hosts')).body;
    expect(hosts.find((h) => h.id === 'h3')?.status).toBe('offline');
    const refused = await s.http<{ error: { code: string } }>('POST', `/v1/containers/${victim}/stop`);
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('LXCQ_HOST_OFFLINE');
    // new containers go elsewhere
    const j = await s.run('POST', '/v1/containers', {
      name: 'after-loss',
      template: 'busybox',
      config: TEST_CONFIG,
    });
    expect(j.host).not.toBe('h3');
    await events.close();
  });

  it('an admin forgets an offline host: refused while online or holding containers, then gone until its worker comes back', async () => {
    const events = await Sub.open(s.url, '?types=host.forgotten', { token: TOKEN });
    await s.addHost('h4');
    const status = async (id: string) =>
      (await s.http<{ id: string; status: string }[]>('GET', '/v1/hosts')).body.find((h) => h.id === id)
        ?.status;
    const until = async (id: string, want: string | undefined) => {
      for (let i = 0; i < 300 && (await status(id)) !== want; i++) await sleep(100);
      expect(await status(id)).toBe(want);
    };
    await until('h4', 'online');
    type Err = { error: { code: string; message: string } };
    let r = await s.http<Err>('DELETE', '/v1/hosts/h4');
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('LXCQ_INVALID_STATE');
    expect(r.body.error.message).toMatch(/h4 is online.*Stop its worker first/);
    const made = await s.run('POST', '/v1/containers', {
      name: 'on-h4',
      template: 'busybox',
      config: TEST_CONFIG,
      host: 'h4',
    });
    expect(made.state, JSON.stringify(made.error)).toBe('completed');
    await s.stopHost('h4', 'SIGTERM'); // a stopped worker's host is offline at once
    await until('h4', 'offline');
    r = await s.http<Err>('DELETE', '/v1/hosts/h4');
    expect(r.status).toBe(422);
    expect(r.body.error.message).toMatch(/still holds 1 container.*on-h4.*force=true/);
    expect(await status('h4')).toBe('offline');
    const forgot = await s.http<{ forgotten: string; containers: string[] }>(
      'DELETE',
      '/v1/hosts/h4?force=true',
    );
    expect(forgot.status, JSON.stringify(forgot.body)).toBe(200);
    expect(forgot.body).toEqual({ forgotten: 'h4', containers: ['on-h4'] });
    expect(await status('h4')).toBeUndefined();
    expect((await s.http('GET', '/v1/hosts/h4')).status).toBe(404);
    expect((await s.http('GET', '/v1/containers/on-h4')).status).toBe(404);
    expect(await s.redis.exists('lxcq:host:h4', 'lxcq:container:on-h4')).toBe(0);
    const ev = await events.until((m) => m.some((x) => x.type === 'host.forgotten'));
    expect(ev.find((x) => x.type === 'host.forgotten')).toMatchObject({
      host: 'h4',
      data: { containers: ['on-h4'] },
    });
    expect((await s.http('DELETE', '/v1/hosts/h4')).status).toBe(404);
    // The container stayed on that machine: its worker, started again, registers both again.
    await s.restartHost('h4');
    await until('h4', 'online');
    for (let i = 0; i < 300 && (await s.http('GET', '/v1/containers/on-h4')).status !== 200; i++)
      await sleep(100);
    expect((await s.http<{ host: string }>('GET', '/v1/containers/on-h4')).body.host).toBe('h4');
    expect((await s.run('DELETE', '/v1/containers/on-h4')).state).toBe('completed');
    await s.stopHost('h4', 'SIGTERM');
    await events.close();
  }, 300_000);

  it('the registry matches each host once it is back', async () => {
    // restart h3 on the same lxcpath
    await s.restartHost('h3');
    for (let i = 0; i < 50; i++) {
      const hosts = (await s.http<{ id: string; status: string }[]>('GET', '/v1/hosts')).body;
      if (hosts.find((x) => x.id === 'h3')?.status === 'online') break;
      await sleep(100);
    }
    for (const host of ['h1', 'h2', 'h3']) {
      const reg = (await s.http<{ name: string }[]>('GET', `/v1/containers?host=${host}`)).body
        .map((c) => c.name)
        .sort();
      expect(reg, host).toEqual(ls(host).sort());
    }
  });
});
