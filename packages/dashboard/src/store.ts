/**
 * The dashboard's live state, kept by the SDK: one event stream (which reconnects and resumes from
 * its cursor by itself), listings when the stream starts or must resync, and the hosts read every
 * few seconds (their load comes with heartbeats, which are not events).
 */
import {
  LxcqError,
  isResync,
  type ContainerInfo,
  type EventStream,
  type HealthInfo,
  type HostInfo,
  type Job,
  type JobHandle,
  type LxcqClient,
  type LxcqEvent,
  type OperationName,
} from '@lxcq/client';
import { EMPTY, applyEvent, withContainer, withListing, type DashState } from './state.ts';
import { addUsage, type UsageHistory } from './usage.ts';

export type Connection = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface Notice {
  id: number;
  kind: 'error' | 'info';
  /** The API's error code, when the notice is an API error. */
  code?: string;
  text: string;
}

export interface View extends DashState {
  connection: Connection;
  /** Why the last connection attempt failed, while reconnecting. */
  connectionError?: string;
  notices: readonly Notice[];
  /** `GET /v1/health`, read with the hosts. */
  health?: HealthInfo;
  /** Containers with a job submitted from this page and not ended yet: name -> operation. */
  pending: ReadonlyMap<string, string>;
  /** What each container used over the last hour, from container.usage events. */
  usage: ReadonlyMap<string, UsageHistory>;
}

/** Host load and health come with heartbeats (not events): read them this often. */
const HOSTS_EVERY_MS = 3_000;
/** The event log starts with this much of the past, replayed from the API's event stream. */
const HISTORY_MS = 10 * 60_000;
/** Reads of containers whose pid or addresses changed are gathered for this long, then made once each. */
const REFRESH_DELAY_MS = 250;

export class Store {
  private view: View = {
    ...EMPTY,
    connection: 'connecting',
    notices: [],
    pending: new Map(),
    usage: new Map(),
  };
  private readonly listeners = new Set<() => void>();
  private stream: EventStream<LxcqEvent> | null = null;
  private hostsTimer: ReturnType<typeof setInterval> | null = null;
  /** Events received while a listing is in flight, applied on top of it once it arrives. */
  private held: LxcqEvent[] | null = null;
  private noticeId = 0;
  private stopped = false;
  private readonly toRefresh = new Set<string>();
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    readonly client: LxcqClient,
    /** Called when the API refuses the token (it was revoked, or the API got another one). */
    private readonly onUnauthorized: (err: LxcqError) => void,
  ) {}

  get current(): View {
    return this.view;
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private set(v: Partial<View>): void {
    this.view = { ...this.view, ...v };
    for (const fn of this.listeners) fn();
  }

  start(): void {
    void this.open();
    void this.refreshHosts();
    this.hostsTimer = setInterval(() => void this.refreshHosts(), HOSTS_EVERY_MS);
  }

  private async open(): Promise<void> {
    const since = await historyCursor(this.client.url);
    if (this.stopped) return;
    let first = true;
    const stream = this.client.events({
      // every durable event, and each host's usage passes (live only: they are never replayed)
      types: ['*', 'container.usage'],
      ...(since !== undefined ? { since } : {}),
      onHello: () => {
        this.set({ connection: 'live' });
        // The first connection lists what exists; later ones resume by cursor and need nothing.
        if (first) {
          first = false;
          void this.resync();
        }
      },
      onReconnect: ({ error }) =>
        this.set({ connection: 'reconnecting', ...(error ? { connectionError: error.message } : {}) }),
    });
    this.stream = stream;
    await this.consume(stream);
  }

  stop(): void {
    this.stopped = true;
    this.stream?.close();
    if (this.hostsTimer) clearInterval(this.hostsTimer);
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.set({ connection: 'closed' });
  }

  private async consume(stream: EventStream<LxcqEvent>): Promise<void> {
    try {
      for await (const item of stream) {
        if (isResync(item)) void this.resync();
        else if (item.type === 'container.usage') this.addUsage(item as LxcqEvent<'container.usage'>);
        else if (this.held) this.held.push(item);
        else this.apply(item);
      }
    } catch (err) {
      if (this.stopped) return;
      this.set({ connection: 'closed' });
      this.fail(err);
    }
  }

  private addUsage(ev: LxcqEvent<'container.usage'>): void {
    const usage = new Map(this.view.usage);
    usage.set(ev.data.name, addUsage(usage.get(ev.data.name), ev.data));
    this.set({ usage });
  }

  private apply(ev: LxcqEvent): void {
    const { state, refresh } = applyEvent(this.view, ev);
    const patch: Partial<View> = state;
    if (ev.type.startsWith('host.')) void this.refreshHosts();
    if (ev.type === 'container.destroyed' && ev.container && this.view.usage.has(ev.container)) {
      const usage = new Map(this.view.usage);
      usage.delete(ev.container);
      patch.usage = usage;
    }
    if (
      (ev.type === 'job.completed' || ev.type === 'job.failed' || ev.type === 'job.cancelled') &&
      ev.container
    ) {
      const job = state.jobs.find((j) => j.id === ev.job);
      if (job && this.view.pending.get(ev.container) === job.operation) {
        const pending = new Map(this.view.pending);
        pending.delete(ev.container);
        patch.pending = pending;
      }
    }
    this.set(patch);
    for (const name of refresh) this.toRefresh.add(name);
    if (this.toRefresh.size > 0 && !this.refreshTimer && !this.stopped)
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = null;
        const names = [...this.toRefresh];
        this.toRefresh.clear();
        // Not one destroyed meanwhile.
        for (const name of names) if (this.view.containers.has(name)) void this.refreshContainer(name);
      }, REFRESH_DELAY_MS);
  }

  /** Lists containers and jobs again; events that arrive meanwhile are applied on top. */
  async resync(): Promise<void> {
    if (this.held) return;
    this.held = [];
    try {
      const [containers, jobs] = await Promise.all([
        this.client.containers.list(),
        this.client.jobs.list({ limit: 30 }),
      ]);
      this.set(withListing(this.view, containers, jobs.jobs));
    } catch (err) {
      this.fail(err);
    } finally {
      const held = this.held ?? [];
      this.held = null;
      for (const ev of held) this.apply(ev);
    }
  }

  private async refreshContainer(name: string): Promise<void> {
    let c: ContainerInfo;
    try {
      c = await this.client.containers.get(name);
    } catch {
      return; // destroyed meanwhile: its event says so
    }
    this.set(withContainer(this.view, c));
  }

  private async refreshHosts(): Promise<void> {
    let hosts: HostInfo[];
    let health: HealthInfo;
    try {
      [hosts, health] = await Promise.all([this.client.hosts.list(), this.client.health()]);
    } catch (err) {
      // A blip is retried at the next round; a refused token ends the session.
      if (err instanceof LxcqError && err.status === 401) this.fail(err);
      return;
    }
    this.set({ hosts: [...hosts].sort((a, b) => a.id.localeCompare(b.id)), health });
  }

  /**
   * Submits a job from a button: the container is marked busy until the job ends; a refusal or a
   * failed job becomes an error notice with the API's code and message.
   */
  async run<N extends OperationName>(
    container: string,
    label: string,
    submit: () => JobHandle<N>,
  ): Promise<boolean> {
    const pending = new Map(this.view.pending);
    pending.set(container, label);
    this.set({ pending });
    const handle = submit();
    try {
      const job: Job = await handle.submitted;
      pending.set(container, job.operation);
      this.set({ pending: new Map(pending) });
      await handle;
      return true;
    } catch (err) {
      this.fail(err, `${label} ${container}`);
      return false;
    } finally {
      if (this.view.pending.has(container)) {
        const p = new Map(this.view.pending);
        p.delete(container);
        this.set({ pending: p });
      }
    }
  }

  notify(kind: Notice['kind'], text: string, code?: string): void {
    const n: Notice = { id: ++this.noticeId, kind, text, ...(code !== undefined ? { code } : {}) };
    this.set({ notices: [n, ...this.view.notices].slice(0, 5) });
  }

  dismiss(id: number): void {
    this.set({ notices: this.view.notices.filter((n) => n.id !== id) });
  }

  /** Any error as a notice: the API's code and message when it is one. */
  fail(err: unknown, context?: string): void {
    const prefix = context ? `${context}: ` : '';
    if (err instanceof LxcqError) {
      if (err.status === 401) {
        this.onUnauthorized(err);
        return;
      }
      this.notify('error', `${prefix}${err.message}`, err.code);
    } else this.notify('error', `${prefix}${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * A cursor HISTORY_MS before the API's own clock (its Date header: the browser's clock may be off,
 * and a cursor in the server's future would hold back live events). Stream ids are times in ms.
 * Undefined when the API's time is not known: then the log starts empty.
 */
async function historyCursor(base: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${base}/v1/health`, { method: 'HEAD', cache: 'no-store' });
    const t = Date.parse(res.headers.get('date') ?? '');
    return Number.isNaN(t) ? undefined : `${t - HISTORY_MS}-0`;
  } catch {
    return undefined;
  }
}
