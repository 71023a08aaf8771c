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
  /** With `container.usage` in `types`: at most one usage update per host every this many ms. */
  usageIntervalMs?: number;
}

/** The event type a subscriber must name itself to get (see container.usage). */
export const USAGE_EVENT = 'container.usage';

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
    if (!['types', 'container', 'host', 'job', 'since', 'interval'].includes(k))
      bad(k, 'unknown query parameter (use types, container, host, job, since, interval)');
  }
  const filter: EventFilter = { types: { exact: new Set(), prefixes: [] } };
  if (q.types !== undefined && q.types !== '') {
    for (const t of q.types.split(',').map((x) => x.trim())) {
      if (t.endsWith('*')) {
        // `job.*` is the prefix `job.`; `*` alone the empty prefix, which every type has
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
  if (q.interval !== undefined) {
    if (!filter.types.exact.has(USAGE_EVENT))
      bad('interval', `it applies to ${USAGE_EVENT} events only: add ${USAGE_EVENT} to types`);
    if (!/^[0-9]{1,5}$/.test(q.interval) || Number(q.interval) < 1 || Number(q.interval) > 86400)
      bad('interval', 'a whole number of seconds from 1 to 86400');
    filter.usageIntervalMs = Number(q.interval) * 1000;
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
  // Off by default: only a subscriber naming it gets it, never through `*` or `container.*`.
  if (e.type === USAGE_EVENT) return t.exact.has(USAGE_EVENT) && matchesRefs(f, e);
  if (
    (t.exact.size > 0 || t.prefixes.length > 0) &&
    !t.exact.has(e.type) &&
    !t.prefixes.some((p) => e.type.startsWith(p))
  )
    return false;
  return matchesRefs(f, e);
}

function matchesRefs(f: EventFilter, e: Pick<LxcqEvent, 'container' | 'host' | 'job'>): boolean {
  if (f.container !== undefined && e.container !== f.container) return false;
  if (f.host !== undefined && e.host !== f.host) return false;
  if (f.job !== undefined && e.job !== f.job) return false;
  return true;
}

/** Orders stream ids ("ms-seq"): negative when a is older than b. */
export function compareCursors(a: string, b: string): number {
  const ad = a.indexOf('-');
  const bd = b.indexOf('-');
  return (
    compareDecimal(ad < 0 ? a : a.slice(0, ad), bd < 0 ? b : b.slice(0, bd)) ||
    compareDecimal(ad < 0 ? '0' : a.slice(ad + 1), bd < 0 ? '0' : b.slice(bd + 1))
  );
}

/**
 * Orders two decimal integers of any size without parsing them (the hub compares a cursor per
 * client per event): a shorter number is smaller, equal lengths compare as text. Leading zeros,
 * which Redis never writes, are skipped.
 */
function compareDecimal(x: string, y: string): number {
  let i = 0;
  let j = 0;
  while (i < x.length - 1 && x[i] === '0') i++;
  while (j < y.length - 1 && y[j] === '0') j++;
  const d = x.length - i - (y.length - j);
  if (d !== 0) return d < 0 ? -1 : 1;
  for (; i < x.length; i++, j++) if (x[i] !== y[j]) return (x[i] as string) < (y[j] as string) ? -1 : 1;
  return 0;
}
