import type { IncomingHttpHeaders } from 'node:http';
import type { RedisConnection as Redis } from '@lxcq/shared';
import type { Keys, Store, StoredJob } from '@lxcq/shared';
import type { Tokens } from './auth.ts';
import type { ApiConfig } from './config.ts';
import type { EventHub } from './events.ts';
import type { JobService } from './jobs.ts';
import type { RequestObserver } from './observe.ts';

export type PublicJob = Omit<StoredJob, 'locks' | 'seq'> & { withheld?: string[] };

/** What every route handler needs, built once in app.ts (no module-level singletons). */
export interface ApiContext {
  config: ApiConfig;
  redis: Redis;
  store: Store;
  keys: Keys;
  jobs: JobService;
  tokens: Tokens;
  /** The WebSocket fan-out (set once the hub has started). */
  events: EventHub | null;
  /** Per-request metrics and trace spans (the route handlers pass a request's span to its job). */
  observer: RequestObserver;
  /**
   * A job as the client of `req` sees it: the stored record without internal fields, and, for a
   * token without the operate scope, without the operation's confidential fields (an exec's argv,
   * env and output), which `withheld` then names.
   */
  publicJob(job: StoredJob, req: { headers: IncomingHttpHeaders }): PublicJob;
}
