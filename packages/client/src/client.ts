import type {
  ContainerStateReport,
  ContainerInfo,
  ContainerState,
  HostInfo,
  Job,
  JobState,
  OperationName,
  PayloadOf,
  PoolInfo,
  SnapshotInfo,
} from '@lxcq/shared';
import { LxcqConnectionError, LxcqError, httpError, networkReason } from './errors.ts';
import {
  EventStream,
  eventsUrl,
  type EventOf,
  type EventSelector,
  type EventsOptions,
  type Selected,
} from './events.ts';
import { JobHandle, type WaitOptions } from './job-handle.ts';
import { defaultWebSocket, isNode, type WebSocketConstructor } from './websocket.ts';

/** The part of a fetch Response the client reads. */
export interface ResponseLike {
  status: number;
  text(): Promise<string>;
}

/** The part of `fetch` the client calls (the global fetch of Node >= 18 and browsers fits). */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<ResponseLike>;

export interface LxcqClientOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:7070`. */
  url: string;
  /** A bearer token (every route but `GET /v1/health` needs one). */
  token?: string | undefined;
  /** Default: the global `fetch`. */
  fetch?: FetchLike;
  /** Default: `ws` under Node (loaded on demand), the global `WebSocket` in browsers. */
  WebSocket?: WebSocketConstructor;
  /**
   * How the events socket carries the token: an Authorization header (only `ws` can send one;
   * the default under Node), the `bearer.<token>` subprotocol (the default in browsers), or both
   * (the default for a `WebSocket` given here, since the SDK cannot tell which kind it is).
   */
  wsAuth?: 'header' | 'subprotocol' | 'both';
  /** Extra headers on every HTTP request. */
  headers?: Record<string, string>;
}

/** Options of every mutating call. */
export interface SubmitOptions {
  /** Sent as `Idempotency-Key`: the same key returns the first job instead of a new one. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

export type CreateRequest = { name: string; host?: string } & PayloadOf<'create'>;

export interface HealthInfo {
  /** unavailable (HTTP 503): a check failed; degraded: one warned (e.g. a host without CRIU). */
  status: 'ok' | 'degraded' | 'unavailable';
  redis: string;
  hosts?: { online: number; total: number };
  problems: string[];
  /** Every check made: redis, hosts, events, and host:<id> for a host with something to say. */
  checks?: { name: string; status: 'ok' | 'warn' | 'fail'; message: string }[];
}

export interface JobFilter {
  container?: string;
  host?: string;
  state?: JobState;
  limit?: number;
  /** The `next` of a previous page. */
  cursor?: string;
}

export interface JobPage {
  jobs: Job[];
  next: string | null;
}

type Query = Record<string, string | number | boolean | undefined>;

interface RequestOptions {
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** Statuses besides 2xx whose body is returned rather than thrown. */
  accept?: number[];
}

const seg = (s: string) => encodeURIComponent(s);

/** HTTP to one lxcq API: auth, JSON, and errors turned into LxcqError / LxcqConnectionError. */
class Transport {
  readonly base: string;
  private readonly fetchFn: FetchLike;

  constructor(readonly opts: LxcqClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new TypeError(
        `Invalid lxcq URL ${JSON.stringify(opts.url)}: expected e.g. http://127.0.0.1:7070.`,
      );
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new TypeError(`Invalid lxcq URL ${JSON.stringify(opts.url)}: use http:// or https://.`);
    this.base = opts.url.replace(/\/+$/, '');
    const global = (globalThis as { fetch?: FetchLike }).fetch;
    const f = opts.fetch ?? (global ? global.bind(globalThis) : undefined);
    if (!f) throw new TypeError('This environment has no fetch: pass one as new LxcqClient({ fetch }).');
    this.fetchFn = f;
  }

  async request<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...this.opts.headers,
      ...o.headers,
    };
    if (this.opts.token !== undefined) headers.authorization = `Bearer ${this.opts.token}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(o.body);
    }
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) qs.set(k, String(v));
    const url = `${this.base}${path}${qs.toString() ? `?${qs.toString()}` : ''}`;
    let res: ResponseLike;
    try {
      res = await this.fetchFn(url, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
      });
    } catch (err) {
      if (o.signal?.aborted) throw err;
      throw new LxcqConnectionError(this.base, networkReason(err), err);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new LxcqConnectionError(this.base, networkReason(err), err);
    }
    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    const ok = (res.status >= 200 && res.status < 300) || (o.accept ?? []).includes(res.status);
    if (!ok) throw httpError(this.base, res.status, parsed);
    if (parsed === undefined && text !== '')
      throw new LxcqError(
        'LXCQ_INTERNAL',
        `${method} ${url} answered ${res.status} with something other than JSON: is this the URL of an lxcq API?`,
      );
    return parsed as T;
  }

  submit<N extends OperationName>(
    deps: LxcqClient,
    method: string,
    path: string,
    body: unknown,
    opts: SubmitOptions & { query?: Query } = {},
  ): JobHandle<N> {
    const job = this.request<Job>(method, path, {
      ...(body !== undefined ? { body } : {}),
      ...(opts.query ? { query: opts.query } : {}),
      ...(opts.idempotencyKey !== undefined ? { headers: { 'idempotency-key': opts.idempotencyKey } } : {}),
      signal: opts.signal,
    });
    return deps.jobs.handle<N>(job);
  }
}

/** Containers: reads, and every operation as a JobHandle. */
export class ContainersApi {
  constructor(
    private readonly t: Transport,
    private readonly c: LxcqClient,
  ) {}

  /** `GET /v1/containers`, optionally only those on a host or in a state. */
  list(filter: { host?: string; state?: ContainerState } = {}): Promise<ContainerInfo[]> {
    return this.t.request('GET', '/v1/containers', { query: { host: filter.host, state: filter.state } });
  }

  get(name: string): Promise<ContainerInfo> {
    return this.t.request('GET', `/v1/containers/${seg(name)}`);
  }

  /** `GET /v1/containers/:name/state`: CPU, memory, pids, network, disk and uptime, with the limits. */
  state(name: string): Promise<ContainerStateReport> {
    return this.t.request('GET', `/v1/containers/${seg(name)}/state`);
  }

  create(req: CreateRequest, opts?: SubmitOptions): JobHandle<'create'> {
    return this.t.submit(this.c, 'POST', '/v1/containers', req, opts);
  }

  /** Destroys a stopped container (`force` stops it first; snapshots need `withSnapshots`). */
  destroy(name: string, p: PayloadOf<'destroy'> = {}, opts?: SubmitOptions): JobHandle<'destroy'> {
    return this.t.submit(this.c, 'DELETE', `/v1/containers/${seg(name)}`, undefined, {
      ...opts,
      query: { withSnapshots: p.withSnapshots, force: p.force },
    });
  }

  start(name: string, opts?: SubmitOptions): JobHandle<'start'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/start`, {}, opts);
  }

  stop(name: string, opts?: SubmitOptions): JobHandle<'stop'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/stop`, {}, opts);
  }

  /** Clean power-off; past `timeout` seconds fails with LXCQ_TIMEOUT, or stops hard with `force`. */
  shutdown(name: string, p: PayloadOf<'shutdown'> = {}, opts?: SubmitOptions): JobHandle<'shutdown'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/shutdown`, p, opts);
  }

  reboot(name: string, p: PayloadOf<'reboot'> = {}, opts?: SubmitOptions): JobHandle<'reboot'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/reboot`, p, opts);
  }

  freeze(name: string, opts?: SubmitOptions): JobHandle<'freeze'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/freeze`, {}, opts);
  }

  unfreeze(name: string, opts?: SubmitOptions): JobHandle<'unfreeze'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/unfreeze`, {}, opts);
  }

  rename(name: string, newName: string, opts?: SubmitOptions): JobHandle<'rename'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/rename`, { newName }, opts);
  }

  clone(name: string, p: PayloadOf<'clone'>, opts?: SubmitOptions): JobHandle<'clone'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/clone`, p, opts);
  }

  /** CRIU checkpoint of a running container (`stop` stops it after the dump). */
  checkpoint(name: string, p: PayloadOf<'checkpoint'> = {}, opts?: SubmitOptions): JobHandle<'checkpoint'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/checkpoint`, p, opts);
  }

  /** Restores a stopped container from one of its checkpoints. */
  restore(name: string, checkpoint: string, opts?: SubmitOptions): JobHandle<'restore'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/restore`, { checkpoint }, opts);
  }

  migrate(name: string, p: PayloadOf<'migrate'>, opts?: SubmitOptions): JobHandle<'migrate'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/migrate`, p, opts);
  }

  /** Runs a command in a running container; the result has its exit code and output. */
  exec(name: string, p: PayloadOf<'exec'>, opts?: SubmitOptions): JobHandle<'exec'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/exec`, p, opts);
  }

  /** The saved config, as liblxc resolves it. */
  async config(name: string): Promise<Record<string, string>> {
    return (
      await this.t.request<{ config: Record<string, string> }>('GET', `/v1/containers/${seg(name)}/config`)
    ).config;
  }

  /** `PATCH .../config {set?, clear?}` (a config.set job). */
  patchConfig(name: string, p: PayloadOf<'config.set'>, opts?: SubmitOptions): JobHandle<'config.set'> {
    return this.t.submit(this.c, 'PATCH', `/v1/containers/${seg(name)}/config`, p, opts);
  }

  /**
   * Converts a stopped privileged container to unprivileged (admin token): its files are shifted
   * onto the host's id range and its config gets the id map. A no-op on an unprivileged one.
   */
  convert(name: string, opts?: SubmitOptions): JobHandle<'convert'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(name)}/convert`, {}, opts);
  }

  /** `PUT .../limits` (a limits.set job). */
  setLimits(name: string, p: PayloadOf<'limits.set'>, opts?: SubmitOptions): JobHandle<'limits.set'> {
    return this.t.submit(this.c, 'PUT', `/v1/containers/${seg(name)}/limits`, p, opts);
  }
}

export class SnapshotsApi {
  constructor(
    private readonly t: Transport,
    private readonly c: LxcqClient,
  ) {}

  list(container: string): Promise<SnapshotInfo[]> {
    return this.t.request('GET', `/v1/containers/${seg(container)}/snapshots`);
  }

  /** Named `snapN` by liblxc unless `name` is given. */
  create(
    container: string,
    p: PayloadOf<'snapshot.create'> = {},
    opts?: SubmitOptions,
  ): JobHandle<'snapshot.create'> {
    return this.t.submit(this.c, 'POST', `/v1/containers/${seg(container)}/snapshots`, p, opts);
  }

  /** Restores over the (stopped) container, or into a new container `newName`. */
  restore(
    container: string,
    snapshot: string,
    p: { newName?: string } = {},
    opts?: SubmitOptions,
  ): JobHandle<'snapshot.restore'> {
    return this.t.submit(
      this.c,
      'POST',
      `/v1/containers/${seg(container)}/snapshots/${seg(snapshot)}/restore`,
      p,
      opts,
    );
  }

  destroy(container: string, snapshot: string, opts?: SubmitOptions): JobHandle<'snapshot.destroy'> {
    return this.t.submit(
      this.c,
      'DELETE',
      `/v1/containers/${seg(container)}/snapshots/${seg(snapshot)}`,
      undefined,
      opts,
    );
  }
}

export class JobsApi {
  constructor(
    private readonly t: Transport,
    private readonly c: LxcqClient,
  ) {}

  /** Newest first; pass `next` as `cursor` for the following page. */
  list(filter: JobFilter = {}): Promise<JobPage> {
    return this.t.request('GET', '/v1/jobs', {
      query: {
        container: filter.container,
        host: filter.host,
        state: filter.state,
        limit: filter.limit,
        cursor: filter.cursor,
      },
    });
  }

  get(id: string): Promise<Job> {
    return this.t.request('GET', `/v1/jobs/${seg(id)}`);
  }

  /** One long-poll: the job once it ended, or as it is when `timeoutSec` passed. */
  waitOnce(id: string, timeoutSec: number, signal?: AbortSignal): Promise<Job> {
    return this.t.request('GET', `/v1/jobs/${seg(id)}/wait`, {
      query: { timeout: timeoutSec },
      signal,
      accept: [202],
    });
  }

  /** The job once it ended (whatever the outcome); WaitTimeoutError if `timeoutMs` passes first. */
  wait(id: string, opts: WaitOptions = {}): Promise<Job> {
    return this.handle(id).ended(opts);
  }

  async log(id: string): Promise<string[]> {
    return (await this.t.request<{ lines: string[] }>('GET', `/v1/jobs/${seg(id)}/log`)).lines;
  }

  /** Cancels a queued job (or a running one whose operation allows it). */
  cancel(id: string): Promise<Job> {
    return this.t.request('DELETE', `/v1/jobs/${seg(id)}`);
  }

  /** A JobHandle for a job submitted earlier (by id, or its record). */
  handle<N extends OperationName = OperationName>(job: string | Job | Promise<Job>): JobHandle<N> {
    const submission = typeof job === 'string' ? this.get(job) : job;
    return new JobHandle<N>(
      {
        get: (id) => this.get(id),
        waitOnce: (id, sec, signal) => this.waitOnce(id, sec, signal),
        cancel: (id) => this.cancel(id),
        events: (o) => this.c.events(o),
      },
      submission,
    );
  }
}

/** A host's storage pools (docs/storage.md); creating and removing one needs an admin token. */
export class PoolsApi {
  constructor(
    private readonly t: Transport,
    private readonly c: LxcqClient,
  ) {}

  /** `GET /v1/hosts/:id/pools`: the dir pool `default` first, with capacity, used and free bytes. */
  list(host: string): Promise<PoolInfo[]> {
    return this.t.request('GET', `/v1/hosts/${seg(host)}/pools`);
  }

  /** `POST /v1/hosts/:id/pools` (a pool.create job): btrfs on a loop file (`size`) or a mount (`path`). */
  create(host: string, p: PayloadOf<'pool.create'>, opts?: SubmitOptions): JobHandle<'pool.create'> {
    return this.t.submit(this.c, 'POST', `/v1/hosts/${seg(host)}/pools`, p, opts);
  }

  /** `DELETE /v1/hosts/:id/pools/:pool` (a pool.delete job); refused while the pool holds containers. */
  delete(host: string, name: string, opts?: SubmitOptions): JobHandle<'pool.delete'> {
    return this.t.submit(this.c, 'DELETE', `/v1/hosts/${seg(host)}/pools/${seg(name)}`, undefined, opts);
  }
}

export class HostsApi {
  constructor(private readonly t: Transport) {}

  list(): Promise<HostInfo[]> {
    return this.t.request('GET', '/v1/hosts');
  }

  get(id: string): Promise<HostInfo> {
    return this.t.request('GET', `/v1/hosts/${seg(id)}`);
  }

  /** Stops placing new containers on the host (admin). */
  drain(id: string): Promise<HostInfo> {
    return this.t.request('POST', `/v1/hosts/${seg(id)}/drain`, { body: {} });
  }

  undrain(id: string): Promise<HostInfo> {
    return this.t.request('POST', `/v1/hosts/${seg(id)}/undrain`, { body: {} });
  }

  /**
   * Removes an offline host from the registry (admin). `force` also drops the records of the
   * containers it holds (they stay on that machine); without it, a host holding any is refused.
   */
  forget(id: string, opts: { force?: boolean } = {}): Promise<{ forgotten: string; containers: string[] }> {
    return this.t.request('DELETE', `/v1/hosts/${seg(id)}`, {
      query: { force: opts.force ? true : undefined },
    });
  }
}

/**
 * A typed client of one lxcq API: every REST route, mutating ones as JobHandles, and live events.
 *
 * ```ts
 * const lxcq = new LxcqClient({ url: 'http://127.0.0.1:7070', token });
 * const web = await lxcq.containers.create({ name: 'web1', template: 'busybox', start: true });
 * const { exitCode, stdout } = await lxcq.containers.exec('web1', { argv: ['uname', '-a'] });
 * ```
 */
export class LxcqClient {
  readonly containers: ContainersApi;
  readonly snapshots: SnapshotsApi;
  readonly jobs: JobsApi;
  readonly hosts: HostsApi;
  readonly pools: PoolsApi;
  private readonly t: Transport;
  private wsImpl: Promise<WebSocketConstructor> | null = null;

  constructor(private readonly opts: LxcqClientOptions) {
    this.t = new Transport(opts);
    this.containers = new ContainersApi(this.t, this);
    this.snapshots = new SnapshotsApi(this.t, this);
    this.jobs = new JobsApi(this.t, this);
    this.hosts = new HostsApi(this.t);
    this.pools = new PoolsApi(this.t, this);
  }

  /** The API's base URL (without a trailing slash). */
  get url(): string {
    return this.t.base;
  }

  /** `GET /v1/health` (no token needed); also answers when the API reports itself unavailable. */
  health(): Promise<HealthInfo> {
    return this.t.request('GET', '/v1/health', { accept: [503] });
  }

  /**
   * Live events, typed by `types`. Reconnects with backoff and resumes from the last cursor; yields
   * `{ type: 'resync-required' }` when it could not replay everything (list again, then go on).
   */
  events<S extends EventSelector = '*'>(opts: EventsOptions<S> = {}): EventStream<EventOf<Selected<S>>> {
    return new EventStream<EventOf<Selected<S>>>(
      {
        url: eventsUrl(this.t.base),
        token: this.opts.token,
        auth: this.opts.wsAuth ?? (this.opts.WebSocket ? 'both' : isNode() ? 'header' : 'subprotocol'),
        webSocket: () => {
          if (this.opts.WebSocket) return Promise.resolve(this.opts.WebSocket);
          this.wsImpl ??= defaultWebSocket();
          return this.wsImpl;
        },
        diagnose: async () => {
          // A socket that could not open says little (browsers say nothing): ask over HTTP. A
          // refused token or a wrong URL ends the stream; an unreachable API is retried.
          try {
            await this.t.request('GET', '/v1/jobs', { query: { limit: 1 } });
          } catch (err) {
            if (err instanceof LxcqError && err.status >= 400 && err.status < 500) throw err;
          }
        },
      },
      opts,
    );
  }
}
