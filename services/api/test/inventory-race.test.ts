// The worker's periodic inventory while jobs end: a container a job has just made must never
// drop out of the registry (an inventory that read lxc-ls before the job made it would drop it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG } from './harness.ts';

let s: Stack;
beforeAll(async () => {
  // An inventory every 100 ms over a few dozen containers runs nearly all the time.
  s = await Stack.start({ workerEnv: { LXCQ_INVENTORY_MS: '100' } });
  await Promise.all(
    Array.from({ length: 24 }, (_, i) =>
      s.run('POST', '/v1/containers', { name: `base${i}`, template: 'busybox', config: TEST_CONFIG }),
    ),
  );
}, 300_000);
afterAll(async () => {
  await s?.close();
});

describe('inventory while jobs run', () => {
  it(
    'a container stays in the registry from the moment the job that made it completed',
    { timeout: 300_000 },
    async () => {
      const missing = new Set<string>();
      let watching = true;
      const made: string[] = [];
      const watcher = (async () => {
        while (watching) {
          const names = new Set(
            ((await s.http<{ name: string }[]>('GET', '/v1/containers')).body ?? []).map((c) => c.name),
          );
          for (const n of made) if (!names.has(n)) missing.add(n);
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      for (let round = 0; round < 6; round++) {
        const names = Array.from({ length: 6 }, (_, i) => `inv${round}-${i}`);
        await Promise.all(
          names.map(async (name) => {
            const j = await s.run('POST', '/v1/containers', {
              name,
              template: 'busybox',
              config: TEST_CONFIG,
            });
            expect(j.state, JSON.stringify(j.error)).toBe('completed');
            made.push(name);
          }),
        );
      }
      await new Promise((r) => setTimeout(r, 1000));
      watching = false;
      await watcher;
      expect([...missing]).toEqual([]);
    },
  );
});
