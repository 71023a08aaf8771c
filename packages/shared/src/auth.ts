export type Scope = 'read' | 'operate' | 'admin';
export const SCOPES: readonly Scope[] = ['read', 'operate', 'admin'];

/** admin implies operate implies read. */
export function scopeSatisfies(have: readonly Scope[], need: Scope): boolean {
  const rank = { read: 0, operate: 1, admin: 2 } as const;
  return have.some((s) => rank[s] >= rank[need]);
}
