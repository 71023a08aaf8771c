// Builds the dashboard into dist/ (index.html, app.js, app.css, favicon.svg, source map), which the
// API serves at /ui/. `pnpm --filter @lxcq/dashboard build`; scripts/setup-host.sh runs it after
// `pnpm install`, so scripts/run.sh and scripts/test.sh always have a current bundle.
import { copyFileSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = fileURLToPath(new URL('.', import.meta.url));

export const SRC_DIR = join(here, 'src');
export const DIST_DIR = join(here, 'dist');

export interface BuildResult {
  outDir: string;
  files: { name: string; bytes: number }[];
  ms: number;
}

export async function buildDashboard(outDir: string = DIST_DIR): Promise<BuildResult> {
  const t0 = performance.now();
  // Into a fresh directory, then swapped in: the API never serves half a build.
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await build({
      entryPoints: { app: join(SRC_DIR, 'main.tsx') },
      outdir: tmp,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      // Current browsers (the last two years of Chrome, Firefox, Safari): no down-levelling needed.
      target: ['es2022', 'chrome111', 'firefox111', 'safari16'],
      jsx: 'automatic',
      jsxImportSource: 'preact',
      minify: true,
      sourcemap: 'linked',
      legalComments: 'eof',
      logLevel: 'warning',
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    for (const f of ['index.html', 'favicon.svg']) copyFileSync(join(SRC_DIR, f), join(tmp, f));
    rmSync(outDir, { recursive: true, force: true });
    renameSync(tmp, outDir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const names = ['index.html', 'app.js', 'app.css', 'favicon.svg'];
  return {
    outDir,
    files: names.map((name) => ({ name, bytes: statSync(join(outDir, name)).size })),
    ms: Math.round(performance.now() - t0),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await buildDashboard();
  const list = r.files.map((f) => `${f.name} ${(f.bytes / 1024).toFixed(1)} KiB`).join(', ');
  console.log(`dashboard built in ${r.ms} ms: ${r.outDir} (${list})`);
}
