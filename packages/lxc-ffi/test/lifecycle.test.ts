import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, LxcError, monitorMemory } from '../src/index.ts';
import { cleanupLxcpath, createBusybox, makeLxcpath, processesUnder } from './helpers.ts';

const lxcpath = makeLxcpath('life');
let c: Container;

beforeAll(() => {
  c = createBusybox(lxcpath, 'life1');
});

afterAll(() => {
  c?.[Symbol.dispose]();
  cleanupLxcpath(lxcpath);
  expect(processesUnder(lxcpath)).toEqual([]);
});

describe('lifecycle (busybox, real liblxc)', () => {
  it('create defines a stopped container', () => {
    expect(c.defined).toBe(true);
    expect(c.running).toBe(false);
    expect(c.state).toBe('STOPPED');
    expect(c.initPid).toBe(-1);
    expect(c.name).toBe('life1');
    expect(c.configFileName()).toBe(`${lxcpath}/life1/config`);
  });

  it('start (lxc-start helper) runs it with a small monitor', () => {
    c.start();
    expect(c.running).toBe(true);
    expect(c.state).toBe('RUNNING');
    expect(c.initPid).toBeGreaterThan(1);
    const mem = monitorMemory('life1', lxcpath);
    expect(mem).not.toBeNull();
    expect(mem!.privateDirtyKb).toBeLessThan(4 * 1024);
  });

  it('exec returns output, exit code, env and cwd', () => {
    const r = c.exec({ argv: ['sh', '-c', 'echo out; echo err >&2; echo "$FOO"; pwd; exit 7'], env: { FOO: 'bar' }, cwd: '/tmp' });
    expect(r).toMatchObject({ exitCode: 7, signal: null, stdout: 'out\nbar\n/tmp\n', stderr: 'err\n', timedOut: false });
  });
});
