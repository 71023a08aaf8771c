/**
 * The host's storage pools (docs/storage.md): the implicit dir pool `default` (the lxcpath) and
 * btrfs pools, on a loop file lxcq makes under its data directory or on an existing btrfs mount.
 * The worker keeps them in `<lxcpath>/.lxcq/pools.json` (its own record: a restarted worker mounts
 * its loop pools again from it) and publishes them, with their space, to Redis for the API.
 */
import { execFile } from 'node:child_process';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  rmdirSync,
  statSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { LxcqError, type PayloadOf, type PoolDriver, type PoolInfo, parseDiskSize } from '@lxcq/shared';
import { POOL_MARKER, isBtrfs, removeTree } from './btrfs.ts';
import { failpoint } from './failpoints.ts';
import { letContainerRootsThrough } from './idmap.ts';
import { mountsUnder } from './thread.ts';

const exec = promisify(execFile);

/** The smallest loop pool: mkfs.btrfs needs about 110 MiB for its own structures. */
export const MIN_POOL_BYTES = 256 * 1024 ** 2;

/** What the worker records of a pool (its space is read when published). */
export interface PoolRecord {
  name: string;
  driver: 'btrfs';
  source: 'loop' | 'path';
  /** The mount point: `<lxcpath>/.lxcq/pools/<name>` for a loop pool, the given path otherwise. */
  path: string;
  /** A loop pool's file. */
  image?: string;
  sizeBytes?: number;
  createdAt: string;
}

async function sh(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await exec(cmd, args, { encoding: 'utf8', timeout: 600_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new LxcqError(
      'LXCQ_LXC_ERROR',
      `${cmd} ${args.join(' ')} failed: ${`${e.stderr ?? ''}${e.stdout ?? ''}`.trim().slice(-600) || e.message}`,
    );
  }
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
    .split(delimiter)
    .concat(['/usr/sbin', '/sbin'])
    .some((d) => d !== '' && existsSync(join(d, tool)));
}

function readSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Whether this host can run each driver, and if not what it lacks (checked before any work). */
export function driverSupport(): Record<PoolDriver, { available: boolean; reason?: string }> {
  const filesystems = readSafe('/proc/filesystems');
  const btrfsReason = !/\tbtrfs$/m.test(filesystems)
    ? "this host's kernel has no btrfs filesystem (not in /proc/filesystems) and lxcq does not load kernel modules"
    : !onPath('mkfs.btrfs') || !onPath('btrfs')
      ? 'btrfs-progs is not installed (no mkfs.btrfs/btrfs on PATH): run scripts/setup-host.sh or apt-get install btrfs-progs'
      : undefined;
  const zfsReason =
    existsSync('/sys/module/zfs') || /\tzfs$/m.test(filesystems)
      ? 'zfs pools are not supported by this version of lxcq yet (untested); use btrfs'
      : "this host's kernel has no zfs module (/sys/module/zfs is absent) and lxcq does not load kernel modules; use btrfs";
  const dm =
    existsSync('/dev/mapper/control') &&
    /device-mapper/.test(readSafe('/proc/misc') + readSafe('/proc/devices'));
  const lvmReason = dm
    ? 'lvm thin pools are not supported by this version of lxcq yet (untested); use btrfs'
    : 'this host has no device-mapper (no /dev/mapper/control), which lvm thin pools need; use btrfs';
  return {
    dir: {
      available: false,
      reason: 'the dir driver has one pool, `default` (the lxcpath); it needs no creating',
    },
    btrfs: btrfsReason === undefined ? { available: true } : { available: false, reason: btrfsReason },
    zfs: { available: false, reason: zfsReason },
    lvm: { available: false, reason: lvmReason },
  };
}

function isMountPoint(path: string): boolean {
  return mountsUnder(path).includes(path);
}

export class PoolManager {
  private pools = new Map<string, PoolRecord>();
  private readonly registry: string;
  readonly dataDir: string;

  constructor(private readonly opts: { host: string; lxcpath: string; log: Logger }) {
    this.dataDir = join(opts.lxcpath, '.lxcq', 'pools');
    this.registry = join(opts.lxcpath, '.lxcq', 'pools.json');
  }

  /** Reads the record and mounts again every loop pool that is not mounted (after a reboot or a restart). */
  async load(): Promise<void> {
    const text = readSafe(this.registry);
    const list = text ? (JSON.parse(text) as PoolRecord[]) : [];
    this.pools = new Map(list.map((p) => [p.name, p]));
    for (const p of list) {
      if (p.source !== 'loop' || isMountPoint(p.path)) continue;
      try {
        await this.mountLoop(p);
        this.opts.log.info({ pool: p.name, path: p.path }, 'mounted the loop pool again');
      } catch (err) {
        this.opts.log.error({ err, pool: p.name }, 'could not mount the loop pool again');
      }
    }
  }

  private save(): void {
    mkdirSync(dirname(this.registry), { recursive: true, mode: 0o711 });
    const tmp = `${this.registry}.tmp`;
    writeFileSync(tmp, JSON.stringify([...this.pools.values()], null, 2));
    // rename: a crash leaves the old record or the new one, never half of one
    renameSync(tmp, this.registry);
  }

  private async mountLoop(p: PoolRecord): Promise<void> {
    mkdirSync(p.path, { recursive: true, mode: 0o711 });
    // A loop device attached by mount is detached by the kernel when unmounted (autoclear).
    await sh('mount', ['-t', 'btrfs', '-o', 'loop', p.image as string, p.path]);
  }

  get(name: string): PoolRecord | undefined {
    return this.pools.get(name);
  }

  /** The containers directory of a btrfs pool, or null for `default`; an unknown or unmounted pool is refused. */
  containersDir(name: string | undefined): string | null {
    if (name === undefined || name === 'default') return null;
    const p = this.pools.get(name);
    if (!p)
      throw new LxcqError(
        'LXCQ_POOL_NOT_FOUND',
        `Host ${this.opts.host} has no pool ${name}. GET /v1/hosts/${this.opts.host}/pools lists its pools.`,
      );
    const problem = this.problem(p);
    if (problem)
      throw new LxcqError(
        'LXCQ_POOL_UNAVAILABLE',
        `Pool ${name} on host ${this.opts.host} is unusable: ${problem}.`,
      );
    return join(p.path, 'containers');
  }

  private problem(p: PoolRecord): string | undefined {
    if (!isBtrfs(p.path) || !existsSync(join(p.path, POOL_MARKER)))
      return p.source === 'loop'
        ? `its loop file ${p.image ?? ''} is not mounted at ${p.path} (the worker mounts it at start; its log says why it could not)`
        : `${p.path} is not the mounted btrfs filesystem the pool was made on`;
    return undefined;
  }

  /** Every pool with its space, the dir pool `default` first. */
  list(): PoolInfo[] {
    const now = new Date().toISOString();
    const space = (path: string) => {
      try {
        const s = statfsSync(path);
        const capacityBytes = s.blocks * s.bsize;
        return {
          capacityBytes,
          usedBytes: capacityBytes - s.bfree * s.bsize,
          freeBytes: s.bavail * s.bsize,
        };
      } catch {
        return {};
      }
    };
    const out: PoolInfo[] = [
      {
        name: 'default',
        host: this.opts.host,
        driver: 'dir',
        source: 'lxcpath',
        path: this.opts.lxcpath,
        ...space(this.opts.lxcpath),
        available: true,
        updatedAt: now,
      },
    ];
    for (const p of this.pools.values()) {
      const problem = this.problem(p);
      out.push({
        name: p.name,
        host: this.opts.host,
        driver: p.driver,
        source: p.source,
        path: p.path,
        ...(p.sizeBytes !== undefined ? { sizeBytes: p.sizeBytes } : {}),
        ...(problem ? {} : space(p.path)),
        available: problem === undefined,
        ...(problem ? { problem } : {}),
        createdAt: p.createdAt,
        updatedAt: now,
      });
    }
    return out;
  }

  /** The containers a pool holds (entries of its containers directory). */
  containersIn(p: PoolRecord): string[] {
    try {
      return readdirSync(join(p.path, 'containers')).sort();
    } catch {
      return [];
    }
  }

  async create(payload: PayloadOf<'pool.create'>, rerun: boolean): Promise<PoolInfo> {
    const { name, driver } = payload;
    const existing = this.pools.get(name);
    if (name === 'default' || existing) {
      if (existing && rerun) return this.infoOf(name);
      throw new LxcqError('LXCQ_POOL_EXISTS', `Host ${this.opts.host} already has a pool named ${name}.`);
    }
    const support = driverSupport()[driver];
    if (!support.available)
      throw new LxcqError(
        driver === 'dir' ? 'LXCQ_VALIDATION' : 'LXCQ_POOL_DRIVER_UNAVAILABLE',
        `Host ${this.opts.host} cannot make a ${driver} pool: ${support.reason ?? 'unavailable'}.`,
        { details: { driver } },
      );
    if ((payload.size === undefined) === (payload.path === undefined))
      throw new LxcqError(
        'LXCQ_VALIDATION',
        'A btrfs pool needs exactly one of size (a loop file lxcq creates, e.g. "4GiB") or path (an existing btrfs mount).',
      );
    const rec: PoolRecord =
      payload.size !== undefined
        ? await this.makeLoop(name, parseDiskSize(payload.size))
        : this.adoptPath(name, payload.path as string);
    if (rec.source === 'path') await this.initialise(rec);
    failpoint('pool.before-record');
    this.pools.set(name, rec);
    this.save();
    return this.infoOf(name);
  }

  private infoOf(name: string): PoolInfo {
    return this.list().find((p) => p.name === name) as PoolInfo;
  }

  private async makeLoop(name: string, bytes: number): Promise<PoolRecord> {
    if (!Number.isSafeInteger(bytes) || bytes < MIN_POOL_BYTES)
      throw new LxcqError(
        'LXCQ_POOL_SOURCE_INVALID',
        `A loop pool needs at least ${MIN_POOL_BYTES / 1024 ** 2} MiB (btrfs's own structures take about 110 MiB).`,
      );
    mkdirSync(this.dataDir, { recursive: true, mode: 0o711 });
    // The mapped roots of unprivileged containers reach their rootfs through these directories.
    letContainerRootsThrough(join(this.opts.lxcpath, '.lxcq'));
    letContainerRootsThrough(this.dataDir);
    const free = (() => {
      const s = statfsSync(this.dataDir);
      return s.bavail * s.bsize;
    })();
    if (bytes > free)
      throw new LxcqError(
        'LXCQ_POOL_SOURCE_INVALID',
        `A ${bytes}-byte loop pool does not fit: the worker's data directory ${this.dataDir} has ${free} bytes free. Ask for less, or free space there.`,
        { details: { freeBytes: free } },
      );
    const path = join(this.dataDir, name);
    const image = `${path}.img`;
    // Left by a dead earlier attempt (no record names it): lxcq's own, removed before starting again.
    await this.removeLoop(path, image);
    const rec: PoolRecord = {
      name,
      driver: 'btrfs',
      source: 'loop',
      path,
      image,
      sizeBytes: bytes,
      createdAt: new Date().toISOString(),
    };
    try {
      // O_EXCL: never an existing file; sparse, so it takes space only as the pool fills.
      const fd = openSync(image, 'wx', 0o600);
      try {
        ftruncateSync(fd, bytes);
      } finally {
        closeSync(fd);
      }
      await sh('mkfs.btrfs', ['-q', '-L', `lxcq-${name}`.slice(0, 255), image]);
      await this.mountLoop(rec);
      await this.initialise(rec);
    } catch (err) {
      await this.removeLoop(path, image).catch((e: unknown) =>
        this.opts.log.error({ err: e }, 'could not remove the half-made loop pool %s', name),
      );
      throw err;
    }
    return rec;
  }

  /** Quotas on, the marker, the containers directory. */
  private async initialise(rec: PoolRecord): Promise<void> {
    await sh('btrfs', ['quota', 'enable', rec.path]);
    writeFileSync(join(rec.path, POOL_MARKER), JSON.stringify({ name: rec.name, host: this.opts.host }));
    mkdirSync(join(rec.path, 'containers'), { recursive: true, mode: 0o711 });
    letContainerRootsThrough(rec.path);
    letContainerRootsThrough(join(rec.path, 'containers'));
  }

  private async removeLoop(path: string, image: string): Promise<void> {
    if (isMountPoint(path)) await sh('umount', [path]);
    rmSync(image, { force: true });
    if (existsSync(path)) rmdirSync(path);
  }

  private adoptPath(name: string, path: string): PoolRecord {
    const bad = (why: string): never => {
      throw new LxcqError('LXCQ_POOL_SOURCE_INVALID', `Pool path ${path} is refused: ${why}.`, {
        details: { path },
      });
    };
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      return bad('it does not exist');
    }
    if (real !== path) bad(`give its real path ${real} (no symlinks, no trailing "/" or "..")`);
    if (path === '/') bad("that is the host's root");
    if (!statSync(path).isDirectory()) bad('it is not a directory');
    if (!isMountPoint(path))
      bad('it is not a mount point: give the directory a btrfs filesystem is mounted on');
    if (!isBtrfs(path))
      bad('the filesystem mounted there is not btrfs (lxcq never formats an existing path)');
    const lxcq = join(this.opts.lxcpath, '.lxcq');
    for (const other of this.pools.values()) {
      if (other.path === path || path.startsWith(`${other.path}/`) || other.path.startsWith(`${path}/`))
        bad(`pool ${other.name} is at ${other.path}`);
    }
    if (path === this.opts.lxcpath || path.startsWith(`${lxcq}/`)) bad("it is lxcq's own directory");
    const marker = readSafe(join(path, POOL_MARKER));
    if (marker) {
      const m = JSON.parse(marker) as { name?: string; host?: string };
      if (m.host !== this.opts.host || m.name !== name)
        bad(`it holds pool ${m.name ?? '?'} of host ${m.host ?? '?'} already`);
    }
    return { name, driver: 'btrfs', source: 'path', path, createdAt: new Date().toISOString() };
  }

  /** Removes an empty pool: a loop pool's mount and file; only lxcq's own files on a path pool. */
  async delete(name: string): Promise<{ existed: boolean }> {
    const p = this.pools.get(name);
    if (name === 'default')
      throw new LxcqError('LXCQ_VALIDATION', 'The dir pool `default` (the lxcpath) cannot be removed.');
    if (!p) return { existed: false };
    const held = this.containersIn(p);
    if (held.length > 0)
      throw new LxcqError(
        'LXCQ_POOL_IN_USE',
        `Pool ${name} still holds ${held.length} container(s): ${held.join(', ')}. Destroy them (or move them off) first.`,
        { details: { containers: held } },
      );
    if (p.source === 'loop') await this.removeLoop(p.path, p.image as string);
    else {
      // The image bases (read-only subvolumes no container depends on: each is a snapshot of its own).
      removeTree(join(p.path, 'images'));
      if (existsSync(join(p.path, 'containers'))) rmdirSync(join(p.path, 'containers'));
      rmSync(join(p.path, POOL_MARKER), { force: true });
    }
    this.pools.delete(name);
    this.save();
    return { existed: true };
  }
}
