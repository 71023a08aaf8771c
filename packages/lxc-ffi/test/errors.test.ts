// LxcError shape, use after dispose, CRIU refusal, load errors, freed-exactly-once accounting.
import { afterAll, describe, expect, it } from 'vitest';
import { Container, LXC_ERROR_CODES, LxcError, LxcLoadError, RawLxc, criuStatus, loadLibraries } from '../src/index.ts';
import type { LxcErrorCode } from '../src/index.ts';
import { cleanupLxcpath, createBusybox, makeLxcpath, processesUnder } from './helpers.ts';
import { readFileSync } from 'node:fs';

const lxcpath = makeLxcpath('err');
afterAll(() => {
  cleanupLxcpath(lxcpath);
  expect(processesUnder(lxcpath)).toEqual([]);
});

describe('LxcError', () => {
  it('every code has meaning and retryable flag, and is documented in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const [code, v] of Object.entries(LXC_ERROR_CODES)) {
      expect(v.meaning.length).toBeGreaterThan(5);
      expect(typeof v.retryable).toBe('boolean');
      expect(readme).toContain(code);
    }
  });

  it('carries code/operation/container and survives JSON and structured clone', () => {
    for (const code of Object.keys(LXC_ERROR_CODES) as LxcErrorCode[]) {
      const e = new LxcError(code, 'boom', { operation: 'op', container: 'c1', errorNum: 3, errorString: 'x', errno: 2 });
      expect(e.code).toBe(code);
      expect(e.operation).toBe('op');
      const j = structuredClone(e.toJSON());
      expect(LxcError.isJSON(j)).toBe(true);
      const back = LxcError.fromJSON(j);
      expect(back).toBeInstanceOf(LxcError);
      expect(back).toMatchObject({ code, operation: 'op', container: 'c1', errorNum: 3, errorString: 'x', errno: 2, message: e.message });
    }
  });

  it('liblxc failures carry operation and error fields', () => {
    using c = Container.open('nope', lxcpath);
    try {
      c.start();
      throw new Error('unreachable');
    } catch (e) {
      expect(e).toBeInstanceOf(LxcError);
      expect((e as LxcError).code).toBe('LXC_NOT_DEFINED');
      expect((e as LxcError).operation).toBe('start');
      expect((e as LxcError).container).toBe('nope');
    }
  });

  it('use after dispose throws LXC_DISPOSED and put happens exactly once', () => {
    let puts = 0;
    const raw = new RawLxc();
    const orig = raw.containerPut.bind(raw);
    raw.containerPut = (p) => {
      puts++;
      return orig(p);
    };
    const c = Container.open('x', lxcpath, { raw });
    c[Symbol.dispose]();
    c[Symbol.dispose]();
    expect(puts).toBe(1);
    expect(() => c.state).toThrowError(expect.objectContaining({ code: 'LXC_DISPOSED' }) as Error);
    expect(() => c.defined).toThrow(LxcError);
  });

  it('checkpoint/restore/migrate refuse with LXC_CRIU_UNAVAILABLE when criu is missing or broken', () => {
    const s = criuStatus(true);
    using c = Container.open('crit', lxcpath);
    if (s.available) {
      expect(s.path).toBeTruthy();
      return;
    }
    for (const fn of [() => c.checkpoint('/tmp/x'), () => c.restore('/tmp/x'), () => c.restoreInProcess('/tmp/x'), () => c.migrate('feature-check', { directory: '/tmp/x' })]) {
      expect(fn).toThrowError(expect.objectContaining({ code: 'LXC_CRIU_UNAVAILABLE' }) as Error);
    }
    expect(s.reason).toMatch(/criu/);
  });

  it('LxcLoadError says what to install when liblxc is missing', () => {
    expect(() => loadLibraries({ path: '/nonexistent/liblxc.so.1' })).toThrowError(LxcLoadError);
    try {
      loadLibraries({ path: '/nonexistent/liblxc.so.1' });
    } catch (e) {
      expect((e as Error).message).toContain('apt-get install lxc liblxc1');
      expect((e as LxcLoadError).toJSON().code).toBe('LXC_LOAD_FAILED');
    }
    expect(() => loadLibraries({ path: 'libc.so.6' })).toThrowError(/not liblxc/);
  });

  it('every string liblxc allocates is freed exactly once', () => {
    const freed: bigint[] = [];
    const base = new RawLxc();
    const raw = new RawLxc({ libraries: base.libraries, free: (p) => {
      freed.push(p);
      base.free(p);
    } });
    using c = createBusybox(lxcpath, 'frees', { raw });
    c.start();
    try {
      freed.length = 0;
      expect(c.interfaces()).toEqual(['lo']); // 1 string + array
      expect(freed.length).toBe(2);
      freed.length = 0;
      expect(c.runningConfigItem('lxc.uts.name')).toBe('frees');
      expect(freed.length).toBe(1);
      freed.length = 0;
      c.configFileName();
      expect(freed.length).toBe(1);
      freed.length = 0;
      const names = raw.listContainers('all', lxcpath, true);
      expect(names?.names).toEqual(['frees']);
      for (const p of names?.containers ?? []) raw.containerPut(p);
      expect(freed.length).toBe(3); // name, names array, containers array
      freed.length = 0;
      c.stop();
      c.wait('STOPPED', 10);
      c.snapshot();
      c.snapshot();
      expect(c.snapshots()).toHaveLength(2);
      expect(freed.length).toBe(1); // the array; fields are freed by each lxc_snapshot's free member
      expect(new Set(freed).size).toBe(freed.length);
    } finally {
      if (c.running) c.stop();
      c.destroy({ withSnapshots: true });
    }
  });
});
