// Renders docs/errors.md from the error-code table; `pnpm --filter @lxcq/shared errors:doc` rewrites it.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '../src/errors.ts';

export function renderErrorTable(): string {
  const rows = Object.entries(ERROR_CODES).map(
    ([code, { status, meaning }]) => `| \`${code}\` | ${status} | ${meaning} |`,
  );
  return [
    '# lxcq error codes',
    '',
    'Every error body is `{"error":{"code":"LXCQ_...","message":"...","details":{}}}`; failed jobs carry the',
    'same object in `error`. Generated from `packages/shared/src/errors.ts`; a test keeps the two equal.',
    '',
    '| code | HTTP status | meaning |',
    '|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(new URL('../../../docs/errors.md', import.meta.url), renderErrorTable());
}
