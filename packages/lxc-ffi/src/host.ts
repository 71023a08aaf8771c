// Host facts the binding needs: liblxc's CLI tools, the container's monitor process, CRIU.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Finds an executable in $PATH (plus sbin dirs, which root's PATH may lack). */
export function which(
  cmd: string,
  extraDirs: readonly string[] = ['/usr/sbin', '/sbin', '/usr/bin'],
): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean), ...extraDirs];
  for (const d of dirs) {
    const p = join(d, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * Names a host tool (an lxc-* tool, CRIU, tar, rsync) may take from this process's environment:
 * where programs are, the locale and time zone. Everything else stays behind: a service's
 * environment can hold secrets (tokens, a Redis password), and a tool passes its environment on
 * to what it starts (lxc-start to hooks, lxc-copy to rsync, liblxc to CRIU).
 */
const TOOL_ENV_NAMES = /^(PATH|HOME|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TMPDIR)$/;

/** A scrubbed environment for a host tool: the allowed names of `from`, plus `extra`. */
export function toolEnv(
  extra: Record<string, string> = {},
  from: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(from)) if (v !== undefined && TOOL_ENV_NAMES.test(k)) env[k] = v;
  env['PATH'] ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return { ...env, ...extra };
}

/** Path of an lxc-* tool: $LXCQ_LXC_BINDIR, then $PATH. */
export function lxcTool(tool: string, binDir?: string): string {
  const dir = binDir ?? process.env['LXCQ_LXC_BINDIR'];
  if (dir) return join(dir, tool);
  return which(tool) ?? tool;
}

/** PID of the `[lxc monitor] LXCPATH NAME` process of a container, or null. */
export function findMonitorPid(name: string, lxcpath: string): number | null {
  const want = `[lxc monitor] ${lxcpath.replace(/\/+$/, '')} ${name}`;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${entry}/cmdline`, 'latin1');
    } catch {
      continue;
    }
    const line = cmd.replace(/\0+$/, '').replace(/\0/g, ' ').trim();
    if (line === want) return Number(entry);
  }
  return null;
}

/** Private_Clean + Private_Dirty summary of a process from /proc/PID/smaps_rollup, in KiB. */
export function privateMemoryKb(pid: number): { privateDirtyKb: number; rssKb: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (k: string): number => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  return { privateDirtyKb: field('Private_Dirty'), rssKb: field('Rss') };
}

/** Memory of a container's monitor, or null when it has none (not running). */
export function monitorMemory(
  name: string,
  lxcpath: string,
): { pid: number; privateDirtyKb: number; rssKb: number } | null {
  const pid = findMonitorPid(name, lxcpath);
  if (pid === null) return null;
  try {
    return { pid, ...privateMemoryKb(pid) };
  } catch {
    return null;
  }
}

export interface CriuStatus {
  available: boolean;
  path: string | null;
  /** Why not, in words an operator can act on. */
  reason: string;
}

let criuCache: CriuStatus | undefined;

/** Whether CRIU can checkpoint here: the binary exists and `criu check` passes. Cached per
 * thread; `refresh` re-runs the check. */
export function criuStatus(refresh = false): CriuStatus {
  if (criuCache && !refresh) return criuCache;
  const path = which('criu');
  if (!path) {
    criuCache = {
      available: false,
      path: null,
      reason:
        'criu is not installed (no `criu` in PATH, /usr/sbin or /sbin); install criu >= 3.18 (Debian 13 / Ubuntu 24.04 package `criu`)',
    };
    return criuCache;
  }
  const r = spawnSync(path, ['check'], { encoding: 'utf8', timeout: 30_000, env: toolEnv() });
  const out = `${r.stdout}${r.stderr}`.trim();
  if (r.status === 0) criuCache = { available: true, path, reason: out || 'criu check passed' };
  else
    criuCache = {
      available: false,
      path,
      reason: `\`criu check\` failed (status ${r.status}): ${out.slice(-500)}`,
    };
  return criuCache;
}

/** readdirSync that returns [] for a vanished directory (e.g. /proc/PID of an exited process). */
export function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
