import { readFileSync } from 'node:fs';
import { ConfigError, SCOPES, envInt, loadPolicy, type ConfigPolicy, type Scope } from '@lxcq/shared';

export interface TokenEntry {
  name: string;
  /** sha256 of the token, hex. Plain tokens are hashed on load and not kept. */
  sha256: string;
  scopes: Scope[];
}

/** Every API setting, from the environment (documented in the README's configuration table). */
export interface ApiConfig {
  redisUrl: string;
  prefix: string;
  port: number;
  bind: string;
  tokens: TokenEntry[];
  bodyLimit: number;
  hostOfflineMs: number;
  jobRetentionSec: number;
  maxWaitSec: number;
  policy: ConfigPolicy;
  /** WebSocket ping period; a client silent for a whole period is dropped. */
  wsPingMs: number;
  /** Bytes a WebSocket client may leave unread before it is closed with 4008. */
  wsMaxBufferedBytes: number;
  /** Events are kept this long in the stream (and at most eventMaxLen of them). */
  eventRetentionSec: number;
  eventMaxLen: number;
  /** A submission cut off half-way is failed (reconciled) once it is this old. */
  submitGraceMs: number;
}

export function loadTokens(env: NodeJS.ProcessEnv, hash: (t: string) => string): TokenEntry[] {
  const tokens: TokenEntry[] = [];
  if (env.LXCQ_TOKEN) {
    if (env.LXCQ_TOKEN.length < 16) throw new ConfigError('LXCQ_TOKEN must be at least 16 characters.');
    tokens.push({ name: 'admin', sha256: hash(env.LXCQ_TOKEN), scopes: ['admin'] });
  }
  if (env.LXCQ_TOKENS_FILE) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(env.LXCQ_TOKENS_FILE, 'utf8'));
    } catch (e) {
      throw new ConfigError(`LXCQ_TOKENS_FILE ${env.LXCQ_TOKENS_FILE}: ${(e as Error).message}`);
    }
    const list = (parsed as { tokens?: unknown }).tokens;
    if (!Array.isArray(list))
      throw new ConfigError(
        'LXCQ_TOKENS_FILE must hold {"tokens": [{"name", "token" or "sha256", "scopes"}]}.',
      );
    for (const [i, t] of (list as Record<string, unknown>[]).entries()) {
      const scopes = t.scopes;
      if (!Array.isArray(scopes) || !scopes.every((s) => SCOPES.includes(s as Scope))) {
        throw new ConfigError(`LXCQ_TOKENS_FILE token #${i}: scopes must be a list of ${SCOPES.join(', ')}.`);
      }
      const sha =
        typeof t.sha256 === 'string'
          ? t.sha256.toLowerCase()
          : typeof t.token === 'string'
            ? hash(t.token)
            : null;
      if (!sha || !/^[0-9a-f]{64}$/.test(sha))
        throw new ConfigError(`LXCQ_TOKENS_FILE token #${i}: needs "token" or a hex "sha256".`);
      tokens.push({
        name: typeof t.name === 'string' ? t.name : `token${i}`,
        sha256: sha,
        scopes: scopes as Scope[],
      });
    }
  }
  if (tokens.length === 0)
    throw new ConfigError('No API token configured: set LXCQ_TOKEN (admin) or LXCQ_TOKENS_FILE.');
  return tokens;
}

export function apiConfig(env: NodeJS.ProcessEnv, hash: (t: string) => string): ApiConfig {
  const redisUrl = env.LXCQ_REDIS_URL;
  if (!redisUrl) throw new ConfigError('LXCQ_REDIS_URL is not set (e.g. redis://127.0.0.1:6379).');
  return {
    redisUrl,
    prefix: env.LXCQ_PREFIX || 'lxcq',
    port: envInt(env, 'LXCQ_PORT', 7070),
    bind: env.LXCQ_HOST_BIND || '127.0.0.1',
    tokens: loadTokens(env, hash),
    bodyLimit: envInt(env, 'LXCQ_BODY_LIMIT', 1024 * 1024, 1024),
    hostOfflineMs: envInt(env, 'LXCQ_HOST_OFFLINE_MS', 15_000, 100),
    jobRetentionSec: envInt(env, 'LXCQ_JOB_RETENTION_S', 7 * 24 * 3600, 1),
    maxWaitSec: envInt(env, 'LXCQ_MAX_WAIT_S', 300, 1),
    policy: policyFrom(env.LXCQ_CONFIG_POLICY),
    wsPingMs: envInt(env, 'LXCQ_WS_PING_MS', 15_000, 100),
    wsMaxBufferedBytes: envInt(env, 'LXCQ_WS_MAX_BUFFER', 1024 * 1024, 1024),
    eventRetentionSec: envInt(env, 'LXCQ_EVENT_RETENTION_S', 7 * 24 * 3600, 1),
    eventMaxLen: envInt(env, 'LXCQ_EVENT_MAXLEN', 100_000, 100),
    submitGraceMs: envInt(env, 'LXCQ_SUBMIT_GRACE_MS', 15_000, 100),
  };
}

function policyFrom(raw: string | undefined): ConfigPolicy {
  try {
    return loadPolicy(raw, (path) => readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

export { ConfigError };
