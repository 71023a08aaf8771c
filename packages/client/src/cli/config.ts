import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** A usage or configuration problem: the CLI exits 2 with the message. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface SavedConfig {
  url?: string;
  token?: string;
}

/** Where a setting came from, for error messages. */
export type Source = 'flag' | 'env' | 'config' | 'none';

export interface Settings {
  url: string;
  urlSource: Exclude<Source, 'none'>;
  token: string | undefined;
  tokenSource: Source;
  configPath: string;
}

/** `$XDG_CONFIG_HOME/lxcq/config.json`, by default `~/.config/lxcq/config.json`. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'lxcq', 'config.json');
}

export function readConfig(path: string): SavedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`${path} is not valid JSON: fix it or run lxcq login again`);
  }
  if (!parsed || typeof parsed !== 'object') return {};
  const o = parsed as Record<string, unknown>;
  return {
    ...(typeof o.url === 'string' ? { url: o.url } : {}),
    ...(typeof o.token === 'string' ? { token: o.token } : {}),
  };
}

/** Writes the config file readable by its owner only (it holds a token). */
export function writeConfig(path: string, cfg: SavedConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** URL and token from flags, then LXCQ_URL / LXCQ_TOKEN, then the config file. */
export function resolveSettings(
  flags: { url?: string | undefined; token?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): Settings {
  const path = configPath(env);
  const saved = readConfig(path);
  const pick = (flag: string | undefined, e: string | undefined, file: string | undefined) =>
    flag !== undefined && flag !== ''
      ? { value: flag, source: 'flag' as const }
      : e !== undefined && e !== ''
        ? { value: e, source: 'env' as const }
        : file !== undefined && file !== ''
          ? { value: file, source: 'config' as const }
          : { value: undefined, source: 'none' as const };
  const url = pick(flags.url, env.LXCQ_URL, saved.url);
  const token = pick(flags.token, env.LXCQ_TOKEN, saved.token);
  if (url.value === undefined)
    throw new UsageError(
      'no lxcq URL: pass --url http://HOST:7070, set LXCQ_URL, or run lxcq login --url URL --token TOKEN',
    );
  return {
    url: url.value,
    urlSource: url.source,
    token: token.value,
    tokenSource: token.source,
    configPath: path,
  };
}

export function describeSource(s: Source, what: 'URL' | 'token', path: string): string {
  switch (s) {
    case 'flag':
      return `the ${what} given with --${what.toLowerCase()}`;
    case 'env':
      return `the ${what} in LXCQ_${what.toUpperCase()}`;
    case 'config':
      return `the ${what} saved in ${path}`;
    case 'none':
      return `no ${what}`;
  }
}
