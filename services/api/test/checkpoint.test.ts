// Checkpoint and restore with CRIU through the API, on a real running container whose counter
// must go on from where it was. Where the host has no working CRIU the product refuses with
// LXCQ_CRIU_UNAVAILABLE, and this test checks that instead (saying so).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { criuStatus } from '../../../packages/lxc-ffi/src/host.ts';
import { Stack, type Job } from './harness.ts';

let s: Stack;
// CRIU as the worker sees it (`criu check` and the socket probe), known before the tests are
// collected; the host's heartbeat must agree. In CI ($CI) or with LXCQ_REQUIRE_CRIU=1 a missing
// CRIU fails this file: there scripts/setup-host.sh installs one.
const criuHere = criuStatus();
const criu = criuHere.available;
const criuRequired = Boolean(process.env['CI']) || process.env['LXCQ_REQUIRE_CRIU'] === '1';
let hostCriu: boolean | undefined;
beforeAll(async () => {
  // A worker restarted mid-job may take over 10 s to heartbeat again on a loaded machine.
  s = await Stack.start({ apiEnv: { LXCQ_HOST_OFFLINE_MS: '30000' } });
  const hosts = await s.http<{ capabilities: { criu: boolean } }[]>('GET', '/v1/hosts');
  hostCriu = hosts.body[0]?.capabilities.criu;
});
afterAll(async () => {
  await s?.close();
});

// What CRIU needs of an LXC container here (docs/live-migration.md): no tty bind mounts, no network device,
// no AppArmor lines on a kernel without AppArmor, and an init that holds no odd sockets.
const CRIU_CONFIG = {
  'lxc.net.0.type': 'empty',
  'lxc.tty.max': '0',
  // liblxc splits lxc.init.cmd on spaces without quoting, so the loop lives in a script.
  'lxc.init.cmd': '/bin/sh /count.sh',
};
const COUNT_SH = 'i=0\nwhile true; do i=$((i+1)); echo $i > /count; sleep 0.1; done\n';

async function counter(): Promise<number> {
  const j = await s.run('POST', '/v1/containers/cp1/exec', { argv: ['cat', '/count'] });
  return Number((j.result as { stdout: string }).stdout.trim());
}

describe('checkpoint and restore', () => {
  it('CRIU: the host reports what this host has, and CI requires it', () => {
    expect(hostCriu, criuHere.reason).toBe(criu);
    if (criuRequired)
      expect(
        criu,
        `CRIU is required here ($CI or LXCQ_REQUIRE_CRIU=1) but not usable: ${criuHere.reason}`,
      ).toBe(true);
  });

  it('dumps a running container and restores it with its processes state intact', async () => {
    let j = await s.run('POST', '/v1/containers', { name: 'cp1', template: 'busybox', config: CRIU_CONFIG });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    j = await s.run('PATCH', '/v1/containers/cp1/config', {
      clear: ['lxc.apparmor.profile', 'lxc.apparmor.allow_nesting'],
    });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    // The application a real image would carry: written straight into the rootfs.
    writeFileSync(join(s.lxcpath, 'cp1', 'rootfs', 'count.sh'), COUNT_SH);
    j = await s.run('POST', '/v1/containers/cp1/start');
    expect(j.result).toMatchObject({ state: 'RUNNING' });
    await sleep(500);

    if (!criu) {
      expect(criuRequired, criuHere.reason).toBe(false);
      // This host cannot checkpoint: the product must say so clearly, and leave the container running.
      j = await s.run('POST', '/v1/containers/cp1/checkpoint', { stop: true });
      expect(j.error?.code).toBe('LXCQ_CRIU_UNAVAILABLE');
      expect(j.error?.message).toMatch(/setup-host/);
      expect(s.lxcState('cp1')).toBe('RUNNING');
      console.warn('CRIU is not usable on this host: checked the refusal instead of a dump/restore.');
      return;
    }
    const before = await counter();
    expect(before).toBeGreaterThan(0);
    j = await s.run('POST', '/v1/containers/cp1/checkpoint', { stop: true });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    const id = (j.result as { checkpoint: string }).checkpoint;
    expect(id).toMatch(/^cp-\d{8}T\d{6}Z$/);
    expect(s.lxcState('cp1')).toBe('STOPPED');
    const info = await s.http<{ checkpoints: string[] }>('GET', '/v1/containers/cp1');
    expect(info.body.checkpoints).toContain(id);

    j = await s.run('POST', '/v1/containers/cp1/restore', { checkpoint: id });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect(s.lxcState('cp1')).toBe('RUNNING');
    await sleep(500);
    const after = await counter();
    // A fresh start would count from 1 again; a restored loop goes on past where it was dumped.
    expect(after).toBeGreaterThan(before);

    // The restored container's monitor is liblxc's small lxc-checkpoint child, not a fork of Node.
    const monitors = execFileSync('ps', ['-eo', 'pid,rss,args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes('[lxc monitor]') && l.includes(s.lxcpath) && l.includes('cp1'));
    expect(monitors.length).toBe(1);
    const rssKb = Number(monitors[0]?.trim().split(/\s+/)[1]);
    expect(rssKb).toBeLessThan(16_000);

    j = await s.run('DELETE', '/v1/containers/cp1?force=true');
    expect(j.state).toBe('completed');
  });

  it.skipIf(!criu)(
    'a worker killed between the dump and the end of the job: the re-run returns that checkpoint, no second one',
    async () => {
      let j = await s.run('POST', '/v1/containers', {
        name: 'cp3',
        template: 'busybox',
        config: CRIU_CONFIG,
      });
      expect(j.state, JSON.stringify(j.error)).toBe('completed');
      j = await s.run('PATCH', '/v1/containers/cp3/config', {
        clear: ['lxc.apparmor.profile', 'lxc.apparmor.allow_nesting'],
      });
      writeFileSync(join(s.lxcpath, 'cp3', 'rootfs', 'count.sh'), COUNT_SH);
      j = await s.run('POST', '/v1/containers/cp3/start');
      expect(j.result).toMatchObject({ state: 'RUNNING' });
      const base = join(s.lxcpath, 'cp3', 'lxcq-checkpoints');
      const whole = () =>
        existsSync(base) &&
        readdirSync(base).some((d) => !d.startsWith('.') && existsSync(join(base, d, 'inventory.img')));
      let caught = false;
      for (let i = 0; i < 5 && !caught; i++) {
        rmSync(base, { recursive: true, force: true });
        const r = await s.http<Job>('POST', '/v1/containers/cp3/checkpoint', { stop: false });
        const deadline = Date.now() + 60_000;
        while (!whole() && Date.now() < deadline) await new Promise((res) => setImmediate(res));
        process.kill(s.worker?.pid as number, 'SIGSTOP');
        caught = (await s.http<Job>('GET', `/v1/jobs/${r.body.id}`)).body.state === 'active';
        await s.stopWorker('SIGKILL');
        await s.startWorker();
        const done = (await s.http<Job>('GET', `/v1/jobs/${r.body.id}/wait?timeout=120`)).body;
        expect(done.state, JSON.stringify(done.error)).toBe('completed');
        const id = (done.result as { checkpoint: string }).checkpoint;
        expect(readdirSync(base).filter((d) => !d.startsWith('.'))).toEqual([id]);
        const info = await s.http<{ checkpoints: string[] }>('GET', '/v1/containers/cp3');
        expect(info.body.checkpoints).toEqual([id]);
      }
      expect(caught, 'never stopped the worker between the dump and the end of the job').toBe(true);
      expect(s.lxcState('cp3')).toBe('RUNNING');
      j = await s.run('DELETE', '/v1/containers/cp3?force=true');
      expect(j.state).toBe('completed');
    },
  );

  it('refuses to checkpoint a stopped container', async () => {
    const j = await s.run('POST', '/v1/containers', {
      name: 'cp2',
      template: 'busybox',
      config: { 'lxc.net.0.type': 'empty' },
    });
    expect(j.state).toBe('completed');
    const k: Job = await s.run('POST', '/v1/containers/cp2/checkpoint', {});
    expect(k.error?.code).toBe(criu ? 'LXCQ_INVALID_STATE' : 'LXCQ_CRIU_UNAVAILABLE');
  });
});
