import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { randomUUID } from 'node:crypto';
/**
 * The piscina thread: runs one blocking liblxc step per task through @lxcq/lxc-ffi and answers
 * with a typed reply. Errors never escape as exceptions: they become ErrorBody values with
 * liblxc's own error string, so nothing is lost crossing the thread boundary.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  lchownSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Container, LxcError, criuStatus, globalConfigItem, listContainers, lxcVersion } from '@lxcq/lxc-ffi';
import { applyMigratableDefaults, configLine, migrationBlockers } from './migratable.ts';
import {
  assertConfigAllowed,
  toLxcqError,
  type ContainerState,
  type ErrorBody,
  type ErrorCode,
  type PayloadOf,
} from '@lxcq/shared';

type Limits = PayloadOf<'limits.set'>;
import { toolEnv, toolLogDir } from './leftovers.ts';
import { CAP_DROP, COMMON_CONF, USERNS_CONF, isPrivilegedConfig, letContainerRootsThrough } from './idmap.ts';
import { replayJournal, scanPaths, shiftBatch, type ShiftMap } from './shift.ts';
import { checkpointDir } from './paths.ts';
import { failpoint } from './failpoints.ts';
import {
  run as runTool,
  poolDirOf,
  poolNameOf,
  quotaOf,
  removeContainerDir,
  removeTree,
  setQuota,
  snapshotSubvolume,
  toSubvolume,
} from './btrfs.ts';
import type { LxcReply, LxcRequest, RawContainerInfo, ReplyOf, RequestOf } from './protocol.ts';

const LXC_TO_LXCQ: Partial<Record<string, ErrorCode>> = {
  LXC_NOT_DEFINED: 'LXCQ_CONTAINER_NOT_FOUND',
  LXC_ALREADY_DEFINED: 'LXCQ_CONTAINER_EXISTS',
  LXC_NOT_RUNNING: 'LXCQ_INVALID_STATE',
  LXC_ALREADY_RUNNING: 'LXCQ_INVALID_STATE',
  LXC_CRIU_UNAVAILABLE: 'LXCQ_CRIU_UNAVAILABLE',
  LXC_INVALID_ARGUMENT: 'LXCQ_VALIDATION',
  LXC_CREATE_FAILED: 'LXCQ_TEMPLATE_FAILED',
  LXC_UNSUPPORTED: 'LXCQ_NOT_IMPLEMENTED',
  LXC_CONFIG_BROKEN: 'LXCQ_CONTAINER_BROKEN',
};

export function errorBody(err: unknown): ErrorBody {
  if (err instanceof LxcError) {
    const details: Record<string, unknown> = { lxcCode: err.code, operation: err.operation };
    if (err.errorString) details.errorString = err.errorString;
    if (err.errorNum !== undefined) details.errorNum = err.errorNum;
    if (err.errno !== undefined) details.errno = err.errno;
    return { code: LXC_TO_LXCQ[err.code] ?? 'LXCQ_LXC_ERROR', message: err.message, details };
  }
  return toLxcqError(err).toJSON();
}

function open(req: { name: string; lxcpath: string }): Container {
  try {
    return Container.open(req.name, req.lxcpath);
  } catch (err) {
    const config = join(req.lxcpath, req.name, 'config');
    if (!(err instanceof LxcError && err.code === 'LXC_NEW_FAILED' && existsSync(config))) throw err;
    throw new LxcError('LXC_CONFIG_BROKEN', unloadableConfig(config), {
      operation: 'lxc_container_new',
      container: req.name,
      cause: err,
    });
  }
}

/** Why a container whose config liblxc cannot load is broken, and what to do. */
function unloadableConfig(config: string): string {
  return `liblxc cannot load the container's config ${config} (a bad or unknown key; its log says which): lxcq will not start it. Fix the config by hand, or destroy the container`;
}

/** open(), or the LXC_CONFIG_BROKEN error of a container whose config liblxc cannot load. */
function openLoadable(req: { name: string; lxcpath: string }): Container | LxcError {
  try {
    return open(req);
  } catch (err) {
    if (err instanceof LxcError && err.code === 'LXC_CONFIG_BROKEN') return err;
    throw err;
  }
}

/** destroy of a container liblxc cannot load: its directory goes, unless it still runs. */
function destroyUnloadable(
  r: { name: string; lxcpath: string; withSnapshots: boolean },
  broken: LxcError,
): { existed: boolean } {
  const dir = join(r.lxcpath, r.name);
  if (monitorRuns(r.lxcpath, r.name)) {
    throw Object.assign(
      new Error(
        `Container ${r.name} runs, but liblxc cannot load its config, so lxcq cannot stop it: stop it with 'lxc-stop -k -n ${r.name} -P ${r.lxcpath}', then destroy it. (${broken.message})`,
      ),
      { code: 'LXCQ_CONTAINER_BROKEN' },
    );
  }
  if (
    !r.withSnapshots &&
    (existsSync(join(dir, 'snaps')) ? readdirSync(join(dir, 'snaps')) : []).length > 0
  ) {
    throw Object.assign(
      new Error(`Container ${r.name} has snapshots; destroy them first or pass withSnapshots.`),
      { code: 'LXCQ_INVALID_STATE' },
    );
  }
  removeContainerDir(r.lxcpath, r.name);
  return { existed: true };
}

/** Why a container is unusable, or undefined when it is not: a config with no rootfs would run it
 * on the host's root (liblxc's default), so lxc-ffi refuses to start it. */
function brokenReason(c: Container): string | undefined {
  if (c.getConfigItem('lxc.rootfs.path').trim() !== '') return undefined;
  return `its config ${c.configFileName()} has no lxc.rootfs.path (cut short or edited): lxcq will not start it, as liblxc would run it on the host's root. Restore the config from a backup or a snapshot's config, or destroy the container`;
}

/** Whether the liblxc monitor of `name` runs (read from /proc: works without loading the config). */
function monitorRuns(lxcpath: string, name: string): boolean {
  const want = `[lxc monitor] ${lxcpath} ${name}`;
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0+$/, '').split('\0').join(' ') === want)
        return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}

function invalidState(name: string, state: ContainerState, want: string): never {
  throw Object.assign(new Error(`Container ${name} is ${state}; ${want}.`), {
    code: 'LXCQ_INVALID_STATE',
    details: { state },
  });
}

function notFound(name: string): never {
  throw Object.assign(new Error(`Container ${name} does not exist on this host.`), {
    code: 'LXCQ_CONTAINER_NOT_FOUND',
  });
}

function describe(c: Container, withConfig = false): RawContainerInfo {
  if (!c.defined) return { name: c.name, defined: false, state: 'STOPPED' };
  const state = c.state;
  const info: RawContainerInfo = {
    name: c.name,
    defined: true,
    state,
    privileged: isPrivilegedConfig(c.getConfigItem('lxc.idmap')),
  };
  const broken = brokenReason(c);
  if (broken) info.broken = broken;
  info.pool = poolNameOf(c.lxcpath, c.name);
  if (info.pool !== 'default') {
    const q = quotaOf(join(c.lxcpath, c.name, 'rootfs'));
    if (q) info.disk = { usedBytes: q.usedBytes, limitBytes: q.limitBytes };
  }
  if (state !== 'STOPPED') {
    const pid = c.initPid;
    if (pid > 0) info.pid = pid;
    try {
      // Reading addresses forks into the container's network namespace: skip it without a network.
      const net = c.getConfigItem('lxc.net.0.type');
      info.ips = net === '' || net === 'empty' || net === 'none' ? [] : c.ips();
    } catch {
      // No network namespace yet (starting) or an empty network: no addresses is the truth.
    }
  }
  try {
    info.snapshots = c.snapshots().map((s) => ({
      name: s.name,
      ...(s.comment ? { comment: s.comment } : {}),
      ...(s.timestamp ? { createdAt: s.timestamp } : {}),
    }));
  } catch {
    info.snapshots = [];
  }
  const cpDir = checkpointDir(c.lxcpath, c.name);
  info.checkpoints = existsSync(cpDir)
    ? readdirSync(cpDir)
        // a name starting with a dot is a dump in progress (see handlers/checkpoint.ts)
        .filter((d) => !d.startsWith('.') && statSync(join(cpDir, d)).isDirectory())
        .sort()
    : [];
  if (withConfig) info.config = savedConfig(c);
  info.migrationBlockers = migrationBlockers(c);
  return info;
}

/**
 * Sets config items and saves, a key that holds one value replaced where it was. liblxc appends
 * every set to the file (`lxc.tty.max = 5` from the template, then `lxc.tty.max = 0` at the
 * end; a cgroup limit set twice kept both lines and read back as both values). A cgroup item is
 * one value per controller file, so it is cleared first. A key that now resolves to exactly the
 * value set holds one value: its first line takes the value and its later lines go. List keys
 * (mount entries, environment, capabilities) add, as liblxc's own tools do; `clear` removes them.
 */
function saveReplacing(c: Container, items: readonly (readonly [string, string])[]): void {
  const replaced: [string, string][] = [];
  for (const [k, v] of items) {
    if (/^lxc\.cgroup2?\./.test(k)) c.clearConfigItem(k);
    c.setConfigItem(k, v);
    let now: string | undefined;
    try {
      now = c.getConfigItem(k);
    } catch {
      now = undefined; // write-only keys: left as liblxc writes them
    }
    if (now === v || now === `${v}\n`) replaced.push([k, v]);
  }
  c.saveConfig(undefined, (text) => replaceInPlace(text, replaced));
}

/**
 * Each key's value moved to its first line in the file, its other lines removed. Not when an
 * `lxc.include` comes after that first line: an included file could set the key again and win
 * over it there, so the last line (liblxc's) stays the one in force.
 */
export function replaceInPlace(text: string, items: readonly (readonly [string, string])[]): string {
  let lines = text.split('\n');
  for (const [key, value] of items) {
    const at = lines.flatMap((l, i) => (configLineKey(l) === key ? [i] : []));
    const first = at[0];
    if (first === undefined || at.length < 2) continue;
    if (lines.slice(first + 1).some((l) => configLineKey(l) === 'lxc.include')) continue;
    const later = new Set(at.slice(1));
    lines[first] = `${key} = ${value}`;
    lines = lines.filter((_, i) => !later.has(i));
  }
  return lines.join('\n');
}

/** The key a config line sets, or undefined (a comment, a blank line). */
function configLineKey(line: string): string | undefined {
  return configLine(line)?.[0];
}

/** The keys set in a config file, in order, each once. */
export function configFileKeys(text: string): string[] {
  const keys = new Set<string>();
  for (const line of text.split('\n')) {
    const key = configLineKey(line);
    if (key) keys.add(key);
  }
  return [...keys];
}

/**
 * The container's config as key -> value: the keys its saved file sets, each valued as liblxc
 * resolves it (a repeated single-valued key takes its last value; list keys come newline-joined).
 */
function savedConfig(c: Container): Record<string, string> {
  const config: Record<string, string> = {};
  let text = '';
  try {
    text = readFileSync(c.configFileName(), 'utf8');
  } catch {
    return config;
  }
  for (const key of configFileKeys(text)) {
    try {
      config[key] = c.getConfigItem(key).replace(/\n$/, '');
    } catch {
      // A key liblxc cannot read back (write-only ones such as lxc.include): leave it out.
    }
  }
  return config;
}

/** Which cgroup hierarchy carries the controllers here: v2 only when it is the sole mount. */
export function cgroupLayout(): 'v1' | 'v2' {
  return existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'v2' : 'v1';
}

/** Limits as cgroup items (without the lxc.cgroup[2]. prefix) for the host's hierarchy. */
export function limitItems(l: Limits, layout: 'v1' | 'v2'): [string, string][] {
  const items: [string, string][] = [];
  const v2 = layout === 'v2';
  if (l.memory !== undefined) items.push([v2 ? 'memory.max' : 'memory.limit_in_bytes', String(l.memory)]);
  if (l.memorySwap !== undefined)
    items.push([v2 ? 'memory.swap.max' : 'memory.memsw.limit_in_bytes', String(l.memorySwap)]);
  if (l.cpus !== undefined) {
    const quota = Math.round(l.cpus * 100_000);
    if (v2) items.push(['cpu.max', `${quota} 100000`]);
    else items.push(['cpu.cfs_period_us', '100000'], ['cpu.cfs_quota_us', String(quota)]);
  }
  if (l.cpuset !== undefined) items.push(['cpuset.cpus', l.cpuset]);
  if (l.cpuWeight !== undefined)
    items.push(
      v2
        ? ['cpu.weight', String(l.cpuWeight)]
        : ['cpu.shares', String(Math.max(2, Math.round((l.cpuWeight * 1024) / 100)))],
    );
  if (l.pids !== undefined) items.push(['pids.max', String(l.pids)]);
  return items;
}

/**
 * Copies a container with liblxc's own lxc-copy, in a process of its own. liblxc copies a rootfs
 * from a child made with a raw clone(), which skips glibc's fork handlers: made from this
 * multi-threaded process, the child can block forever on a libc lock another thread held at
 * that moment (seen: fopen waiting on stdio's list lock). lxc-copy is single-threaded.
 */
export function lxcCopy(
  from: { name: string; lxcpath: string },
  to: { name: string; lxcpath: string },
  opts: { snapshot?: boolean; keepName?: boolean; backing?: 'btrfs' | 'dir' } = {},
): void {
  const args = ['-n', from.name, '-P', from.lxcpath, '-N', to.name, '-p', to.lxcpath];
  // A btrfs rootfs snapshots as a btrfs subvolume (its own type); a directory as an overlayfs layer.
  if (opts.snapshot) args.push('-s', ...(opts.backing === 'btrfs' ? [] : ['-B', 'overlayfs']));
  else if (opts.backing !== undefined) args.push('-B', opts.backing);
  if (opts.keepName) args.push('-K');
  runLxcTool('lxc-copy', args, to.lxcpath);
}

/**
 * Runs one of liblxc's own tools (single-threaded, see lxcCopy) and turns a failure into an error.
 * The tool and whatever it starts (rsync) carry the lxcpath they work on in their environment, so
 * a worker starting after one that died can find and stop them (leftovers.ts).
 */
function runLxcTool(tool: string, args: string[], lxcpath: string): void {
  // The tools print nothing on most failures unless given a log file: their ERROR lines there
  // explain it. The file is in the lxcpath (a worker starting removes any a dead one left).
  const logDir = toolLogDir(lxcpath);
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  const logFile = join(logDir, `${tool}-${process.pid}-${randomUUID()}.log`);
  let r: SpawnSyncReturns<string>;
  let log = '';
  try {
    r = spawnSync(tool, [...args, '--logpriority=ERROR', `--logfile=${logFile}`], {
      encoding: 'utf8',
      timeout: 600_000,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: toolEnv(lxcpath),
    });
    if (r.error || r.status !== 0) log = readSafe(logFile);
  } finally {
    rmSync(logFile, { force: true });
  }
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : `exit status ${r.status ?? r.signal}`;
    // liblxc logs "Snapshot of directory-backed container requested" as an ERROR on every
    // snapshot: not the reason for anything.
    const reasons = log
      .split('\n')
      .filter(
        (l) =>
          / ERROR /.test(l) &&
          !/directory-backed container requested|copy-clone|overlay clone first|pristine/.test(l),
      )
      .map((l) => l.replace(/^.* ERROR\s+/, ''));
    const detail = [...reasons, `${r.stderr}${r.stdout}`.trim()].filter(Boolean).join('; ');
    throw Object.assign(new Error(`${tool} ${args.join(' ')} failed (${why}): ${detail.slice(-800)}`), {
      code: 'LXCQ_LXC_ERROR',
      details: { tool, status: r.status },
    });
  }
}

function readSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The copy-on-write (overlayfs) clones built on a container's rootfs: liblxc lists them in the
 * container's `lxc_snapshots` file as lxcpath and name lines, and will not destroy it while any remain.
 */
export function dependentClones(lxcpath: string, name: string): string[] {
  let text: string;
  try {
    text = readFileSync(join(lxcpath, name, 'lxc_snapshots'), 'utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n').filter((l) => l.length > 0);
  const out: string[] = [];
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const path = lines[i] as string;
    const clone = lines[i + 1] as string;
    out.push(path === lxcpath ? clone : `${clone} (in ${path})`);
  }
  return out;
}

/**
 * liblxc gives a new container the host's default config (lxc.default_config: its network on the
 * bridge, ...) only when nothing was set before create. lxcq sets its own keys (the id map,
 * includes) first, so it loads the defaults itself: a default container keeps its network.
 */
function loadHostDefaults(c: Container): void {
  const path = globalConfigItem('lxc.default_config');
  if (path && existsSync(path)) c.loadConfig(path);
}

/** The busybox template's read-only binds of the host's library directories. */
const HOST_LIB_BIND =
  /^\s*lxc\.mount\.entry\s*=\s*\/(usr\/)?lib(64)?\s+(usr\/)?lib(64)?\s+none\s+ro,bind\s+0\s+0\s*$/;

/**
 * Removes the busybox template's binds of the host's /lib, /usr/lib, /lib64 and /usr/lib64 from a
 * saved config. They serve a dynamically linked busybox; lxcq's is busybox-static (the template
 * copies `which busybox`), so they only expose host files and break CRIU restore ("mnt: Can't
 * bind-mount ... usr/lib") of unprivileged containers.
 */
export function dropHostLibBinds(configFile: string): void {
  const text = readFileSync(configFile, 'utf8');
  const kept = text
    .split('\n')
    .filter((l) => !HOST_LIB_BIND.test(l))
    .join('\n');
  if (kept !== text) writeFileSync(configFile, kept);
}

const FREEZE_TIMEOUT_MS = 30_000;

/** The storage type and path of a saved config's lxc.rootfs.path (its last value): `dir` for a plain path. */
export function rootfsOf(configText: string): { backend: string; path: string } | null {
  let value: string | null = null;
  for (const m of configText.matchAll(/^\s*lxc\.rootfs\.path\s*=\s*(.*?)\s*$/gm)) value = m[1] ?? '';
  if (!value) return null;
  const typed = /^([a-z]+):(.*)$/.exec(value);
  if (!typed) return { backend: 'dir', path: value };
  return { backend: typed[1] as string, path: typed[2] as string };
}

/** Mount points at or under `dir` in this process's mount namespace (/proc/self/mountinfo). */
export function mountsUnder(dir: string, mountinfo = readSafe('/proc/self/mountinfo')): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    const point = field.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (point === dir || point.startsWith(`${dir}/`)) out.push(point);
  }
  return out;
}

/**
 * The keys a conversion adds to a privileged container's config (idmap.ts's securityConfig for an
 * unprivileged one, less what the file has already): none once it has an id map.
 */
export function convertKeys(configText: string, map: ShiftMap): [string, string][] {
  if (/^\s*lxc\.idmap\s*=/m.test(configText)) return [];
  const included = (f: string) =>
    configText.split('\n').some((l) => /^\s*lxc\.include\s*=\s*(.*?)\s*$/.exec(l)?.[1] === f);
  return [
    ...(included(COMMON_CONF) ? [] : [['lxc.include', COMMON_CONF] as [string, string]]),
    ['lxc.include', USERNS_CONF],
    ['lxc.idmap', `u 0 ${map.uid} ${map.count}`],
    ['lxc.idmap', `g 0 ${map.gid} ${map.count}`],
    // userns.conf empties the list; lxcq drops these for every container (idmap.ts)
    ['lxc.cap.drop', CAP_DROP],
  ];
}

/**
 * Makes a pool container's place before liblxc makes the container: its directory in the pool and
 * the lxcpath symlink to it (btrfs.ts says why). Whatever is there already is not overwritten.
 */
function prepareInPool(lxcpath: string, name: string, poolDir: string): void {
  const dir = join(poolDir, name);
  if (existsSync(join(lxcpath, name)) || existsSync(dir))
    throw Object.assign(new Error(`${join(lxcpath, name)} or ${dir} exists already; pick another name.`), {
      code: 'LXCQ_CONTAINER_EXISTS',
    });
  mkdirSync(dir, { mode: 0o755 });
  symlinkSync(dir, join(lxcpath, name));
}

/** The file in a pool container's directory that keeps its disk quota (re-applied to a new rootfs). */
function diskFile(lxcpath: string, name: string): string {
  return join(lxcpath, name, 'lxcq-disk');
}

function applyDisk(lxcpath: string, name: string, bytes: number | null): void {
  setQuota(join(lxcpath, name, 'rootfs'), bytes);
  if (bytes === null) rmSync(diskFile(lxcpath, name), { force: true });
  else writeFileSync(diskFile(lxcpath, name), String(bytes));
}

function savedDisk(lxcpath: string, name: string): number | null {
  const v = Number(readSafe(diskFile(lxcpath, name)).trim());
  return Number.isSafeInteger(v) && v > 0 ? v : null;
}

function noQuotaOnDir(name: string): never {
  throw Object.assign(
    new Error(
      `Container ${name} is on the dir pool (default), which has no disk quotas: create or clone it onto a btrfs pool to limit its disk.`,
    ),
    { code: 'LXCQ_QUOTA_UNSUPPORTED' },
  );
}

/** A config's lines that name `<lxcpath>/<from>/` rewritten to `<lxcpath>/<to>/`, its utsname too. */
export function renamedConfig(text: string, lxcpath: string, from: string, to: string, uts = true): string {
  return text
    .split('\n')
    .map((l) => {
      if (uts && /^\s*lxc\.uts\.name\s*=/.test(l)) return `lxc.uts.name = ${to}`;
      return l.split(`${lxcpath}/${from}/`).join(`${lxcpath}/${to}/`);
    })
    .join('\n');
}

/** `lxc.rootfs.path` of a config set to `value`. */
function withRootfs(text: string, value: string): string {
  return text
    .split('\n')
    .map((l) => (/^\s*lxc\.rootfs\.path\s*=/.test(l) ? `lxc.rootfs.path = ${value}` : l))
    .join('\n');
}

/** liblxc's snapshot timestamp format (its `ts` file). */
function snapTimestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}:${p(d.getMonth() + 1)}:${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

type Impl = { [F in LxcRequest['fn']]: (req: RequestOf<F>) => ReplyOf<F> };

/**
 * A snapshot of a pool container, running or not: liblxc's own clone into the container's snaps
 * directory (as lxc-snapshot does), allowed while it runs (`lxc-copy -a`: a btrfs snapshot is
 * atomic, so the copy is as consistent as after a power cut), named as asked at once.
 */
function poolSnapshot(
  c: Container,
  r: { name: string; lxcpath: string; snapName?: string; comment?: string },
): { name: string; comment?: string; createdAt?: string } {
  const snaps = join(r.lxcpath, r.name, 'snaps');
  mkdirSync(snaps, { recursive: true, mode: 0o755 });
  let name = r.snapName;
  if (name === undefined) {
    let i = 0;
    while (existsSync(join(snaps, `snap${i}`))) i++;
    name = `snap${i}`;
  }
  runLxcTool(
    'lxc-copy',
    ['-n', r.name, '-P', r.lxcpath, '-N', name, '-p', snaps, '-s', '-K', '-M', '-a'],
    r.lxcpath,
  );
  failpoint('pool.mid-snapshot');
  const createdAt = snapTimestamp();
  writeFileSync(join(snaps, name, 'ts'), createdAt);
  if (r.comment !== undefined) writeFileSync(join(snaps, name, 'comment'), r.comment);
  const info = c.snapshots().find((s) => s.name === name);
  return {
    name,
    ...(info?.comment ? { comment: info.comment } : r.comment ? { comment: r.comment } : {}),
    createdAt: info?.timestamp ?? createdAt,
  };
}

const impl: Impl = {
  list: (r) => listContainers(r.lxcpath, 'defined'),
  info: (r) => {
    const got = openLoadable(r);
    if (got instanceof LxcError) {
      // Still a container (lxc-ls lists it): recorded as broken, not dropped from the registry.
      const state = monitorRuns(r.lxcpath, r.name) ? 'RUNNING' : 'STOPPED';
      return { name: r.name, defined: true, state, broken: got.message };
    }
    using c = got;
    return describe(c, r.withConfig ?? false);
  },
  create: (r) => {
    using c = open(r);
    if (c.defined)
      throw Object.assign(new Error(`Container ${r.name} already exists on this host.`), {
        code: 'LXCQ_CONTAINER_EXISTS',
      });
    loadHostDefaults(c);
    for (const [k, v] of r.security) c.setConfigItem(k, v);
    if (r.poolDir !== undefined) {
      prepareInPool(r.lxcpath, r.name, r.poolDir);
      c.create(r.template, r.args, { bdevtype: 'btrfs' });
      if (r.diskBytes !== undefined) applyDisk(r.lxcpath, r.name, r.diskBytes);
    } else c.create(r.template, r.args);
    if (r.template !== 'busybox') {
      applyMigratableDefaults(c);
      for (const [k, v] of r.config) c.setConfigItem(k, v);
      if (r.config.length > 0) c.saveConfig();
      return describe(c);
    }
    // The saved file, not this handle's memory, lost the template's host binds: a fresh handle.
    dropHostLibBinds(c.configFileName());
    using made = open(r);
    applyMigratableDefaults(made);
    for (const [k, v] of r.config) made.setConfigItem(k, v);
    if (r.config.length > 0) made.saveConfig();
    return describe(made);
  },
  imageBase: (r) => {
    // The image is unpacked once (liblxc's local template) into a stopped base container; every
    // container made from it is a copy of that base, which costs a file copy instead of an xz
    // decompression and the template's forks. The caller serialises work on one base.
    mkdirSync(r.imagesLxcpath, { recursive: true, mode: 0o711 });
    // Base containers are unprivileged too; their mapped root must reach their rootfs.
    letContainerRootsThrough(dirname(r.imagesLxcpath));
    letContainerRootsThrough(r.imagesLxcpath);
    using base = Container.open(r.baseName, r.imagesLxcpath);
    if (base.defined) return { created: false };
    try {
      loadHostDefaults(base);
      for (const [k, v] of r.security) base.setConfigItem(k, v);
      if (r.btrfs) {
        base.create('local', ['--fstree', r.rootfs, '--metadata', r.metadata], { bdevtype: 'btrfs' });
        // Read-only: nothing changes a base its containers were snapshotted from.
        runTool('btrfs', [
          'property',
          'set',
          '-ts',
          join(r.imagesLxcpath, r.baseName, 'rootfs'),
          'ro',
          'true',
        ]);
      } else base.create('local', ['--fstree', r.rootfs, '--metadata', r.metadata]);
    } catch (err) {
      removeTree(join(r.imagesLxcpath, r.baseName));
      throw err;
    }
    return { created: true };
  },
  createFromImage: (r) => {
    using c = open(r);
    if (c.defined)
      throw Object.assign(new Error(`Container ${r.name} already exists on this host.`), {
        code: 'LXCQ_CONTAINER_EXISTS',
      });
    {
      using base = Container.open(r.baseName, r.imagesLxcpath);
      if (!base.defined) notFound(r.baseName);
    }
    if (r.poolDir !== undefined) {
      prepareInPool(r.lxcpath, r.name, r.poolDir);
      // The base is a subvolume on the same pool: the new rootfs is a snapshot of it.
      lxcCopy({ name: r.baseName, lxcpath: r.imagesLxcpath }, r, { snapshot: true, backing: 'btrfs' });
      if (r.diskBytes !== undefined) applyDisk(r.lxcpath, r.name, r.diskBytes);
    } else lxcCopy({ name: r.baseName, lxcpath: r.imagesLxcpath }, r);
    using made = Container.open(r.name, r.lxcpath);
    applyMigratableDefaults(made);
    for (const [k, v] of r.config) made.setConfigItem(k, v);
    made.saveConfig();
    return describe(made);
  },
  start: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    const s = c.state;
    if (s === 'FROZEN') invalidState(r.name, s, 'unfreeze it instead of starting it');
    if (s !== 'RUNNING') {
      c.start();
      // lxc-start returns once the container is set up; an init that exits at once stops it again.
      if (!c.wait('RUNNING', 5) || c.state === 'STOPPED') {
        throw Object.assign(
          new Error(
            `Container ${r.name} stopped right after it started: its init (lxc.init.cmd) exited or failed. Check the container's init and config.`,
          ),
          {
            code: 'LXCQ_LXC_ERROR',
            details: { state: c.state },
          },
        );
      }
    }
    return describe(c);
  },
  stop: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    if (c.state !== 'STOPPED') c.stop();
    return describe(c);
  },
  shutdown: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    if (c.state === 'STOPPED') return { clean: true };
    return { clean: c.shutdown(r.timeoutSec) };
  },
  reboot: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    const s = c.state;
    if (s !== 'RUNNING') invalidState(r.name, s, 'reboot needs a running container');
    if (!c.reboot(r.timeoutSec)) {
      throw Object.assign(
        new Error(
          `Container ${r.name} did not come back RUNNING within ${r.timeoutSec} s of its reboot signal (lxc.signal.reboot): its init may ignore that signal or be slow to restart; raise 'timeout' or check the container's init.`,
        ),
        { code: 'LXCQ_TIMEOUT', details: { state: c.state } },
      );
    }
    return describe(c);
  },
  freeze: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    const s = c.state;
    if (s === 'FROZEN') return describe(c);
    if (s !== 'RUNNING') invalidState(r.name, s, 'freeze needs a running container');
    // liblxc waits, unbounded, until the kernel's freezer reports every task frozen; seen here to
    // hang for over a minute under load. lxc-freeze in a process of its own can be given up on.
    const res = spawnSync('lxc-freeze', ['-n', r.name, '-P', r.lxcpath], {
      encoding: 'utf8',
      env: toolEnv(r.lxcpath),
      timeout: FREEZE_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (res.error || res.status !== 0) {
      spawnSync('lxc-unfreeze', ['-n', r.name, '-P', r.lxcpath], {
        timeout: 30_000,
        stdio: 'ignore',
        env: toolEnv(r.lxcpath),
      });
      const timedOut = (res.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
      throw Object.assign(
        new Error(
          timedOut
            ? `Container ${r.name} did not freeze within ${FREEZE_TIMEOUT_MS / 1000} s (a task the kernel's freezer could not stop); it was thawed again.`
            : `lxc-freeze failed for ${r.name}: ${`${res.stderr}${res.stdout}`.trim().slice(-400)}`,
        ),
        { code: timedOut ? 'LXCQ_TIMEOUT' : 'LXCQ_LXC_ERROR' },
      );
    }
    return describe(c);
  },
  unfreeze: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    const s = c.state;
    if (s === 'RUNNING') return describe(c);
    if (s !== 'FROZEN') invalidState(r.name, s, 'unfreeze needs a frozen container');
    c.unfreeze();
    return describe(c);
  },
  destroy: (r) => {
    const got = openLoadable(r);
    if (got instanceof LxcError) return destroyUnloadable(r, got);
    using c = got;
    if (!c.defined) return { existed: false };
    const clones = dependentClones(r.lxcpath, r.name);
    if (clones.length > 0) {
      // liblxc refuses too, with only "destroy failed (errno 2)" to show for it.
      throw Object.assign(
        new Error(
          `Container ${r.name} has copy-on-write clones (${clones.join(', ')}) built on its rootfs; destroy them first.`,
        ),
        { code: 'LXCQ_INVALID_STATE', details: { clones } },
      );
    }
    const s = c.state;
    if (s !== 'STOPPED') {
      if (!r.force) invalidState(r.name, s, 'stop it first or pass force');
      if (s === 'FROZEN') c.unfreeze();
      c.stop();
    }
    if (!r.withSnapshots && c.snapshots().length > 0) {
      throw Object.assign(
        new Error(`Container ${r.name} has snapshots; destroy them first or pass withSnapshots.`),
        {
          code: 'LXCQ_INVALID_STATE',
          details: { snapshots: c.snapshots().length },
        },
      );
    }
    if (poolDirOf(r.lxcpath, r.name) !== null) {
      // liblxc's destroy removes the subvolumes, then fails on the lxcpath entry (a symlink):
      // lxcq removes the container's pool directory (nested subvolumes first) and the symlink.
      removeContainerDir(r.lxcpath, r.name);
      return { existed: true };
    }
    // liblxc's destroy_with_snapshots fails (ENOENT) when there is no snapshot directory.
    c.destroy({ withSnapshots: r.withSnapshots && c.snapshots().length > 0 });
    return { existed: true };
  },
  purge: (r) => {
    // Removes whatever a dead earlier attempt left under this name, whole or half-made.
    const dir = join(r.lxcpath, r.name);
    const inPool = poolDirOf(r.lxcpath, r.name) !== null;
    {
      using c = open(r);
      if (c.defined) {
        if (c.state !== 'STOPPED') c.stop();
        try {
          // A pool container's subvolumes go with its pool directory below.
          if (!inPool) c.destroy({ withSnapshots: true });
        } catch {
          // Half-made (no rootfs, a broken config): fall back to removing the directory.
        }
      }
    }
    const existed = inPool || existsSync(dir);
    removeContainerDir(r.lxcpath, r.name);
    return { existed };
  },
  rename: (r) => {
    using c = open(r);
    if (!c.defined) {
      // Re-run after a crash: the rename already happened.
      using n = Container.open(r.newName, r.lxcpath);
      if (n.defined) {
        // A pool container's old symlink, left dangling when the worker died before removing it.
        if (poolDirOf(r.lxcpath, r.name) !== null && !existsSync(join(r.lxcpath, r.name)))
          unlinkSync(join(r.lxcpath, r.name));
        return describe(n);
      }
      notFound(r.name);
    }
    const s = c.state;
    if (s !== 'STOPPED') invalidState(r.name, s, 'rename needs a stopped container');
    // liblxc answers lxc.rootfs.path without its storage type: read the type from the file.
    if (/^\s*lxc\.rootfs\.path\s*=\s*overlay(fs)?:/m.test(readFileSync(c.configFileName(), 'utf8'))) {
      // liblxc renames by copying, and its overlay driver copies only into snapshots: it fails
      // after the work began, with a raw log line. Refuse before anything is touched.
      throw Object.assign(
        new Error(
          `Container ${r.name} is an overlayfs copy-on-write clone, which liblxc cannot rename. Clone it to ${r.newName} (a full copy: clone without snapshot), then destroy ${r.name}.`,
        ),
        { code: 'LXCQ_UNSUPPORTED' },
      );
    }
    const poolDir = poolDirOf(r.lxcpath, r.name);
    if (poolDir !== null) {
      // A pool container is renamed in place: its directory (subvolumes and snapshots with it)
      // moves on the pool's filesystem, and the paths in its configs follow. liblxc would copy it.
      const newDir = join(dirname(poolDir), r.newName);
      const newEntry = join(r.lxcpath, r.newName);
      // A symlink to newDir is this rename's own, made by an attempt that died before moving the directory.
      if (
        existsSync(newDir) ||
        (poolDirOf(r.lxcpath, r.newName) ?? newDir) !== newDir ||
        existsSync(newEntry)
      )
        throw Object.assign(new Error(`${newDir} exists already; pick another name.`), {
          code: 'LXCQ_CONTAINER_EXISTS',
        });
      const cfg = join(poolDir, 'config');
      writeFileSync(cfg, renamedConfig(readFileSync(cfg, 'utf8'), r.lxcpath, r.name, r.newName));
      const snaps = join(poolDir, 'snaps');
      for (const s of existsSync(snaps) ? readdirSync(snaps) : []) {
        const f = join(snaps, s, 'config');
        if (existsSync(f))
          writeFileSync(f, renamedConfig(readFileSync(f, 'utf8'), r.lxcpath, r.name, r.newName, false));
      }
      // Each step can be re-run: the configs rewritten (again), the new entry, the move, the old entry.
      if (poolDirOf(r.lxcpath, r.newName) === null) symlinkSync(newDir, newEntry);
      renameSync(poolDir, newDir);
      unlinkSync(join(r.lxcpath, r.name));
      using n = Container.open(r.newName, r.lxcpath);
      return describe(n);
    }
    // liblxc renames by copying: done by lxc-copy in a process of its own (see lxcCopy).
    runLxcTool('lxc-copy', ['-n', r.name, '-P', r.lxcpath, '-N', r.newName, '-R'], r.lxcpath);
    using n = Container.open(r.newName, r.lxcpath);
    return describe(n);
  },
  clone: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    const s = c.state;
    if (s !== 'STOPPED') invalidState(r.name, s, 'clone needs a stopped container');
    const poolDir = poolDirOf(r.lxcpath, r.name);
    const from = poolDir !== null ? dirname(poolDir) : null;
    const to = r.poolDir === undefined ? from : r.poolDir;
    const copy = { name: r.newName, lxcpath: r.lxcpath };
    if (to !== null && to === from) {
      // On the source's pool: a subvolume snapshot, snapshot or not (liblxc's btrfs store).
      prepareInPool(r.lxcpath, r.newName, to);
      lxcCopy(r, copy, { snapshot: true, keepName: r.keepName, backing: 'btrfs' });
      const disk = savedDisk(r.lxcpath, r.name);
      if (disk !== null) applyDisk(r.lxcpath, r.newName, disk);
    } else if (to !== null) {
      // Onto another pool (from the dir pool or another btrfs pool): a full copy into a new subvolume.
      prepareInPool(r.lxcpath, r.newName, to);
      lxcCopy(r, copy, { keepName: r.keepName, backing: 'btrfs' });
      toSubvolume(join(r.lxcpath, r.newName, 'rootfs'));
    } else if (from !== null) {
      // From a btrfs pool onto the dir pool: a full copy into a plain directory.
      lxcCopy(r, copy, { keepName: r.keepName, backing: 'dir' });
    } else
      lxcCopy(r, { name: r.newName, lxcpath: r.lxcpath }, { snapshot: r.snapshot, keepName: r.keepName });
    using n = Container.open(r.newName, r.lxcpath);
    return describe(n);
  },
  snapshotCreate: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    if (poolDirOf(r.lxcpath, r.name) !== null) return poolSnapshot(c, r);
    // liblxc snapshots a directory-backed rootfs by copying it, which it refuses while the
    // container runs (lxc-snapshot then exits 1 and says nothing without a log).
    if (
      c.state !== 'STOPPED' &&
      !/^(overlay|overlayfs|btrfs|zfs|lvm):/.test(c.getConfigItem('lxc.rootfs.path'))
    )
      invalidState(
        r.name,
        c.state,
        'a snapshot of a directory-backed container needs it stopped: stop it first',
      );
    // lxc-snapshot copies the rootfs in a process of its own (see lxcCopy for why).
    const before = new Set(c.snapshots().map((x) => x.name));
    const args = ['-n', r.name, '-P', r.lxcpath];
    let commentFile: string | null = null;
    if (r.comment !== undefined) {
      commentFile = join(mkdtempSync(join(tmpdir(), 'lxcq-comment-')), 'comment');
      writeFileSync(commentFile, r.comment);
      args.push('-c', commentFile);
    }
    try {
      runLxcTool('lxc-snapshot', args, r.lxcpath);
    } finally {
      if (commentFile) rmSync(dirname(commentFile), { recursive: true, force: true });
    }
    const snap = c.snapshots().find((x) => !before.has(x.name))?.name;
    if (snap === undefined)
      throw Object.assign(new Error(`lxc-snapshot made no new snapshot of ${r.name}.`), {
        code: 'LXCQ_LXC_ERROR',
      });
    let name = snap;
    if (r.snapName !== undefined && r.snapName !== snap) {
      // liblxc names snapshots snapN; a chosen name is a rename inside the snaps directory, which
      // liblxc does by copying (lxc-copy, see lxcCopy) and which leaves the comment behind.
      const snaps = join(r.lxcpath, r.name, 'snaps');
      const commentPath = (n: string) => join(snaps, n, 'comment');
      const comment = existsSync(commentPath(snap)) ? readFileSync(commentPath(snap)) : null;
      runLxcTool('lxc-copy', ['-n', snap, '-P', snaps, '-N', r.snapName, '-R'], r.lxcpath);
      if (comment !== null) writeFileSync(commentPath(r.snapName), comment);
      name = r.snapName;
    }
    const info = c.snapshots().find((s) => s.name === name);
    return {
      name,
      ...(info?.comment ? { comment: info.comment } : {}),
      ...(info?.timestamp ? { createdAt: info.timestamp } : {}),
    };
  },
  snapshotRestore: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    if (!c.snapshots().some((s) => s.name === r.snapshot)) {
      throw Object.assign(new Error(`Container ${r.name} has no snapshot ${r.snapshot}.`), {
        code: 'LXCQ_SNAPSHOT_NOT_FOUND',
      });
    }
    const target = r.newName ?? r.name;
    if (target === r.name && c.state !== 'STOPPED')
      invalidState(r.name, c.state, 'restoring over a container needs it stopped');
    const poolDir = poolDirOf(r.lxcpath, r.name);
    if (poolDir !== null && target === r.name) {
      // liblxc restores in place by destroying the container, which fails on its lxcpath symlink:
      // the rootfs subvolume is replaced by a snapshot of the snapshot's, and its config put back.
      const snap = join(poolDir, 'snaps', r.snapshot);
      const rootfs = join(poolDir, 'rootfs');
      const disk = savedDisk(r.lxcpath, r.name);
      const config = withRootfs(
        renamedConfig(readFileSync(join(snap, 'config'), 'utf8'), r.lxcpath, r.name, r.name),
        `btrfs:${join(r.lxcpath, r.name, 'rootfs')}`,
      );
      removeTree(rootfs);
      snapshotSubvolume(join(snap, 'rootfs'), rootfs);
      writeFileSync(join(poolDir, 'config'), config);
      if (disk !== null) applyDisk(r.lxcpath, r.name, disk);
      using n = Container.open(r.name, r.lxcpath);
      return describe(n);
    }
    if (poolDir !== null) prepareInPool(r.lxcpath, target, dirname(poolDir));
    // Restoring copies the snapshot's rootfs: done by lxc-snapshot in a process of its own.
    runLxcTool(
      'lxc-snapshot',
      ['-n', r.name, '-P', r.lxcpath, '-r', r.snapshot, ...(target === r.name ? [] : ['-N', target])],
      r.lxcpath,
    );
    using n = Container.open(target, r.lxcpath);
    return describe(n);
  },
  snapshotDestroy: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    if (!c.snapshots().some((s) => s.name === r.snapshot)) return { existed: false };
    c.destroySnapshot(r.snapshot);
    return { existed: true };
  },
  snapshotRollback: (r) => {
    const snaps = join(r.lxcpath, r.name, 'snaps');
    if (!existsSync(snaps)) return { removed: [] };
    const keep = new Set(r.keep);
    const removed: string[] = [];
    using c = open(r);
    const listed = new Set(c.defined ? c.snapshots().map((x) => x.name) : []);
    for (const entry of readdirSync(snaps)) {
      if (keep.has(entry)) continue;
      if (listed.has(entry)) {
        try {
          c.destroySnapshot(entry);
        } catch {
          // half-made: removed with its directory below
        }
      }
      removeTree(join(snaps, entry));
      removed.push(entry);
    }
    return { removed };
  },
  checkpoint: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    const s = c.state;
    if (s !== 'RUNNING') invalidState(r.name, s, 'checkpoint needs a running container');
    c.checkpoint(r.dir, { stop: r.stop });
    return { stopped: r.stop };
  },
  restore: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    const s = c.state;
    if (s === 'RUNNING') return describe(c);
    if (s !== 'STOPPED') invalidState(r.name, s, 'restore needs a stopped container');
    c.restore(r.dir);
    return describe(c);
  },
  exec: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    const s = c.state;
    if (s !== 'RUNNING') invalidState(r.name, s, 'exec needs a running container');
    return c.exec({
      argv: r.argv,
      maxOutputBytes: r.maxOutputBytes,
      ...(r.env ? { env: r.env } : {}),
      ...(r.cwd ? { cwd: r.cwd } : {}),
      ...(r.uid !== undefined ? { uid: r.uid } : {}),
      ...(r.gid !== undefined ? { gid: r.gid } : {}),
      ...(r.timeoutMs !== undefined ? { timeoutMs: r.timeoutMs } : {}),
    });
  },
  config: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    for (const k of r.clear) c.clearConfigItem(k);
    saveReplacing(c, r.set);
    return describe(c, true).config ?? {};
  },
  limits: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    if (r.diskBytes !== undefined && poolDirOf(r.lxcpath, r.name) === null) noQuotaOnDir(r.name);
    const running = c.state !== 'STOPPED';
    const layout = cgroupLayout();
    const prefix = layout === 'v2' ? 'lxc.cgroup2.' : 'lxc.cgroup.';
    const items = limitItems(r.limits, layout);
    // The limits operation writes config too: through the same policy as a config set.
    assertConfigAllowed(items.map(([k, v]) => [prefix + k, v] as const));
    // Applied at once when running, and saved so the next start applies it too.
    if (running) for (const [k, v] of items) c.setCgroupItem(k, v);
    if (items.length > 0)
      saveReplacing(
        c,
        items.map(([k, v]) => [prefix + k, v] as const),
      );
    // A qgroup limit holds at once, running or not.
    if (r.diskBytes !== undefined) applyDisk(r.lxcpath, r.name, r.diskBytes);
    return {
      applied: running || r.diskBytes !== undefined,
      items: Object.fromEntries(items.map(([k, v]) => [prefix + k, v])),
      ...(r.diskBytes !== undefined ? { disk: r.diskBytes } : {}),
    };
  },
  convertInspect: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    const fs = rootfsOf(readFileSync(c.configFileName(), 'utf8'));
    const rootfs = fs && fs.backend === 'dir' ? fs.path : null;
    return {
      state: c.state,
      privileged: isPrivilegedConfig(c.getConfigItem('lxc.idmap')),
      rootfs,
      backend: fs?.backend ?? 'none',
      snapshots: c.snapshots().map((x) => x.name),
      clones: dependentClones(r.lxcpath, r.name),
      // mountinfo has real paths: the lxcpath may be reached through a symlink
      mounts: rootfs && existsSync(rootfs) ? mountsUnder(realpathSync(rootfs)) : [],
    };
  },
  convertReplay: (r) => replayJournal(r.journal, r.map),
  convertScan: (r) => scanPaths(r.rootfs, r.paths, r.map, r.resumed),
  convertShift: (r) => shiftBatch(r.rootfs, r.paths, r.map, r.journal, r.done),
  convertFinish: (r) => {
    using c = open(r);
    if (!c.defined) notFound(r.name);
    const keys = convertKeys(readFileSync(c.configFileName(), 'utf8'), r.map);
    if (keys.length > 0) {
      for (const [k, v] of keys) c.setConfigItem(k, v);
      c.saveConfig();
    }
    // liblxc gives an unprivileged container's directory to its root (0770): the mapped root
    // opens the rootfs through it.
    lchownSync(join(r.lxcpath, r.name), r.map.uid, r.map.gid);
    using fresh = open(r);
    return describe(fresh);
  },
  hostInfo: () => {
    const s = criuStatus();
    return { liblxcVersion: lxcVersion(), criu: s.available, criuMessage: s.reason };
  },
};

/** piscina's entry: one request in, one typed reply out. */
export default function run(req: LxcRequest): LxcReply {
  const t0 = performance.now();
  try {
    const fn = impl[req.fn] as (r: LxcRequest) => unknown;
    const value = fn(req);
    return { ok: true, value, ms: performance.now() - t0 };
  } catch (err) {
    return { ok: false, error: errorBody(err), ms: performance.now() - t0 };
  }
}
