// LxcError shape, use after dispose, CRIU refusal, load errors, freed-exactly-once accounting.
import { afterAll, describe, expect, it } from 'vitest';
import {
  Container,
  LXC_ERROR_CODES,
  LxcError,
  LxcLoadError,
  RawLxc,
  criuStatus,
  loadLibraries,
} from '../src/index.ts';
import type { LxcErrorCode } from '../src/index.ts';
import { cleanupLxcpath, createBusybox, makeLxcpath, processesUnder } from './helpers.ts';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const lxcpath = makeLxcpath('err');
afterAll(() => {
  cleanupLxcpath(lxcpath);
  expect(processesUnder(lxcpath)).toEqual([]);
});

function catchLxcError(fn: () => unknown): LxcError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LxcError);
    return e as LxcError;
  }
  throw new Error('expected an LxcError');
}

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
      const e = new LxcError(code, 'boom', {
        operation: 'op',
        container: 'c1',
        errorNum: 3,
        errorString: 'x',
        errno: 2,
      });
      expect(e.code).toBe(code);
      expect(e.operation).toBe('op');
      const j = structuredClone(e.toJSON());
      expect(LxcError.isJSON(j)).toBe(true);
      const back = LxcError.fromJSON(j);
      expect(back).toBeInstanceOf(LxcError);
      expect(back).toMatchObject({
        code,
        operation: 'op',
        container: 'c1',
        errorNum: 3,
        errorString: 'x',
        errno: 2,
        message: e.message,
      });
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

  it('checkpoint/restore/migrate: LXC_CRIU_UNAVAILABLE without CRIU, clear LxcErrors with it (stopped container, no images)', () => {
    const s = criuStatus(true);
    using c = createBusybox(lxcpath, 'crit');
    const dir = mkdtempSync(join(tmpdir(), 'lxcq-err-criu-'));
    try {
      if (!s.available) {
        // test/criu.test.ts fails the run when CRIU is required ($CI, LXCQ_REQUIRE_CRIU=1).
        expect(s.reason).toMatch(/criu/);
        const calls = [
          () => c.checkpoint(dir),
          () => c.restore(dir),
          () => c.restoreInProcess(dir),
          () => c.migrate('feature-check', { directory: dir }),
          () => c.migrate('dump', { directory: dir }),
        ];
        for (const fn of calls) {
          expect(fn).toThrowError(
            expect.objectContaining({
              code: 'LXC_CRIU_UNAVAILABLE',
              message: expect.stringContaining(s.reason) as string,
            }) as Error,
          );
        }
        return;
      }
      expect(s.path).toBeTruthy();
      expect(s.reason).toMatch(/Looks good|`criu check` passed/);
      // A stopped container cannot be dumped: refused before criu runs, nothing written.
      const notRunning = catchLxcError(() => c.checkpoint(dir, { stop: true }));
      expect(notRunning).toMatchObject({
        code: 'LXC_NOT_RUNNING',
        operation: 'checkpoint',
        container: 'crit',
      });
      expect(notRunning.message).toMatch(/STOPPED, not running/);
      expect(catchLxcError(() => c.migrate('pre-dump', { directory: dir })).code).toBe('LXC_NOT_RUNNING');
      expect(readdirSync(dir)).toEqual([]);
      // Restoring from a directory without images: criu fails; the error names the tool's status,
      // carries the liblxc log's tail and criu's own log, and no monitor is left behind.
      const viaTool = catchLxcError(() => c.restore(dir));
      expect(viaTool).toMatchObject({ code: 'LXC_RESTORE_FAILED', operation: 'restore', container: 'crit' });
      expect(viaTool.message).toMatch(/lxc-checkpoint failed \(exit status \d+\)/);
      expect(viaTool.message).toContain(c.startLogFile);
      expect(viaTool.message).toContain(`criu log ${join(dir, 'restore.log')}`);
      expect(viaTool.errorString).toMatch(/criu/);
      expect(readFileSync(c.startLogFile, 'utf8')).toMatch(/ERROR/);
      const inProcess = catchLxcError(() => c.restoreInProcess(dir));
      expect(inProcess).toMatchObject({ code: 'LXC_RESTORE_FAILED', operation: 'restore' });
      expect(inProcess.message).toContain(`criu log ${join(dir, 'restore.log')}`);
      expect(c.state).toBe('STOPPED');
      expect(processesUnder(lxcpath)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      c.destroy();
    }
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
    const raw = new RawLxc({
      libraries: base.libraries,
      free: (p) => {
        freed.push(p);
        base.free(p);
      },
    });
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
