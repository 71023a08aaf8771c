// The fault suite's fast profile, in the normal test run: Redis and the API restarted under load,
// a load run and a fuzz run. `pnpm fault` runs the full profile (docs/fault-suite.md).
import { describe, expect, it } from 'vitest';
import { apiRestartCase } from './cases/api-restart.ts';
import { fuzzCase } from './cases/fuzz.ts';
import { loadCase } from './cases/load.ts';
import { redisRestartCase } from './cases/redis-restart.ts';
import { table, type CaseResult } from './report.ts';

const seed = Number(process.env.LXCQ_FAULT_SEED ?? 20261129);

function passed(r: CaseResult, minRuns: number): void {
  console.log(table([r]));
  expect(r.problems).toEqual([]);
  expect(r.runs).toBeGreaterThanOrEqual(minRuns);
  expect(r.lost).toBe(0);
  expect(r.orphans).toBe(0);
  expect(r.definite).toBe(r.submitted);
}

describe('fault suite (fast profile)', () => {
  const opts = { profile: 'fast' as const, seed };
  it(
    'Redis restarted under load: nothing accepted is lost, everyone reconnects, no event missed',
    { timeout: 600_000 },
    async () => {
      const r = await redisRestartCase(opts, 'everysec');
      passed(r, 2);
      expect(r.submitted).toBeGreaterThan(50);
    },
  );

  it(
    'API restarted with subscribers: they resume by cursor, no event missed',
    { timeout: 600_000 },
    async () => {
      const r = await apiRestartCase(opts);
      passed(r, 2);
      expect(r.submitted).toBeGreaterThan(50);
    },
  );

  it(
    'load: hundreds of queued jobs, dozens of subscribers, memory bounded',
    { timeout: 600_000 },
    async () => {
      const r = await loadCase(opts);
      passed(r, 1);
      expect(r.submitted).toBe(600);
    },
  );

  it(
    'fuzz: every hostile request answered 4xx with a code, no crash, nothing written outside the lxcpath',
    { timeout: 600_000 },
    async () => {
      const r = await fuzzCase(opts);
      passed(r, 1700);
    },
  );
});
