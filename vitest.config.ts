import { configDefaults, defineConfig } from 'vitest/config';

const INCLUDE = [
  'packages/*/test/**/*.test.ts',
  'services/*/test/**/*.test.ts',
  'bench/test/**/*.test.ts',
  'test/**/*.test.ts',
];
const FAULT = ['services/api/test/fault/**/*.test.ts'];

// One run covers every workspace package; tests import sources directly (no build step).
// Two groups, one after the other: every test first, then the fault suite's fast profile, which
// kills and floods whole stacks and would otherwise starve the timing of the others on 2 cores.
export default defineConfig({
  test: {
    pool: 'forks',
    // Real containers and real Redis: give slow machines room, keep files isolated.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: INCLUDE,
          exclude: [...configDefaults.exclude, ...FAULT],
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: 'fault', include: FAULT, sequence: { groupOrder: 1 } } },
    ],
  },
});
