import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, LxcqError, toLxcqError } from '../src/index.ts';
import { renderErrorTable } from '../scripts/error-table.ts';

describe('error codes', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  it.each(Object.keys(ERROR_CODES))('%s is documented in docs/errors.md with its status', (code) => {
    const { status } = ERROR_CODES[code as keyof typeof ERROR_CODES];
    expect(doc).toMatch(new RegExp(`\\| \`${code}\` \\| ${status} \\|`));
  });
  it('docs/errors.md is the generated table (run: pnpm --filter @lxcq/shared errors:doc)', () => {
    expect(doc).toBe(renderErrorTable());
  });
  it('every code is LXCQ_ prefixed with a 4xx or 5xx status', () => {
    for (const [code, { status }] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^LXCQ_[A-Z_]+$/);
      expect(status).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(600);
    }
  });
  it('normalises foreign errors and keeps the cause', () => {
    const cause = new TypeError('boom');
    const e = toLxcqError(cause);
    expect(e.code).toBe('LXCQ_INTERNAL');
    expect(e.cause).toBe(cause);
    const wire = toLxcqError({ code: 'LXCQ_INVALID_STATE', message: 'frozen', details: { state: 'FROZEN' } });
    expect(wire.toJSON()).toEqual({
      code: 'LXCQ_INVALID_STATE',
      message: 'frozen',
      details: { state: 'FROZEN' },
    });
    expect(new LxcqError('LXCQ_VALIDATION', 'x').permanent).toBe(true);
    expect(new LxcqError('LXCQ_LXC_ERROR', 'x').permanent).toBe(false);
  });
});
