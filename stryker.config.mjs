// Mutation testing (`pnpm mutate`; docs/mutation.md): Stryker changes one line of these modules at
// a time and runs their unit tests; a change no test notices is a line no test guards. Only
// modules where a wrong line is a security or data-loss bug, and whose tests are fast.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate: [
    'packages/shared/src/policy.ts',
    'packages/shared/src/auth.ts',
    'services/api/src/auth.ts',
    'packages/shared/src/names.ts',
    'packages/shared/src/event-filter.ts',
    'packages/shared/src/settings.ts',
  ],
  // Named, not globbed: pnpm keeps them out of the core package's reach.
  plugins: ['@stryker-mutator/vitest-runner', '@stryker-mutator/typescript-checker'],
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutate.config.ts', related: false },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  // Every test file per mutant: with vitest 4, 'perTest' mapped mutants to too few tests and
  // reported mutants as surviving that the tests kill (docs/mutation.md). The tests take ~2 s.
  coverageAnalysis: 'all',
  // A mutant's tests take milliseconds; the bound is wide so a busy machine does not turn slow
  // runs into false timeouts (a timeout counts as killed, and restarts the test runner).
  timeoutMS: 30_000,
  // The machine running it is usually running other things too (2 cores in CI).
  concurrency: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  // The score may not fall below this (set just under the last measured score; docs/mutation.md).
  thresholds: { high: 95, low: 90, break: 80 },
};
