// Host facts the binding needs: liblxc's CLI tools, the container's monitor process, CRIU.
import { spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { release, tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';

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

/**
 * The process the socket probe dumps: packages/lxc-ffi/criu-probe.pl, which scripts/setup-host.sh
 * runs (a test checks the two are the same text). Inline here because the worker's threads load
 * this module through tsx, where import.meta.url does not lead back to the package's files.
 */
export const CRIU_PROBE_PROGRAM = `#!/usr/bin/perl
# lxcq's CRIU socket probe: a process holding the kinds of sockets every ordinary container has
# (a unix socket like syslogd's /dev/log, a TCP socket), for \`criu dump -t PID\` to prove that this
# criu can dump sockets on this kernel. \`criu check\` passes where a dump of any such socket fails
# (criu 4.1.1 on Linux >= 6.16: "sockets: Can't get 1:34 opt: Operation not supported").
# Run by scripts/setup-host.sh and by the worker (packages/lxc-ffi/src/host.ts: criuStatus).
# Usage: perl criu-probe.pl DIR; writes DIR/ready once its sockets exist, then sleeps until killed.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX ();
use Socket;

my $dir = shift or die "usage: criu-probe.pl DIR\\n";
# Its own session (criu refuses a tree whose session leader is outside it) and only its own
# files: whatever the caller leaked (pipes, its log) is not what the probe is about.
POSIX::setsid();
POSIX::close($_) for 3 .. 255;
my $unix = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => "$dir/probe.sock", Listen => 1)
  or die "unix socket: $!\\n";
my $tcp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1, Proto => 'tcp')
  or die "tcp socket: $!\\n";
open(my $ready, '>', "$dir/ready") or die "$dir/ready: $!\\n";
close $ready;
sleep 1 while 1;
`;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Dumps a process holding a unix and a TCP socket on loopback (criu-probe.pl): `criu check`
 * passes where every socket dump fails (criu 4.1.1 on Linux >= 6.16: "Can't get 1:34 opt"), so
 * only a dump tells whether this criu can checkpoint an ordinary container. Returns null when the
 * dump worked, else why not.
 */
export function criuSocketProbe(criu: string): string | null {
  const perl = which('perl');
  if (!perl) return 'no perl to run the socket probe (criu-probe.pl)';
  const dir = mkdtempSync(join(tmpdir(), 'lxcq-criu-probe-'));
  const err = openSync(join(dir, 'probe.err'), 'w');
  const child = spawn(perl, ['-e', CRIU_PROBE_PROGRAM, dir], {
    stdio: ['ignore', 'ignore', err],
    detached: true,
  });
  closeSync(err);
  child.on('error', () => undefined);
  child.unref();
  try {
    for (let i = 0; i < 100 && !existsSync(join(dir, 'ready')); i++) {
      if (child.exitCode !== null) break;
      sleepSync(50);
    }
    if (!existsSync(join(dir, 'ready')) || child.pid === undefined)
      return `the socket probe did not start: ${readFileSync(join(dir, 'probe.err'), 'utf8').slice(0, 300)}`;
    mkdirSync(join(dir, 'img'));
    // bounded: criu 4.1.1 hung here after failing a socket dump
    const r = spawnSync(criu, ['dump', '-t', String(child.pid), '-D', join(dir, 'img'), '-o', 'dump.log'], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    if (r.status === 0) return null;
    let log = '';
    try {
      log = readFileSync(join(dir, 'img', 'dump.log'), 'utf8');
    } catch {
      // no log: the status says it
    }
    const errors = log
      .split('\n')
      .filter((l) => /Error|Can't/.test(l) && !l.includes('RLIMIT_NOFILE'))
      .slice(0, 2)
      .map((l) => l.replace(/^\([\d. ]*\)\s*/, '').replace(/^Error \([^)]*\):\s*/, ''));
    const why =
      errors.length > 0
        ? errors.join('; ')
        : `criu dump exited with ${r.status ?? r.signal ?? r.error?.message}`;
    return r.error ? `${why} (and criu hung afterwards)` : why;
  } finally {
    try {
      child.kill('SIGKILL');
    } catch {
      // the dump ended it
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Where a probe's verdict is kept across worker restarts: /run is emptied by a reboot. */
const PROBE_CACHE = '/run/lxcq/criu-probe.json';

/**
 * The socket probe's verdict, from the cache when the same criu (path, version, the file's size
 * and time) ran it on the same kernel: the probe costs a second or more, and a worker that
 * restarts must be back on its heartbeat quickly. `refresh` probes again.
 */
function cachedProbe(path: string, version: string, refresh: boolean): string | null {
  let key = '';
  try {
    const st = statSync(path);
    key = JSON.stringify([path, version, st.size, st.mtimeMs, release()]);
    if (!refresh) {
      const c = JSON.parse(readFileSync(PROBE_CACHE, 'utf8')) as { key?: string; why?: string | null };
      if (c.key === key && (c.why === null || typeof c.why === 'string')) return c.why;
    }
  } catch {
    // no cache yet, or an unreadable one: probe
  }
  const why = criuSocketProbe(path);
  if (key !== '')
    try {
      mkdirSync(dirname(PROBE_CACHE), { recursive: true, mode: 0o755 });
      writeFileSync(`${PROBE_CACHE}.${process.pid}`, JSON.stringify({ key, why }));
      renameSync(`${PROBE_CACHE}.${process.pid}`, PROBE_CACHE);
    } catch {
      // not root or no /run: probe again next time
    }
  return why;
}

/** Whether CRIU can checkpoint here: the binary exists, `criu check` passes and it can dump a
 * process holding sockets (criuSocketProbe). Cached per thread; `refresh` runs both again. */
export function criuStatus(refresh = false): CriuStatus {
  if (criuCache && !refresh) return criuCache;
  const path = which('criu');
  if (!path) {
    criuCache = {
      available: false,
      path: null,
      reason:
        'criu is not installed (no `criu` in PATH, /usr/sbin or /sbin); install criu >= 4.2 (scripts/setup-host.sh; Debian sid / Ubuntu 25.10 package `criu`)',
    };
    return criuCache;
  }
  const r = spawnSync(path, ['check'], { encoding: 'utf8', timeout: 30_000, env: toolEnv() });
  const out = `${r.stdout}${r.stderr}`.trim();
  if (r.status !== 0) {
    criuCache = {
      available: false,
      path,
      reason: `\`criu check\` failed (status ${r.status}): ${out.slice(-500)}`,
    };
    return criuCache;
  }
  const version =
    /Version:\s*(\S+)/.exec(spawnSync(path, ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? '?';
  const probe = cachedProbe(path, version, refresh);
  criuCache =
    probe === null
      ? {
          available: true,
          path,
          reason: `criu ${version}: \`criu check\` passed and it dumped a process holding a unix and a TCP socket`,
        }
      : {
          available: false,
          path,
          reason: `criu ${version} passes \`criu check\` but cannot dump a socket on this kernel (${probe}); scripts/setup-host.sh installs one that can`,
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
