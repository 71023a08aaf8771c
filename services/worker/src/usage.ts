/**
 * What each container uses, read straight from the kernel: the container's cgroup files (v1 or
 * v2, whichever hierarchy holds each controller on this host) and /proc/<init pid>/net/dev (its
 * network namespace's interface counters). No liblxc call: one pass reads a handful of small
 * files per running container with plain open/read/close, a few microseconds each, and yields to
 * the event loop every few containers. Disk use (du of a dir rootfs) is slow and is measured
 * apart, one container at a time in a child process, rarely, and cached.
 */
import { execFile } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { cpus } from 'node:os';
import type { Logger } from 'pino';
import type { ContainerState, ContainerUsage, NicUsage, UsagePass } from '@lxcq/shared';
import { toolEnv } from '@lxcq/lxc-ffi/host';

// ---------------------------------------------------------------------------------------------
// reading small kernel files

const buf = Buffer.allocUnsafe(1 << 16);

/** A small kernel file's text (cgroup, /proc), or undefined when it cannot be read. */
export function readSmall(path: string): string | undefined {
  return readSmallFile(path);
}

function readSmallFile(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, n);
      if (got <= 0) break;
      n += got;
      if (n === buf.length) break;
    }
    return buf.toString('latin1', 0, n);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Cgroup files of one container kept open and read again from offset 0 at each pass (pread):
 * the kernel regenerates the text at every read from the start, and the open and close, most
 * of a small read's cost, are paid once per container start. Only cgroup files are kept: an
 * open /proc/<pid>/net/dev would hold the container's network namespace alive after it stops.
 * A file of a removed cgroup reads as an error (ENODEV), i.e. undefined.
 */
export class OpenFiles {
  private readonly fds = new Map<string, number>();

  read(path: string): string | undefined {
    let fd = this.fds.get(path);
    if (fd === undefined) {
      try {
        fd = openSync(path, 'r');
      } catch {
        fd = -1;
      }
      this.fds.set(path, fd);
    }
    if (fd < 0) return undefined;
    try {
      let n = 0;
      for (;;) {
        const got = readSync(fd, buf, n, buf.length - n, n);
        if (got <= 0 || (n += got) === buf.length) break;
      }
      return buf.toString('latin1', 0, n);
    } catch {
      return undefined;
    }
  }

  close(): void {
    for (const fd of this.fds.values()) if (fd >= 0) closeSync(fd);
    this.fds.clear();
  }
}

/** A whole number from a cgroup file; `max` (no limit) and absurd v1 "unlimited" values → null. */
export function limitValue(text: string | undefined): number | null {
  if (text === undefined) return null;
  const t = text.trim();
  if (t === 'max' || t === '' || t === '-1') return null;
  const n = Number(t);
  // cgroup v1 writes PAGE_COUNTER_MAX * PAGE_SIZE (about 2^63) for "no limit"
  if (!Number.isFinite(n) || n >= 2 ** 62) return null;
  return n;
}

function num(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : undefined;
}

/** The number of CPUs in a cpuset list such as `0-3,6`. */
export function cpusetSize(text: string | undefined): number | null {
  if (!text || !text.trim()) return null;
  let n = 0;
  for (const part of text.trim().split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || !Number.isFinite(a)) return null;
    n += b === undefined ? 1 : b - a + 1;
  }
  return n;
}

/**
 * At most this many interfaces of a container are reported: root inside a container can make
 * thousands (dummy links), and each would be series on /metrics and bytes in every pass.
 */
export const MAX_NICS = 32;

/** /proc/net/dev: per interface (the first MAX_NICS), rx and tx bytes, packets, errors, drops. */
export function parseNetDev(text: string | undefined): Record<string, NicUsage> {
  const out: Record<string, NicUsage> = {};
  if (!text) return out;
  const lines = text.split('\n');
  for (let i = 2, n = 0; i < lines.length && n < MAX_NICS; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    if (f.length < 16) continue;
    n++;
    out[line.slice(0, colon).trim()] = {
      rx: { bytes: f[0] as number, packets: f[1] as number, errors: f[2] as number, drops: f[3] as number },
      tx: { bytes: f[8] as number, packets: f[9] as number, errors: f[10] as number, drops: f[11] as number },
    };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// where a container's cgroups are

/** Where each cgroup hierarchy is mounted in this process's mount namespace. */
export interface CgroupMounts {
  /** v1 controller name → [mount point, the hierarchy path mounted there]. */
  v1: Map<string, { point: string; root: string }>;
  /** The cgroup2 mount, when there is one. */
  v2: { point: string; root: string } | null;
}

const unescapeMount = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Reads /proc/self/mountinfo (or the given text) for the cgroup mounts. */
export function cgroupMounts(mountinfo = readSmall('/proc/self/mountinfo') ?? ''): CgroupMounts {
  const out: CgroupMounts = { v1: new Map(), v2: null };
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    const root = unescapeMount(pre[3] ?? '/');
    const point = unescapeMount(pre[4] ?? '');
    const fstype = post[0];
    if (fstype === 'cgroup2') {
      out.v2 ??= { point, root };
    } else if (fstype === 'cgroup') {
      for (const opt of (post[2] ?? '').split(',')) {
        if (['cpu', 'cpuacct', 'memory', 'pids', 'cpuset'].includes(opt) && !out.v1.has(opt))
          out.v1.set(opt, { point, root });
      }
    }
  }
  return out;
}

/** The files of one container's cgroups, resolved from /proc/<pid>/cgroup. */
export interface CgroupFiles {
  /** v1 directories by controller (present when that controller is on a v1 hierarchy). */
  v1: Map<string, string>;
  /** The v2 directory, when the process is in the unified hierarchy. */
  v2: string | null;
}

function inMount(m: { point: string; root: string }, path: string): string | null {
  if (m.root === '/') return m.point + (path === '/' ? '' : path);
  if (path === m.root) return m.point;
  if (path.startsWith(`${m.root}/`)) return m.point + path.slice(m.root.length);
  return null;
}

/** Parses /proc/<pid>/cgroup into directories under the mounts. */
export function cgroupFiles(mounts: CgroupMounts, procCgroup: string): CgroupFiles {
  const out: CgroupFiles = { v1: new Map(), v2: null };
  for (const line of procCgroup.split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const controllers = line.slice(a + 1, b);
    const path = line.slice(b + 1);
    if (line.slice(0, a) === '0' && controllers === '') {
      if (mounts.v2) out.v2 = inMount(mounts.v2, path);
      continue;
    }
    for (const c of controllers.split(',')) {
      const m = mounts.v1.get(c);
      const dir = m ? inMount(m, path) : null;
      if (dir) out.v1.set(c, dir);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// one running container

/** What the collector keeps per running container between passes. */
interface Tracked {
  pid: number;
  files: CgroupFiles;
  open: OpenFiles;
  /** Seconds after boot the init started (from /proc/<pid>/stat), fixed for this pid. */
  startedAfterBoot: number;
  /** The limits read last, the pass they were read at, and the config they were read under. */
  limits?: Limits;
  limitsPass: number;
  limitsConfig?: Record<string, string> | undefined;
  /** The previous CPU reading: ns and hrtime ns. */
  prevCpuNs?: number;
  prevAt?: bigint;
}

let clockTicks = 100;
/** sysconf(_SC_CLK_TCK), which is 100 on every Linux architecture lxcq runs on; `getconf` can say otherwise. */
export function setClockTicks(n: number): void {
  clockTicks = n;
}

function startTimeOf(pid: number): number | undefined {
  const stat = readSmall(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // field 22 (starttime) is the 20th after the command
  const ticks = Number(f[19]);
  return Number.isFinite(ticks) ? ticks / clockTicks : undefined;
}

/** The v1 file of `controller`, or the v2 file, whichever this container has. */
function file(
  read: (path: string) => string | undefined,
  files: CgroupFiles,
  controller: string,
  v1: string,
  v2: string,
): string | undefined {
  const d1 = files.v1.get(controller);
  if (d1) return read(`${d1}/${v1}`);
  if (files.v2) return read(`${files.v2}/${v2}`);
  return undefined;
}

/** The limits in force on a container (read apart: they change only when someone sets them). */
export interface Limits {
  cores: number | null;
  memoryBytes: number | null;
  swapBytes: number | null;
  pids: number | null;
}

export interface RunningReading {
  cpuNs: number;
  limitCores: number | null;
  memory: NonNullable<ContainerUsage['memory']>;
  pids: NonNullable<ContainerUsage['pids']>;
  network: Record<string, NicUsage>;
}

type Read = (path: string) => string | undefined;

/** The value of `key` in a `key value` file (memory.stat, cpu.stat), without splitting it all. */
export function statValue(text: string | undefined, key: string): number | undefined {
  if (!text) return undefined;
  let i = text.startsWith(`${key} `) ? 0 : text.indexOf(`\n${key} `);
  if (i < 0) return undefined;
  if (i > 0) i++;
  const end = text.indexOf('\n', i);
  const n = Number(text.slice(i + key.length + 1, end < 0 ? undefined : end));
  return Number.isFinite(n) ? n : undefined;
}

/** Reads the CPU, memory, swap and pids limits of a container's cgroups. */
export function readLimits(files: CgroupFiles, hostCores: number, read: Read = readSmallFile): Limits {
  let quota: number | null = null;
  const cpuDir = files.v1.get('cpu');
  if (cpuDir) {
    const q = limitValue(read(`${cpuDir}/cpu.cfs_quota_us`));
    const p = num(read(`${cpuDir}/cpu.cfs_period_us`));
    if (q !== null && p) quota = q / p;
  } else if (files.v2) {
    const [q, p] = (read(`${files.v2}/cpu.max`) ?? 'max').trim().split(' ');
    if (q !== 'max' && p) quota = Number(q) / Number(p);
  }
  const setDir = files.v1.get('cpuset');
  const cpuset = cpusetSize(
    setDir ? read(`${setDir}/cpuset.cpus`) : files.v2 ? read(`${files.v2}/cpuset.cpus.effective`) : '',
  );
  const both = [quota, cpuset !== null && cpuset < hostCores ? cpuset : null].filter(
    (x): x is number => x !== null,
  );
  const memDir = files.v1.get('memory');
  const d = files.v2;
  return {
    cores: both.length ? Math.round(Math.min(...both) * 1000) / 1000 : null,
    memoryBytes: limitValue(
      memDir ? read(`${memDir}/memory.limit_in_bytes`) : d ? read(`${d}/memory.max`) : undefined,
    ),
    swapBytes: limitValue(
      memDir ? read(`${memDir}/memory.memsw.limit_in_bytes`) : d ? read(`${d}/memory.swap.max`) : undefined,
    ),
    pids: limitValue(file(read, files, 'pids', 'pids.max', 'pids.max')),
  };
}

/**
 * Reads one running container's cgroup figures and network counters: 6 small files on a v1 host
 * (cpuacct.usage, memory usage, peak and stat, pids.current, net/dev). `limits` are those read
 * last by readLimits (read now when not given). Null when its cgroup is gone (it stopped).
 */
export function readRunning(
  pid: number,
  files: CgroupFiles,
  hostCores: number,
  read: Read = readSmallFile,
  limits: Limits = readLimits(files, hostCores, read),
): RunningReading | null {
  let cpuNs: number | undefined;
  const acct = files.v1.get('cpuacct');
  if (acct) cpuNs = num(read(`${acct}/cpuacct.usage`));
  else if (files.v2) {
    const usec = statValue(read(`${files.v2}/cpu.stat`), 'usage_usec');
    if (usec !== undefined) cpuNs = usec * 1000;
  }
  if (cpuNs === undefined) return null; // the cgroup is gone (the container stopped meanwhile)
  let memory: RunningReading['memory'];
  const memDir = files.v1.get('memory');
  if (memDir) {
    const stat = read(`${memDir}/memory.stat`);
    const bytes = num(read(`${memDir}/memory.usage_in_bytes`)) ?? 0;
    // total_swap is there with swap accounting; without it memsw files are absent too
    let swap = statValue(stat, 'total_swap');
    if (swap === undefined) {
      const memsw = num(read(`${memDir}/memory.memsw.usage_in_bytes`));
      if (memsw !== undefined) swap = Math.max(0, memsw - bytes);
    }
    memory = {
      bytes,
      peakBytes: num(read(`${memDir}/memory.max_usage_in_bytes`)) ?? null,
      cacheBytes: statValue(stat, 'total_cache') ?? statValue(stat, 'cache') ?? 0,
      swapBytes: swap ?? null,
      limitBytes: limits.memoryBytes,
      swapLimitBytes: limits.swapBytes,
    };
  } else if (files.v2) {
    const d = files.v2;
    memory = {
      bytes: num(read(`${d}/memory.current`)) ?? 0,
      peakBytes: num(read(`${d}/memory.peak`)) ?? null,
      cacheBytes: statValue(read(`${d}/memory.stat`), 'file') ?? 0,
      swapBytes: num(read(`${d}/memory.swap.current`)) ?? null,
      limitBytes: limits.memoryBytes,
      swapLimitBytes: limits.swapBytes,
    };
  } else {
    memory = {
      bytes: 0,
      peakBytes: null,
      cacheBytes: 0,
      swapBytes: null,
      limitBytes: null,
      swapLimitBytes: null,
    };
  }
  const pids = {
    current: num(file(read, files, 'pids', 'pids.current', 'pids.current')) ?? 0,
    limit: limits.pids,
  };
  return {
    cpuNs,
    limitCores: limits.cores,
    memory,
    pids,
    network: parseNetDev(readSmallFile(`/proc/${pid}/net/dev`)),
  };
}

// ---------------------------------------------------------------------------------------------
// the collector

/** Limits are read again at least every this many passes (changes made outside lxcq). */
const LIMITS_EVERY = 12;

/** A container of this host as the worker knows it. */
export interface KnownContainer {
  name: string;
  state: ContainerState;
  pid?: number;
  config?: Record<string, string>;
}

export interface UsageCollectorOptions {
  hostId: string;
  lxcpath: string;
  intervalMs: number;
  diskIntervalMs: number;
  /** The containers of this host now (the worker's own view of its registry records). */
  containers: () => Iterable<KnownContainer>;
  /** Stores a pass (Redis) and publishes it. */
  write: (pass: UsagePass, containers: ContainerUsage[]) => Promise<void>;
  log: Logger;
  /** Containers read between two yields to the event loop. */
  slice?: number;
}

/** A container's dir rootfs, or null when its storage is not a directory lxcq can du. */
export function dirRootfs(
  config: Record<string, string> | undefined,
  lxcpath: string,
  name: string,
): string | null {
  const value = config?.['lxc.rootfs.path'];
  if (value === undefined || value === '') return `${lxcpath}/${name}/rootfs`;
  const typed = /^([a-z]+):(.*)$/.exec(value);
  if (!typed) return value;
  return typed[1] === 'dir' ? (typed[2] as string) : null;
}

/**
 * One pass every `intervalMs`: each running container's CPU, memory, pids and network, each
 * stopped one's disk only; kept as `last` (served by /metrics) and written by `write`.
 */
export class UsageCollector {
  private readonly mounts = cgroupMounts();
  private readonly tracked = new Map<string, Tracked>();
  private readonly disk = new Map<string, { usedBytes: number; measuredAt: string; at: number }>();
  private readonly hostCores = cpus().length;
  private passes = 0;
  private timer?: NodeJS.Timeout;
  private diskTimer?: NodeJS.Timeout;
  private running: Promise<void> | null = null;
  private measuring = false;
  private stopped = false;
  /** The last pass: what /metrics serves. */
  last: { pass: UsagePass; containers: ContainerUsage[] } | null = null;
  /** CPU time (µs, process.cpuUsage) each of the last 100 passes took, for the bench. */
  readonly passCpuUs: number[] = [];

  constructor(private readonly opts: UsageCollectorOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.pass(), this.opts.intervalMs);
    this.timer.unref();
    this.diskTimer = setInterval(() => void this.measureDisk(), 1000);
    this.diskTimer.unref();
    void this.pass();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.diskTimer);
    await this.running;
    for (const name of [...this.tracked.keys()]) this.untrack(name);
  }

  private untrack(name: string): void {
    this.tracked.get(name)?.open.close();
    this.tracked.delete(name);
  }

  /** One collection pass (a pass under way is joined, not doubled). */
  pass(): Promise<void> {
    this.running ??= this.collect()
      .catch((err: unknown) => this.opts.log.warn({ err }, 'usage collection failed'))
      .finally(() => (this.running = null));
    return this.running;
  }

  private async collect(): Promise<void> {
    this.passes++;
    const cpu0 = process.cpuUsage();
    const now = new Date();
    const collectedAt = now.toISOString();
    const uptime = num(readSmall('/proc/uptime')?.split(' ')[0]) ?? 0;
    const out: ContainerUsage[] = [];
    const seen = new Set<string>();
    const slice = this.opts.slice ?? 25;
    let running = 0;
    let cpuPercent = 0;
    let memoryBytes = 0;
    let i = 0;
    for (const c of this.opts.containers()) {
      if (++i % slice === 0) {
        // let other work of the worker run between slices of a long pass
        await new Promise((r) => setImmediate(r));
      }
      seen.add(c.name);
      const d = this.disk.get(c.name);
      const disk = d ? { usedBytes: d.usedBytes, measuredAt: d.measuredAt, method: 'du' as const } : null;
      const base: ContainerUsage = { name: c.name, state: c.state, collectedAt, disk };
      if (c.state === 'STOPPED' || !c.pid) {
        this.untrack(c.name);
        out.push(base);
        continue;
      }
      let t = this.tracked.get(c.name);
      if (!t || t.pid !== c.pid) {
        const procCgroup = readSmall(`/proc/${c.pid}/cgroup`);
        const startedAfterBoot = startTimeOf(c.pid);
        if (!procCgroup || startedAfterBoot === undefined) {
          out.push(base); // its init is gone: stopped meanwhile (the monitor's refresh follows)
          continue;
        }
        this.untrack(c.name);
        t = {
          pid: c.pid,
          files: cgroupFiles(this.mounts, procCgroup),
          open: new OpenFiles(),
          startedAfterBoot,
          limitsPass: 0,
        };
        this.tracked.set(c.name, t);
      }
      const open = t.open;
      const read = (path: string) => open.read(path);
      // Limits change only when set: read again when the record's config changed (a limits job
      // rewrote it), and every LIMITS_EVERY passes for changes made outside lxcq.
      if (!t.limits || t.limitsConfig !== c.config || this.passes - t.limitsPass >= LIMITS_EVERY) {
        t.limits = readLimits(t.files, this.hostCores, read);
        t.limitsPass = this.passes;
        t.limitsConfig = c.config;
      }
      const r = readRunning(t.pid, t.files, this.hostCores, read, t.limits);
      if (!r) {
        this.untrack(c.name);
        out.push(base);
        continue;
      }
      const at = process.hrtime.bigint();
      const percent =
        t.prevCpuNs !== undefined && t.prevAt !== undefined && at > t.prevAt
          ? Math.round((Math.max(0, r.cpuNs - t.prevCpuNs) / Number(at - t.prevAt)) * 10000) / 100
          : null;
      t.prevCpuNs = r.cpuNs;
      t.prevAt = at;
      running++;
      cpuPercent += percent ?? 0;
      memoryBytes += r.memory.bytes;
      out.push({
        ...base,
        uptimeSeconds: Math.max(0, Math.round((uptime - t.startedAfterBoot) * 100) / 100),
        cpu: { seconds: r.cpuNs / 1e9, percent, limitCores: r.limitCores },
        memory: r.memory,
        pids: r.pids,
        network: r.network,
      });
    }
    for (const name of this.tracked.keys()) if (!seen.has(name)) this.untrack(name);
    for (const name of this.disk.keys()) if (!seen.has(name)) this.disk.delete(name);
    for (const name of this.diskTried.keys()) if (!seen.has(name)) this.diskTried.delete(name);
    const pass: UsagePass = {
      host: this.opts.hostId,
      at: collectedAt,
      intervalMs: this.opts.intervalMs,
      containers: out.length,
      running,
      cpuPercent: Math.round(cpuPercent * 100) / 100,
      memoryBytes,
    };
    this.last = { pass, containers: out };
    const used = process.cpuUsage(cpu0);
    this.passCpuUs.push(used.user + used.system);
    if (this.passCpuUs.length > 100) this.passCpuUs.shift();
    if (!this.stopped) await this.opts.write(pass, out);
  }

  /** Measures the disk of the container measured longest ago (or never), when that is due. */
  private async measureDisk(): Promise<void> {
    if (this.measuring || this.stopped) return;
    const now = Date.now();
    let due: KnownContainer | undefined;
    let dueAt = Infinity;
    for (const c of this.opts.containers()) {
      const at = this.disk.get(c.name)?.at ?? this.diskTried.get(c.name) ?? 0;
      if (now - at >= this.opts.diskIntervalMs && at < dueAt) {
        due = c;
        dueAt = at;
      }
    }
    if (!due) return;
    const name = due.name;
    const root = dirRootfs(due.config, this.opts.lxcpath, name);
    this.measuring = true;
    try {
      this.diskTried.set(name, Date.now());
      const bytes = root ? await du(root) : null;
      // Not measurable (other storage, or du failed): the last figure stays, tried again later.
      if (bytes !== null)
        this.disk.set(name, { usedBytes: bytes, measuredAt: new Date().toISOString(), at: Date.now() });
    } finally {
      this.measuring = false;
    }
  }

  /** When the disk of each container was last tried (measured or not). */
  private readonly diskTried = new Map<string, number>();
}

/** Bytes used under `dir` on its filesystem (`du -s -x -B1`), or null when du fails. */
export function du(dir: string): Promise<number | null> {
  return new Promise((resolve) => {
    execFile(
      'du',
      ['-s', '-x', '-B1', dir],
      { env: toolEnv(), timeout: 10 * 60_000, maxBuffer: 1 << 20 },
      (_err, stdout) => {
        const n = Number(stdout.split(/\s/)[0]);
        // du exits 1 on a file it cannot read and still prints the total of the rest
        resolve(stdout && Number.isFinite(n) ? n : null);
      },
    );
  });
}
