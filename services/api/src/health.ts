import type { ApiContext } from './context.ts';

/** One thing `GET /v1/health` looked at. */
export interface HealthCheck {
  /** `redis`, `hosts`, `events`, or `host:<id>` for one host. */
  name: string;
  /** fail: lxcq cannot do its work (503); warn: it works, with something missing or late (200). */
  status: 'ok' | 'warn' | 'fail';
  /** What is wrong and what to do, or what is fine. */
  message: string;
}

export interface Health {
  /** unavailable: some check failed (HTTP 503); degraded: some warned; ok: none did. */
  status: 'ok' | 'degraded' | 'unavailable';
  redis: 'ok' | 'unreachable';
  hosts?: { online: number; total: number };
  /** The messages of every check that is not ok (what `lxcq health` prints). */
  problems: string[];
  checks: HealthCheck[];
}

const REDIS_TIMEOUT_MS = 2000;
/** The reader blocks 5 s at most when idle; three times that without a word from Redis is a fault. */
const READER_SILENCE_MS = 15_000;

function timeout(ms: number): Promise<never> {
  return new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref(),
  );
}

const ago = (ms: number) => (Number.isFinite(ms) ? `${Math.round(ms / 1000)} s ago` : 'never');

/**
 * What is wrong with this lxcq, checked live: Redis, the hosts (registered, online, draining,
 * CRIU) and this API's event reader. Public (no token): it names hosts but no secret.
 */
export async function checkHealth(ctx: ApiContext): Promise<Health> {
  const checks: HealthCheck[] = [];
  let redisUp = true;
  try {
    await Promise.race([ctx.redis.ping(), timeout(REDIS_TIMEOUT_MS)]);
    checks.push({ name: 'redis', status: 'ok', message: 'Redis answers.' });
  } catch (err) {
    redisUp = false;
    checks.push({
      name: 'redis',
      status: 'fail',
      message: `Redis cannot be reached (${(err as Error).message}): nothing can be accepted or read. Check that Redis runs and that LXCQ_REDIS_URL points at it.`,
    });
  }

  let hosts: Health['hosts'];
  if (redisUp) {
    try {
      hosts = await hostChecks(ctx, checks);
    } catch (err) {
      checks.push({
        name: 'hosts',
        status: 'fail',
        message: `The host registry could not be read from Redis (${(err as Error).message}).`,
      });
    }
  }

  const hub = ctx.events;
  if (hub) {
    const silence = Date.now() - hub.lastReadAt;
    let lag: { seconds: number; behind: boolean } | null = null;
    if (redisUp) lag = await hub.lag().catch(() => null);
    if (silence > READER_SILENCE_MS) {
      checks.push({
        name: 'events',
        status: 'fail',
        message: `The event reader has not heard from Redis for ${Math.round(silence / 1000)} s${hub.lastReadError ? ` (${hub.lastReadError})` : ''}: WebSocket clients get no events from this API process.`,
      });
    } else if (lag && lag.seconds > ctx.config.healthMaxEventLagSec) {
      checks.push({
        name: 'events',
        status: 'fail',
        message: `The event reader is ${lag.seconds.toFixed(1)} s behind the event stream (bound LXCQ_HEALTH_MAX_EVENT_LAG_S=${ctx.config.healthMaxEventLagSec}): WebSocket clients get events late. Look for a busy API process (event-loop delay) or a flood of events.`,
      });
    } else {
      checks.push({
        name: 'events',
        status: 'ok',
        message: lag?.behind
          ? `The event reader is ${lag.seconds.toFixed(3)} s behind the stream.`
          : 'The event reader is caught up with the stream.',
      });
    }
  }

  const failed = checks.some((c) => c.status === 'fail');
  const warned = checks.some((c) => c.status === 'warn');
  return {
    status: failed ? 'unavailable' : warned ? 'degraded' : 'ok',
    redis: redisUp ? 'ok' : 'unreachable',
    ...(hosts ? { hosts } : {}),
    problems: checks.filter((c) => c.status !== 'ok').map((c) => c.message),
    checks,
  };
}

async function hostChecks(ctx: ApiContext, checks: HealthCheck[]): Promise<Health['hosts']> {
  const hosts = await ctx.store.listHosts(ctx.config.hostOfflineMs);
  const up = hosts.filter((h) => h.status !== 'offline');
  // A worker that stopped cleanly said goodbye (its host record says so); one gone silent did not.
  const stopped = new Set<string>();
  for (const h of hosts)
    if (h.status === 'offline' && (await ctx.redis.hget(ctx.keys.host(h.id), 'stopped')) === '1')
      stopped.add(h.id);
  const why = (id: string, lastSeen: string) =>
    `${id} (${stopped.has(id) ? 'its worker stopped' : 'silent'}, last heartbeat ${ago(Date.now() - Date.parse(lastSeen))})`;
  if (hosts.length === 0) {
    checks.push({
      name: 'hosts',
      status: 'fail',
      message:
        'No host has registered: start a worker (services/worker) on each LXC host, with the same LXCQ_REDIS_URL and LXCQ_PREFIX as the API.',
    });
  } else if (up.length === 0) {
    checks.push({
      name: 'hosts',
      status: 'fail',
      message: `No online host, so no job can run: ${hosts.map((h) => why(h.id, h.lastSeen)).join(', ')}. Start (or restart) their workers.`,
    });
  } else if (!up.some((h) => h.status === 'online')) {
    checks.push({
      name: 'hosts',
      status: 'warn',
      message:
        'Every online host is draining: new containers are refused (LXCQ_NO_HOST). Undrain one: POST /v1/hosts/<id>/undrain.',
    });
  } else {
    checks.push({ name: 'hosts', status: 'ok', message: `${up.length} of ${hosts.length} hosts online.` });
  }
  for (const h of hosts) {
    const name = `host:${h.id}`;
    if (h.status === 'offline') {
      // With no host up, the hosts check above already names it; a cleanly stopped one is no fault.
      if (!stopped.has(h.id) && up.length > 0)
        checks.push({
          name,
          status: 'warn',
          message: `Host ${why(h.id, h.lastSeen)} is offline: its containers' jobs fail with LXCQ_HOST_OFFLINE until its worker is back.`,
        });
      continue;
    }
    if (!h.capabilities.criu) {
      checks.push({
        name,
        status: 'warn',
        message: `Host ${h.id} has no working CRIU${h.capabilities.criuMessage ? ` (${h.capabilities.criuMessage})` : ''}: checkpoint, restore and live migration are refused there. See scripts/setup-host.sh.`,
      });
    }
  }
  return { online: up.length, total: hosts.length };
}
