// The binding itself: struct layout against gcc, every header function bound and documented,
// free functions, variadic members.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';
import { afterAll, describe, expect, it } from 'vitest';
import {
  configItemIsSupported,
  globalConfigItem,
  hasApiExtension,
  logClose,
  logInit,
  lxcVersion,
  waitStates,
} from '../src/index.ts';
import {
  Arena,
  LxcAttachOptionsStruct,
  MEMBER_NAMES,
  NULL,
  RawLxc,
  STRUCTS,
  LXC_CONTAINER_DATA_FIELDS,
} from '../src/raw.ts';
import { cleanupLxcpath, createBusybox, makeLxcpath, processesUnder } from './helpers.ts';

const HEADER = '/usr/include/lxc/lxccontainer.h';
const lxcpath = makeLxcpath('raw');
const scratch = mkdtempSync(join(tmpdir(), 'lxcq-raw-scratch-'));
afterAll(() => {
  cleanupLxcpath(lxcpath);
  rmSync(scratch, { recursive: true, force: true });
  expect(processesUnder(lxcpath)).toEqual([]);
});

/** Function-pointer members and free functions declared in the installed header. */
function headerFunctions(): { members: string[]; free: string[] } {
  const h = readFileSync(HEADER, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  const body = /struct lxc_container \{([\s\S]*?)\n\};/.exec(h)?.[1] ?? '';
  const members = [...body.matchAll(/\(\*(\w+)\)\s*\(/g)].map((m) => m[1] ?? '');
  const outside = h.replace(/struct \w+ \{[\s\S]*?\n\};/g, '');
  const free = [...outside.matchAll(/^[\w\s*]+?\b(\w+)\s*\([^;]*\);/gm)].map((m) => m[1] ?? '');
  return { members, free };
}

const FREE_BOUND: Record<string, string> = {
  lxc_container_new: 'containerNew',
  lxc_container_get: 'containerGet',
  lxc_container_put: 'containerPut',
  lxc_get_wait_states: 'getWaitStates',
  lxc_get_global_config_item: 'getGlobalConfigItem',
  lxc_get_version: 'getVersion',
  list_defined_containers: 'listContainers',
  list_active_containers: 'listContainers',
  list_all_containers: 'listContainers',
  lxc_log_init: 'logInit',
  lxc_log_close: 'logClose',
  lxc_config_item_is_supported: 'configItemIsSupported',
  lxc_has_api_extension: 'hasApiExtension',
};

describe('binding completeness', () => {
  it('binds every function-pointer member of struct lxc_container, in header order', () => {
    expect(MEMBER_NAMES).toEqual(headerFunctions().members);
  });

  it('binds every free function of the header', () => {
    const raw = new RawLxc();
    for (const f of headerFunctions().free) {
      const method = FREE_BOUND[f];
      expect(method, f).toBeDefined();
      expect(typeof (raw as unknown as Record<string, unknown>)[method ?? '']).toBe('function');
    }
  });

  it('README coverage table lists every header function with a test or a reason', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const { members, free } = headerFunctions();
    for (const f of [...members, ...free]) {
      const row = readme.split('\n').find((l) => l.startsWith(`| \`${f}\``));
      expect(row, f).toBeDefined();
      expect(row!.split('|').length).toBeGreaterThanOrEqual(5);
    }
  });

  it('struct layouts match gcc (offsetof / sizeof of every member)', () => {
    const fields: [string, string][] = [];
    for (const [s, t] of Object.entries(STRUCTS)) {
      for (const m of Object.keys(t.members ?? {})) fields.push([s, m]);
    }
    const ctype = (s: string): string => (s.endsWith('_t') ? s : `struct ${s}`);
    const src = `#include <stdio.h>\n#include <stddef.h>\n#include <lxc/lxccontainer.h>\nint main(void){\n${Object.keys(
      STRUCTS,
    )
      .map((s) => `printf("${s} sizeof %zu\\n", sizeof(${ctype(s)}));`)
      .join(
        '\n',
      )}\n${fields.map(([s, m]) => `printf("${s} ${m} %zu\\n", offsetof(${ctype(s)}, ${m}));`).join('\n')}\nreturn 0;}\n`;
    writeFileSync(join(scratch, 'layout.c'), src);
    execFileSync('gcc', ['-o', join(scratch, 'layout'), join(scratch, 'layout.c')]);
    const out = execFileSync(join(scratch, 'layout'), { encoding: 'utf8' });
    for (const line of out.trim().split('\n')) {
      const [s, m, v] = line.split(' ');
      const t = STRUCTS[s ?? ''];
      expect(t, line).toBeDefined();
      if (m === 'sizeof') expect(koffi.sizeof(t!), line).toBe(Number(v));
      else expect(koffi.offsetof(t!, m ?? ''), line).toBe(Number(v));
    }
    expect(fields.length).toBeGreaterThan(LXC_CONTAINER_DATA_FIELDS.length + MEMBER_NAMES.length);
  });
});

describe('free functions', () => {
  it('lxc_get_version, lxc_has_api_extension, lxc_config_item_is_supported, lxc_get_global_config_item, lxc_get_wait_states', () => {
    expect(lxcVersion()).toMatch(/^\d+\.\d+/);
    expect(hasApiExtension('pidfd')).toBe(true);
    expect(hasApiExtension('no_such_extension')).toBe(false);
    expect(configItemIsSupported('lxc.uts.name')).toBe(true);
    expect(configItemIsSupported('lxc.no.such')).toBe(false);
    expect(globalConfigItem('lxc.lxcpath')).toBe('/var/lib/lxc');
    expect(globalConfigItem('lxc.no.such')).toBeNull();
    expect(waitStates()).toEqual([
      'STOPPED',
      'STARTING',
      'RUNNING',
      'STOPPING',
      'ABORTING',
      'FREEZING',
      'FROZEN',
      'THAWED',
    ]);
  });

  it('lxc_log_init / lxc_log_close write liblxc log to a file', () => {
    const file = join(scratch, 'lxc.log');
    logInit({ name: 'lxcq-raw', lxcpath, file, level: 'TRACE', quiet: true });
    const raw = new RawLxc();
    const c = raw.containerNew('logged', lxcpath);
    raw.call(c, 'is_running');
    raw.containerPut(c);
    logClose();
    expect(readFileSync(file, 'utf8').length).toBeGreaterThan(0);
  });

  it('lxc_container_get / lxc_container_put reference counting', () => {
    const raw = new RawLxc();
    const c = raw.containerNew('refs', lxcpath);
    expect(raw.containerGet(c)).toBe(1);
    expect(raw.containerPut(c)).toBe(0); // still referenced
    expect(raw.containerPut(c)).toBe(1); // freed
  });
});

describe('variadic members (startl, createl, attach_run_waitl)', () => {
  it('createl, startl, attach_run_waitl through koffi variadic calls', () => {
    const raw = new RawLxc();
    const c = raw.containerNew('vari', lxcpath);
    try {
      raw.call(c, 'set_config_item', 'lxc.net.0.type', 'empty');
      expect(raw.call(c, 'createl', 'busybox', null, NULL, 1, 'void *', NULL)).toBe(true);
      raw.call(c, 'want_close_all_fds', true);
      expect(raw.call(c, 'startl', 0, 'void *', NULL)).toBe(true);
      expect(raw.call(c, 'is_running')).toBe(true);
      using arena = new Arena();
      const opts = arena.struct(LxcAttachOptionsStruct, {
        attach_flags: 0xffff,
        namespaces: -1,
        personality: -1,
        initial_cwd: NULL,
        uid: 0xffffffff,
        gid: 0xffffffff,
        env_policy: 0,
        extra_env_vars: NULL,
        extra_keep_env: NULL,
        stdin_fd: 0,
        stdout_fd: 1,
        stderr_fd: 2,
        log_fd: -9,
        lsm_label: NULL,
        groups: { size: 0, list: NULL },
      });
      const st = raw.call(
        c,
        'attach_run_waitl',
        opts,
        'sh',
        'sh',
        'const char *',
        '-c',
        'const char *',
        'exit 5',
        'void *',
        NULL,
      );
      expect((st >> 8) & 0xff).toBe(5);
      expect(raw.call(c, 'stop')).toBe(true);
      expect(raw.call(c, 'destroy')).toBe(true);
    } finally {
      raw.containerPut(c);
    }
  });

  it('members newer than the loaded liblxc are reported unsupported, never called', () => {
    const raw = new RawLxc();
    for (const m of MEMBER_NAMES) expect(raw.supports(m).supported, m).toBe(true);
    raw.hasApiExtension = () => false;
    const fresh = new RawLxc({ libraries: raw.libraries });
    fresh.hasApiExtension = () => false;
    expect(fresh.supports('devpts_fd')).toMatchObject({ supported: false });
    using c = createBusybox(lxcpath, 'unsup', { raw: fresh });
    expect(() => c.devptsFd()).toThrowError(expect.objectContaining({ code: 'LXC_UNSUPPORTED' }) as Error);
    c.destroy();
  });
});
