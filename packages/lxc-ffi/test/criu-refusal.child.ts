// Run by criu.test.ts in a child process (its own criuStatus cache, its own PATH): opens a running
// container and makes every CRIU call, printing what each one threw as JSON on stdout.
import { Container, LxcError, criuStatus } from '../src/index.ts';

const [lxcpath, name, dir] = process.argv.slice(2) as [string, string, string];
using c = Container.open(name, lxcpath);
const calls: [string, () => unknown][] = [
  ['checkpoint', () => c.checkpoint(dir, { stop: true })],
  ['restore', () => c.restore(dir)],
  ['restoreInProcess', () => c.restoreInProcess(dir)],
  ['migrate feature-check', () => c.migrate('feature-check', { directory: dir })],
  ['migrate pre-dump', () => c.migrate('pre-dump', { directory: dir })],
  ['migrate dump', () => c.migrate('dump', { directory: dir, stop: true })],
  ['migrate restore', () => c.migrate('restore', { directory: dir })],
];
const results = calls.map(([what, fn]) => {
  try {
    fn();
    return { what, code: null, message: 'no error' };
  } catch (e) {
    return { what, code: e instanceof LxcError ? e.code : 'not an LxcError', message: (e as Error).message };
  }
});
process.stdout.write(JSON.stringify({ status: criuStatus(), results, state: c.state }));
