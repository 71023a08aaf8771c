import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  SETTINGS,
  applyConfigFile,
  closestSetting,
  isKnownSetting,
  parseConfigFile,
  resolveSettings,
  setting,
  type SettingSpec,
} from '../src/index.ts';
import { renderSettingsDoc } from '../scripts/settings-doc.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'lxcq-settings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a config file owned by root with the given mode (the tests run as root, like CI). */
function conf(name: string, text: string, mode = 0o640): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('the settings table and docs/configuration.md', () => {
  it('docs/configuration.md is the generated page (run: pnpm --filter @lxcq/shared settings:doc)', () => {
    expect(readFileSync(join(repo, 'docs/configuration.md'), 'utf8')).toBe(renderSettingsDoc());
  });

  it('every setting has a meaning, users, and a default or a default text', () => {
    for (const [name, spec] of Object.entries(SETTINGS as Record<string, SettingSpec>)) {
      expect(name, name).toMatch(/^LXCQ_[A-Z0-9_]+$/);
      expect(spec.meaning.length, name).toBeGreaterThan(10);
      expect(spec.usedBy.length, name).toBeGreaterThan(0);
      expect(spec.default !== undefined || spec.defaultText !== undefined, name).toBe(true);
      // a process that reads a setting parses it through the table
      if (spec.usedBy.some((u) => u === 'api' || u === 'worker' || u === 'run'))
        expect(spec.parse, `${name} is read by a service but has no parser`).toBeTypeOf('function');
      if (spec.parse && spec.default !== undefined) expect(typeof spec.default, name).not.toBe('undefined');
    }
  });

  it('every LXCQ_* variable the code, the scripts and docker-compose.yml read is in the table', () => {
    // Reads of the environment: env.LXCQ_X, env['LXCQ_X'], ${LXCQ_X...} in shell and compose files.
    const reads = /(?:env(?:\.|\[')|\$\{)(LXCQ_[A-Z0-9_]+)/g;
    const files: string[] = ['docker-compose.yml', 'Dockerfile'];
    const walk = (d: string): void => {
      for (const entry of readdirSync(join(repo, d), { withFileTypes: true })) {
        const path = join(d, entry.name);
        if (entry.name === 'node_modules' || entry.name === 'test' || entry.name === 'bench') continue;
        if (entry.isDirectory()) walk(path);
        else if (/\.(ts|mjs|sh)$/.test(entry.name) || /\.service$/.test(entry.name)) files.push(path);
      }
    };
    for (const top of ['packages', 'services', 'scripts', 'deploy']) walk(top);
    const missing: string[] = [];
    let seen = 0;
    for (const file of files) {
      for (const m of readFileSync(join(repo, file), 'utf8').matchAll(reads)) {
        seen++;
        const name = m[1] as string;
        if (!isKnownSetting(name)) missing.push(`${name} (${relative(repo, join(repo, file))})`);
      }
    }
    expect(seen).toBeGreaterThan(40); // the scan finds the reads it is meant to find
    expect(missing).toEqual([]);
  });
});

describe('setting(): parsed values and defaults', () => {
  it('gives defaults for unset and empty names, parsed values otherwise', () => {
    expect(setting({}, 'LXCQ_PORT')).toBe(7070);
    expect(setting({ LXCQ_PORT: '' }, 'LXCQ_PORT')).toBe(7070);
    expect(setting({ LXCQ_PORT: '8080' }, 'LXCQ_PORT')).toBe(8080);
    expect(setting({}, 'LXCQ_HOST_ID')).toBeUndefined();
    expect(setting({ LXCQ_TRANSFER_BIND: '[::1]:7071' }, 'LXCQ_TRANSFER_BIND')).toEqual({
      host: '::1',
      port: 7071,
    });
    expect(setting({ LXCQ_LOG_REQUESTS: '1' }, 'LXCQ_LOG_REQUESTS')).toBe(true);
  });

  it.each([
    ['LXCQ_PORT', '70000', 'LXCQ_PORT=70000 is not a whole number in 0..65535.'],
    ['LXCQ_THREADS', '0', 'LXCQ_THREADS=0 is not a whole number >= 1.'],
    ['LXCQ_LOCK_MS', '2s', 'LXCQ_LOCK_MS=2s is not a whole number >= 1000.'],
    [
      'LXCQ_LOG_LEVEL',
      'verbose',
      'LXCQ_LOG_LEVEL=verbose is not one of: fatal, error, warn, info, debug, trace, silent.',
    ],
    ['LXCQ_LOG_REQUESTS', 'yes', 'LXCQ_LOG_REQUESTS=yes must be 1 (on) or 0 (off).'],
    ['LXCQ_LXCPATH', 'var/lib/lxc', 'LXCQ_LXCPATH=var/lib/lxc must be an absolute path.'],
    ['LXCQ_HOST_ID', 'a/b', 'LXCQ_HOST_ID: Invalid host name "a/b"'],
    ['LXCQ_PREFIX', 'lx cq', 'LXCQ_PREFIX=lx cq must be letters, digits'],
    ['LXCQ_TRANSFER_BIND', '7071', 'LXCQ_TRANSFER_BIND must be <address>:<port>'],
    ['LXCQ_TRANSFER_ADVERTISE', '10.0.0.5:0', 'LXCQ_TRANSFER_ADVERTISE must be <address>:<port>'],
  ] as const)('%s=%s is refused with what fits', (name, value, message) => {
    expect(configError(() => setting({ [name]: value }, name))).toContain(message);
  });

  it('never shows a secret value in a message', () => {
    const url = 'http://:hunter2-secret@redis:6379';
    const message = configError(() => setting({ LXCQ_REDIS_URL: url }, 'LXCQ_REDIS_URL'));
    expect(message).toContain('LXCQ_REDIS_URL (value hidden) must be redis://');
    expect(message).not.toContain('hunter2');
  });

  it('names the closest known setting for a typo', () => {
    expect(closestSetting('LXCQ_PROT')).toBe('LXCQ_PORT');
    expect(closestSetting('LXCQ_THREAD')).toBe('LXCQ_THREADS');
    expect(closestSetting('LXCQ_REDIS_ULR')).toBe('LXCQ_REDIS_URL');
    expect(closestSetting('LXCQ_HOSTID')).toBe('LXCQ_HOST_ID');
    expect(closestSetting('lxcq_token')).toBe('LXCQ_TOKEN');
  });
});

describe('the config file syntax', () => {
  it('reads bare, single-quoted and double-quoted values, comments and blank lines', () => {
    const entries = parseConfigFile(
      [
        '# comment',
        '   # indented',
        '',
        '   LXCQ_PORT=8080   ',
        'LXCQ_CONFIG_POLICY=\'{"allow":["lxc.hook.*"]}\'',
        'LXCQ_HOST_BIND="0.0.0.0"',
        'LXCQ_TOKEN=abc#def-ghi_jkl.mno',
        'LXCQ_PREFIX=',
        'LXCQ_DATA_DIR=/var/lib/lxcq\r',
      ].join('\n'),
      'f.conf',
    );
    expect(Object.fromEntries([...entries].map(([k, v]) => [k, v.value]))).toEqual({
      LXCQ_PORT: '8080',
      LXCQ_CONFIG_POLICY: '{"allow":["lxc.hook.*"]}',
      LXCQ_HOST_BIND: '0.0.0.0',
      LXCQ_TOKEN: 'abc#def-ghi_jkl.mno',
      LXCQ_PREFIX: '',
      LXCQ_DATA_DIR: '/var/lib/lxcq',
    });
    expect(entries.get('LXCQ_HOST_BIND')?.line).toBe(6);
  });

  it('reads the same values as bash does with set -a; . file', () => {
    const file = conf(
      'bash.conf',
      [
        '# comment',
        'LXCQ_PORT=8080',
        'LXCQ_CONFIG_POLICY=\'{"allow":["lxc.hook.*"], "x": "$HOME\\\\n"}\'',
        'LXCQ_HOST_BIND="0.0.0.0 and spaces"',
        'LXCQ_TOKEN=abc#def',
        'LXCQ_PREFIX=',
        '',
      ].join('\n'),
    );
    const ours = Object.fromEntries(
      [...parseConfigFile(readFileSync(file, 'utf8'), file)].map(([k, v]) => [k, v.value]),
    );
    const fromBash = execFileSync(
      'env',
      [
        '-i',
        'bash',
        '--norc',
        '-c',
        `set -a; . '${file}'; for k in ${Object.keys(ours).join(' ')}; do printf '%s\\0' "\${!k}"; done`,
      ],
      { encoding: 'utf8' },
    ).split('\0');
    expect(fromBash.slice(0, -1)).toEqual(Object.values(ours));
  });

  it.each([
    ['LXCQ_PORT', 'line 1: "LXCQ_PORT" is not KEY=VALUE.'],
    ['; comment', 'line 1: start a comment with # (Docker Compose and shells do not read ; as one).'],
    ['export LXCQ_PORT=1', 'line 1: write LXCQ_PORT=... without "export".'],
    ['LXCQ_PORT = 1', 'line 1: write LXCQ_PORT=VALUE without spaces around "="'],
    ['LXCQ-PORT=1', 'line 1: "LXCQ-PORT" is not a variable name.'],
    ['NODE_OPTIONS=--inspect', 'line 1: NODE_OPTIONS: this file holds LXCQ_* settings only'],
    [
      'LXCQ_PROT=8080',
      'line 1: unknown setting LXCQ_PROT in this file; the closest known setting is LXCQ_PORT',
    ],
    ['LXCQ_PORT=1\nLXCQ_PORT=2', 'line 2: LXCQ_PORT is set again (first on line 1).'],
    ["LXCQ_TOKEN='abc", "line 1: LXCQ_TOKEN: the ' quote is not closed on this line"],
    ["LXCQ_TOKEN='abc' x", "line 1: LXCQ_TOKEN: nothing may follow the closing ' quote."],
    ['LXCQ_TOKEN="a$b"', 'line 1: LXCQ_TOKEN: \\, $ and ` inside "..." are read differently'],
    [
      'LXCQ_TOKEN=a b',
      "line 1: LXCQ_TOKEN: the value contains a space; put it in single quotes: LXCQ_TOKEN='...'.",
    ],
    ['LXCQ_TOKEN=a$b', 'line 1: LXCQ_TOKEN: the value contains $; put it in single quotes'],
    ['LXCQ_TOKEN=a\\', 'line 1: LXCQ_TOKEN: the value contains \\; put it in single quotes'],
  ])('%j is refused: %s', (text, message) => {
    const got = configError(() => parseConfigFile(text, '/etc/lxcq/lxcq.conf'));
    expect(got.startsWith(`/etc/lxcq/lxcq.conf ${message}`), got).toBe(true);
  });
});

describe('resolveSettings: the environment over the file', () => {
  it('takes a name from the file unless the environment sets it (non-empty)', () => {
    const file = conf(
      'precedence.conf',
      'LXCQ_PORT=8081\nLXCQ_THREADS=3\nLXCQ_TOKEN=from-the-file-0123456789\n',
    );
    const env = resolveSettings({
      LXCQ_CONFIG_FILE: file,
      LXCQ_PORT: '9090',
      LXCQ_THREADS: '',
      PATH: '/bin',
    });
    expect(env.LXCQ_PORT).toBe('9090');
    expect(env.LXCQ_THREADS).toBe('3');
    expect(env.LXCQ_TOKEN).toBe('from-the-file-0123456789');
    expect(env.PATH).toBe('/bin');
  });

  it('refuses an unknown LXCQ_* name in the environment with the closest known one', () => {
    expect(configError(() => resolveSettings({ LXCQ_THRADS: '4' }))).toBe(
      'unknown setting LXCQ_THRADS in the environment; the closest known setting is LXCQ_THREADS (every setting: docs/configuration.md).',
    );
    // benchmark knobs and other programs' variables pass
    expect(resolveSettings({ LXCQ_BENCH_N: '5', LXCQ_SETUP_APT: '0', HOME: '/root' }).LXCQ_BENCH_N).toBe('5');
  });

  it('says where a bad value was set: the file and line, or the environment', () => {
    const file = conf('bad.conf', '# x\nLXCQ_HEARTBEAT_MS=5s\n');
    expect(configError(() => resolveSettings({ LXCQ_CONFIG_FILE: file }))).toBe(
      `LXCQ_HEARTBEAT_MS=5s is not a whole number >= 100 (set in ${file} line 2).`,
    );
    expect(configError(() => resolveSettings({ LXCQ_CONFIG_FILE: file, LXCQ_HEARTBEAT_MS: '-1' }))).toBe(
      'LXCQ_HEARTBEAT_MS=-1 is not a whole number >= 100 (set in the environment).',
    );
  });

  it('explains a missing file, a file naming another one, and a relative path', () => {
    expect(configError(() => resolveSettings({ LXCQ_CONFIG_FILE: join(dir, 'nope.conf') }))).toBe(
      `LXCQ_CONFIG_FILE ${join(dir, 'nope.conf')}: no such file.`,
    );
    const nested = conf('nested.conf', 'LXCQ_CONFIG_FILE=/etc/other.conf\n');
    expect(configError(() => resolveSettings({ LXCQ_CONFIG_FILE: nested }))).toBe(
      `${nested} line 1: a config file cannot name another one.`,
    );
    expect(configError(() => resolveSettings({ LXCQ_CONFIG_FILE: 'lxcq.conf' }))).toBe(
      'LXCQ_CONFIG_FILE=lxcq.conf must be an absolute path (set in the environment).',
    );
  });

  it('as root, refuses a file others can write or that every user can read while it holds a secret', () => {
    expect(process.getuid?.()).toBe(0); // the suite runs as root (liblxc), so these are real checks
    const open = conf('open.conf', 'LXCQ_PORT=1\n', 0o664);
    expect(configError(() => resolveSettings({ LXCQ_CONFIG_FILE: open }))).toContain(
      `is writable by group or others (mode 0664): a root process must not read settings others can change`,
    );
    const foreign = conf('foreign.conf', 'LXCQ_PORT=1\n', 0o600);
    chownSync(foreign, 1234, 0);
    expect(configError(() => resolveSettings({ LXCQ_CONFIG_FILE: foreign }))).toContain(
      'is owned by uid 1234',
    );
    const readable = conf('readable.conf', 'LXCQ_TOKEN=secret-secret-secret\n', 0o644);
    const message = configError(() => resolveSettings({ LXCQ_CONFIG_FILE: readable }));
    expect(message).toBe(
      `LXCQ_CONFIG_FILE ${readable} holds LXCQ_TOKEN but every user can read it (mode 0644): chmod 0640 ${readable} (group: the API's user).`,
    );
    expect(message).not.toContain('secret-secret');
    chmodSync(readable, 0o640);
    expect(statSync(readable).mode & 0o777).toBe(0o640);
    expect(resolveSettings({ LXCQ_CONFIG_FILE: readable }).LXCQ_TOKEN).toBe('secret-secret-secret');
  });
});

describe('secrets: from files of their own, and never left in the environment', () => {
  it('reads LXCQ_TOKEN_FILE and LXCQ_REDIS_URL_FILE (one line) when the secret itself is not set', () => {
    const token = conf('token', 'from-a-file-0123456789\n', 0o600);
    const url = conf('redis-url', 'redis://:pw@127.0.0.1:6379\n', 0o600);
    const env = resolveSettings({ LXCQ_TOKEN_FILE: token, LXCQ_REDIS_URL_FILE: url });
    expect(env.LXCQ_TOKEN).toBe('from-a-file-0123456789');
    expect(env.LXCQ_REDIS_URL).toBe('redis://:pw@127.0.0.1:6379');
    // the secret given itself wins over its file
    expect(resolveSettings({ LXCQ_TOKEN_FILE: token, LXCQ_TOKEN: 'given-given-given-1' }).LXCQ_TOKEN).toBe(
      'given-given-given-1',
    );
    // a secret and its file count as one setting: the environment's file wins over the config file's secret
    const file = conf('with-token.conf', 'LXCQ_TOKEN=from-the-config-0123456789\n');
    expect(resolveSettings({ LXCQ_CONFIG_FILE: file, LXCQ_TOKEN_FILE: token }).LXCQ_TOKEN).toBe(
      'from-a-file-0123456789',
    );
  });

  it('refuses a secret file others can read, one others can change, a missing one, and more than a line', () => {
    const open = conf('open-token', 'x'.repeat(20), 0o644);
    expect(configError(() => resolveSettings({ LXCQ_TOKEN_FILE: open }))).toBe(
      `LXCQ_TOKEN_FILE ${open} is readable by others or writable by its group (mode 0644): chmod 0600 ${open} (0640 for a group that must read it).`,
    );
    const url = conf('foreign-url', 'redis://:secretpw@127.0.0.1:6379', 0o600);
    chownSync(url, 1234, 0);
    const message = configError(() => resolveSettings({ LXCQ_REDIS_URL_FILE: url }));
    expect(message).toContain(
      'is owned by uid 1234: the root worker must not take its Redis from a file others can change',
    );
    expect(message).not.toContain('secretpw');
    expect(configError(() => resolveSettings({ LXCQ_TOKEN_FILE: join(dir, 'none') }))).toBe(
      `LXCQ_TOKEN_FILE ${join(dir, 'none')}: no such file.`,
    );
    const two = conf('two-lines', 'a-token-0123456789\nmore\n', 0o600);
    expect(configError(() => resolveSettings({ LXCQ_TOKEN_FILE: two }))).toContain(
      'must hold the value on one line',
    );
  });

  it('applyConfigFile answers every setting but leaves no secret in the environment it is given', () => {
    const file = conf('apply.conf', 'LXCQ_THREADS=3\nLXCQ_METRICS_TOKEN=metrics-metrics-metrics\n');
    const url = conf('apply-url', 'redis://:pw2@127.0.0.1:6379\n', 0o600);
    const env: NodeJS.ProcessEnv = {
      LXCQ_CONFIG_FILE: file,
      LXCQ_TOKEN: 'in-the-environment-0123',
      LXCQ_REDIS_URL_FILE: url,
      PATH: '/bin',
    };
    const settings = applyConfigFile(env);
    expect(settings).toMatchObject({
      LXCQ_TOKEN: 'in-the-environment-0123',
      LXCQ_REDIS_URL: 'redis://:pw2@127.0.0.1:6379',
      LXCQ_METRICS_TOKEN: 'metrics-metrics-metrics',
      LXCQ_THREADS: '3',
    });
    expect(env).toEqual({
      LXCQ_CONFIG_FILE: file,
      LXCQ_REDIS_URL_FILE: url,
      LXCQ_THREADS: '3',
      PATH: '/bin',
    });
  });
});
