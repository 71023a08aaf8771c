/**
 * btrfs pools on the host, the parts both the worker's main thread and its liblxc threads use.
 *
 * A container on a btrfs pool keeps its usual place for liblxc and the lxc-* tools: its lxcpath
 * entry `<lxcpath>/<name>` is a symlink to `<pool>/containers/<name>`, a directory on the pool's
 * filesystem holding its config and its rootfs subvolume (`lxc.rootfs.path = btrfs:<lxcpath>/<name>/rootfs`).
 * liblxc's own btrfs backing store then works unchanged: its clones and snapshots land beside the
 * source (lxcpath/<new>/rootfs, lxcpath/<name>/snaps/snapN/rootfs) and so on the same filesystem,
 * where they are subvolume snapshots. Only what liblxc does to the lxcpath entry itself (its
 * destroy's last rmdir, its rename) does not follow the symlink; lxcq does those (see thread.ts).
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  statfsSync,
  unlinkSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** statfs(2)'s f_type of btrfs. */
export const BTRFS_SUPER_MAGIC = 0x9123683e;
/** The inode number of a btrfs subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID). */
const SUBVOL_INO = 256;
/** The file in a pool's root that names it (so a container's pool is read from the filesystem). */
export const POOL_MARKER = '.lxcq-pool';

export function isBtrfs(path: string): boolean {
  try {
    return statfsSync(path).type === BTRFS_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/** Runs a btrfs-progs (or mount) command; a failure throws with its own output. */
export function run(cmd: string, args: string[], code = 'LXCQ_LXC_ERROR'): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : `exit status ${r.status ?? r.signal}`;
    throw Object.assign(
      new Error(`${cmd} ${args.join(' ')} failed (${why}): ${`${r.stderr}${r.stdout}`.trim().slice(-600)}`),
      { code },
    );
  }
  return r.stdout;
}

/** The subvolumes at or under `dir`, deepest first (the order they can be deleted in). */
export function subvolumesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(join(d, e.name));
    try {
      const st = lstatSync(d);
      if (st.isDirectory() && st.ino === SUBVOL_INO) out.push(d);
    } catch {
      // gone meanwhile
    }
  };
  if (isBtrfs(dir)) walk(dir);
  return out;
}

/** Removes a directory tree on btrfs: its subvolumes (nested ones first), then what is left. */
export function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  const subs = subvolumesUnder(dir);
  // A read-only subvolume (a base) is deleted like any other.
  for (let i = 0; i < subs.length; i += 64) run('btrfs', ['subvolume', 'delete', ...subs.slice(i, i + 64)]);
  rmSync(dir, { recursive: true, force: true });
}

/** Where a pool container's lxcpath symlink points, or null for a plain directory (the dir pool). */
export function poolDirOf(lxcpath: string, name: string): string | null {
  const entry = join(lxcpath, name);
  try {
    if (!lstatSync(entry).isSymbolicLink()) return null;
  } catch {
    return null;
  }
  return resolve(dirname(entry), readlinkSync(entry));
}

/** The pool a container is on: read from the marker of the pool its symlink points into. */
export function poolNameOf(lxcpath: string, name: string): string {
  const dir = poolDirOf(lxcpath, name);
  if (dir === null) return 'default';
  try {
    const m = JSON.parse(readFileSync(join(dirname(dirname(dir)), POOL_MARKER), 'utf8')) as {
      name?: unknown;
    };
    return typeof m.name === 'string' ? m.name : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Removes a container's lxcpath entry and everything it holds: a pool container's directory in
 * its pool (subvolumes included) and the symlink, or the plain directory of a dir-pool container.
 */
export function removeContainerDir(lxcpath: string, name: string): boolean {
  const entry = join(lxcpath, name);
  const target = poolDirOf(lxcpath, name);
  if (target !== null) {
    removeTree(target);
    unlinkSync(entry);
    return true;
  }
  const existed = existsSync(entry);
  if (existed) removeTree(entry);
  return existed;
}

/** A writable (or read-only) snapshot of subvolume `src` at `dst`. */
export function snapshotSubvolume(src: string, dst: string, readonly = false): void {
  run('btrfs', ['subvolume', 'snapshot', ...(readonly ? ['-r'] : []), src, dst]);
}

/** Whether `path` is the root of a btrfs subvolume. */
export function isSubvolume(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isDirectory() && st.ino === SUBVOL_INO && isBtrfs(path);
  } catch {
    return false;
  }
}

/**
 * Makes a directory on btrfs a subvolume with the same content: liblxc's copy into a btrfs store
 * from another filesystem (a clone from the dir pool) rsyncs into a plain directory, which no
 * subvolume snapshot or quota could then take. The content is reflinked (no data copied).
 */
export function toSubvolume(dir: string): void {
  if (isSubvolume(dir)) return;
  const tmp = `${dir}.lxcq-subvolume`;
  removeTree(tmp);
  run('btrfs', ['subvolume', 'create', tmp]);
  run('cp', ['-a', '--reflink=auto', `${dir}/.`, `${tmp}/`]);
  const st = statSync(dir);
  chownSync(tmp, st.uid, st.gid);
  chmodSync(tmp, st.mode & 0o7777);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

/** Sets (bytes) or removes (null) the qgroup limit of a subvolume. */
export function setQuota(subvolume: string, bytes: number | null): void {
  run('btrfs', ['qgroup', 'limit', bytes === null ? 'none' : String(bytes), subvolume]);
}

/** The referenced bytes and limit of a subvolume's own qgroup (0/<id>), or null without qgroups. */
export function quotaOf(subvolume: string): { usedBytes: number; limitBytes: number | null } | null {
  const r = spawnSync('btrfs', ['qgroup', 'show', '-rf', '--raw', subvolume], {
    encoding: 'utf8',
    timeout: 60_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.status !== 0) return null;
  const line = r.stdout.split('\n').find((l) => /^0\/\d+\s/.test(l));
  if (!line) return null;
  const f = line.trim().split(/\s+/);
  const used = Number(f[1]);
  const limit = f[3];
  return {
    usedBytes: Number.isFinite(used) ? used : 0,
    limitBytes: limit === undefined || limit === 'none' || !/^\d+$/.test(limit) ? null : Number(limit),
  };
}
