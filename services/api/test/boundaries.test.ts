// The API never touches liblxc: it validates, authorizes, places and enqueues. Nothing in its
// package may depend on the worker or on lxc-ffi (the benchmarks, which drive both, live in the
// top-level bench/ package).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const FORBIDDEN = /@lxcq\/(worker|lxc-ffi)|\/worker\/src\/|\/lxc-ffi\//;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mjs|js)$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

describe('the API package', () => {
  it('depends on neither the worker nor lxc-ffi', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
    const deps = Object.keys({
      ...(pkg.dependencies as object),
      ...(pkg.devDependencies as object),
      ...(pkg.peerDependencies as object),
    });
    expect(deps.filter((d) => FORBIDDEN.test(d))).toEqual([]);
  });
  it('imports neither of them in its sources', () => {
    const files = sources(join(root, 'src'));
    expect(files.length).toBeGreaterThan(10);
    const offenders = files.filter((f) =>
      [...readFileSync(f, 'utf8').matchAll(/(?:from|import\(?)\s*['"]([^'"]+)['"]/g)].some((m) =>
        FORBIDDEN.test(m[1] ?? ''),
      ),
    );
    expect(offenders).toEqual([]);
  });
});
