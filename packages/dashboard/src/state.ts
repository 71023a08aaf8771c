/**
 * What the dashboard shows, and how each event changes it: pure functions, no DOM and no network
 * (src/store.ts feeds them from the SDK; test/state.test.ts checks them without a browser).
 */
import type { ContainerInfo, ContainerState, HostInfo, Job, LxcqEvent } from '@lxcq/client';

export const MAX_JOBS = 50;
export const MAX_EVENTS = 200;

export interface ContainerRow {
  name: string;
  host: string;
  state: ContainerState;
  pid?: number;
  ips?: string[];
  snapshots?: number;
  /** Why the container cannot be used (see ContainerInfo.broken). */
  broken?: string;
  /** No user namespace: root inside is root on the host (an admin's choice, or made before lxcq
   * made containers unprivileged). */
  privileged?: boolean;
  /** The state came from an event: a later read (which may be older) does not overwrite it. */
  live: boolean;
  /** Read from the API at least once (a row made from an event alone may not be registered yet). */
  detailed: boolean;
}

export interface DashState {
  containers: ReadonlyMap<string, ContainerRow>;
  /** Newest first. */
  jobs: readonly Job[];
  /** Newest first. */
  events: readonly LxcqEvent[];
  hosts: readonly HostInfo[];
}

export const EMPTY: DashState = { containers: new Map(), jobs: [], events: [], hosts: [] };

export function rowOf(c: ContainerInfo): ContainerRow {
  return {
    name: c.name,
    host: c.host,
    state: c.state,
    ...(c.pid !== undefined ? { pid: c.pid } : {}),
    ...(c.broken !== undefined ? { broken: c.broken } : {}),
    ...(c.ips !== undefined ? { ips: c.ips } : {}),
    ...(c.snapshots !== undefined ? { snapshots: c.snapshots.length } : {}),
    ...(c.privileged !== undefined ? { privileged: c.privileged } : {}),
    live: false,
    detailed: true,
  };
}

/** A full listing replaces the rows (after a resync, anything not listed is gone). */
export function withListing(
  s: DashState,
  containers: readonly ContainerInfo[],
  jobs: readonly Job[],
): DashState {
  const map = new Map<string, ContainerRow>();
  for (const c of [...containers].sort((a, b) => a.name.localeCompare(b.name))) map.set(c.name, rowOf(c));
  return { ...s, containers: map, jobs: jobs.slice(0, MAX_JOBS) };
}

/**
 * One listed container read again (pid, addresses, snapshots): its state is kept when an event set it,
 * since the event stream is ordered and the read may have been answered before the event.
 */
export function withContainer(s: DashState, c: ContainerInfo): DashState {
  const old = s.containers.get(c.name);
  // Gone meanwhile (destroyed, renamed): an answer read before that must not bring it back.
  if (!old) return s;
  const row = rowOf(c);
  if (old.live) {
    row.state = old.state;
    row.live = true;
  }
  const map = new Map(s.containers);
  map.set(c.name, row);
  return { ...s, containers: sorted(map) };
}

export interface Applied {
  state: DashState;
  /** Containers to read again for their details (pid, addresses), by name. */
  refresh: string[];
}

/** Applies one event: the log, the containers table and the jobs table. */
export function applyEvent(s: DashState, ev: LxcqEvent): Applied {
  const events = [ev, ...s.events].slice(0, MAX_EVENTS);
  let next: DashState = { ...s, events };
  const refresh: string[] = [];
  const name = ev.container;
  switch (ev.type) {
    case 'container.state': {
      if (name === undefined) break;
      const d = (ev as LxcqEvent<'container.state'>).data;
      const old = s.containers.get(name);
      const row: ContainerRow = old
        ? { ...old, state: d.to, live: true }
        : { name, host: ev.host ?? '?', state: d.to, live: true, detailed: false };
      if (d.to === 'STOPPED') {
        delete row.pid;
        delete row.ips;
      }
      next = { ...next, containers: put(s.containers, row) };
      // A new pid and addresses: lxcq's own jobs bring them in their result (job.completed); a
      // start made outside lxcq has no job, so the container is read again.
      if (d.to === 'RUNNING' && d.source === 'external') refresh.push(name);
      break;
    }
    case 'container.created': {
      if (name === undefined || s.containers.has(name)) break;
      next = {
        ...next,
        containers: put(s.containers, {
          name,
          host: ev.host ?? '?',
          state: 'STOPPED',
          live: false,
          detailed: false,
        }),
      };
      if ((ev as LxcqEvent<'container.created'>).data.source === 'external') refresh.push(name);
      break;
    }
    case 'container.destroyed': {
      if (name === undefined || !s.containers.has(name)) break;
      const map = new Map(s.containers);
      map.delete(name);
      next = { ...next, containers: map };
      break;
    }
    case 'host.forgotten': {
      const gone = (ev as LxcqEvent<'host.forgotten'>).data.containers;
      if (!gone.some((n) => s.containers.has(n))) break;
      const map = new Map(s.containers);
      for (const n of gone) map.delete(n);
      next = { ...next, containers: map };
      break;
    }
    case 'container.renamed': {
      const d = (ev as LxcqEvent<'container.renamed'>).data;
      const old = s.containers.get(d.from);
      if (!old) break;
      const map = new Map(s.containers);
      map.delete(d.from);
      map.set(d.to, { ...old, name: d.to });
      next = { ...next, containers: sorted(map) };
      break;
    }
    case 'container.moved': {
      const d = (ev as LxcqEvent<'container.moved'>).data;
      const old = name === undefined ? undefined : s.containers.get(name);
      if (!old) break;
      next = { ...next, containers: put(s.containers, { ...old, host: d.to }) };
      break;
    }
    case 'container.broken': {
      const d = (ev as LxcqEvent<'container.broken'>).data;
      const old = name === undefined ? undefined : s.containers.get(name);
      if (!old) break;
      next = { ...next, containers: put(s.containers, { ...old, broken: d.reason }) };
      break;
    }
    default:
      if (ev.type.startsWith('job.') && ev.job !== undefined) next = { ...next, jobs: jobEvent(s.jobs, ev) };
      // A job's container result is the record as the job left it: take its details (pid,
      // addresses); its state stays the one the container's own events gave.
      if (ev.type === 'job.completed') {
        const r = (ev as LxcqEvent<'job.completed'>).data.result;
        if (isContainerInfo(r)) next = withContainer(next, r);
      }
  }
  return { state: next, refresh };
}

function jobEvent(jobs: readonly Job[], ev: LxcqEvent): readonly Job[] {
  const id = ev.job as string;
  const i = jobs.findIndex((j) => j.id === id);
  const data = ev.data as { operation?: string };
  const base: Job =
    i >= 0
      ? (jobs[i] as Job)
      : {
          id,
          operation: (data.operation ?? '?') as Job['operation'],
          container: ev.container ?? '',
          host: ev.host ?? '',
          state: 'queued',
          payload: {},
          createdAt: ev.time,
        };
  let job: Job = base;
  switch (ev.type) {
    case 'job.queued':
      job = { ...base, queuePosition: (ev as LxcqEvent<'job.queued'>).data.queuePosition };
      break;
    case 'job.active':
      job = { ...base, state: 'active', startedAt: ev.time };
      delete job.queuePosition;
      break;
    case 'job.progress':
      job = { ...base, state: 'active', progress: (ev as LxcqEvent<'job.progress'>).data };
      break;
    case 'job.completed':
      job = {
        ...base,
        state: 'completed',
        result: (ev as LxcqEvent<'job.completed'>).data.result,
        finishedAt: ev.time,
      };
      break;
    case 'job.failed':
      job = {
        ...base,
        state: 'failed',
        error: (ev as LxcqEvent<'job.failed'>).data.error,
        finishedAt: ev.time,
      };
      break;
    case 'job.cancelled':
      job = { ...base, state: 'cancelled', finishedAt: ev.time };
      break;
  }
  // A job already ended stays ended (the stream is ordered; this guards a listing read before it).
  if (i >= 0 && isEnded(base.state) && !isEnded(job.state)) return jobs;
  if (i >= 0) return jobs.map((j, k) => (k === i ? job : j));
  // Newest first: a job replayed from the past goes below the newer ones already shown.
  const at = jobs.findIndex((j) => j.createdAt < job.createdAt);
  const next = at < 0 ? [...jobs, job] : [...jobs.slice(0, at), job, ...jobs.slice(at)];
  return next.slice(0, MAX_JOBS);
}

function isContainerInfo(x: unknown): x is ContainerInfo {
  const c = x as Partial<ContainerInfo> | null;
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.name === 'string' &&
    typeof c.state === 'string' &&
    typeof c.host === 'string'
  );
}

function isEnded(state: Job['state']): boolean {
  return state === 'completed' || state === 'failed' || state === 'cancelled';
}

function put(m: ReadonlyMap<string, ContainerRow>, row: ContainerRow): ReadonlyMap<string, ContainerRow> {
  const map = new Map(m);
  const isNew = !map.has(row.name);
  map.set(row.name, row);
  return isNew ? sorted(map) : map;
}

function sorted(m: Map<string, ContainerRow>): Map<string, ContainerRow> {
  return new Map([...m.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

/** One line saying what an event means, for the event log. */
export function describeEvent(ev: LxcqEvent): string {
  const d = ev.data as Record<string, unknown>;
  switch (ev.type) {
    case 'container.state': {
      const x = (ev as LxcqEvent<'container.state'>).data;
      const exit = x.exitStatus !== undefined ? `, exit ${x.exitStatus}` : '';
      return `${x.from} → ${x.to} (${x.source}${exit})`;
    }
    case 'container.created':
    case 'container.destroyed':
      return `(${String(d.source)})`;
    case 'container.renamed':
    case 'container.moved':
      return `${String(d.from)} → ${String(d.to)}`;
    case 'container.broken':
      return `broken: ${String(d.reason)}`;
    case 'container.cold-started':
      return `started afresh after a failed move, checkpoint ${String(d.checkpoint)} kept`;
    case 'job.queued':
      return `${String(d.operation)} queued${Number(d.queuePosition) > 0 ? ` (position ${String(d.queuePosition)})` : ''}`;
    case 'job.active':
      return `${String(d.operation)} started`;
    case 'job.progress':
      return `${String(d.percent)}% ${String(d.stage)}`;
    case 'job.completed':
      return `${String(d.operation)} completed`;
    case 'job.failed': {
      const e = (ev as LxcqEvent<'job.failed'>).data.error;
      return `${String(d.operation)} failed: ${e.code}: ${e.message}`;
    }
    case 'job.cancelled':
      return `${String(d.operation)} cancelled`;
    case 'host.online':
      return 'online';
    case 'host.offline':
      return `offline (last seen ${String(d.lastSeen)})`;
    case 'host.draining':
      return d.draining ? 'draining' : 'no longer draining';
    case 'host.forgotten':
      return 'forgotten (removed from the registry)';
  }
  return '';
}
