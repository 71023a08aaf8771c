/** Helpers of the tests that start Redis topologies of their own (Sentinel, Cluster) on loopback. */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { TOKEN } from './harness.ts';

/** Polls `probe` until it gives a value (a throw counts as not yet), or fails after `ms`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * One command to the Redis on 127.0.0.1:`port`, on a connection of its own. `replicaReads`: a
 * cluster replica answers reads of its master's slots only after READONLY (else MOVED).
 */
export async function ask(
  port: number,
  command: string[],
  opts: { replicaReads?: boolean } = {},
): Promise<unknown> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await r.connect();
    if (opts.replicaReads) await r.call('READONLY');
    return await r.call(command[0] as string, ...command.slice(1));
  } finally {
    r.disconnect();
  }
}

/** A JSON request to the API at `base` with the harness's admin token. */
export async function http<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as T };
}
