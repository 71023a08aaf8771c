// The SDK core must bundle for browsers: no Node built-ins, no Node-only packages (ws resolves to
// its browser stub, never called there), and not the operation catalogue's typebox.
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

describe('browser bundle', () => {
  it('bundles src/index.ts for the browser without Node built-ins', async () => {
    const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    const r = await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    expect(r.errors).toEqual([]);
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs.filter((p) => /node_modules/.test(p))).toEqual([
      expect.stringMatching(/ws\/browser\.js$/) as unknown,
    ]);
    expect(inputs.some((p) => /typebox|ioredis|\/cli\//.test(p))).toBe(false);
    const code = r.outputFiles[0]?.text ?? '';
    expect(code).not.toMatch(/from ["']node:/);
    expect(code.length).toBeLessThan(80_000);
  });
});
