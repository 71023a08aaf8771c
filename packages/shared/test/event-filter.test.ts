import { describe, expect, it } from 'vitest';
import { LxcqError, compareCursors, matchesFilter, parseEventFilter } from '../src/index.ts';

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
  it('orders cursors numerically, not as strings', () => {
    expect(compareCursors('9-0', '10-0')).toBe(-1);
    expect(compareCursors('10-2', '10-10')).toBe(-1);
    expect(compareCursors('10-2', '10-2')).toBe(0);
    expect(compareCursors('1764374400001-0', '1764374400000-99')).toBe(1);
  });
  it('agrees with BigInt arithmetic on 20,000 random pairs (huge, zero-padded, without seq)', () => {
    let seed = 42;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
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
    for (let i = 0; i < 20_000; i++) {
      const a = id();
      const b = rnd(5) === 0 ? a : id();
      expect([a, b, compareCursors(a, b)]).toEqual([a, b, ref(a, b)]);
    }
  });
});
