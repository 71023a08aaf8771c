import { defineConfig } from 'vitest/config';

// The tests Stryker runs against each mutant (stryker.config.mjs): the unit tests of the modules it
// mutates. They need no Redis, no container and no child process, so a mutant costs milliseconds.
export default defineConfig({
  test: {
    include: [
      'packages/shared/test/policy.test.ts',
      'packages/shared/test/auth.test.ts',
      'packages/shared/test/names.test.ts',
      'packages/shared/test/event-filter.test.ts',
      'packages/shared/test/settings.test.ts',
      'services/api/test/auth.test.ts',
    ],
    testTimeout: 20_000,
  },
});
