import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { execFileSync } from 'node:child_process';
import { toolEnv } from '@lxcq/lxc-ffi/host';
import { FAILPOINTS } from './failpoints.ts';
import {
  ConfigError,
  checkPrefixForCluster,
  loadPolicy,
  resolveSettings,
  setting,
  type ConfigFileSource,
  type ConfigPolicy,
  type LogLevel,
} from '@lxcq/shared';

/** Every worker setting, from the environment and LXCQ_CONFIG_FILE (packages/shared/src/settings.ts; docs/configuration.md). */
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
  /** Period of the usage collection (usage.ts). */
  usageIntervalMs: number;
  /** How often a container's disk use is measured again. */
  usageDiskIntervalMs: number;
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
  logLevel: LogLevel;
}

function defaultLxcpath(): string {
  try {
    return (
      execFileSync('lxc-config', ['lxc.lxcpath'], { encoding: 'utf8', env: toolEnv() }).trim() ||
      '/var/lib/lxc'
    );
  } catch {
    return '/var/lib/lxc';
  }
}

export function workerConfig(
  rawEnv: NodeJS.ProcessEnv = process.env,
  source?: ConfigFileSource,
): WorkerConfig {
  const env = resolveSettings(rawEnv, source);
  const redisUrl = setting(env, 'LXCQ_REDIS_URL');
  if (!redisUrl)
    throw new ConfigError(
      'LXCQ_REDIS_URL is not set: the worker needs the Redis its API uses (e.g. redis://127.0.0.1:6379).',
    );
  checkPrefixForCluster(redisUrl, setting(env, 'LXCQ_PREFIX'));
  const unknownFailpoints = (setting(env, 'LXCQ_FAILPOINTS') ?? '')
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f && !(FAILPOINTS as readonly string[]).includes(f));
  if (unknownFailpoints.length > 0)
    throw new ConfigError(
      `LXCQ_FAILPOINTS: unknown ${unknownFailpoints.join(', ')} (known: ${FAILPOINTS.join(', ')}; tests only).`,
    );
  // the hostname by default, checked by the same rule (a message naming LXCQ_HOST_ID if it breaks it)
  const hostId = setting(env, 'LXCQ_HOST_ID') ?? setting({ LXCQ_HOST_ID: hostname() }, 'LXCQ_HOST_ID');
  if (!hostId) throw new ConfigError("The hostname is empty: set LXCQ_HOST_ID to this host's id.");
  const transferBind = setting(env, 'LXCQ_TRANSFER_BIND');
  const transferAdvertise = setting(env, 'LXCQ_TRANSFER_ADVERTISE');
  if (!transferAdvertise && ['0.0.0.0', '::', ''].includes(transferBind.host))
    throw new ConfigError(
      `LXCQ_TRANSFER_BIND=${env.LXCQ_TRANSFER_BIND} listens on every address, so other hosts cannot be told which one reaches this host: set LXCQ_TRANSFER_ADVERTISE=<this host's address>:${transferBind.port || '<port>'}.`,
    );
  if (transferAdvertise && transferBind.port === 0)
    throw new ConfigError(
      'LXCQ_TRANSFER_ADVERTISE needs a fixed port: set LXCQ_TRANSFER_BIND=<address>:<port> (port 0 picks a new one at every start).',
    );
  const metricsBindValue = setting(env, 'LXCQ_METRICS_BIND');
  const metricsTokenValue = setting(env, 'LXCQ_METRICS_TOKEN');
  return {
    redisUrl,
    prefix: setting(env, 'LXCQ_PREFIX'),
    hostId,
    lxcpath: setting(env, 'LXCQ_LXCPATH') ?? defaultLxcpath(),
    imagesDir: setting(env, 'LXCQ_IMAGES_DIR'),
    threads: setting(env, 'LXCQ_THREADS'),
    maxJobsInFlight: setting(env, 'LXCQ_MAX_JOBS_IN_FLIGHT'),
    heartbeatMs: setting(env, 'LXCQ_HEARTBEAT_MS'),
    inventoryMs: setting(env, 'LXCQ_INVENTORY_MS'),
    usageIntervalMs: setting(env, 'LXCQ_USAGE_INTERVAL_MS'),
    usageDiskIntervalMs: setting(env, 'LXCQ_USAGE_DISK_INTERVAL_MS'),
    lockMs: setting(env, 'LXCQ_LOCK_MS'),
    jobRetentionSec: setting(env, 'LXCQ_JOB_RETENTION_S'),
    maxExecOutputBytes: setting(env, 'LXCQ_EXEC_MAX_OUTPUT'),
    eventMaxLen: setting(env, 'LXCQ_EVENT_MAXLEN'),
    policy: policyFrom(env),
    transferBind,
    ...(transferAdvertise ? { transferAdvertise } : {}),
    hostOfflineMs: setting(env, 'LXCQ_HOST_OFFLINE_MS'),
    logLevel: setting(env, 'LXCQ_LOG_LEVEL'),
    transferIdleMs: setting(env, 'LXCQ_TRANSFER_IDLE_MS'),
    ...(metricsBindValue ? { metricsBind: metricsBindValue } : {}),
    ...(metricsTokenValue ? { metricsToken: metricsTokenValue } : {}),
    metricsTopContainers: setting(env, 'LXCQ_METRICS_TOP_CONTAINERS'),
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
