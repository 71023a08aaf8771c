import { describe, expect, it } from 'vitest';
import { SCOPES, scopeSatisfies, type Scope } from '../src/index.ts';

describe('scopes', () => {
  // admin implies operate implies read, and nothing implies more than it is.
  const ranked: Scope[] = ['read', 'operate', 'admin'];
  it.each(ranked.flatMap((have) => ranked.map((need) => [have, need] as const)))(
    'a token with %s satisfies %s only when it ranks at least as high',
    (have, need) => {
      expect(scopeSatisfies([have], need)).toBe(ranked.indexOf(have) >= ranked.indexOf(need));
    },
  );
  it('any one of several scopes is enough; none is never enough', () => {
    expect(scopeSatisfies(['read', 'admin'], 'operate')).toBe(true);
    expect(scopeSatisfies(['admin', 'read'], 'admin')).toBe(true);
    expect(scopeSatisfies(['read', 'read'], 'operate')).toBe(false);
    for (const need of ranked) expect(scopeSatisfies([], need)).toBe(false);
  });
  it('names exactly the three scopes, lowest first', () => {
    expect(SCOPES).toEqual(ranked);
  });
});
