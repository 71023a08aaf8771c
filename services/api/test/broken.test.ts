// A container whose config is unusable (emptied, as a kill inside liblxc's old save_config left
// it; or unloadable, as a bad hand edit leaves it): the worker marks it broken with an event,
// lxcq refuses to start it (liblxc would run it on the host's root), and destroy still removes it.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerInfo } from '@lxcq/shared';
import { Stack, TEST_CONFIG, TOKEN } from './harness.ts';
import { Sub } from './ws-client.ts';

let s: Stack;
let sub: Sub;
beforeAll(async () => {
  s = await Stack.start({ workerEnv: { LXCQ_INVENTORY_MS: '500' } });
  sub = await Sub.open(s.url, '?types=container.broken', { token: TOKEN });
});
afterAll(async () => {
  await sub?.close();
  await s?.close();
});

async function brokenRecord(name: string): Promise<ContainerInfo> {
  for (let i = 0; i < 200; i++) {
    const r = await s.http<ContainerInfo>('GET', `/v1/containers/${name}`);
    if (r.status === 200 && r.body.broken) return r.body;
    await sleep(100);
  }
  throw new Error(`${name} was never marked broken`);
}

/** Command lines of processes that name the container (its monitor, an init started from it). */
function processesOf(name: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(`${s.lxcpath} ${name}`) || cmd.includes(join(s.lxcpath, name))) out.push(cmd);
    } catch {
      // gone
    }
  }
  return out;
}

async function made(name: string): Promise<string> {
  const j = await s.run('POST', '/v1/containers', { name, template: 'busybox', config: TEST_CONFIG });
  expect(j.state).toBe('completed');
  return join(s.lxcpath, name, 'config');
}

describe('a container with an unusable config', () => {
  it.each([
    ['emptied', 'b1', (text: string) => (void text, '')],
    ['without lxc.rootfs.path', 'b2', (text: string) => text.replace(/^lxc\.rootfs\.path = .*$/m, '')],
    ['unloadable', 'b3', (text: string) => `${text}lxc.no.such.key = 1\n`],
  ])('%s: marked broken with an event, refused at start, removable by destroy', async (_, name, damage) => {
    const config = await made(name);
    writeFileSync(config, damage(readFileSync(config, 'utf8')));

    const rec = await brokenRecord(name);
    expect(rec.state).toBe('STOPPED');
    expect(rec.broken).toMatch(/lxcq will not start it/);
    await sub.until((m) => m.some((x) => x.type === 'container.broken' && x.container === name));

    const start = await s.run('POST', `/v1/containers/${name}/start`);
    expect(start.state).toBe('failed');
    expect(start.error?.code).toBe('LXCQ_CONTAINER_BROKEN');
    expect(start.error?.message).toMatch(/destroy the container/);
    // Nothing started (lxc-info cannot read an unloadable config, so look at the processes).
    expect(processesOf(name)).toEqual([]);

    const destroy = await s.run('DELETE', `/v1/containers/${name}`);
    expect(destroy.state).toBe('completed');
    expect(s.lxcLs()).not.toContain(name);
    expect((await s.http('GET', `/v1/containers/${name}`)).status).toBe(404);
  });

  it('a broken container is announced once, not at every inventory pass', async () => {
    const config = await made('b4');
    writeFileSync(config, '');
    await brokenRecord('b4');
    await sleep(2000); // four inventory passes
    const mine = sub.messages.filter((m) => m.type === 'container.broken' && m.container === 'b4');
    expect(mine).toHaveLength(1);
    const j = await s.run('DELETE', '/v1/containers/b4');
    expect(j.state).toBe('completed');
  });
});
