/**
 * Redis connections from `LXCQ_REDIS_URL`. ioredis takes `redis://`, `rediss://` and a unix socket
 * path as they are; Redis Sentinel has no URL form in ioredis, so lxcq reads one of its own:
 *
 *   redis-sentinel://[[user]:password@]host:port[,host:port...]/<master name>[?db=N&sentinelPassword=...]
 *
 * The password (and user) are the data nodes'; sentinelUsername / sentinelPassword in the query
 * are the sentinels' own when they have one. ioredis asks the sentinels for the current master
 * and follows a failover by itself; BullMQ's duplicated connections keep these options.
 */
import { Redis, type RedisOptions } from 'ioredis';
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

/** A Redis client for `LXCQ_REDIS_URL`, Sentinel included, with the caller's options. */
export function redisClient(url: string, options: RedisClientOptions = {}): Redis {
  if (url.startsWith('redis-sentinel://')) return new Redis({ ...sentinelOptions(url), ...options });
  return new Redis(url, options);
}
