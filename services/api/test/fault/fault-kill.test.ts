// The fault suite's fast profile, in the normal test run: the worker SIGKILLed mid-operation.
// `pnpm fault` runs the full profile (docs/fault-suite.md); the checks are the same.
import { describe, expect, it } from 'vitest';
import { workerKillCase } from './cases/worker-kill.ts';
import { table } from './report.ts';

const seed = Number(process.env.LXCQ_FAULT_SEED ?? 20261129);

describe('fault suite (fast profile)', () => {
  it(
    'worker SIGKILLed in the middle of every operation type: jobs end definitely, nothing half-made stays',
    { timeout: 900_000 },
    async () => {
      const r = await workerKillCase({ profile: 'fast', seed });
      console.log(table([r]));
      expect(r.problems).toEqual([]);
      expect(r.runs).toBeGreaterThanOrEqual(4);
      expect(r.lost).toBe(0);
      expect(r.orphans).toBe(0);
      expect(r.definite).toBe(r.submitted);
      expect(r.submitted).toBeGreaterThan(100);
    },
  );
});
