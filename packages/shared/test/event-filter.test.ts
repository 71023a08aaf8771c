import { describe, expect, it } from 'vitest';
import { EVENT_TYPES, LxcqError, compareCursors, matchesFilter, parseEventFilter } from '../src/index.ts';

const ev = (type: string, container?: string, host?: string, job?: string) => ({
  type: type as 'job.queued',
  ...(container ? { container } : {}),
  ...(host ? { host } : {}),
  ...(job ? { job } : {}),
});
const JOB = '0b6a3f5e-1111-4222-8333-944455556666';

describe('event filters', () => {
  it('selects by exact type, prefix and wildcard', () => {
    const f = parseEventFilter({ types: 'job.*,container.state' });
    expect(matchesFilter(f, ev('job.completed'))).toBe(true);
    expect(matchesFilter(f, ev('container.state'))).toBe(true);
    expect(matchesFilter(f, ev('container.created'))).toBe(false);
    expect(matchesFilter(f, ev('host.online'))).toBe(false);
    expect(matchesFilter(parseEventFilter({ types: '*' }), ev('host.online'))).toBe(true);
    expect(matchesFilter(parseEventFilter({}), ev('host.online'))).toBe(true);
  });
  it('selects by container, host and job together', () => {
    const f = parseEventFilter({ container: 'web1', host: 'h1', job: JOB });
    expect(matchesFilter(f, ev('job.queued', 'web1', 'h1', JOB))).toBe(true);
    expect(matchesFilter(f, ev('job.queued', 'web2', 'h1', JOB))).toBe(false);
    expect(matchesFilter(f, ev('job.queued', 'web1', 'h2', JOB))).toBe(false);
    expect(matchesFilter(f, ev('job.queued', 'web1', 'h1'))).toBe(false);
  });
  it('container.usage only when named itself, with an interval in seconds', () => {
    for (const types of ['*', 'container.*', '', 'container.state'])
      expect(matchesFilter(parseEventFilter({ types }), ev('container.usage', 'c1', 'h1'))).toBe(false);
    const f = parseEventFilter({ types: 'container.usage', interval: '10', container: 'c1' });
    expect(f.usageIntervalMs).toBe(10_000);
    expect(matchesFilter(f, ev('container.usage', 'c1', 'h1'))).toBe(true);
    expect(matchesFilter(f, ev('container.usage', 'c2', 'h1'))).toBe(false);
    expect(matchesFilter(f, ev('container.state', 'c1', 'h1'))).toBe(false);
    expect(parseEventFilter({ types: 'container.usage,job.*' }).usageIntervalMs).toBeUndefined();
  });
  it.each([
    [{ interval: '5' }],
    [{ types: 'job.*', interval: '5' }],
    [{ types: 'container.usage', interval: '0' }],
    [{ types: 'container.usage', interval: '1.5' }],
    [{ types: 'container.usage', interval: '86401' }],
    [{ types: 'nope' }],
    [{ types: 'zz.*' }],
    [{ container: '../x' }],
    [{ host: 'a/b' }],
    [{ job: 'nope' }],
    [{ job: `x${JOB}` }],
    [{ job: `${JOB}x` }],
    [{ since: 'yesterday' }],
    [{ since: '12-' }],
    [{ bogus: '1' }],
  ])('refuses %j with LXCQ_VALIDATION', (q) => {
    expect(() => parseEventFilter(q)).toThrow(LxcqError);
  });
  it('reads an empty types as every type, and trims the names in the list', () => {
    expect(matchesFilter(parseEventFilter({ types: '' }), ev('host.online'))).toBe(true);
    const f = parseEventFilter({ types: ' job.queued , container.* ' });
    expect([...f.types.exact]).toEqual(['job.queued']);
    expect(f.types.prefixes).toEqual(['container.']);
    expect(parseEventFilter({ types: '*' }).types.prefixes).toEqual(['']);
  });
  it('keeps every field it accepts', () => {
    expect(parseEventFilter({ container: 'web1', host: 'h1', job: JOB, since: '1764374400000-12' })).toEqual({
      types: { exact: new Set(), prefixes: [] },
      container: 'web1',
      host: 'h1',
      job: JOB,
      since: '1764374400000-12',
    });
  });
  it.each(['0-0', '12-3', '1-12', `${'9'.repeat(20)}-${'9'.repeat(20)}`])(
    'accepts the cursor %j',
    (since) => {
      expect(parseEventFilter({ since }).since).toBe(since);
    },
  );
  it.each(['x1-1', '1-1x', 'a-1', '1-a', '-1', '1-', `${'9'.repeat(21)}-0`, `0-${'9'.repeat(21)}`, '1 -1'])(
    'refuses the cursor %j',
    (since) => {
      expect(() => parseEventFilter({ since })).toThrow(LxcqError);
    },
  );
  it.each([
    [
      { bogus: '1' },
      'bogus',
      'Invalid bogus: unknown query parameter (use types, container, host, job, since, interval).',
    ],
    [{ since: '12-' }, 'since', 'Invalid since: not a cursor (an event id such as 1764374400000-0).'],
    [{ job: 'nope' }, 'job', 'Invalid job: not a job id.'],
    [{ types: 'zz.*' }, 'types', 'Invalid types: "zz.*" matches no event type.'],
    [{ container: '' }, 'container', 'Invalid container: must not be empty.'],
    [
      { host: '-h' },
      'host',
      'Invalid host: may contain only letters, digits, "-", "." and "_", and must start with a letter or digit.',
    ],
  ])('says what is wrong with %j and names the field', (q, field, message) => {
    let err: unknown;
    try {
      parseEventFilter(q);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LxcqError);
    expect((err as LxcqError).code).toBe('LXCQ_VALIDATION');
    expect((err as LxcqError).message).toBe(message);
    expect((err as LxcqError).details).toEqual({ field });
  });
  it('names the event types when a type is unknown', () => {
    expect(() => parseEventFilter({ types: 'nope' })).toThrow(
      `Invalid types: "nope" is not an event type (${EVENT_TYPES.join(', ')}).`,
    );
  });
  it('lets an event through whatever it names when the filter does not ask for it', () => {
    const any = parseEventFilter({});
    expect(matchesFilter(any, ev('job.queued', 'web1', 'h1', JOB))).toBe(true);
    const byHost = parseEventFilter({ host: 'h1' });
    expect(matchesFilter(byHost, ev('job.queued', 'web9', 'h1', JOB))).toBe(true);
    const byJob = parseEventFilter({ job: JOB });
    expect(matchesFilter(byJob, ev('job.queued', 'web9', 'h9', JOB))).toBe(true);
    const byContainer = parseEventFilter({ container: 'web1' });
    expect(matchesFilter(byContainer, ev('job.queued', 'web1', 'h9', JOB))).toBe(true);
  });
  it('applies a list of exact types alone, and of prefixes alone, any of them matching', () => {
    const exact = parseEventFilter({ types: 'job.queued' });
    expect(matchesFilter(exact, ev('job.queued'))).toBe(true);
    expect(matchesFilter(exact, ev('job.active'))).toBe(false);
    const prefixes = parseEventFilter({ types: 'job.*,host.*' });
    expect(matchesFilter(prefixes, ev('host.online'))).toBe(true);
    expect(matchesFilter(prefixes, ev('job.active'))).toBe(true);
    expect(matchesFilter(prefixes, ev('container.state'))).toBe(false);
  });
  it('takes an interval from 1 to 86400 seconds, and says why it refuses one', () => {
    const interval = (v: string) =>
      parseEventFilter({ types: 'container.usage', interval: v }).usageIntervalMs;
    expect(interval('1')).toBe(1000);
    expect(interval('86400')).toBe(86_400_000);
    expect(() => interval('0')).toThrow('Invalid interval: a whole number of seconds from 1 to 86400.');
    expect(() => interval('86401')).toThrow('Invalid interval: a whole number of seconds from 1 to 86400.');
    expect(() => parseEventFilter({ types: 'job.*', interval: '5' })).toThrow(
      'Invalid interval: it applies to container.usage events only: add container.usage to types.',
    );
  });
  it('orders cursors numerically, not as strings', () => {
    expect(compareCursors('9-0', '10-0')).toBe(-1);
    expect(compareCursors('10-2', '10-10')).toBe(-1);
    expect(compareCursors('10-2', '10-2')).toBe(0);
    expect(compareCursors('1764374400001-0', '1764374400000-99')).toBe(1);
  });
  it('agrees with BigInt arithmetic on 20,000 random pairs (huge, zero-padded, without seq)', () => {
    // mulberry32: 32-bit integer arithmetic throughout (an LCG in float arithmetic loses its low
    // bits past 2^53 and had collapsed to 44 distinct ids)
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const num = () =>
      rnd(4) === 0
        ? String(rnd(12))
        : '0'.repeat(rnd(5) === 0 ? rnd(3) : 0) + String(rnd(9) + 1) + String(rnd(10 ** 9)).repeat(rnd(3));
    const id = () => (rnd(6) === 0 ? num() : `${num()}-${num()}`);
    const ref = (a: string, b: string) => {
      const [am = '0', as = '0'] = a.split('-');
      const [bm = '0', bs = '0'] = b.split('-');
      const d = BigInt(am) - BigInt(bm) || BigInt(as) - BigInt(bs);
      return d === 0n ? 0 : d < 0n ? -1 : 1;
    };
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const a = id();
      const b = rnd(5) === 0 ? a : id();
      seen.add(a);
      expect([a, b, compareCursors(a, b)]).toEqual([a, b, ref(a, b)]);
    }
    // the pairs are varied: thousands of ids, zero-padded ones among them
    expect(seen.size).toBeGreaterThan(10_000);
    expect([...seen].filter((x) => /(^|-)0\d/.test(x)).length).toBeGreaterThan(100);
  });
});
