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
  it.each([
    [{ types: 'nope' }],
    [{ types: 'zz.*' }],
    [{ container: '../x' }],
    [{ host: 'a/b' }],
    [{ job: 'nope' }],
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
});
