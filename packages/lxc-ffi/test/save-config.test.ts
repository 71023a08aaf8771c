// A container's config must survive a process killed while writing it (issue: a worker SIGKILLed
// during a start left an empty config, and the re-run started the container on the host's root).
// liblxc's own save_config truncates, then writes; Container.saveConfig writes a temporary file
// and renames it, and start() refuses a config with no rootfs.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, LxcError } from '../src/index.ts';
import { cleanupLxcpath, createBusybox, makeLxcpath, processesUnder } from './helpers.ts';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./save-config.child.ts', import.meta.url));
const lxcpath = makeLxcpath('savecfg');
let configPath: string;
let original: string;

beforeAll(() => {
  using c = createBusybox(lxcpath, 's1');
  configPath = c.configFileName();
  original = readFileSync(configPath, 'utf8');
  expect(original).toMatch(/^lxc\.rootfs\.path = /m);
});

afterAll(() => {
  const { leftovers } = cleanupLxcpath(lxcpath);
  expect(leftovers).toEqual([]);
  expect(processesUnder(lxcpath)).toEqual([]);
});

/** Starts the saving loop in a child node process and resolves once it runs. */
function saver(): Promise<ReturnType<typeof spawn>> {
  const p = spawn(process.execPath, ['--import', 'tsx', CHILD, 's1', lxcpath], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let err = '';
    p.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    p.stdout?.once('data', () => resolve(p));
    p.once('exit', (code) => reject(new Error(`saver exited ${code}: ${err}`)));
  });
}

function killed(p: ReturnType<typeof spawn>): Promise<void> {
  return new Promise((resolve) => {
    p.removeAllListeners('exit');
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
  });
}

describe('saveConfig under SIGKILL (real liblxc)', () => {
  it('a process killed at any moment of a save leaves the whole config, never a partial one', async () => {
    // Before the fix the first kill already found an empty config (liblxc's O_TRUNC, then write).
    for (let round = 0; round < 12; round++) {
      const p = await saver();
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 40));
      await killed(p);
      expect(readFileSync(configPath, 'utf8'), `after kill ${round}`).toBe(original);
    }
    // A temporary file of a killed saver is removed by the next save.
    {
      using c = Container.open('s1', lxcpath);
      c.saveConfig();
    }
    expect(readdirSync(join(lxcpath, 's1')).filter((f) => f.includes('lxcq-tmp'))).toEqual([]);
  }, 120_000);

  it('a reader never sees a config being written', async () => {
    const p = await saver();
    try {
      for (let i = 0; i < 3000; i++) {
        const text = readFileSync(configPath, 'utf8');
        if (text !== original) expect(text, `read ${i}`).toBe(original);
      }
    } finally {
      await killed(p);
    }
  }, 60_000);

  it('keeps the config file mode and owner', () => {
    const before = statSync(configPath);
    using c = Container.open('s1', lxcpath);
    c.setConfigItem('lxc.uts.name', 's1');
    c.saveConfig();
    const after = statSync(configPath);
    expect(after.mode).toBe(before.mode);
    expect([after.uid, after.gid]).toEqual([before.uid, before.gid]);
    expect(after.ino).not.toBe(before.ino); // replaced by rename, not rewritten in place
  });

  it('start does not rewrite an unchanged config, and saves a changed one first', () => {
    {
      using c = Container.open('s1', lxcpath);
      const ino = statSync(configPath).ino;
      c.start();
      expect(c.wait('RUNNING', 10)).toBe(true);
      expect(statSync(configPath).ino).toBe(ino);
      c.stop();
      expect(c.wait('STOPPED', 10)).toBe(true);
    }
    using c = Container.open('s1', lxcpath);
    c.setConfigItem('lxc.environment', 'LXCQ_TEST_SAVED=1');
    c.start();
    try {
      expect(c.wait('RUNNING', 10)).toBe(true);
      expect(readFileSync(configPath, 'utf8')).toContain('lxc.environment = LXCQ_TEST_SAVED=1');
    } finally {
      c.stop();
      c.wait('STOPPED', 10);
    }
  });

  it('start and restore refuse a config without lxc.rootfs.path (it would run on the host root)', () => {
    using made = createBusybox(lxcpath, 's2');
    const path = made.configFileName();
    writeFileSync(path, readFileSync(path, 'utf8').replace(/^lxc\.rootfs\.path = .*$/m, ''));
    using c = Container.open('s2', lxcpath);
    expect(c.defined).toBe(true);
    let err: unknown;
    try {
      c.start();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LxcError);
    expect((err as LxcError).code).toBe('LXC_CONFIG_BROKEN');
    expect((err as LxcError).message).toContain('no lxc.rootfs.path');
    expect(c.state).toBe('STOPPED');
    expect(processesUnder(join(lxcpath, 's2'))).toEqual([]);
  });
});
