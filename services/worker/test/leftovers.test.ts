// Helpers a dead worker left running are found by the lxcpath in their environment and stopped;
// helpers of another lxcpath (another worker on the same machine) are left alone.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { TOOL_ENV, findLeftoverTools, killLeftoverTools, toolEnv } from '../src/leftovers.ts';

const started: ChildProcess[] = [];
afterEach(() => {
  for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function helper(lxcpath: string): ChildProcess {
  // A shell that starts a child of its own, as lxc-copy starts rsync: both carry the tag.
  const c = spawn('sh', ['-c', 'sleep 60 & wait'], { env: toolEnv(lxcpath), stdio: 'ignore' });
  started.push(c);
  return c;
}

const exited = (c: ChildProcess) =>
  new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

describe('leftover helper processes', () => {
  it('are found by their lxcpath, with their children, and killed; other lxcpaths are not touched', async () => {
    const mine = helper('/tmp/lxcq-leftover-a');
    const other = helper('/tmp/lxcq-leftover-ab');
    // the shell and its sleep (wait until the shell has started it)
    let found: number[] = [];
    for (let i = 0; i < 100 && found.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      found = findLeftoverTools('/tmp/lxcq-leftover-a');
    }
    expect(found).toContain(mine.pid);
    expect(found.length).toBeGreaterThanOrEqual(2);
    expect(findLeftoverTools('/tmp/lxcq-leftover-ab')).toContain(other.pid);
    const killed = await killLeftoverTools('/tmp/lxcq-leftover-a');
    for (const pid of found) expect(killed).toContain(pid);
    await exited(mine);
    expect(findLeftoverTools('/tmp/lxcq-leftover-a')).toEqual([]);
    expect(other.exitCode).toBeNull();
    expect(findLeftoverTools('/tmp/lxcq-leftover-ab')).toContain(other.pid);
    expect(toolEnv('/x')[TOOL_ENV]).toBe('/x');
  });
});
