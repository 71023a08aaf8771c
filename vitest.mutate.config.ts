import { defineConfig } from 'vitest/config';

// The tests Stryker runs against each mutant (stryker.config.mjs): the unit tests of the modules it
// mutates. They need no Redis, no container and no child process, so a mutant costs milliseconds.
const ALL = [
  'packages/shared/test/policy.test.ts',
  'packages/shared/test/auth.test.ts',
  'packages/shared/test/names.test.ts',
  'packages/shared/test/event-filter.test.ts',
  'packages/shared/test/settings.test.ts',
  'services/api/test/auth.test.ts',
];

// LXCQ_MUTATE_TESTS (comma-separated) narrows the run to the tests of the module being mutated:
// `LXCQ_MUTATE_TESTS=packages/shared/test/policy.test.ts pnpm mutate --mutate packages/shared/src/policy.ts`.
// Each mutant then costs one test file's run instead of six (docs/mutation.md).
const only = process.env.LXCQ_MUTATE_TESTS?.split(',').filter(Boolean);

export default defineConfig({
  test: {
    include: only?.length ? only : ALL,
    testTimeout: 20_000,
  },
});
