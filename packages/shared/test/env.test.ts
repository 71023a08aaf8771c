import { describe, expect, it } from 'vitest';
import { settlesWithin } from '../src/env.ts';

describe('settlesWithin (a bounded step of a stop)', () => {
  it('is true for a step that ends or fails in time, and for no step', async () => {
    expect(await settlesWithin(Promise.resolve('x'), 1000)).toBe(true);
    expect(await settlesWithin(Promise.reject(new Error('gone')), 1000)).toBe(true);
    expect(await settlesWithin(new Promise((r) => setTimeout(r, 10)), 1000)).toBe(true);
    expect(await settlesWithin(undefined, 1000)).toBe(true);
  });

  it('is false for a step that hangs, once the bound has passed', async () => {
    const t0 = Date.now();
    expect(await settlesWithin(new Promise(() => undefined), 50)).toBe(false);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
  });
});
