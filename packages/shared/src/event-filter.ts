import { LxcqError } from './errors.ts';
import { EVENT_TYPES, type LxcqEvent } from './events.ts';
import { nameProblem } from './names.ts';

/** What a subscriber asked for on `GET /v1/events`: every given field must match. */
export interface EventFilter {
  /** Exact types and prefixes (`job.*`); empty means every type. */
  types: { exact: Set<string>; prefixes: string[] };
  container?: string;
  host?: string;
  job?: string;
  /** Replay events after this stream id before going live. */
  since?: string;
}

const CURSOR_RE = /^\d{1,20}-\d{1,20}$/;
const JOB_RE = /^[0-9a-f-]{36}$/;

export function isCursor(v: string): boolean {
  return CURSOR_RE.test(v);
}

/** Parses the query of `GET /v1/events`; a malformed one is refused with LXCQ_VALIDATION. */
export function parseEventFilter(q: Record<string, string | undefined>): EventFilter {
  const bad = (field: string, why: string): never => {
    throw new LxcqError('LXCQ_VALIDATION', `Invalid ${field}: ${why}.`, { details: { field } });
  };
  for (const k of Object.keys(q)) {
    if (!['types', 'container', 'host', 'job', 'since'].includes(k))
      bad(k, 'unknown query parameter (use types, container, host, job, since)');
  }
  const filter: EventFilter = { types: { exact: new Set(), prefixes: [] } };
  if (q.types !== undefined && q.types !== '') {
    for (const t of q.types.split(',').map((x) => x.trim())) {
      if (t === '*') {
        filter.types.prefixes.push('');
      } else if (t.endsWith('.*') || t.endsWith('*')) {
        const prefix = t.slice(0, -1);
        if (!EVENT_TYPES.some((e) => e.startsWith(prefix)))
          bad('types', `${JSON.stringify(t)} matches no event type`);
        filter.types.prefixes.push(prefix);
      } else {
        if (!(EVENT_TYPES as readonly string[]).includes(t))
          bad('types', `${JSON.stringify(t)} is not an event type (${EVENT_TYPES.join(', ')})`);
        filter.types.exact.add(t);
      }
    }
  }
  for (const f of ['container', 'host'] as const) {
    const v = q[f];
    if (v !== undefined) {
      const problem = nameProblem(v);
      if (problem) bad(f, problem);
      filter[f] = v;
    }
  }
  if (q.job !== undefined) {
    if (!JOB_RE.test(q.job)) bad('job', 'not a job id');
    filter.job = q.job;
  }
  if (q.since !== undefined) {
    if (!CURSOR_RE.test(q.since)) bad('since', 'not a cursor (an event id such as 1764374400000-0)');
    filter.since = q.since;
  }
  return filter;
}

export function matchesFilter(
  f: EventFilter,
  e: Pick<LxcqEvent, 'type' | 'container' | 'host' | 'job'>,
): boolean {
  const t = f.types;
  if (
    (t.exact.size > 0 || t.prefixes.length > 0) &&
    !t.exact.has(e.type) &&
    !t.prefixes.some((p) => e.type.startsWith(p))
  )
    return false;
  if (f.container !== undefined && e.container !== f.container) return false;
  if (f.host !== undefined && e.host !== f.host) return false;
  if (f.job !== undefined && e.job !== f.job) return false;
  return true;
}

/** Orders stream ids ("ms-seq"): negative when a is older than b. */
export function compareCursors(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const d = BigInt(am) - BigInt(bm);
  if (d !== 0n) return d < 0n ? -1 : 1;
  const e = BigInt(as) - BigInt(bs);
  return e === 0n ? 0 : e < 0n ? -1 : 1;
}
