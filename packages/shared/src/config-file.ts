/**
 * The lxcq config file (`LXCQ_CONFIG_FILE`, `/etc/lxcq/lxcq.conf` under systemd): `KEY=VALUE`
 * lines in a subset of the env-file syntax that systemd's `EnvironmentFile=`, Docker Compose's
 * `env_file:` and a shell's `set -a; . file` all read the same way, so one file can serve each
 * of them. What the subset leaves out (backslash escapes, `$` expansion, line continuations,
 * quotes inside a value) is where those readers disagree; it is refused here with the line number
 * and what to write instead.
 *
 * Precedence: a name set (non-empty) in the environment wins over the file. Every `LXCQ_*` name,
 * in the file or in the environment, must be a known setting (settings.ts); a typo is refused
 * with the closest known name.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { ConfigError } from './env.ts';
import {
  SETTINGS,
  isKnownSetting,
  unknownSettingMessage,
  type SettingName,
  type SettingSpec,
} from './settings.ts';

export interface ConfigFileEntry {
  value: string;
  line: number;
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

function lineError(file: string, line: number, message: string): ConfigError {
  return new ConfigError(`${file} line ${line}: ${message}`);
}

/** Parses the file's text; throws ConfigError with the file, the line and the fix. */
export function parseConfigFile(text: string, file: string): Map<string, ConfigFileEntry> {
  const entries = new Map<string, ConfigFileEntry>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  lines.forEach((rawLine, i) => {
    const line = i + 1;
    const content = rawLine.replace(/[ \t\r]+$/, '').replace(/^[ \t]+/, '');
    if (content === '' || content.startsWith('#')) return;
    if (content.startsWith(';'))
      throw lineError(file, line, 'start a comment with # (Docker Compose and shells do not read ; as one).');
    if (content.includes('\0')) throw lineError(file, line, 'contains a NUL byte.');
    const eq = content.indexOf('=');
    if (eq < 0) throw lineError(file, line, `"${content.slice(0, 40)}" is not KEY=VALUE.`);
    const key = content.slice(0, eq);
    if (/^export[ \t]/.test(key))
      throw lineError(file, line, `write ${key.slice(7).trim()}=... without "export".`);
    if (/[ \t]$/.test(key) || /^[ \t]/.test(content.slice(eq + 1)))
      throw lineError(
        file,
        line,
        `write ${key.trim()}=VALUE without spaces around "=" (a shell reads them differently).`,
      );
    if (!KEY.test(key)) throw lineError(file, line, `"${key.slice(0, 40)}" is not a variable name.`);
    if (!key.startsWith('LXCQ_'))
      throw lineError(
        file,
        line,
        `${key}: this file holds LXCQ_* settings only; set other environment variables in the service's environment (systemctl edit <unit>: Environment=${key}=...).`,
      );
    if (!isKnownSetting(key)) throw lineError(file, line, unknownSettingMessage(key, 'in this file'));
    const previous = entries.get(key);
    if (previous) throw lineError(file, line, `${key} is set again (first on line ${previous.line}).`);
    entries.set(key, { value: parseValue(content.slice(eq + 1), key, file, line), line });
  });
  return entries;
}

function parseValue(raw: string, key: string, file: string, line: number): string {
  const quote = raw[0];
  if (quote === "'" || quote === '"') {
    const end = raw.indexOf(quote, 1);
    if (end < 0)
      throw lineError(
        file,
        line,
        `${key}: the ${quote} quote is not closed on this line (values are one line).`,
      );
    if (raw.slice(end + 1).trim() !== '')
      throw lineError(file, line, `${key}: nothing may follow the closing ${quote} quote.`);
    const value = raw.slice(1, end);
    if (quote === '"' && /[\\$`]/.test(value))
      throw lineError(
        file,
        line,
        `${key}: \\, $ and \` inside "..." are read differently by systemd, Docker Compose and shells; use single quotes.`,
      );
    return value;
  }
  const bad = /[\s\\$`'"]/.exec(raw);
  if (bad) {
    const what = /\s/.test(bad[0]) ? 'a space' : bad[0];
    throw lineError(file, line, `${key}: the value contains ${what}; put it in single quotes: ${key}='...'.`);
  }
  return raw;
}

/** What the loader needs of a file: its text, owner and mode (a test can hand in its own). */
export interface ConfigFileSource {
  read(path: string): { text: string; uid: number; mode: number };
  /** The uid this process runs as (the permission checks apply to root). */
  uid: number | undefined;
}

export const fsConfigSource: ConfigFileSource = {
  read(path) {
    const fd = openSync(path, 'r');
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new Error('not a regular file');
      return { text: readFileSync(fd, 'utf8'), uid: st.uid, mode: st.mode & 0o7777 };
    } finally {
      closeSync(fd);
    }
  },
  uid: typeof process.getuid === 'function' ? process.getuid() : undefined,
};

const SECRET_NAMES = (Object.keys(SETTINGS) as SettingName[]).filter(
  (n) => (SETTINGS[n] as { secret?: boolean }).secret,
);

/** source.read(path), or a ConfigError naming the setting, the file and why it cannot be read. */
function readOrExplain(
  source: ConfigFileSource,
  path: string,
  setting: string,
  denied: string,
): { text: string; uid: number; mode: number } {
  try {
    return source.read(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? denied : err.message;
    throw new ConfigError(`${setting} ${path}: ${why}.`);
  }
}

/** Reads and checks a config file; throws ConfigError naming the file and the cause. */
export function readConfigFile(
  path: string,
  source: ConfigFileSource = fsConfigSource,
): Map<string, ConfigFileEntry> {
  const file = readOrExplain(
    source,
    path,
    'LXCQ_CONFIG_FILE',
    'permission denied (the API user needs read access: root:lxcq, mode 0640)',
  );
  const mode = file.mode.toString(8).padStart(4, '0');
  if (source.uid === 0 && (file.uid !== 0 || (file.mode & 0o022) !== 0)) {
    // The worker runs as root and takes LXCQ_CONFIG_POLICY (which can allow hooks) from this
    // file: whoever can write it can run commands as root.
    throw new ConfigError(
      `LXCQ_CONFIG_FILE ${path} is ${file.uid !== 0 ? `owned by uid ${file.uid}` : `writable by group or others (mode ${mode})`}: a root process must not read settings others can change (chown root ${path}; chmod 0640 ${path}).`,
    );
  }
  const entries = parseConfigFile(file.text, path);
  const secret = SECRET_NAMES.find((n) => entries.get(n)?.value);
  if (secret && (file.mode & 0o004) !== 0)
    throw new ConfigError(
      `LXCQ_CONFIG_FILE ${path} holds ${secret} but every user can read it (mode ${mode}): chmod 0640 ${path} (group: the API's user).`,
    );
  return entries;
}

/**
 * Secrets that can come from a file of their own (`<NAME>_FILE`: the path of a file holding just
 * the value), so that no environment holds them: what a process holds in its environment, every
 * process it starts inherits.
 */
export const SECRET_FILES = {
  LXCQ_TOKEN: 'LXCQ_TOKEN_FILE',
  LXCQ_REDIS_URL: 'LXCQ_REDIS_URL_FILE',
} as const satisfies Partial<Record<SettingName, SettingName>>;
type SecretWithFile = keyof typeof SECRET_FILES;

/** The other name of a secret/file pair (LXCQ_TOKEN <-> LXCQ_TOKEN_FILE), or undefined. */
function pairedName(name: string): string | undefined {
  for (const [secret, file] of Object.entries(SECRET_FILES)) {
    if (name === secret) return file;
    if (name === file) return secret;
  }
  return undefined;
}

/**
 * Reads a `<NAME>_FILE` secret: one line, the value. The file must not be world-readable, nor
 * writable by group or others; a root process wants the Redis URL's owned by root (one that others
 * can change would point the root worker at their Redis, and its queue).
 */
export function readSecretFile(
  name: string,
  path: string,
  source: ConfigFileSource = fsConfigSource,
): string {
  const file = readOrExplain(source, path, name, 'permission denied');
  const mode = file.mode.toString(8).padStart(4, '0');
  if ((file.mode & 0o027) !== 0)
    throw new ConfigError(
      `${name} ${path} is readable by others or writable by its group (mode ${mode}): chmod 0600 ${path} (0640 for a group that must read it).`,
    );
  if (source.uid === 0 && file.uid !== 0 && name === SECRET_FILES.LXCQ_REDIS_URL)
    throw new ConfigError(
      `${name} ${path} is owned by uid ${file.uid}: the root worker must not take its Redis from a file others can change (chown root ${path}).`,
    );
  const value = file.text.replace(/\r?\n$/, '');
  if (value === '' || /[\r\n\0]/.test(value))
    throw new ConfigError(`${name} ${path} must hold the value on one line (nothing else).`);
  return value;
}

/**
 * The environment a process runs with: `env` plus every setting of `LXCQ_CONFIG_FILE` that `env`
 * does not set (non-empty), and each secret of SECRET_FILES read from its `<NAME>_FILE` when it is
 * not given itself. A secret and its file count as one setting: one given in `env` wins over
 * either in the config file. Refuses unknown `LXCQ_*` names in either, and a bad file. Pure: `env`
 * is not changed.
 */
export function resolveSettings(
  env: NodeJS.ProcessEnv,
  source: ConfigFileSource = fsConfigSource,
): NodeJS.ProcessEnv {
  for (const name of Object.keys(env)) {
    if (name.startsWith('LXCQ_') && !isKnownSetting(name))
      throw new ConfigError(unknownSettingMessage(name, 'in the environment'));
  }
  const merged: NodeJS.ProcessEnv = { ...env };
  const origin = new Map<string, string>();
  const path = checked(env, 'LXCQ_CONFIG_FILE', () => 'the environment');
  if (path) {
    for (const [name, { value, line }] of readConfigFile(path, source)) {
      if (name === 'LXCQ_CONFIG_FILE')
        throw new ConfigError(`${path} line ${line}: a config file cannot name another one.`);
      const paired = pairedName(name);
      if (paired && env[paired]) continue;
      if (merged[name] === undefined || merged[name] === '') {
        merged[name] = value;
        origin.set(name, `${path} line ${line}`);
      }
    }
  }
  for (const [secret, fileName] of Object.entries(SECRET_FILES) as [SecretWithFile, SettingName][]) {
    const file = merged[fileName];
    if (!file || merged[secret]) continue;
    merged[secret] = readSecretFile(fileName, file, source);
    origin.set(secret, `${fileName} ${file}`);
  }
  // Every value is checked here, where its origin is known, so a message says where to fix it.
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    checked(merged, name, () => origin.get(name) ?? 'the environment');
  }
  return merged;
}

/** Parses one setting (when it has a parser), adding where the bad value came from to the error. */
function checked(env: NodeJS.ProcessEnv, name: SettingName, from: () => string): string | undefined {
  const spec = SETTINGS[name] as SettingSpec;
  const raw = env[name];
  if (!spec.parse || raw === undefined || raw === '') return raw || undefined;
  try {
    spec.parse(raw, name);
  } catch (e) {
    if (e instanceof ConfigError)
      throw new ConfigError(`${e.message.replace(/\.$/, '')} (set in ${from()}).`);
    throw e;
  }
  return raw;
}

/** The secret settings (tokens, a Redis URL that may hold a password) among `env`'s names. */
export function secretsOf(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of SECRET_NAMES) {
    const v = env[name];
    if (v) out[name] = v;
  }
  return out;
}

/**
 * For a process's entry point, before it starts any thread or process: answers every setting
 * (the environment, the config file, the secret files), and leaves in `env` (`process.env`) the
 * config file's ordinary settings (code reading `process.env` directly, liblxc's binding and the
 * thread pool included, sees them) but no secret at all: a secret given in the environment is
 * removed from it, one from a file is not put in. Whatever this process starts then inherits no
 * token and no Redis password: a container's `exec`, a template script, a hook, CRIU, lxc-* tools.
 */
export function applyConfigFile(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const merged = resolveSettings(env);
  const secret = new Set<string>(SECRET_NAMES);
  for (const [name, value] of Object.entries(merged)) {
    if (secret.has(name)) delete env[name];
    else if (env[name] !== value) env[name] = value;
  }
  return merged;
}
