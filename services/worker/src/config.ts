import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { execFileSync } from 'node:child_process';
import { FAILPOINTS } from './failpoints.ts';
import { ConfigError, assertName, envInt, loadPolicy, type ConfigPolicy } from '@lxcq/shared';

/** Every worker setting, from the environment (documented in the README's configuration table). */
export interface WorkerConfig {
  redisUrl: string;
  prefix: string;
  hostId: string;
  lxcpath: string;
  imagesDir: string;
  /** piscina threads running liblxc calls at once. */
  threads: number;
  /** Jobs taken from the queue at once (jobs waiting on a busy container hold a slot, not a thread). */
  maxJobsInFlight: number;
  heartbeatMs: number;
  inventoryMs: number;
  /** BullMQ lock: a job whose worker stops renewing it for this long is re-run (stalled). */
  lockMs: number;
  jobRetentionSec: number;
  maxExecOutputBytes: number;
  eventMaxLen: number;
  policy: ConfigPolicy;
  /** Where the transfer server listens (host:port; port 0 picks a free one at start). */
  transferBind: { host: string; port: number };
  /** The address other workers use to reach it (default: the bound address and port). */
  transferAdvertise?: string;
  /** A target host silent this long is offline for migrate and cross-host clone. */
  hostOfflineMs: number;
  /** A migration or cross-host clone connection silent this long is cut and rolled back. */
  transferIdleMs: number;
  /** Where the Prometheus /metrics server listens (host:port); unset: no metrics server. */
  metricsBind?: { host: string; port: number };
  /** When set, a scrape needs `Authorization: Bearer <metricsToken>`. */
  metricsToken?: string;
  /** Containers with waiting jobs that get a series of their own in lxcq_container_waiting_jobs. */
  metricsTopContainers: number;
}

function hostPort(raw: string, name: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(raw);
  if (!m || !m[1] || Number(m[2]) > 65535)
    throw new ConfigError(`${name} must be <address>:<port> (e.g. 127.0.0.1:0), not ${raw}.`);
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) };
}

function defaultLxcpath(): string {
  try {
    return execFileSync('lxc-config', ['lxc.lxcpath'], { encoding: 'utf8' }).trim() || '/var/lib/lxc';
  } catch {
    return '/var/lib/lxc';
  }
}

export function workerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const redisUrl = env.LXCQ_REDIS_URL;
  if (!redisUrl)
    throw new ConfigError(
      'LXCQ_REDIS_URL is not set: the worker needs the Redis its API uses (e.g. redis://127.0.0.1:6379).',
    );
  const hostId = env.LXCQ_HOST_ID || hostname();
  try {
    assertName('host', hostId);
  } catch (e) {
    throw new ConfigError(`LXCQ_HOST_ID: ${(e as Error).message}`);
  }
  const unknownFailpoints = (env.LXCQ_FAILPOINTS ?? '')
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f && !(FAILPOINTS as readonly string[]).includes(f));
  if (unknownFailpoints.length > 0)
    throw new ConfigError(
      `LXCQ_FAILPOINTS: unknown ${unknownFailpoints.join(', ')} (known: ${FAILPOINTS.join(', ')}; tests only).`,
    );
  return {
    redisUrl,
    prefix: env.LXCQ_PREFIX || 'lxcq',
    hostId,
    lxcpath: env.LXCQ_LXCPATH || defaultLxcpath(),
    imagesDir: env.LXCQ_IMAGES_DIR || '/var/lib/lxcq/images',
    threads: envInt(env, 'LXCQ_THREADS', 4, 1),
    maxJobsInFlight: envInt(env, 'LXCQ_MAX_JOBS_IN_FLIGHT', 64, 1),
    heartbeatMs: envInt(env, 'LXCQ_HEARTBEAT_MS', 5000, 100),
    inventoryMs: envInt(env, 'LXCQ_INVENTORY_MS', 30_000, 100),
    lockMs: envInt(env, 'LXCQ_LOCK_MS', 30_000, 1000),
    jobRetentionSec: envInt(env, 'LXCQ_JOB_RETENTION_S', 7 * 24 * 3600, 1),
    maxExecOutputBytes: envInt(env, 'LXCQ_EXEC_MAX_OUTPUT', 1024 * 1024, 1),
    eventMaxLen: envInt(env, 'LXCQ_EVENT_MAXLEN', 100_000, 100),
    policy: policyFrom(env.LXCQ_CONFIG_POLICY),
    transferBind: hostPort(env.LXCQ_TRANSFER_BIND || '127.0.0.1:0', 'LXCQ_TRANSFER_BIND'),
    ...(env.LXCQ_TRANSFER_ADVERTISE ? { transferAdvertise: env.LXCQ_TRANSFER_ADVERTISE } : {}),
    hostOfflineMs: envInt(env, 'LXCQ_HOST_OFFLINE_MS', 15_000, 100),
    transferIdleMs: envInt(env, 'LXCQ_TRANSFER_IDLE_MS', 60_000, 500),
    ...(env.LXCQ_METRICS_BIND ? { metricsBind: hostPort(env.LXCQ_METRICS_BIND, 'LXCQ_METRICS_BIND') } : {}),
    ...(env.LXCQ_METRICS_TOKEN ? { metricsToken: metricsToken(env.LXCQ_METRICS_TOKEN) } : {}),
    metricsTopContainers: envInt(env, 'LXCQ_METRICS_TOP_CONTAINERS', 20, 0),
  };
}

function metricsToken(raw: string): string {
  if (raw.length < 16) throw new ConfigError('LXCQ_METRICS_TOKEN must be at least 16 characters.');
  return raw;
}

function policyFrom(raw: string | undefined): ConfigPolicy {
  try {
    return loadPolicy(raw, (path) => readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

export { ConfigError };
