import type { EventEmitter } from 'node:events';

/**
 * Logs a Redis client's lost connection once (not at every reconnect attempt) and its return.
 * Without an `error` listener ioredis prints "[ioredis] Unhandled error event" to stderr at every
 * attempt, outside the structured log.
 */
export function logRedisConnection(
  client: EventEmitter,
  what: string,
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void },
): void {
  let down = false;
  client.on('error', (err: Error) => {
    if (down) return;
    down = true;
    log.warn({ redis: what, err: err.message }, 'Redis connection lost; reconnecting');
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    log.info({ redis: what }, 'Redis connection back');
  });
}
