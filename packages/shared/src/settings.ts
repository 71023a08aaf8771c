/**
 * The one table of lxcq settings: every `LXCQ_*` name any part of lxcq reads, with its default,
 * who reads it and what it means. The API and the worker parse their settings through it
 * (`setting(env, name)`), the config-file loader (config-file.ts) refuses names that are not in it,
 * and docs/configuration.md is generated from it (`pnpm --filter @lxcq/shared settings:doc`; a test
 * keeps the two equal).
 *
 * A setting with `parse` is read by a long-running process (API, worker, run supervisor); one
 * without is read by a shell script or the CLI, and is listed so that it is documented and so that
 * it is not mistaken for a typo when it is set in the environment of a service.
 */
import { ConfigError } from './env.ts';
import { assertName } from './names.ts';
import { DEFAULT_NETWORK_LINKS, DEFAULT_NETWORK_TYPES, NETWORK_TYPES } from './policy.ts';
import { clusterOptions, isClusterUrl, sentinelOptions } from './redis.ts';

/** Who reads a setting: the services, `scripts/run.sh` (local.ts), the install script, ... */
export type SettingUser = 'api' | 'worker' | 'run' | 'install' | 'setup' | 'test' | 'cli' | 'compose';

/** Sections of docs/configuration.md, in order. */
export const SETTING_GROUPS = {
  general: 'Config file, Redis and logging',
  api: 'API',
  worker: 'Worker',
  run: 'One-machine run (`scripts/run.sh`)',
  tools: 'Set-up, test and install scripts, CLI, Docker Compose',
} as const;
export type SettingGroup = keyof typeof SETTING_GROUPS;

export interface SettingSpec {
  group: SettingGroup;
  usedBy: readonly SettingUser[];
  meaning: string;
  /** The default as a value (what `setting()` returns when the name is unset or empty). */
  default?: unknown;
  /** The default as documented, when it is computed at start (hostname) or there is none. */
  defaultText?: string;
  /** Turns a non-empty raw value into the setting's value; throws ConfigError naming the setting. */
  parse?: (raw: string, name: string) => unknown;
  /** The value is a secret (a token, a password in a URL): never shown in a message or a log. */
  secret?: boolean;
}

// ---------------------------------------------------------------------------------------------
// parsers: each message names the setting, shows the value (unless secret) and says what fits

/** How a value is shown in a message: secrets never. */
export function shown(name: string, raw: string): string {
  return SETTINGS_BY_NAME.get(name)?.secret ? `${name} (value hidden)` : `${name}=${raw}`;
}

const text = (raw: string): string => raw;

function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string, name: string): number => {
    const n = Number(raw.trim());
    if (raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
      throw new ConfigError(`${shown(name, raw)} is not a whole number ${range}.`);
    }
    return n;
  };
}

function oneOf<const T extends string>(values: readonly T[]) {
  return (raw: string, name: string): T => {
    if (!values.includes(raw as T))
      throw new ConfigError(`${shown(name, raw)} is not one of: ${values.join(', ')}.`);
    return raw as T;
  };
}

function flag(raw: string, name: string): boolean {
  if (raw === '1') return true;
  if (raw === '0') return false;
  throw new ConfigError(`${shown(name, raw)} must be 1 (on) or 0 (off).`);
}

function absolutePath(raw: string, name: string): string {
  if (!raw.startsWith('/')) throw new ConfigError(`${shown(name, raw)} must be an absolute path.`);
  return raw;
}

/** `<address>:<port>`; IPv6 in brackets. `minPort` 0 allows "any free port". */
export function parseHostPort(raw: string, name: string, minPort = 0): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(raw);
  const port = Number(m?.[2]);
  if (!m || !m[1] || port > 65535 || port < minPort)
    throw new ConfigError(
      `${name} must be <address>:<port> (e.g. ${minPort === 0 ? '127.0.0.1:0' : '10.0.0.5:7071'}), not ${raw}.`,
    );
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port };
}

function list(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function networkTypes(raw: string, name: string): string[] {
  const types = list(raw);
  const bad = types.filter((t) => !NETWORK_TYPES.includes(t));
  if (types.length === 0 || bad.length > 0)
    throw new ConfigError(
      `${shown(name, raw)}: ${bad.join(', ') || '(empty)'} not among ${NETWORK_TYPES.join(', ')}.`,
    );
  return types;
}

function networkLinks(raw: string, name: string): string[] {
  const links = list(raw);
  const bad = links.filter((l) => !/^[A-Za-z0-9_.-]{1,15}$/.test(l));
  if (links.length === 0 || bad.length > 0)
    throw new ConfigError(
      `${shown(name, raw)}: ${bad.join(', ') || '(empty)'} is not an interface name (at most 15 letters, digits, _ . -).`,
    );
  return links;
}

function redisUrl(raw: string, name: string): string {
  if (raw.startsWith('redis-sentinel://')) {
    sentinelOptions(raw); // throws a ConfigError saying what is wrong
    return raw;
  }
  if (isClusterUrl(raw)) {
    clusterOptions(raw); // throws a ConfigError saying what is wrong
    return raw;
  }
  if (!/^rediss?:\/\/[^\s]+$/.test(raw) && !/^\/\S+$/.test(raw))
    throw new ConfigError(
      `${shown(name, raw)} must be redis://[:password@]host:port[/db], rediss://... (TLS), redis-sentinel://host:port[,host:port...]/<master name>, redis-cluster://host:port[,host:port...] or the absolute path of a unix socket.`,
    );
  return raw;
}

function prefix(raw: string, name: string): string {
  // Braces only as one leading hash tag ("{lxcq}"), the form Redis Cluster and BullMQ expect.
  if (!/^(\{[A-Za-z0-9_.:-]{1,64}\}|[A-Za-z0-9_.-]{1,64})$/.test(raw))
    throw new ConfigError(
      `${shown(name, raw)} must be letters, digits, ".", "_", "-" (at most 64), optionally in braces as a Redis Cluster hash tag ("{lxcq}").`,
    );
  return raw;
}

function hostId(raw: string, name: string): string {
  try {
    return assertName('host', raw);
  } catch (e) {
    throw new ConfigError(`${name}: ${(e as Error).message}`);
  }
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const DAY_S = 24 * 3600;
const MIB = 1024 * 1024;

/** Every setting. The order is the order of docs/configuration.md within each group. */
export const SETTINGS = {
  // --- general ---------------------------------------------------------------------------------
  LXCQ_CONFIG_FILE: {
    group: 'general',
    usedBy: ['api', 'worker', 'run'],
    defaultText: '(none)',
    parse: absolutePath,
    meaning:
      'A file of `KEY=VALUE` settings (format below). The systemd units set it to `/etc/lxcq/lxcq.conf`. A variable set in the environment overrides the same name in the file.',
  },
  LXCQ_REDIS_URL: {
    group: 'general',
    usedBy: ['api', 'worker', 'run'],
    defaultText: '(required; `run.sh` starts a Redis of its own)',
    parse: redisUrl,
    secret: true,
    meaning:
      'The Redis holding queues, job records, events and the host and container registry: `redis://[:password@]host:port[/db]`, `rediss://` for TLS, the path of a unix socket, Redis Sentinel as `redis-sentinel://[:password@]host:port[,host:port...]/<master name>[?db=N&sentinelPassword=...]`, or Redis Cluster as `redis-cluster://[:password@]host:port[,host:port...]` (some of its nodes; needs `LXCQ_PREFIX` with a hash tag, such as `{lxcq}`). Every API and worker of one installation uses the same one. Given in the environment, a process removes it from its environment at start (so nothing it starts inherits it); `LXCQ_REDIS_URL_FILE` or the config file keep it out of any environment.',
  },
  LXCQ_REDIS_URL_FILE: {
    group: 'general',
    usedBy: ['api', 'worker'],
    defaultText: '(none)',
    parse: absolutePath,
    meaning:
      'A file holding `LXCQ_REDIS_URL` (the value on one line), used when `LXCQ_REDIS_URL` is not set: mode 0600 (0640 for a group that must read it), owned by root for the worker. `run.sh` hands the URL of its own Redis to the API and the worker this way.',
  },
  LXCQ_PREFIX: {
    group: 'general',
    usedBy: ['api', 'worker'],
    default: 'lxcq',
    parse: prefix,
    meaning:
      "Prefix of every Redis key (BullMQ's queues under `<prefix>:bull`). Two installations can share a Redis with different prefixes. `{lxcq}` (a hash tag) keeps every key in one Redis Cluster slot, which a Redis Cluster needs (lxcq refuses to start on one without it).",
  },
  LXCQ_LOG_LEVEL: {
    group: 'general',
    usedBy: ['api', 'worker'],
    default: 'info',
    parse: oneOf(LOG_LEVELS),
    meaning:
      'Least severe level written to the JSON log (stdout): `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.',
  },
  LXCQ_TRACING: {
    group: 'general',
    usedBy: ['api', 'worker'],
    defaultText: 'on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else off',
    parse: flag,
    meaning:
      '`1` traces jobs with OpenTelemetry from the HTTP request to the liblxc call (exported over OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`); `0` never. Off, the SDK is not even loaded (docs/observability.md).',
  },
  LXCQ_METRICS_TOKEN: {
    group: 'general',
    usedBy: ['api', 'worker'],
    defaultText: '(none: the API takes `read` tokens, a worker asks for none)',
    parse: (raw: string, name: string): string => {
      if (raw.length < 16) throw new ConfigError(`${name} must be at least 16 characters.`);
      return raw;
    },
    secret: true,
    meaning:
      'A scrape-only bearer token for `GET /metrics` on the API (besides any `read` token) and on the workers (required there when set).',
  },
  LXCQ_HOST_OFFLINE_MS: {
    group: 'general',
    usedBy: ['api', 'worker'],
    default: 15_000,
    parse: int(100),
    meaning:
      'A host whose worker has sent no heartbeat for this long (ms) is offline: jobs queued for it fail with `LXCQ_HOST_OFFLINE`, and it is no target for placement, migration or cross-host clone.',
  },
  LXCQ_JOB_RETENTION_S: {
    group: 'general',
    usedBy: ['api', 'worker'],
    default: 7 * DAY_S,
    parse: int(1),
    meaning: 'Seconds a job record (state, result, error, log) stays readable after the job ended.',
  },
  LXCQ_EVENT_MAXLEN: {
    group: 'general',
    usedBy: ['api', 'worker'],
    default: 100_000,
    parse: int(100),
    meaning: 'At most this many events are kept in the event stream (clients resume by cursor within it).',
  },
  LXCQ_CONFIG_POLICY: {
    group: 'general',
    usedBy: ['api', 'worker'],
    defaultText: '(none: no raw keys, for anyone)',
    parse: text,
    meaning:
      'Raw container config keys (beyond the allow-list of docs/config-policy.md) that requests made with an **admin** token may set, as key patterns: inline JSON `{"allow":["lxc.hook.*"]}` or the path of a file holding it. Operate tokens never get raw keys. Set the same on the API and on every worker. A hook runs as root on the host.',
  },
  LXCQ_NETWORK_TYPES: {
    group: 'general',
    usedBy: ['api', 'worker'],
    default: DEFAULT_NETWORK_TYPES,
    defaultText: '`veth,empty`',
    parse: networkTypes,
    meaning:
      "Network types (`lxc.net.N.type`) containers may use, comma-separated, from `veth`, `empty`, `macvlan`, `ipvlan`, `vlan`, `phys`, `none`. `none` shares the host's network namespace and `phys`/`macvlan`/`ipvlan`/`vlan` attach a container to a host interface: add them only knowing that.",
  },
  LXCQ_NETWORK_LINKS: {
    group: 'general',
    usedBy: ['api', 'worker'],
    default: DEFAULT_NETWORK_LINKS,
    defaultText: '`lxcbr0`',
    parse: networkLinks,
    meaning:
      "Bridges (for `veth`) or host interfaces (for the other types) a container's network may attach to (`lxc.net.N.link`), comma-separated.",
  },
  LXCQ_OCI_LAYOUT_DIR: {
    group: 'general',
    usedBy: ['api', 'worker'],
    defaultText: '(none: `oci` creates take registry URLs, `docker://...`, only)',
    parse: absolutePath,
    meaning:
      'A directory of OCI image layouts that `create {template: "oci", oci: {url: "oci:<dir>/<layout>[:tag]"}}` may name. Unset, `oci:` URLs (which name host paths) are refused.',
  },
  // --- API -------------------------------------------------------------------------------------
  LXCQ_PORT: {
    group: 'api',
    usedBy: ['api', 'run'],
    default: 7070,
    parse: int(0, 65535),
    meaning: 'TCP port of the HTTP API (0: any free port).',
  },
  LXCQ_HOST_BIND: {
    group: 'api',
    usedBy: ['api', 'run'],
    default: '127.0.0.1',
    parse: text,
    meaning:
      'Address the API listens on: `0.0.0.0` (or `::`) for every interface. Put TLS in front of it (a reverse proxy) when it leaves the host.',
  },
  LXCQ_TOKEN: {
    group: 'api',
    usedBy: ['api', 'run', 'cli'],
    defaultText: '(`run.sh`: generated into `$LXCQ_DATA_DIR/token`; install: generated into the config file)',
    parse: text,
    secret: true,
    meaning:
      'The admin token (16 or more characters). The API needs it (or `LXCQ_TOKEN_FILE`) or `LXCQ_TOKENS_FILE`. The `lxcq` CLI also reads it. Given in the environment, the API removes it from its environment at start.',
  },
  LXCQ_TOKEN_FILE: {
    group: 'api',
    usedBy: ['api'],
    defaultText: '(none)',
    parse: absolutePath,
    meaning:
      "A file holding `LXCQ_TOKEN` (the value on one line), used when `LXCQ_TOKEN` is not set: mode 0600, owned by the API's user. `run.sh` hands the token to the API this way.",
  },
  LXCQ_TOKENS_FILE: {
    group: 'api',
    usedBy: ['api'],
    defaultText: '(none)',
    parse: text,
    meaning:
      'A JSON file of further tokens with scopes: `{"tokens":[{"name":"ci","sha256":"<hex>","scopes":["operate"]}]}` (`"token":"<plain>"` works too).',
  },
  LXCQ_BODY_LIMIT: {
    group: 'api',
    usedBy: ['api'],
    default: MIB,
    parse: int(1024),
    meaning: 'Largest request body in bytes; a larger one is refused with 413 `LXCQ_BODY_TOO_LARGE`.',
  },
  LXCQ_MAX_WAIT_S: {
    group: 'api',
    usedBy: ['api'],
    default: 300,
    parse: int(1),
    meaning: 'Longest `?wait=` / `?timeout=` a request may ask for, in seconds.',
  },
  LXCQ_WS_PING_MS: {
    group: 'api',
    usedBy: ['api'],
    default: 15_000,
    parse: int(100),
    meaning:
      'WebSocket ping period (ms): each client is pinged once per period (the clients in 10 groups spread over it); a client that has not answered a whole period is dropped.',
  },
  LXCQ_WS_MAX_BUFFER: {
    group: 'api',
    usedBy: ['api'],
    default: MIB,
    parse: int(1024),
    meaning:
      'Bytes a WebSocket client may leave unread before it is closed with code 4008 (it can resume by cursor).',
  },
  LXCQ_EVENT_RETENTION_S: {
    group: 'api',
    usedBy: ['api'],
    default: 7 * DAY_S,
    parse: int(1),
    meaning: 'Seconds events are kept in the event stream (and at most `LXCQ_EVENT_MAXLEN` of them).',
  },
  LXCQ_LOG_REQUESTS: {
    group: 'api',
    usedBy: ['api'],
    default: false,
    parse: flag,
    meaning: '`1` logs one line per HTTP request; `0` logs errors only.',
  },
  LXCQ_SUBMIT_GRACE_MS: {
    group: 'api',
    usedBy: ['api'],
    default: 15_000,
    parse: int(100),
    meaning:
      'A submission cut off half-way (Redis or the API gone after the job was recorded, before it reached its host queue) is failed with `LXCQ_REDIS_UNAVAILABLE` once it is this old, freeing its names.',
  },
  LXCQ_API_PROCESSES: {
    group: 'api',
    usedBy: ['api', 'run'],
    default: 1,
    parse: int(1, 64),
    meaning:
      'API processes sharing the port (node:cluster). Each follows the event stream and serves any client, so WebSocket fan-out and requests use that many cores; one that dies is replaced.',
  },
  LXCQ_DASHBOARD_DIR: {
    group: 'api',
    usedBy: ['api'],
    defaultText: '`packages/dashboard/dist` of the checkout',
    parse: absolutePath,
    meaning: 'The built web dashboard the API serves at `/ui/`.',
  },
  LXCQ_HEALTH_MAX_EVENT_LAG_S: {
    group: 'api',
    usedBy: ['api'],
    default: 30,
    parse: int(1),
    meaning: '`GET /v1/health` answers 503 when the event reader is this many seconds behind the stream.',
  },
  // --- worker ----------------------------------------------------------------------------------
  LXCQ_HOST_ID: {
    group: 'worker',
    usedBy: ['worker', 'run'],
    defaultText: 'the hostname',
    parse: hostId,
    meaning:
      "This host's id in lxcq (letters, digits, `-`, `.`, `_`). Keep it stable: the host's queue and its containers' records are under it. Each host needs its own.",
  },
  LXCQ_LXCPATH: {
    group: 'worker',
    usedBy: ['worker', 'run'],
    defaultText: '`lxc-config lxc.lxcpath` (`/var/lib/lxc`)',
    parse: absolutePath,
    meaning: "Where containers live; the default is the `lxc-*` tools' own, so `lxc-ls` sees what lxcq made.",
  },
  LXCQ_IMAGES_DIR: {
    group: 'worker',
    usedBy: ['worker'],
    default: '/var/lib/lxcq/images',
    parse: absolutePath,
    meaning: 'Where `create` with `template: "local"` finds its rootfs and metadata tarballs.',
  },
  LXCQ_THREADS: {
    group: 'worker',
    usedBy: ['worker'],
    default: 4,
    parse: int(1),
    meaning: 'Threads running liblxc calls at once (piscina pool).',
  },
  LXCQ_MAX_JOBS_IN_FLIGHT: {
    group: 'worker',
    usedBy: ['worker'],
    default: 64,
    parse: int(1),
    meaning:
      'Jobs the worker takes from its queue at once; a job waiting behind another on the same container holds a slot, not a thread.',
  },
  LXCQ_HEARTBEAT_MS: {
    group: 'worker',
    usedBy: ['worker'],
    default: 5000,
    parse: int(100),
    meaning: 'Heartbeat period (ms). Keep it well under `LXCQ_HOST_OFFLINE_MS`.',
  },
  LXCQ_INVENTORY_MS: {
    group: 'worker',
    usedBy: ['worker'],
    default: 30_000,
    parse: int(100),
    meaning: 'Period (ms) of the full inventory of the lxcpath (containers made or removed outside lxcq).',
  },
  LXCQ_USAGE_INTERVAL_MS: {
    group: 'worker',
    usedBy: ['worker'],
    default: 5000,
    parse: int(500),
    meaning:
      "Period (ms) of the worker's usage collection: CPU, memory, pids and network of every running container, read from its cgroup files and its network namespace's /proc/net/dev (GET /v1/containers/:name/state, container.usage events, the lxcq_container_* metrics).",
  },
  LXCQ_USAGE_DISK_INTERVAL_MS: {
    group: 'worker',
    usedBy: ['worker'],
    default: 300_000,
    parse: int(1000),
    meaning:
      "How often (ms) a container's disk use is measured again (du of a dir rootfs, one container at a time, off the collection pass); between measurements the last figure is reported with its time.",
  },
  LXCQ_LOCK_MS: {
    group: 'worker',
    usedBy: ['worker'],
    default: 30_000,
    parse: int(1000),
    meaning:
      'BullMQ job lock (ms): a job whose worker stops renewing it for this long (the worker died) is taken up again, or failed with `LXCQ_WORKER_LOST` when it must not run twice.',
  },
  LXCQ_EXEC_MAX_OUTPUT: {
    group: 'worker',
    usedBy: ['worker'],
    default: MIB,
    parse: int(1),
    meaning: 'Bytes of stdout and of stderr kept from an `exec` (the rest is cut).',
  },
  LXCQ_TRANSFER_BIND: {
    group: 'worker',
    usedBy: ['worker'],
    default: { host: '127.0.0.1', port: 0 },
    defaultText: '`127.0.0.1:0`',
    parse: (raw: string, name: string) => parseHostPort(raw, name, 0),
    meaning:
      'Where the worker-to-worker transfer server (migrate, cross-host clone) listens, `<address>:<port>`; port 0 picks a free one. With several hosts: an address the other hosts reach and a fixed port.',
  },
  LXCQ_TRANSFER_ADVERTISE: {
    group: 'worker',
    usedBy: ['worker'],
    defaultText: 'the bound address and port',
    parse: (raw: string, name: string): string => (parseHostPort(raw, name, 1), raw),
    meaning:
      'The `<address>:<port>` other workers connect to for transfers, when it differs from the bound one (required when `LXCQ_TRANSFER_BIND` listens on every address).',
  },
  LXCQ_TRANSFER_IDLE_MS: {
    group: 'worker',
    usedBy: ['worker'],
    default: 60_000,
    parse: int(500),
    meaning:
      'A migration or cross-host clone stream silent this long (a dead link, a hung host) is cut on both ends and rolled back.',
  },
  LXCQ_METRICS_BIND: {
    group: 'worker',
    usedBy: ['worker'],
    defaultText: '(none: no metrics server)',
    parse: (raw: string, name: string) => parseHostPort(raw, name, 0),
    meaning: "Where the worker's Prometheus `/metrics` server listens, `<address>:<port>`.",
  },
  LXCQ_METRICS_TOP_CONTAINERS: {
    group: 'worker',
    usedBy: ['worker'],
    default: 20,
    parse: int(0),
    meaning: 'Containers with waiting jobs that get a series of their own in `lxcq_container_waiting_jobs`.',
  },
  LXCQ_FAILPOINTS: {
    group: 'worker',
    usedBy: ['worker', 'test'],
    defaultText: '(none)',
    parse: text,
    meaning:
      'Tests only: comma-separated failpoints (`migrate.before-transfer`, `migrate.before-purge`, `make.before-unmark`) at which the worker SIGKILLs itself, to put a crash exactly in a window a test proves safe.',
  },
  LXCQ_LIBLXC: {
    group: 'worker',
    usedBy: ['worker'],
    default: 'liblxc.so.1',
    parse: text,
    meaning: "Path or soname of liblxc, when it is not the system's.",
  },
  LXCQ_LXC_BINDIR: {
    group: 'worker',
    usedBy: ['worker'],
    defaultText: '(found on `PATH`)',
    parse: absolutePath,
    meaning: 'Directory of the `lxc-*` tools (`lxc-start`, `lxc-checkpoint`, ...) the worker runs.',
  },
  LXCQ_LXC_MONITORD: {
    group: 'worker',
    usedBy: ['worker'],
    defaultText: "(the distribution's libexec directory)",
    parse: absolutePath,
    meaning: 'Path of `lxc-monitord`, when it is not where the distribution puts it.',
  },
  // --- run -------------------------------------------------------------------------------------
  LXCQ_DATA_DIR: {
    group: 'run',
    usedBy: ['run'],
    default: '/var/lib/lxcq',
    parse: text,
    meaning: "`run.sh`'s data: the generated token, its own Redis's AOF, its lock file.",
  },
  LXCQ_API_USER: {
    group: 'run',
    usedBy: ['run'],
    defaultText: '(the same user, root)',
    parse: text,
    meaning: 'Run the API process as this user (it needs no root).',
  },
  LXCQ_START_TIMEOUT: {
    group: 'run',
    usedBy: ['run'],
    default: 90,
    parse: int(1, 3600),
    meaning: 'Seconds `run.sh` waits for Redis and for `GET /v1/health`.',
  },
  LXCQ_STOP_TIMEOUT: {
    group: 'run',
    usedBy: ['run'],
    default: 30,
    parse: int(1, 3600),
    meaning: 'Seconds `run.sh` gives each process to stop after SIGTERM, before SIGKILL.',
  },
  LXCQ_RUN_SKIP_SETUP: {
    group: 'run',
    usedBy: ['run'],
    default: '0',
    parse: oneOf(['0', '1']),
    meaning: '`1`: `run.sh` does not run `scripts/setup-host.sh` first.',
  },
  // --- tools -----------------------------------------------------------------------------------
  LXCQ_URL: {
    group: 'tools',
    usedBy: ['cli'],
    defaultText: '(the saved login)',
    meaning: 'The API URL the `lxcq` CLI talks to (then `LXCQ_TOKEN`, then `lxcq login`).',
  },
  LXCQ_SETUP_APT: {
    group: 'tools',
    usedBy: ['setup'],
    default: '1',
    meaning: '`0` skips the apt packages step of `scripts/setup-host.sh`.',
  },
  LXCQ_SETUP_CRIU: {
    group: 'tools',
    usedBy: ['setup'],
    default: '1',
    meaning: '`0` skips the CRIU step.',
  },
  LXCQ_SETUP_BRIDGE: {
    group: 'tools',
    usedBy: ['setup'],
    default: '1',
    meaning: '`0` skips the bridge step.',
  },
  LXCQ_SETUP_IDMAP: {
    group: 'tools',
    usedBy: ['setup'],
    default: '1',
    meaning:
      '`0` skips the step that gives root a subordinate id range (`root:1000000:1000000000` in /etc/subuid and /etc/subgid) for unprivileged containers.',
  },
  LXCQ_SETUP_TEST_PACKAGES: {
    group: 'tools',
    usedBy: ['setup'],
    default: '1',
    meaning:
      '`0` leaves out the packages only the tests need (chromium, zsh, acl, attr, libcap2-bin, systemd).',
  },
  LXCQ_CHROMIUM: {
    group: 'tools',
    usedBy: ['test'],
    defaultText: '`/usr/bin/chromium`',
    meaning: "The Chromium binary the dashboard's browser test drives.",
  },
  LXCQ_SETUP_NODE: {
    group: 'tools',
    usedBy: ['setup'],
    default: '1',
    meaning: '`0` skips the Node.js and pnpm step.',
  },
  LXCQ_SETUP_PNPM_INSTALL: {
    group: 'tools',
    usedBy: ['setup'],
    default: '1',
    meaning: '`0` skips `pnpm install` in the checkout.',
  },
  LXCQ_APT_UPDATE: {
    group: 'tools',
    usedBy: ['setup'],
    default: '0',
    meaning: '`1` always runs `apt-get update` (by default only when a package is missing).',
  },
  LXCQ_BRIDGE: {
    group: 'tools',
    usedBy: ['setup'],
    default: 'lxcbr0',
    meaning: 'Name of the bridge the set-up creates when missing.',
  },
  LXCQ_CRIU_PREFIX: {
    group: 'tools',
    usedBy: ['setup'],
    default: '/opt/lxcq/criu',
    meaning: 'Where the set-up unpacks a private CRIU 4.',
  },
  LXCQ_CRIU_REINSTALL: {
    group: 'tools',
    usedBy: ['setup'],
    default: '0',
    meaning: '`1` fetches the private CRIU again.',
  },
  LXCQ_CRIU_MIRROR: {
    group: 'tools',
    usedBy: ['setup'],
    default: 'http://deb.debian.org/debian',
    meaning: 'Debian mirror for the private CRIU.',
  },
  LXCQ_CRIU_SUITE: {
    group: 'tools',
    usedBy: ['setup'],
    default: 'trixie',
    meaning: 'Debian suite for the private CRIU.',
  },
  LXCQ_CRIU_FALLBACK_SUITE: {
    group: 'tools',
    usedBy: ['setup'],
    default: 'sid',
    meaning:
      'Newer Debian suite the set-up takes CRIU from when the first one cannot dump a process holding a unix and a TCP socket on this kernel (criu 4.1.1 cannot on Linux >= 6.16).',
  },
  LXCQ_TEST_SKIP_SETUP: {
    group: 'tools',
    usedBy: ['test'],
    default: '0',
    meaning: '`1`: `scripts/test.sh` does not run the set-up first.',
  },
  LXCQ_TEST_TIMEOUT: {
    group: 'tools',
    usedBy: ['test'],
    default: '3000',
    meaning: 'Bound on the vitest run of `scripts/test.sh`, in seconds.',
  },
  LXCQ_REQUIRE_CRIU: {
    group: 'tools',
    usedBy: ['test'],
    default: '0',
    meaning:
      '`1` (or `CI` set): the CRIU tests fail, rather than pass as "unavailable", when CRIU does not work.',
  },
  LXCQ_INSTALL_SYSTEMCTL: {
    group: 'tools',
    usedBy: ['install'],
    defaultText: '`systemctl` (when systemd is PID 1)',
    meaning:
      '`scripts/install.sh` runs this instead of `systemctl`, also under `--root` and where systemd is not PID 1 (the tests record its calls).',
  },
  LXCQ_REDIS_PASSWORD: {
    group: 'tools',
    usedBy: ['compose'],
    defaultText: '(required)',
    secret: true,
    meaning: "Password of `docker-compose.yml`'s Redis (letters and digits: it goes into a URL).",
  },
  LXCQ_REDIS_PORT: {
    group: 'tools',
    usedBy: ['compose'],
    default: '6379',
    meaning:
      "Host loopback port `docker-compose.yml` publishes its Redis on (the worker runs in the host's network).",
  },
} as const satisfies Record<`LXCQ_${string}`, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;
/** The settings a process parses (the rest belong to scripts and the CLI). */
export type ParsedSettingName = {
  [K in SettingName]: (typeof SETTINGS)[K] extends { parse: unknown } ? K : never;
}[SettingName];
type ParsedValue<K extends ParsedSettingName> = (typeof SETTINGS)[K] extends {
  parse: (raw: string, name: string) => infer T;
}
  ? T
  : never;
/** A setting's type: its parsed value, or `| undefined` when it has no default. */
export type SettingValue<K extends ParsedSettingName> = (typeof SETTINGS)[K] extends { default: unknown }
  ? ParsedValue<K>
  : ParsedValue<K> | undefined;

const SETTINGS_BY_NAME: ReadonlyMap<string, SettingSpec> = new Map(Object.entries(SETTINGS));

/**
 * Prefixes of names that belong to development tools (benchmarks, tracing): accepted in the
 * environment of a service, never read by one. Documented in docs/configuration.md.
 */
export const DEV_PREFIXES = ['LXCQ_BENCH_', 'LXCQ_TRACE_'] as const;

export function isKnownSetting(name: string): boolean {
  return SETTINGS_BY_NAME.has(name) || DEV_PREFIXES.some((p) => name.startsWith(p));
}

/** A setting's value from `env` (already merged with the config file): parsed, else its default. */
export function setting<K extends ParsedSettingName>(env: NodeJS.ProcessEnv, name: K): SettingValue<K> {
  const spec: SettingSpec = SETTINGS[name];
  const raw = env[name];
  if (raw === undefined || raw === '') return spec.default as SettingValue<K>;
  return (spec.parse as (raw: string, name: string) => unknown)(raw, name) as SettingValue<K>;
}

/** Edit distance (optimal string alignment: insertions, deletions, substitutions, swaps). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, ((d[i - 2] as number[])[j - 2] as number) + 1);
      row[j] = v;
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

/** The known setting nearest to a misspelt name (first in table order on a tie). */
export function closestSetting(name: string): SettingName {
  let best: SettingName = 'LXCQ_CONFIG_FILE';
  let bestDistance = Infinity;
  for (const known of Object.keys(SETTINGS) as SettingName[]) {
    const distance = editDistance(name.toUpperCase(), known);
    if (distance < bestDistance) {
      best = known;
      bestDistance = distance;
    }
  }
  return best;
}

/** The message for an `LXCQ_*` name that no part of lxcq reads (a typo, most likely). */
export function unknownSettingMessage(name: string, where: string): string {
  return `unknown setting ${name} ${where}; the closest known setting is ${closestSetting(name)} (every setting: docs/configuration.md).`;
}
