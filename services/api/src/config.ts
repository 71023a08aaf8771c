import { readFileSync } from 'node:fs';
import {
  ConfigError,
  checkPrefixForCluster,
  SCOPES,
  loadPolicy,
  resolveSettings,
  setting,
  type ConfigFileSource,
  type ConfigPolicy,
  type LogLevel,
  type Scope,
} from '@lxcq/shared';
import { DEFAULT_DASHBOARD_DIR } from './dashboard.ts';

export interface TokenEntry {
  name: string;
  /** sha256 of the token, hex. Plain tokens are hashed on load and not kept. */
  sha256: string;
  scopes: Scope[];
}

/** Every API setting, from the environment and LXCQ_CONFIG_FILE (packages/shared/src/settings.ts; docs/configuration.md). */
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
  /** The built web dashboard served at /ui/ (packages/dashboard/dist unless LXCQ_DASHBOARD_DIR). */
  dashboardDir: string;
  /** sha256 (hex) of LXCQ_METRICS_TOKEN: a scrape-only credential for GET /metrics (besides `read` tokens). */
  metricsTokenSha256?: string;
  /** GET /v1/health fails when the event reader is this many seconds behind the stream. */
  healthMaxEventLagSec: number;
  logLevel: LogLevel;
  /** One log line per HTTP request (off: errors only). */
  logRequests: boolean;
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

export function apiConfig(
  rawEnv: NodeJS.ProcessEnv,
  hash: (t: string) => string,
  source?: ConfigFileSource,
): ApiConfig {
  const env = resolveSettings(rawEnv, source);
  const redisUrl = setting(env, 'LXCQ_REDIS_URL');
  if (!redisUrl) throw new ConfigError('LXCQ_REDIS_URL is not set (e.g. redis://127.0.0.1:6379).');
  checkPrefixForCluster(redisUrl, setting(env, 'LXCQ_PREFIX'));
  const metricsToken = setting(env, 'LXCQ_METRICS_TOKEN');
  return {
    redisUrl,
    prefix: setting(env, 'LXCQ_PREFIX'),
    port: setting(env, 'LXCQ_PORT'),
    bind: setting(env, 'LXCQ_HOST_BIND'),
    tokens: loadTokens(env, hash),
    bodyLimit: setting(env, 'LXCQ_BODY_LIMIT'),
    hostOfflineMs: setting(env, 'LXCQ_HOST_OFFLINE_MS'),
    jobRetentionSec: setting(env, 'LXCQ_JOB_RETENTION_S'),
    maxWaitSec: setting(env, 'LXCQ_MAX_WAIT_S'),
    policy: policyFrom(env),
    wsPingMs: setting(env, 'LXCQ_WS_PING_MS'),
    wsMaxBufferedBytes: setting(env, 'LXCQ_WS_MAX_BUFFER'),
    eventRetentionSec: setting(env, 'LXCQ_EVENT_RETENTION_S'),
    eventMaxLen: setting(env, 'LXCQ_EVENT_MAXLEN'),
    logLevel: setting(env, 'LXCQ_LOG_LEVEL'),
    logRequests: setting(env, 'LXCQ_LOG_REQUESTS'),
    dashboardDir: setting(env, 'LXCQ_DASHBOARD_DIR') ?? DEFAULT_DASHBOARD_DIR,
    ...(metricsToken ? { metricsTokenSha256: hash(metricsToken) } : {}),
    healthMaxEventLagSec: setting(env, 'LXCQ_HEALTH_MAX_EVENT_LAG_S'),
    submitGraceMs: setting(env, 'LXCQ_SUBMIT_GRACE_MS'),
  };
}

function policyFrom(env: NodeJS.ProcessEnv): ConfigPolicy {
  try {
    return loadPolicy(setting(env, 'LXCQ_CONFIG_POLICY'), (path) => readFileSync(path, 'utf8'), {
      networkTypes: setting(env, 'LXCQ_NETWORK_TYPES'),
      networkLinks: setting(env, 'LXCQ_NETWORK_LINKS'),
      ociLayoutDir: setting(env, 'LXCQ_OCI_LAYOUT_DIR'),
    });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

export { ConfigError };
