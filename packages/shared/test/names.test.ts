import { describe, expect, it } from 'vitest';
import { Compile } from 'typebox/compile';
import { LxcqError, Name, assertName, isValidName, nameProblem } from '../src/index.ts';

const good = ['web1', 'a', 'A-b_c.d', 'x'.repeat(64), '9lives'];
const bad = [
  '',
  '.',
  '..',
  'a..b',
  '../etc',
  'a/b',
  '/abs',
  '-lead',
  '.hidden',
  'x'.repeat(65),
  'sp ace',
  'nul\0x',
  'tab\t',
  'ünï',
  'a\nb',
];

describe('names', () => {
  it.each(good)('accepts %j', (n) => {
    expect(isValidName(n)).toBe(true);
    expect(Compile(Name).Check(n)).toBe(true);
  });
  it.each(bad)('refuses %j in code and in the JSON schema alike', (n) => {
    expect(isValidName(n)).toBe(false);
    expect(Compile(Name).Check(n)).toBe(false);
    expect(() => assertName('container', n)).toThrow(LxcqError);
  });
  it('names the kind and the problem', () => {
    try {
      assertName('snapshot', 'a/b');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(LxcqError);
      const err = e as LxcqError;
      expect(err.code).toBe('LXCQ_INVALID_NAME');
      expect(err.status).toBe(400);
      expect(err.message).toMatch(/snapshot name "a\/b"/);
    }
  });
  it('refuses non-strings', () => {
    expect(isValidName(42)).toBe(false);
    expect(isValidName(null)).toBe(false);
  });
  it.each([
    [42, 'must be a string'],
    ['', 'must not be empty'],
    ['x'.repeat(65), 'must be at most 64 characters'],
    ['-x', 'may contain only letters, digits, "-", "." and "_", and must start with a letter or digit'],
    ['a..b', 'may contain only letters, digits, "-", "." and "_", and must start with a letter or digit'],
  ])('says what is wrong with %j', (n, why) => {
    expect(nameProblem(n)).toBe(why);
  });
  it('gives the kind and the problem as details, and shows at most 80 characters of the value', () => {
    const caught = (v: unknown): LxcqError => {
      try {
        assertName('host', v);
      } catch (e) {
        return e as LxcqError;
      }
      throw new Error('not refused');
    };
    const long = caught('y'.repeat(200));
    expect(long.details).toEqual({ kind: 'host', problem: 'must be at most 64 characters' });
    expect(long.message).toBe(`Invalid host name "${'y'.repeat(80)}": must be at most 64 characters.`);
    expect(caught(7).message).toBe('Invalid host name number: must be a string.');
    expect(assertName('host', 'h1')).toBe('h1');
  });
});
