// Typed API over RawLxc: one Container per struct lxc_container reference.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  lchownSync,
  mkdirSync,
  readdirSync,
  fstatSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import koffi from 'koffi';
import { LxcError } from './errors.ts';
import type { LxcErrorCode } from './errors.ts';
import { criuStatus, lxcTool, readdirSafe, toolEnv } from './host.ts';
import {
  Arena,
  BdevSpecsStruct,
  LXC_ATTACH_CLEAR_ENV,
  LXC_ATTACH_DEFAULT,
  LXC_ATTACH_KEEP_ENV,
  LXC_CLONE_KEEPMACADDR,
  LXC_CLONE_KEEPNAME,
  LXC_CLONE_SNAPSHOT,
  LXC_CREATE_QUIET,
  LXC_MOUNT_API_V1,
  LxcAttachCommandStruct,
  LxcAttachOptionsStruct,
  LxcConsoleLogStruct,
  LxcMountStruct,
  LxcSnapshotStruct,
  MigrateOptsStruct,
  FEATURE_MEM_TRACK,
  MIGRATE_DUMP,
  MIGRATE_FEATURE_CHECK,
  MIGRATE_PRE_DUMP,
  MIGRATE_RESTORE,
  NULL,
  asPtr,
  defaultRaw,
} from './raw.ts';
import type { MemberName, MemberSignatures, Ptr, RawLxc } from './raw.ts';

export type ContainerState =
  'STOPPED' | 'STARTING' | 'RUNNING' | 'STOPPING' | 'ABORTING' | 'FREEZING' | 'FROZEN' | 'THAWED';
const STATES: readonly ContainerState[] = [
  'STOPPED',
  'STARTING',
  'RUNNING',
  'STOPPING',
  'ABORTING',
  'FREEZING',
  'FROZEN',
  'THAWED',
];

export interface BdevSpecs {
  fstype?: string;
  fssize?: number | bigint;
  zfsroot?: string;
  lvm?: { vg?: string; lv?: string; thinpool?: string };
  dir?: string;
  rbd?: { rbdname?: string; rbdpool?: string };
}

export interface SnapshotInfo {
  name: string;
  /** Text of the snapshot's comment file, if any. */
  comment: string | null;
  commentPath: string | null;
  timestamp: string;
  lxcpath: string;
}

export interface MigrateOptions {
  directory: string;
  verbose?: boolean;
  stop?: boolean;
  predumpDir?: string;
  pageserverAddress?: string;
  pageserverPort?: string;
  preservesInodes?: boolean;
  actionScript?: string;
  disableSkipInFlight?: boolean;
  ghostLimit?: number | bigint;
  featuresToCheck?: number | bigint;
}

export interface ExecOptions {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** Kill the command (and its descendants) after this many ms. */
  timeoutMs?: number;
  /**
   * Run with this process's environment (liblxc's LXC_ATTACH_KEEP_ENV). By default the command
   * starts from an empty one (LXC_ATTACH_CLEAR_ENV: liblxc sets PATH and `container=lxc`) plus
   * `env`: whatever this process holds in its environment must not reach a container.
   */
  keepEnv?: boolean;
  /** Keep at most this many bytes of stdout and of stderr (default 1 MiB). */
  maxOutputBytes?: number;
}

export interface ExecResult {
  /** Exit status; 128 + signal number when killed by a signal. */
  exitCode: number;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Whether stdout or stderr was cut at maxOutputBytes. */
  truncated: boolean;
}

export interface ContainerOptions {
  /** The binding to use (default: this thread's, loaded from $LXCQ_LIBLXC or liblxc.so.1). */
  raw?: RawLxc;
  /** Where lxc-start / lxc-checkpoint live (default $LXCQ_LXC_BINDIR, then $PATH). */
  lxcBinDir?: string;
}

export interface StartOptions {
  /** Run `argv` under lxc's minimal init (lxc-execute semantics). */
  useinit?: boolean;
  /** Command to run instead of the configured init. */
  argv?: string[];
}

const MIGRATE_CMDS = {
  'pre-dump': MIGRATE_PRE_DUMP,
  dump: MIGRATE_DUMP,
  restore: MIGRATE_RESTORE,
  'feature-check': MIGRATE_FEATURE_CHECK,
} as const;

/** Name, in the container's directory, of liblxc's log of the last start / restore (`lxc-start -o`,
 * `lxc-checkpoint -o`): truncated at each start, kept after it (the monitor goes on writing it). */
export const START_LOG_FILE = 'lxcq-start.log';
/** Name, in the container's directory, of the start tool's stdout/stderr (also the daemonized
 * monitor's, which inherits them). Truncated at each start. */
export const START_OUTPUT_FILE = 'lxcq-start.out';
/** liblxc log level of START_LOG_FILE. */
export const START_LOG_LEVEL = 'WARN';

/** Marks saveConfig's temporary files (`config.lxcq-tmp.<pid>.<thread>.<random>`). */
const CONFIG_TMP_MARK = '.lxcq-tmp.';

/** Removes temporary config files a killed process left in `dir` (its pid is gone). */
function removeStaleTemps(dir: string, prefix: string): void {
  for (const f of readdirSafe(dir)) {
    if (!f.startsWith(prefix)) continue;
    const pid = Number(f.slice(prefix.length).split('.')[0]);
    const alive = pid === process.pid || (Number.isInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`));
    if (!alive) rmSync(join(dir, f), { force: true });
  }
}

/** Gives `tmp` the owner and mode of `target` when it exists (liblxc creates 0644 as root). */
function keepOwnerAndMode(tmp: string, target: string): void {
  let st;
  try {
    st = statSync(target);
  } catch {
    return;
  }
  chmodSync(tmp, st.mode & 0o7777);
  chownSync(tmp, st.uid, st.gid);
}

/** fsync of a directory, so a rename in it survives a crash of the machine. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Whether the kernel offers CRIU memory tracking (soft-dirty), per thread; see migrate(). */
let memTrackCache: boolean | undefined;

/** The file's contents, or '' when it cannot be read. */
function readSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The last `n` non-empty lines of `text`. */
function tailLines(text: string, n: number): string {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .slice(-n)
    .join('\n');
}

/** lxc-start's hints that make no sense when the log was set (it was). */
const LOG_BOILERPLATE =
  /To get more details, run the container in foreground mode|Additional information can be obtained by setting the --logfile/;

/** The last `n` ERROR lines of a liblxc log (the WARN lines of a failed start, e.g. cgroup
 * clean-up, would push the cause out of a plain tail), or its last lines when it has none. */
function logErrors(text: string, n: number): string {
  const lines = text.split('\n').filter((l) => l.trim() && !LOG_BOILERPLATE.test(l));
  const errors = lines.filter((l) => /\sERROR\s/.test(l));
  return (errors.length > 0 ? errors : lines).slice(-n).join('\n');
}

/** What CRIU's own log in the images directory says went wrong (its Error / BUG lines), as a
 * suffix for an error message; '' when there is no log. */
function criuLogHint(dir: string, file: string): string {
  const path = join(dir, file);
  const text = readSafe(path);
  if (!text) return '';
  const errors = text.split('\n').filter((l) => /\b(Error|BUG)\b/.test(l));
  const lines = errors.length > 0 ? errors.slice(-8).join('\n') : tailLines(text, 5);
  return `; criu log ${path}:\n${lines}`;
}

const SIGNAL_NAMES = new Map<number, string>(Object.entries(osConstants.signals).map(([k, v]) => [v, k]));
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/** How long shutdown/reboot wait at most for init to be ready for its signal. */
const INIT_READY_MAX_SEC = 5;

/** A signal as lxc.signal.* writes it ("SIGTERM", "TERM", "15", "SIGRTMIN+3") to its number. */
function signalNumber(name: string): number | undefined {
  const v = name.trim().toUpperCase();
  if (/^\d+$/.test(v)) return Number(v);
  const full = v.startsWith('SIG') ? v : `SIG${v}`;
  const rt = /^SIGRTMIN\+(\d+)$/.exec(full);
  if (rt) return 34 + Number(rt[1]);
  return (osConstants.signals as Record<string, number | undefined>)[full];
}

function isState(s: unknown): s is ContainerState {
  return typeof s === 'string' && (STATES as readonly string[]).includes(s);
}

/** Decodes a waitpid status. */
export function decodeWaitStatus(status: number): { exitCode: number; signal: string | null } {
  const sig = status & 0x7f;
  if (sig === 0) return { exitCode: (status >> 8) & 0xff, signal: null };
  return { exitCode: 128 + sig, signal: SIGNAL_NAMES.get(sig) ?? `SIG${sig}` };
}

/** All descendants of `pid` (host view), from /proc/PID/task/TID/children. */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift();
    if (p === undefined) break;
    for (const tid of readdirSafe(`/proc/${p}/task`)) {
      let kids = '';
      try {
        kids = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const k of kids.split(/\s+/).filter(Boolean).map(Number)) {
        out.push(k);
        queue.push(k);
      }
    }
  }
  return out;
}

function readCapped(fd: number, max: number): { text: string; truncated: boolean } {
  const size = fstatSync(fd).size;
  const n = Math.min(size, max);
  const buf = Buffer.alloc(n);
  let off = 0;
  while (off < n) {
    const r = readSync(fd, buf, off, n - off, off);
    if (r <= 0) break;
    off += r;
  }
  return { text: buf.toString('utf8', 0, off), truncated: size > max };
}

export class Container implements Disposable {
  readonly raw: RawLxc;
  readonly lxcpath: string;
  private ptr: Ptr;
  private readonly lxcBinDir: string | undefined;
  private openedName: string;
  /** The in-memory config differs from the file (set/clear/load since the last save). */
  private configDirty = false;

  private constructor(raw: RawLxc, ptr: Ptr, name: string, lxcpath: string, lxcBinDir: string | undefined) {
    this.raw = raw;
    this.ptr = ptr;
    this.openedName = name;
    this.lxcpath = lxcpath;
    this.lxcBinDir = lxcBinDir;
  }

  /** lxc_container_new(name, lxcpath). The container need not exist yet. */
  static open(name: string, lxcpath: string, options: ContainerOptions = {}): Container {
    if (!name || name.includes('/')) {
      throw new LxcError('LXC_INVALID_ARGUMENT', `invalid container name '${name}'`, {
        operation: 'lxc_container_new',
        container: name,
      });
    }
    const raw = options.raw ?? defaultRaw();
    const ptr = raw.containerNew(name, lxcpath);
    if (ptr === NULL) {
      throw new LxcError('LXC_NEW_FAILED', `lxc_container_new failed for lxcpath '${lxcpath}'`, {
        operation: 'lxc_container_new',
        container: name,
        errno: raw.errno(),
      });
    }
    return new Container(raw, ptr, name, lxcpath, options.lxcBinDir);
  }

  /** Wraps a struct lxc_container pointer holding one reference (e.g. from list or clone). */
  static fromPointer(ptr: Ptr, options: ContainerOptions & { lxcpath?: string } = {}): Container {
    const raw = options.raw ?? defaultRaw();
    const name = raw.readField(ptr, 'name') ?? '';
    const lxcpath = options.lxcpath ?? raw.readField(ptr, 'config_path') ?? '';
    return new Container(raw, ptr, name, lxcpath, options.lxcBinDir);
  }

  // -- plumbing -------------------------------------------------------------------------------

  private get c(): Ptr {
    if (this.ptr === NULL) {
      throw new LxcError('LXC_DISPOSED', 'container used after dispose', {
        operation: 'use',
        container: this.openedName,
      });
    }
    return this.ptr;
  }

  get disposed(): boolean {
    return this.ptr === NULL;
  }

  /** The struct pointer (for RawLxc calls); throws after dispose. */
  get pointer(): Ptr {
    return this.c;
  }

  private call<K extends MemberName>(
    name: K,
    ...args: Parameters<MemberSignatures[K]>
  ): ReturnType<MemberSignatures[K]> {
    const c = this.c;
    this.requireSupported(name);
    koffi.errno(0);
    return this.raw.call(c, name, ...args);
  }

  /** Builds an LxcError from the struct's error_string/error_num and errno. */
  error(code: LxcErrorCode, operation: string, message: string, cause?: unknown): LxcError {
    const c = this.ptr;
    const errnoNow = this.raw.errno();
    const details = {
      operation,
      container: c === NULL ? this.openedName : this.name,
      errorNum: c === NULL ? undefined : this.raw.readField(c, 'error_num'),
      errorString: c === NULL ? undefined : this.raw.readField(c, 'error_string'),
      errno: errnoNow === 0 ? undefined : errnoNow,
      cause,
    };
    return new LxcError(code, message, details);
  }

  private requireDefined(operation: string): void {
    if (!this.defined) throw this.error('LXC_NOT_DEFINED', operation, 'container is not defined');
  }
  private requireRunning(operation: string): void {
    this.requireDefined(operation);
    if (!this.running)
      throw this.error('LXC_NOT_RUNNING', operation, `container is ${this.state}, not running`);
  }
  private check(ok: boolean, code: LxcErrorCode, operation: string, message: string): void {
    if (!ok) throw this.error(code, operation, message);
  }

  // -- identity and state ---------------------------------------------------------------------

  /** c->name (follows rename). */
  get name(): string {
    return this.ptr === NULL ? this.openedName : (this.raw.readField(this.ptr, 'name') ?? this.openedName);
  }
  /** c->error_string / c->error_num of the last failed call. */
  get lastError(): { errorString: string | null; errorNum: number } {
    return {
      errorString: this.raw.readField(this.c, 'error_string'),
      errorNum: this.raw.readField(this.c, 'error_num'),
    };
  }
  /** c->daemonize field. */
  get daemonize(): boolean {
    return this.raw.readField(this.c, 'daemonize');
  }
  get defined(): boolean {
    return this.call('is_defined');
  }
  get running(): boolean {
    return this.call('is_running');
  }
  get state(): ContainerState {
    const s = this.call('state');
    if (!isState(s)) throw this.error('LXC_CALL_FAILED', 'state', `unexpected state ${String(s)}`);
    return s;
  }
  /** Host PID of the container's init, -1 when not running. */
  get initPid(): number {
    return this.call('init_pid');
  }
  mayControl(): boolean {
    return this.call('may_control');
  }
  configFileName(): string {
    const s = this.raw.takeString(this.call('config_file_name'));
    if (s === null) throw this.error('LXC_CONFIG_FAILED', 'config_file_name', 'no config file name');
    return s;
  }
  getConfigPath(): string {
    return this.call('get_config_path') ?? this.lxcpath;
  }
  setConfigPath(path: string): void {
    this.check(
      this.call('set_config_path', path),
      'LXC_CONFIG_FAILED',
      'set_config_path',
      `cannot set config path '${path}'`,
    );
  }
  wantDaemonize(state: boolean): void {
    this.check(this.call('want_daemonize', state), 'LXC_CALL_FAILED', 'want_daemonize', 'failed');
  }
  wantCloseAllFds(state: boolean): void {
    this.check(this.call('want_close_all_fds', state), 'LXC_CALL_FAILED', 'want_close_all_fds', 'failed');
  }

  /** `<lxcpath>/<name>/lxcq-start.log`: liblxc's log (level START_LOG_LEVEL) of the last `start()` /
   * `restore()`, written by the tool and then by the container's monitor for its whole life. */
  get startLogFile(): string {
    return join(this.lxcpath, this.name, START_LOG_FILE);
  }
  /** `<lxcpath>/<name>/lxcq-start.out`: stdout/stderr of the last start tool and its monitor. */
  get startOutputFile(): string {
    return join(this.lxcpath, this.name, START_OUTPUT_FILE);
  }

  // -- lifecycle ------------------------------------------------------------------------------

  create(
    template: string,
    args: string[] = [],
    opts: { bdevtype?: string; flags?: number; specs?: BdevSpecs } = {},
  ): void {
    if (this.defined) throw this.error('LXC_ALREADY_DEFINED', 'create', 'container already exists');
    using arena = new Arena();
    let specs = NULL;
    if (opts.specs) {
      const s = opts.specs;
      specs = arena.struct(BdevSpecsStruct, {
        fstype: arena.str(s.fstype),
        fssize: BigInt(s.fssize ?? 0),
        zfs: { zfsroot: arena.str(s.zfsroot) },
        lvm: { vg: arena.str(s.lvm?.vg), lv: arena.str(s.lvm?.lv), thinpool: arena.str(s.lvm?.thinpool) },
        dir: arena.str(s.dir),
        rbd: { rbdname: arena.str(s.rbd?.rbdname), rbdpool: arena.str(s.rbd?.rbdpool) },
      });
    }
    const argv = arena.strArray(args);
    const ok = this.call(
      'create',
      template,
      opts.bdevtype ?? null,
      specs,
      opts.flags ?? LXC_CREATE_QUIET,
      argv,
    );
    this.check(ok, 'LXC_CREATE_FAILED', 'create', `template '${template}' failed`);
  }

  /**
   * Starts the container through liblxc's own `lxc-start` (or `lxc-execute -d` with useinit),
   * so that the `[lxc monitor]` left behind is a fork of that small program, not of this Node
   * process. An in-memory config change not saved yet is saved first so the tool sees it; an
   * unchanged config is not rewritten (a start must not depend on, or race with, a config write).
   */
  start(opts: StartOptions = {}): void {
    this.requireDefined('start');
    if (this.running) throw this.error('LXC_ALREADY_RUNNING', 'start', 'container is already running');
    this.requireRootfs('start');
    if (this.configDirty) this.saveConfig();
    const tool = opts.useinit ? 'lxc-execute' : 'lxc-start';
    const args = ['-n', this.name, '-P', this.lxcpath];
    if (opts.useinit) args.push('-d');
    this.runTool('start', 'LXC_START_FAILED', tool, args, opts.argv);
  }

  /** Raw c->start() in this process: the monitor is a fork of Node (big). For tests/bench. */
  startInProcess(opts: StartOptions = {}): void {
    this.requireDefined('start');
    if (this.running) throw this.error('LXC_ALREADY_RUNNING', 'start', 'container is already running');
    this.wantCloseAllFds(true);
    using arena = new Arena();
    const argv = opts.argv && opts.argv.length > 0 ? arena.strArray(opts.argv) : NULL;
    const ok = this.call('start', opts.useinit ? 1 : 0, argv);
    this.check(ok, 'LXC_START_FAILED', 'start', 'c->start failed');
  }

  /**
   * Runs lxc-start / lxc-execute / lxc-checkpoint -r. Its liblxc log goes to startLogFile and its
   * stdout/stderr to startOutputFile, both in the container's directory and truncated first: the
   * daemonized monitor inherits the log and those fds and writes them until the container stops,
   * so they must outlive this call (a file, not a pipe: spawnSync would wait on a pipe until the
   * container stops). A failure becomes an LxcError with the exit status and the log's tail.
   */
  private runTool(
    operation: string,
    code: LxcErrorCode,
    tool: string,
    args: string[],
    argv?: string[],
    hint?: () => string,
  ): void {
    const logFile = this.startLogFile;
    const outFile = this.startOutputFile;
    let out: number;
    try {
      writeFileSync(logFile, '', { mode: 0o640 });
      out = openSync(outFile, 'w', 0o640);
    } catch (e) {
      throw new LxcError(code, `cannot write ${logFile}: ${(e as Error).message}`, {
        operation,
        container: this.name,
        cause: e,
      });
    }
    const full = [...args, '-o', logFile, '-l', START_LOG_LEVEL];
    if (argv && argv.length > 0) full.push('--', ...argv);
    const exe = lxcTool(tool, this.lxcBinDir);
    let r: ReturnType<typeof spawnSync>;
    try {
      r = spawnSync(exe, full, { stdio: ['ignore', out, out], timeout: 120_000, env: toolEnv() });
    } finally {
      closeSync(out);
    }
    if (r.error || r.status !== 0) {
      const status = r.error
        ? r.error.message
        : r.signal
          ? `killed by ${r.signal}`
          : `exit status ${r.status}`;
      // The log holds the tool's ERROR lines too; its own output only matters when the log is
      // empty (e.g. a bad option, rejected before liblxc's log was opened).
      const detail = logErrors(readSafe(logFile), 15) || tailLines(readSafe(outFile), 15);
      throw new LxcError(code, `${tool} failed (${status}); log ${logFile}${hint ? hint() : ''}`, {
        operation,
        container: this.name,
        errorString: detail || null,
        errorNum: r.status ?? undefined,
        cause: r.error,
      });
    }
  }

  stop(): void {
    this.requireDefined('stop');
    this.check(this.call('stop'), 'LXC_STOP_FAILED', 'stop', 'c->stop failed');
  }

  /** Asks init to halt (lxc.signal.halt); true when it stopped within timeoutSec. Waits first
   * (see awaitInitSignal) until init can receive the signal. */
  shutdown(timeoutSec: number): boolean {
    this.requireRunning('shutdown');
    this.awaitInitSignal('lxc.signal.halt', 'SIGPWR', Math.min(timeoutSec, INIT_READY_MAX_SEC));
    return this.call('shutdown', timeoutSec);
  }

  /** Asks init to reboot (lxc.signal.reboot). With timeoutSec (reboot2) waits for the reboot and
   * returns whether it completed; without, returns whether the signal was sent. Waits first (see
   * awaitInitSignal) until init can receive the signal. */
  reboot(timeoutSec?: number): boolean {
    this.requireRunning('reboot');
    this.awaitInitSignal(
      'lxc.signal.reboot',
      'SIGINT',
      Math.min(timeoutSec ?? INIT_READY_MAX_SEC, INIT_READY_MAX_SEC),
    );
    if (timeoutSec === undefined) return this.call('reboot');
    return this.call('reboot2', timeoutSec);
  }

  /** Whether the container's init has set up to receive `signal`: it blocks or catches it, or
   * catches some signal (an init that waits for its signals synchronously, as busybox's does with
   * sigtimedwait, has them hidden from /proc's SigBlk while it waits). The kernel silently drops a
   * signal sent from outside to a PID namespace's init that neither blocks nor catches it, and
   * liblxc reports the send as a success. Right after a start that window is real (RUNNING is
   * announced before init has set up its signals): seen under load as a reboot that never came. */
  initReceives(signal: number): boolean {
    const pid = this.initPid;
    if (pid <= 0) return false;
    const status = readSafe(`/proc/${pid}/status`);
    const mask = (field: string): bigint => {
      const hex = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1];
      return hex === undefined ? 0n : BigInt(`0x${hex}`);
    };
    const caught = mask('SigCgt');
    return caught !== 0n || (mask('SigBlk') & (1n << BigInt(signal - 1))) !== 0n;
  }

  /** Waits up to timeoutSec until init receives the signal that config `key` names (default
   * `fallback`). The caller sends the signal either way, as liblxc would. */
  private awaitInitSignal(key: string, fallback: string, timeoutSec: number): void {
    const signal = signalNumber(this.getConfigItem(key) || fallback);
    if (signal === undefined) return;
    const end = Date.now() + timeoutSec * 1000;
    while (!this.initReceives(signal) && Date.now() < end) sleepMs(20);
  }

  freeze(): void {
    this.requireRunning('freeze');
    this.check(this.call('freeze'), 'LXC_FREEZE_FAILED', 'freeze', 'c->freeze failed');
  }
  unfreeze(): void {
    this.requireRunning('unfreeze');
    this.check(this.call('unfreeze'), 'LXC_UNFREEZE_FAILED', 'unfreeze', 'c->unfreeze failed');
  }
  /** Waits up to timeoutSec (-1: forever) for `state`; false on timeout. timeoutSec 0 only
   * checks the current state: liblxc 5.0 turns 0 into an unbounded receive on the monitor's
   * state socket (it would block forever when the state never comes). */
  wait(state: ContainerState, timeoutSec: number): boolean {
    if (timeoutSec === 0) return this.call('state') === state;
    return this.call('wait', state, timeoutSec);
  }

  destroy(opts: { withSnapshots?: boolean } = {}): void {
    this.requireDefined('destroy');
    if (this.running)
      throw this.error('LXC_ALREADY_RUNNING', 'destroy', 'stop the container before destroying it');
    // liblxc 5.0's destroy_with_snapshots fails (ENOENT) on a container that has no snapshots
    // (it cannot open the missing snaps directory): without any, a plain destroy does the same.
    const withSnapshots = (opts.withSnapshots ?? false) && this.snapshots().length > 0;
    const ok = withSnapshots ? this.call('destroy_with_snapshots') : this.call('destroy');
    this.check(
      ok,
      'LXC_DESTROY_FAILED',
      withSnapshots ? 'destroy_with_snapshots' : 'destroy',
      'destroy failed',
    );
  }

  rename(newName: string): void {
    this.requireDefined('rename');
    this.check(this.call('rename', newName), 'LXC_RENAME_FAILED', 'rename', `cannot rename to '${newName}'`);
    // liblxc leaves c->name at the old name: swap in a struct for the new one.
    const np = this.raw.containerNew(newName, this.lxcpath);
    if (np === NULL) throw this.error('LXC_NEW_FAILED', 'rename', `renamed, but cannot open '${newName}'`);
    const old = this.ptr;
    this.ptr = np;
    this.openedName = newName;
    this.raw.containerPut(old);
  }

  clone(
    newName: string,
    opts: {
      lxcpath?: string;
      snapshot?: boolean;
      keepName?: boolean;
      keepMacAddr?: boolean;
      bdevtype?: string;
      newSize?: number | bigint;
      flags?: number;
    } = {},
  ): Container {
    this.requireDefined('clone');
    let flags = opts.flags ?? 0;
    if (opts.snapshot) flags |= LXC_CLONE_SNAPSHOT;
    if (opts.keepName) flags |= LXC_CLONE_KEEPNAME;
    if (opts.keepMacAddr) flags |= LXC_CLONE_KEEPMACADDR;
    const p = this.call(
      'clone',
      newName,
      opts.lxcpath ?? null,
      flags,
      opts.bdevtype ?? null,
      null,
      BigInt(opts.newSize ?? 0),
      NULL,
    );
    if (p === NULL) throw this.error('LXC_CLONE_FAILED', 'clone', `cannot clone to '${newName}'`);
    return new Container(this.raw, p, newName, opts.lxcpath ?? this.lxcpath, this.lxcBinDir);
  }

  // -- snapshots --------------------------------------------------------------------------

  /** Snapshots the (stopped) container; returns the snapshot name, e.g. 'snap0'. */
  snapshot(commentFile?: string): string {
    this.requireDefined('snapshot');
    const n = this.call('snapshot', commentFile ?? null);
    if (n < 0) throw this.error('LXC_SNAPSHOT_FAILED', 'snapshot', 'c->snapshot failed');
    return `snap${n}`;
  }

  snapshots(): SnapshotInfo[] {
    this.requireDefined('snapshot_list');
    using arena = new Arena();
    const slot = arena.alloc('void *');
    koffi.encode(slot, 'void *', NULL);
    const n = this.call('snapshot_list', slot);
    const arr = asPtr(koffi.decode(slot, 'void *'));
    if (n < 0) throw this.error('LXC_SNAPSHOT_FAILED', 'snapshot_list', 'c->snapshot_list failed');
    const out: SnapshotInfo[] = [];
    const size = koffi.sizeof(LxcSnapshotStruct);
    const off = (f: string): number => koffi.offsetof(LxcSnapshotStruct, f);
    const str = (p: Ptr, f: string): string | null => {
      const s = asPtr(koffi.decode(p, off(f), 'void *'));
      return s === NULL ? null : koffi.decode.string(s);
    };
    for (let i = 0; i < n && arr !== NULL; i++) {
      const p = arr + BigInt(i * size);
      const commentPath = str(p, 'comment_pathname');
      let comment: string | null = null;
      if (commentPath !== null && existsSync(commentPath)) comment = readFileSync(commentPath, 'utf8');
      out.push({
        name: str(p, 'name') ?? '',
        comment,
        commentPath,
        timestamp: str(p, 'timestamp') ?? '',
        lxcpath: str(p, 'lxcpath') ?? '',
      });
      const freeFn = asPtr(koffi.decode(p, off('free'), 'void *'));
      if (freeFn !== NULL) koffi.call(freeFn, snapshotFreeProto(), p);
    }
    if (arr !== NULL) this.raw.free(arr);
    return out;
  }

  /** Restores `snap` as `newName` (default: over this container, which must be stopped). */
  restoreSnapshot(snap: string, newName?: string): void {
    this.requireDefined('snapshot_restore');
    const ok = this.call('snapshot_restore', snap, newName ?? null);
    this.check(ok, 'LXC_SNAPSHOT_FAILED', 'snapshot_restore', `cannot restore '${snap}'`);
  }
  destroySnapshot(snap: string): void {
    this.requireDefined('snapshot_destroy');
    this.check(
      this.call('snapshot_destroy', snap),
      'LXC_SNAPSHOT_FAILED',
      'snapshot_destroy',
      `cannot destroy '${snap}'`,
    );
  }
  destroyAllSnapshots(): void {
    this.requireDefined('snapshot_destroy_all');
    this.check(this.call('snapshot_destroy_all'), 'LXC_SNAPSHOT_FAILED', 'snapshot_destroy_all', 'failed');
  }

  // -- config -----------------------------------------------------------------------------

  /** Calls a `int f(c, key, char *retv, int inlen)` member twice (size, then data). */
  private readSized(
    member: 'get_config_item' | 'get_keys' | 'get_cgroup_item',
    key: string | null,
    code: LxcErrorCode,
  ): string {
    for (let attempt = 0; attempt < 3; attempt++) {
      const len =
        member === 'get_keys' ? this.call(member, key, NULL, 0) : this.call(member, key ?? '', NULL, 0);
      if (len < 0) throw this.error(code, member, `cannot read '${key ?? ''}'`);
      if (len === 0) return '';
      const buf = Buffer.alloc(len + 1);
      const again =
        member === 'get_keys'
          ? this.call(member, key, buf, len + 1)
          : this.call(member, key ?? '', buf, len + 1);
      if (again < 0) throw this.error(code, member, `cannot read '${key ?? ''}'`);
      if (again <= len) return buf.toString('utf8', 0, again);
    }
    throw this.error(code, member, `value of '${key ?? ''}' kept growing`);
  }

  getConfigItem(key: string): string {
    return this.readSized('get_config_item', key, 'LXC_CONFIG_FAILED');
  }
  setConfigItem(key: string, value: string): void {
    this.configDirty = true;
    this.check(
      this.call('set_config_item', key, value),
      'LXC_CONFIG_FAILED',
      'set_config_item',
      `cannot set '${key}'`,
    );
  }
  clearConfigItem(key: string): void {
    this.configDirty = true;
    this.check(
      this.call('clear_config_item', key),
      'LXC_CONFIG_FAILED',
      'clear_config_item',
      `cannot clear '${key}'`,
    );
  }
  /** Drops the whole in-memory config (c->clear_config). */
  clearConfig(): void {
    this.configDirty = true;
    this.call('clear_config');
  }
  /** Config keys (under `prefix`, e.g. 'lxc.net.0'). */
  configKeys(prefix?: string): string[] {
    return this.readSized('get_keys', prefix ?? null, 'LXC_CONFIG_FAILED')
      .split('\n')
      .filter(Boolean);
  }
  /** Value the running container uses (null when not running or unset). */
  runningConfigItem(key: string): string | null {
    return this.raw.takeString(this.call('get_running_config_item', key));
  }
  /**
   * Writes the in-memory config to `path`, by default the container's own config file. That file
   * is replaced atomically: liblxc's save_config opens its target with O_TRUNC and then writes, so
   * a process killed in between (a worker SIGKILLed mid-job) left an empty config behind, and the
   * next start ran with no rootfs, on the host's own root. liblxc writes a temporary file in the
   * same directory instead, which is fsync'd and renamed over the config: a reader, and whatever
   * is left after a kill, sees the old file or the new one, whole. `rewrite`, when given, edits
   * the text liblxc wrote before it replaces the config (it sees and returns the whole file).
   */
  saveConfig(path?: string, rewrite?: (text: string) => string): void {
    const target = path ?? this.configFileName();
    const dir = dirname(target);
    const prefix = `${basename(target)}${CONFIG_TMP_MARK}`;
    removeStaleTemps(dir, prefix);
    const tmp = join(dir, `${prefix}${process.pid}.${threadId}.${Math.random().toString(36).slice(2, 8)}`);
    try {
      this.check(
        this.call('save_config', tmp),
        'LXC_CONFIG_FAILED',
        'save_config',
        `cannot save config${path ? ` to '${path}'` : ''}`,
      );
      if (rewrite) writeFileSync(tmp, rewrite(readFileSync(tmp, 'utf8')));
      const fd = openSync(tmp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      keepOwnerAndMode(tmp, target);
      renameSync(tmp, target);
      fsyncDir(dir);
    } catch (err) {
      rmSync(tmp, { force: true });
      if (err instanceof LxcError) throw err;
      throw this.error(
        'LXC_CONFIG_FAILED',
        'save_config',
        `cannot save config: ${(err as Error).message}`,
        err,
      );
    }
    if (path === undefined) this.configDirty = false;
  }
  loadConfig(path?: string): void {
    this.configDirty = path !== undefined;
    this.check(
      this.call('load_config', path ?? null),
      'LXC_CONFIG_FAILED',
      'load_config',
      `cannot load config${path ? ` from '${path}'` : ''}`,
    );
  }

  getCgroupItem(key: string): string {
    this.requireRunning('get_cgroup_item');
    return this.readSized('get_cgroup_item', key, 'LXC_CGROUP_FAILED');
  }
  setCgroupItem(key: string, value: string): void {
    this.requireRunning('set_cgroup_item');
    this.check(
      this.call('set_cgroup_item', key, value),
      'LXC_CGROUP_FAILED',
      'set_cgroup_item',
      `cannot set '${key}'`,
    );
  }

  // -- network ----------------------------------------------------------------------------

  interfaces(): string[] {
    this.requireRunning('get_interfaces');
    const r = this.raw.takeStringArray(this.call('get_interfaces'));
    if (r === null) throw this.error('LXC_NETWORK_FAILED', 'get_interfaces', 'c->get_interfaces failed');
    return r;
  }
  /** Addresses inside the container; an empty list when there are none. */
  ips(opts: { iface?: string; family?: 'inet' | 'inet6'; scope?: number } = {}): string[] {
    this.requireRunning('get_ips');
    return (
      this.raw.takeStringArray(
        this.call('get_ips', opts.iface ?? null, opts.family ?? null, opts.scope ?? 0),
      ) ?? []
    );
  }
  /** Moves host device `dev` into the container (as `dstDev`). */
  attachInterface(dev: string, dstDev?: string): void {
    this.check(
      this.call('attach_interface', dev, dstDev ?? null),
      'LXC_NETWORK_FAILED',
      'attach_interface',
      `cannot attach '${dev}'`,
    );
  }
  /** Moves container device `dev` back to the host (as `dstDev`). */
  detachInterface(dev: string, dstDev?: string): void {
    this.check(
      this.call('detach_interface', dev, dstDev ?? null),
      'LXC_NETWORK_FAILED',
      'detach_interface',
      `cannot detach '${dev}'`,
    );
  }

  // -- exec -------------------------------------------------------------------------------

  private attachOptions(
    arena: Arena,
    o: { env?: Record<string, string>; cwd?: string; uid?: number; gid?: number; keepEnv?: boolean },
    fds: { stdin: number; stdout: number; stderr: number },
  ): Ptr {
    const env = o.env ? Object.entries(o.env).map(([k, v]) => `${k}=${v}`) : null;
    return arena.struct(LxcAttachOptionsStruct, {
      attach_flags: LXC_ATTACH_DEFAULT,
      namespaces: -1,
      personality: -1,
      initial_cwd: arena.str(o.cwd),
      uid: o.uid ?? 0xffffffff,
      gid: o.gid ?? 0xffffffff,
      env_policy: o.keepEnv ? LXC_ATTACH_KEEP_ENV : LXC_ATTACH_CLEAR_ENV,
      extra_env_vars: arena.strArray(env),
      extra_keep_env: NULL,
      stdin_fd: fds.stdin,
      stdout_fd: fds.stdout,
      stderr_fd: fds.stderr,
      log_fd: -9, // -EBADF
      lsm_label: NULL,
      groups: { size: 0, list: NULL },
    });
  }

  /**
   * Runs a command in the container (c->attach with lxc_attach_run_command) with stdout and
   * stderr in temporary files, polls waitpid(WNOHANG) (the attached process is our child:
   * liblxc clones it with CLONE_PARENT) and SIGKILLs it and its descendants on timeout.
   * A non-zero exit status is a result, not an error.
   */
  exec(opts: ExecOptions): ExecResult {
    if (opts.argv.length === 0 || !opts.argv[0]) {
      throw new LxcError('LXC_INVALID_ARGUMENT', 'exec needs a non-empty argv', {
        operation: 'attach',
        container: this.name,
      });
    }
    this.requireRunning('attach');
    const max = opts.maxOutputBytes ?? 1024 * 1024;
    const dir = mkdtempSync(join(tmpdir(), 'lxcq-exec-'));
    const fds: number[] = [];
    try {
      const stdin = openSync('/dev/null', 'r');
      fds.push(stdin);
      const stdout = openSync(join(dir, 'stdout'), 'w+', 0o600);
      fds.push(stdout);
      const stderr = openSync(join(dir, 'stderr'), 'w+', 0o600);
      fds.push(stderr);
      // The files are read back through their fds: unlinked now, nothing is left behind even if
      // this process dies while the command runs.
      rmSync(dir, { recursive: true, force: true });
      let pid: number;
      {
        using arena = new Arena();
        const options = this.attachOptions(arena, opts, { stdin, stdout, stderr });
        const payload = arena.struct(LxcAttachCommandStruct, {
          program: arena.str(opts.argv[0]),
          argv: arena.strArray(opts.argv),
        });
        const pidSlot = arena.alloc('int');
        koffi.encode(pidSlot, 'int', -1);
        const fn = this.raw.symbolAddress('lxc_attach_run_command');
        const r = this.call('attach', fn, payload, options, pidSlot);
        pid = Number(koffi.decode(pidSlot, 'int'));
        if (r < 0 || pid <= 0) throw this.error('LXC_EXEC_FAILED', 'attach', `cannot run '${opts.argv[0]}'`);
      }
      const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
      let timedOut = false;
      let status = 0;
      let delay = 1;
      const WNOHANG = 1;
      for (;;) {
        const [r, st, err] = this.raw.waitpid(pid, WNOHANG);
        if (r === pid) {
          status = st;
          break;
        }
        if (r < 0 && err !== osConstants.errno.EINTR) {
          throw this.error('LXC_EXEC_FAILED', 'waitpid', `waitpid(${pid}) failed with errno ${err}`);
        }
        if (!timedOut && Date.now() >= deadline) {
          timedOut = true;
          for (const p of [pid, ...descendants(pid)]) this.raw.kill(p, osConstants.signals.SIGKILL);
        }
        sleepMs(delay);
        delay = Math.min(delay * 2, 20);
      }
      const out = readCapped(stdout, max);
      const errOut = readCapped(stderr, max);
      return {
        ...decodeWaitStatus(status),
        stdout: out.text,
        stderr: errOut.text,
        timedOut,
        truncated: out.truncated || errOut.truncated,
      };
    } finally {
      for (const fd of fds) closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** c->attach_run_wait: runs argv with the given fds (default /dev/null) and blocks until it
   * exits (no timeout; prefer exec). Returns the decoded wait status. */
  attachRunWait(
    argv: string[],
    opts: {
      env?: Record<string, string>;
      cwd?: string;
      uid?: number;
      gid?: number;
      keepEnv?: boolean;
      stdinFd?: number;
      stdoutFd?: number;
      stderrFd?: number;
    } = {},
  ): { exitCode: number; signal: string | null } {
    this.requireRunning('attach_run_wait');
    const program = argv[0];
    if (!program)
      throw new LxcError('LXC_INVALID_ARGUMENT', 'empty argv', {
        operation: 'attach_run_wait',
        container: this.name,
      });
    const nul = openSync('/dev/null', 'r+');
    try {
      using arena = new Arena();
      const options = this.attachOptions(arena, opts, {
        stdin: opts.stdinFd ?? nul,
        stdout: opts.stdoutFd ?? nul,
        stderr: opts.stderrFd ?? nul,
      });
      const r = this.call('attach_run_wait', options, program, arena.strArray(argv));
      if (r < 0) throw this.error('LXC_EXEC_FAILED', 'attach_run_wait', `cannot run '${program}'`);
      return decodeWaitStatus(r);
    } finally {
      closeSync(nul);
    }
  }

  // -- devices, mounts, console -----------------------------------------------------------------

  addDeviceNode(src: string, dst?: string): void {
    this.requireRunning('add_device_node');
    this.check(
      this.call('add_device_node', src, dst ?? null),
      'LXC_DEVICE_FAILED',
      'add_device_node',
      `cannot add '${src}'`,
    );
  }
  removeDeviceNode(src: string, dst?: string): void {
    this.requireRunning('remove_device_node');
    this.check(
      this.call('remove_device_node', src, dst ?? null),
      'LXC_DEVICE_FAILED',
      'remove_device_node',
      `cannot remove '${src}'`,
    );
  }

  /** Mounts host `source` at `target` inside the running container (c->mount, API v1). */
  mount(
    source: string | null,
    target: string,
    opts: { fstype?: string; flags?: number; data?: string } = {},
  ): void {
    this.requireRunning('mount');
    using arena = new Arena();
    const mnt = arena.struct(LxcMountStruct, { version: LXC_MOUNT_API_V1 });
    const r = this.call(
      'mount',
      source,
      target,
      opts.fstype ?? null,
      opts.flags ?? 0,
      arena.str(opts.data),
      mnt,
    );
    if (r < 0) throw this.error('LXC_MOUNT_FAILED', 'mount', `cannot mount '${source ?? ''}' at '${target}'`);
  }
  umount(target: string, flags = 0): void {
    this.requireRunning('umount');
    using arena = new Arena();
    const mnt = arena.struct(LxcMountStruct, { version: LXC_MOUNT_API_V1 });
    const r = this.call('umount', target, flags, mnt);
    if (r < 0) throw this.error('LXC_MOUNT_FAILED', 'umount', `cannot unmount '${target}'`);
  }

  /** c->console_getfd: a pty (ptx) fd for tty `ttynum` (-1: first free). Caller closes fd. */
  consoleGetFd(ttynum = -1): { fd: number; ttynum: number; ptxFd: number } {
    this.requireRunning('console_getfd');
    using arena = new Arena();
    const tty = arena.alloc('int');
    koffi.encode(tty, 'int', ttynum);
    const ptx = arena.alloc('int');
    koffi.encode(ptx, 'int', -1);
    const fd = this.call('console_getfd', tty, ptx);
    if (fd < 0) throw this.error('LXC_CONSOLE_FAILED', 'console_getfd', `no console for tty ${ttynum}`);
    return { fd, ttynum: Number(koffi.decode(tty, 'int')), ptxFd: Number(koffi.decode(ptx, 'int')) };
  }

  /** c->console: interactive; blocks until the escape sequence (Ctrl-<escape> q) is read
   * from stdinfd or the console closes. Returns liblxc's result (0 on success). */
  console(
    opts: { ttynum?: number; stdinFd?: number; stdoutFd?: number; stderrFd?: number; escape?: number } = {},
  ): number {
    this.requireRunning('console');
    const r = this.call(
      'console',
      opts.ttynum ?? -1,
      opts.stdinFd ?? 0,
      opts.stdoutFd ?? 1,
      opts.stderrFd ?? 2,
      opts.escape ?? 1,
    );
    if (r < 0) throw this.error('LXC_CONSOLE_FAILED', 'console', 'c->console failed');
    return r;
  }

  /** c->console_log: reads (and/or clears) the console ring buffer (lxc.console.buffer.size). */
  consoleLog(opts: { read?: boolean; clear?: boolean; readMax?: number } = {}): string {
    this.requireRunning('console_log');
    using arena = new Arena();
    const readMax = arena.alloc('uint64_t');
    koffi.encode(readMax, 'uint64_t', BigInt(opts.readMax ?? 0));
    const log = arena.struct(LxcConsoleLogStruct, {
      clear: opts.clear ?? false,
      read: opts.read ?? true,
      read_max: readMax,
      data: NULL,
    });
    const r = this.call('console_log', log);
    const dataOff = koffi.offsetof(LxcConsoleLogStruct, 'data');
    const data = asPtr(koffi.decode(log, dataOff, 'void *'));
    const n = Number(koffi.decode(readMax, 'uint64_t'));
    let text = '';
    if (data !== NULL) {
      if (n > 0) text = Buffer.from(koffi.view(data, n)).toString('utf8');
      this.raw.free(data);
    }
    if (r < 0)
      throw this.error(
        'LXC_CONSOLE_FAILED',
        'console_log',
        'c->console_log failed (is lxc.console.buffer.size set?)',
      );
    return text;
  }

  // -- fds from the monitor -------------------------------------------------------------------

  private requireSupported(name: MemberName): void {
    const s = this.raw.supports(name);
    if (!s.supported) {
      throw new LxcError('LXC_UNSUPPORTED', `${name} is not available: ${s.reason ?? ''}`, {
        operation: name,
        container: this.openedName,
      });
    }
  }

  private fdCall(
    name: 'seccomp_notify_fd' | 'seccomp_notify_fd_active' | 'init_pidfd' | 'devpts_fd',
  ): number {
    this.requireSupported(name);
    this.requireRunning(name);
    const fd = this.call(name);
    if (fd < 0) throw this.error('LXC_CALL_FAILED', name, `${name} returned ${fd}`);
    return fd;
  }
  /** Seccomp notify fd (needs lxc.seccomp.notify.proxy / a notify profile). Caller closes. */
  seccompNotifyFd(): number {
    return this.fdCall('seccomp_notify_fd');
  }
  seccompNotifyFdActive(): number {
    return this.fdCall('seccomp_notify_fd_active');
  }
  /** pidfd of the container's init. Caller closes. */
  initPidfd(): number {
    return this.fdCall('init_pidfd');
  }
  /** fd of the container's devpts mount. Caller closes. */
  devptsFd(): number {
    return this.fdCall('devpts_fd');
  }

  // -- CRIU ------------------------------------------------------------------------------------

  private requireCriu(operation: string): void {
    const s = criuStatus();
    if (!s.available)
      throw new LxcError('LXC_CRIU_UNAVAILABLE', s.reason, { operation, container: this.name });
  }

  /** Dumps the running container to `dir` (c->checkpoint; CRIU runs as a short-lived child). With
   * `stop` the container is left STOPPED (its processes live on only in the images). */
  checkpoint(dir: string, opts: { stop?: boolean; verbose?: boolean } = {}): void {
    this.requireCriu('checkpoint');
    this.requireRunning('checkpoint');
    this.imagesDirForRoot(dir, true);
    if (!this.call('checkpoint', dir, opts.stop ?? false, opts.verbose ?? false)) {
      throw this.error(
        'LXC_CHECKPOINT_FAILED',
        'checkpoint',
        `dump to '${dir}' failed${criuLogHint(dir, 'dump.log')}`,
      );
    }
  }

  /** The host uid and gid of the container's root (lxc.idmap's entries for id 0); null without a
   * user namespace. */
  mappedRoot(): { uid: number; gid: number } | null {
    let uid: number | null = null;
    let gid: number | null = null;
    for (const line of this.getConfigItem('lxc.idmap').split('\n')) {
      const m = /^\s*([ug])\s+0\s+(\d+)\s+\d+\s*$/.exec(line);
      if (m?.[1] === 'u') uid = Number(m[2]);
      else if (m?.[1] === 'g') gid = Number(m[2]);
    }
    return uid === null || gid === null ? null : { uid, gid };
  }

  /** An unprivileged container's CRIU images directory must be its root's: liblxc runs parts of
   * the dump and restore inside the user namespace ("Unable to open tty-info.img: Permission
   * denied" otherwise). Made for a dump; handed over with every image in it for a restore
   * (images unpacked on another host are root's). Searchable by others (0711, not listable):
   * a restored task may open an image before its user namespace's map is written, as nobody
   * ("Unable to open timens-0.img: Permission denied", about one restore in two here). What
   * keeps other host users out is the container's directory above it (0770, its root's). */
  private imagesDirForRoot(dir: string, create: boolean): void {
    const root = this.mappedRoot();
    if (root === null) return;
    if (create) mkdirSync(dir, { recursive: true, mode: 0o711 });
    if (!existsSync(dir)) return;
    chownSync(dir, root.uid, root.gid);
    chmodSync(dir, 0o711);
    if (create) return;
    for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' }))
      lchownSync(join(dir, f), root.uid, root.gid);
  }

  private requireStopped(operation: string): void {
    this.requireDefined(operation);
    if (this.running) throw this.error('LXC_ALREADY_RUNNING', operation, 'container is already running');
  }

  /** A config without lxc.rootfs.path (cut short, emptied, edited by hand) would make liblxc run the
   * container on the host's own root: refuse to start or restore it. */
  private requireRootfs(operation: string): void {
    if (this.getConfigItem('lxc.rootfs.path').trim() !== '') return;
    throw new LxcError(
      'LXC_CONFIG_BROKEN',
      `the config of ${this.name} (${this.configFileName()}) has no lxc.rootfs.path, so liblxc would run it on the host's root; it was not started. Restore the config (lxc.rootfs.path and the rest) from a backup or a snapshot's config, or destroy the container`,
      { operation, container: this.name },
    );
  }

  /** Restores from `dir` through `lxc-checkpoint -r -d`, so the new monitor is small. Its log is
   * startLogFile, as for start(). */
  restore(dir: string, opts: { verbose?: boolean } = {}): void {
    this.requireCriu('restore');
    this.requireStopped('restore');
    this.requireRootfs('restore');
    this.imagesDirForRoot(dir, false);
    const args = ['-r', '-D', dir, '-n', this.name, '-P', this.lxcpath, '-d'];
    if (opts.verbose) args.push('-v');
    this.runTool('restore', 'LXC_RESTORE_FAILED', 'lxc-checkpoint', args, undefined, () =>
      criuLogHint(dir, 'restore.log'),
    );
  }

  /** Raw c->restore in this process (the monitor is a fork of Node). */
  restoreInProcess(dir: string, opts: { verbose?: boolean } = {}): void {
    this.requireCriu('restore');
    this.requireStopped('restore');
    this.imagesDirForRoot(dir, false);
    if (!this.call('restore', dir, opts.verbose ?? false)) {
      throw this.error(
        'LXC_RESTORE_FAILED',
        'restore',
        `restore from '${dir}' failed${criuLogHint(dir, 'restore.log')}`,
      );
    }
  }

  /** Whether CRIU and the kernel offer `features` (FEATURE_MEM_TRACK | FEATURE_LAZY_PAGES), by
   * c->migrate(MIGRATE_FEATURE_CHECK): false when one is missing. */
  criuFeaturesSupported(features: number | bigint): boolean {
    try {
      this.migrate('feature-check', { directory: '/', featuresToCheck: features });
      return true;
    } catch (e) {
      if (e instanceof LxcError && e.code === 'LXC_MIGRATE_FAILED') return false;
      throw e;
    }
  }

  /**
   * c->migrate. 'pre-dump' (and 'dump' with `predumpDir`) need CRIU's memory tracking, i.e. a
   * kernel with soft-dirty page tracking (CONFIG_MEM_SOFT_DIRTY): without it criu aborts on a
   * BUG_ON, so this checks first (once per thread) and throws LXC_UNSUPPORTED instead. 'restore'
   * runs in this process, like restoreInProcess().
   */
  migrate(cmd: 'pre-dump' | 'dump' | 'restore' | 'feature-check', opts: MigrateOptions): void {
    this.requireCriu('migrate');
    if (cmd === 'restore') this.requireStopped('migrate');
    else if (cmd === 'feature-check') this.requireDefined('migrate');
    else this.requireRunning('migrate');
    if (cmd === 'dump' || cmd === 'pre-dump') this.imagesDirForRoot(opts.directory, true);
    else if (cmd === 'restore') this.imagesDirForRoot(opts.directory, false);
    if (cmd === 'pre-dump' || (cmd === 'dump' && opts.predumpDir)) {
      memTrackCache ??= this.criuFeaturesSupported(FEATURE_MEM_TRACK);
      if (!memTrackCache) {
        throw new LxcError(
          'LXC_UNSUPPORTED',
          `migrate ${cmd}${cmd === 'dump' ? ' with predumpDir' : ''} needs CRIU memory tracking, which this kernel lacks (no soft-dirty page tracking, CONFIG_MEM_SOFT_DIRTY; \`criu check --feature mem_dirty_track\` fails): dump without pre-dumps instead`,
          { operation: 'migrate', container: this.name },
        );
      }
    }
    using arena = new Arena();
    const p = arena.struct(MigrateOptsStruct, {
      directory: arena.str(opts.directory),
      verbose: opts.verbose ?? false,
      stop: opts.stop ?? false,
      predump_dir: arena.str(opts.predumpDir),
      pageserver_address: arena.str(opts.pageserverAddress),
      pageserver_port: arena.str(opts.pageserverPort),
      preserves_inodes: opts.preservesInodes ?? false,
      action_script: arena.str(opts.actionScript),
      disable_skip_in_flight: opts.disableSkipInFlight ?? false,
      ghost_limit: BigInt(opts.ghostLimit ?? 0),
      features_to_check: BigInt(opts.featuresToCheck ?? 0),
    });
    const r = this.call('migrate', MIGRATE_CMDS[cmd], p, koffi.sizeof(MigrateOptsStruct));
    if (r !== 0) {
      const log = cmd === 'feature-check' ? '' : criuLogHint(opts.directory, `${cmd}.log`);
      throw this.error('LXC_MIGRATE_FAILED', 'migrate', `migrate ${cmd} failed (${r})${log}`);
    }
  }

  // -- references ------------------------------------------------------------------------------

  /** lxc_container_get: another Container sharing the same struct (its own reference). */
  ref(): Container {
    const c = this.c;
    if (this.raw.containerGet(c) !== 1)
      throw this.error('LXC_CALL_FAILED', 'lxc_container_get', 'cannot take a reference');
    return new Container(this.raw, c, this.openedName, this.lxcpath, this.lxcBinDir);
  }

  /** lxc_container_put, exactly once; later use throws LXC_DISPOSED. */
  [Symbol.dispose](): void {
    const c = this.ptr;
    if (c === NULL) return;
    this.ptr = NULL;
    this.raw.containerPut(c);
  }
  close(): void {
    this[Symbol.dispose]();
  }
}

let snapshotFree: ReturnType<typeof koffi.proto> | undefined;
function snapshotFreeProto(): ReturnType<typeof koffi.proto> {
  snapshotFree ??= koffi.proto(null, 'void', ['void *']);
  return snapshotFree;
}
