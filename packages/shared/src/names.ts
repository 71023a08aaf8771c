import { LxcqError } from './errors.ts';

/**
 * Names reach file paths (`<lxcpath>/<name>`) and liblxc, so they are checked before anything else
 * sees them: letters, digits, '-', '.', '_'; starting with a letter or digit; no '..'; 1-64 chars.
 */
export const NAME_PATTERN = '^(?!.*\\.\\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const NAME_RE = new RegExp(NAME_PATTERN);

export type NameKind = 'container' | 'snapshot' | 'host' | 'checkpoint';

export function nameProblem(value: unknown): string | null {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0) return 'must not be empty';
  if (value.length > 64) return 'must be at most 64 characters';
  if (!NAME_RE.test(value))
    return 'may contain only letters, digits, "-", "." and "_", and must start with a letter or digit';
  if (value.includes('..')) return 'must not contain ".."';
  return null;
}

export function isValidName(value: unknown): value is string {
  return nameProblem(value) === null;
}

export function assertName(kind: NameKind, value: unknown): string {
  const problem = nameProblem(value);
  if (problem !== null) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
    throw new LxcqError('LXCQ_INVALID_NAME', `Invalid ${kind} name ${shown}: ${problem}.`, {
      details: { kind, problem },
    });
  }
  return value as string;
}
