/**
 * Redis connections from `LXCQ_REDIS_URL`. ioredis takes `redis://`, `rediss://` and a unix socket
 * path as they are; Redis Sentinel has no URL form in ioredis, so lxcq reads one of its own:
 *
 *   redis-sentinel://[[user]:password@]host:port[,host:port...]/<master name>[?db=N&sentinelPassword=...]
 *
 * The password (and user) are the data nodes'; sentinelUsername / sentinelPassword in the query
 * are the sentinels' own when they have one. ioredis asks the sentinels for the current master
 * and follows a failover by itself; BullMQ's duplicated connections keep these options.
 *
 * Redis Cluster has no URL form in ioredis either:
 *
 *   redis-cluster://[[user]:password@]host:port[,host:port...]
 *
 * names some of the cluster's nodes (ioredis learns the rest and follows slot moves and failovers).
 * Every key one Lua script or MULTI touches must be in one slot, so a cluster needs LXCQ_PREFIX to
 * be a hash tag such as `{lxcq}` (checkPrefixForCluster): every lxcq and BullMQ key then shares it.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { ConfigError } from './env.ts';

/** ioredis's options, as its constructor takes them under exactOptionalPropertyTypes. */
export type RedisClientOptions = Omit<RedisOptions, 'replyMapping'>;

const SENTINEL = /^redis-sentinel:\/\/(?:([^@/]*)@)?([^/?]+)\/([^/?]+)(?:\?(.*))?$/;

/** The ioredis options of a `redis-sentinel://` URL; throws ConfigError (never showing the password). */
export function sentinelOptions(url: string): RedisClientOptions {
  const m = SENTINEL.exec(url);
  if (!m)
    throw new ConfigError(
      'LXCQ_REDIS_URL (value hidden): a Sentinel URL is redis-sentinel://[:password@]host:port[,host:port...]/<master name>[?db=N].',
    );
  const [, userinfo, hostList = '', name = '', query = ''] = m;
  const sentinels = hostList.split(',').map((entry) => {
    const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(entry);
    const port = Number(hp?.[2] ?? 26379);
    if (!hp || port < 1 || port > 65535)
      throw new ConfigError(
        `LXCQ_REDIS_URL (value hidden): sentinel address "${entry.slice(0, 60)}" is not host[:port].`,
      );
    return { host: (hp[1] as string).replace(/^\[(.*)\]$/, '$1'), port };
  });
  const options: RedisClientOptions = { sentinels, name: decodeURIComponent(name) };
  if (userinfo) {
    const i = userinfo.indexOf(':');
    const user = decodeURIComponent(i < 0 ? userinfo : userinfo.slice(0, i));
    if (user) options.username = user;
    if (i >= 0) options.password = decodeURIComponent(userinfo.slice(i + 1));
  }
  for (const [key, value] of new URLSearchParams(query)) {
    if (key === 'db' && /^\d+$/.test(value)) options.db = Number(value);
    else if (key === 'sentinelPassword') options.sentinelPassword = value;
    else if (key === 'sentinelUsername') options.sentinelUsername = value;
    else
      throw new ConfigError(
        `LXCQ_REDIS_URL (value hidden): unknown Sentinel URL parameter "${key.slice(0, 40)}" (db, sentinelUsername, sentinelPassword).`,
      );
  }
  return options;
}

/** A connection to one Redis (direct or through Sentinel) or to a Redis Cluster. */
export type RedisConnection = Redis | Cluster;

const CLUSTER = /^redis-cluster:\/\/(?:([^@/]*)@)?([^/?]+)\/?$/;

/** The seed nodes and credentials of a `redis-cluster://` URL; throws ConfigError (never showing the password). */
export function clusterOptions(url: string): {
  nodes: { host: string; port: number }[];
  username?: string;
  password?: string;
} {
  const m = CLUSTER.exec(url);
  if (!m)
    throw new ConfigError(
      'LXCQ_REDIS_URL (value hidden): a Cluster URL is redis-cluster://[:password@]host:port[,host:port...] (no database, no query).',
    );
  const [, userinfo, hostList = ''] = m;
  const nodes = hostList.split(',').map((entry) => {
    const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(entry);
    const port = Number(hp?.[2] ?? 6379);
    if (!hp || port < 1 || port > 65535)
      throw new ConfigError(
        `LXCQ_REDIS_URL (value hidden): cluster node address "${entry.slice(0, 60)}" is not host[:port].`,
      );
    return { host: (hp[1] as string).replace(/^\[(.*)\]$/, '$1'), port };
  });
  const out: ReturnType<typeof clusterOptions> = { nodes };
  if (userinfo) {
    const i = userinfo.indexOf(':');
    const user = decodeURIComponent(i < 0 ? userinfo : userinfo.slice(0, i));
    if (user) out.username = user;
    if (i >= 0) out.password = decodeURIComponent(userinfo.slice(i + 1));
  }
  return out;
}

export function isClusterUrl(url: string): boolean {
  return url.startsWith('redis-cluster://');
}

/**
 * On a Redis Cluster every key of one script must hash to one slot: LXCQ_PREFIX must hold a hash
 * tag (`{lxcq}`), which every lxcq key and BullMQ's prefix then start with. Throws ConfigError.
 */
export function checkPrefixForCluster(url: string, prefix: string): void {
  if (isClusterUrl(url) && !/^\{[^{}]+\}/.test(prefix))
    throw new ConfigError(
      `LXCQ_PREFIX "${prefix.slice(0, 40)}" has no hash tag, which a Redis Cluster needs (every key one script touches must be in one slot): set LXCQ_PREFIX={${prefix.replace(/[{}]/g, '').slice(0, 40) || 'lxcq'}}.`,
    );
}

/** A Redis client for `LXCQ_REDIS_URL` (one Redis, Sentinel or Cluster), with the caller's options. */
export function redisClient(url: string, options: RedisClientOptions = {}): RedisConnection {
  if (url.startsWith('redis-sentinel://')) return new Redis({ ...sentinelOptions(url), ...options });
  if (isClusterUrl(url)) {
    const { nodes, username, password } = clusterOptions(url);
    const { enableOfflineQueue, ...rest } = options;
    return new Cluster(nodes, {
      redisOptions: {
        ...rest,
        ...(username ? { username } : {}),
        ...(password ? { password } : {}),
      },
      ...(enableOfflineQueue !== undefined ? { enableOfflineQueue } : {}),
      // A failover moves slots to a replica: follow it instead of failing the command.
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 300,
    });
  }
  return new Redis(url, options);
}
