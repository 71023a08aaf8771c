import { describe, expect, it } from 'vitest';
import { Compile } from 'typebox/compile';
import { LxcqError, Name, assertName, isValidName } from '../src/index.ts';

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
});
