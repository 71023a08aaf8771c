#!/usr/bin/env node
// The lxcq CLI. The repository runs TypeScript sources without a build step, so this registers
// tsx's loader in this process and imports the CLI (src/cli/main.ts).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
const code = await main(process.argv.slice(2));
// Let stdout and stderr drain before leaving (they may be pipes).
await Promise.all(
  [process.stdout, process.stderr].map((s) => new Promise((resolve) => s.write('', () => resolve()))),
);
process.exit(code);
