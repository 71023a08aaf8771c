import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { toolEnv as scrubbedEnv } from '@lxcq/lxc-ffi/host';

/**
 * Helper processes a dead worker left running. liblxc's own tools (lxc-copy, lxc-snapshot,
 * lxc-freeze) run as children of the worker; when the worker is killed (SIGKILL, OOM) they go on,
 * and so does the rsync lxc-copy started: a clone or snapshot copy keeps writing into the lxcpath
 * while the next worker re-runs the job that started it, purging and copying the same directory.
 * Every such tool is started with `LXCQ_TOOL_OF=<lxcpath>` in its environment, which its own
 * children inherit; a worker starting on that lxcpath stops them all before it takes any job.
 */
export const TOOL_ENV = 'LXCQ_TOOL_OF';

/** Where helper tools write their liblxc log while they run (removed when a worker starts). */
export function toolLogDir(lxcpath: string): string {
  return join(lxcpath, '.lxcq', 'tool-logs');
}

/** The environment for a helper tool working on `lxcpath`: scrubbed (no secret), plus the mark. */
export function toolEnv(lxcpath: string): NodeJS.ProcessEnv {
  return scrubbedEnv({ [TOOL_ENV]: lxcpath });
}

/** Pids of processes (other than this one) started as helpers on `lxcpath`. */
export function findLeftoverTools(lxcpath: string, procRoot = '/proc'): number[] {
  const want = `${TOOL_ENV}=${lxcpath}`;
  const found: number[] = [];
  for (const entry of readdirSync(procRoot)) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let environ: string;
    try {
      environ = readFileSync(`${procRoot}/${entry}/environ`, 'latin1');
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    if (environ.split('\0').includes(want)) found.push(pid);
  }
  return found;
}

/**
 * SIGKILLs every leftover helper on `lxcpath` until none is left (a dying lxc-copy's rsync is
 * found on the next pass; a killed process's environment reads empty); returns the pids killed.
 */
export async function killLeftoverTools(lxcpath: string, procRoot = '/proc'): Promise<number[]> {
  const killed = new Set<number>();
  for (let pass = 0; pass < 100; pass++) {
    const pids = findLeftoverTools(lxcpath, procRoot);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      } catch {
        // exited meanwhile
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return [...killed];
}
