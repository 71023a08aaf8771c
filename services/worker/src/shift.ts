/**
 * Shifting a privileged container's rootfs onto an id map (the convert operation): every path's
 * owner, its POSIX ACL entries and its file capabilities move from container ids (0-65535) to
 * host ids (base + id), as LXD/Incus do when a container becomes unprivileged.
 *
 * What a plain chown would lose, and how it is kept:
 * - lchown changes symlinks themselves, never their targets;
 * - the kernel clears setuid/setgid on an owner change, even for root: the mode is set again;
 * - it also drops security.capability: the capabilities are written again as a v3 (namespaced)
 *   entry whose root id is the container's root on the host (base + the old root id, 0 for v1/v2),
 *   which is what the kernel honours inside the user namespace and nowhere else;
 * - ACL_USER / ACL_GROUP entries of system.posix_acl_access and _default carry ids: shifted.
 *
 * Crash safety. The container ids (below 65536) and the host ids (base and up, base >= 65536)
 * do not overlap, so a path's owner says whether it is shifted. What the owner does not say is
 * whether its mode and capabilities were restored after the chown: each batch is journalled
 * first (every path's original owner, mode and attributes, fsync'd), and a re-run replays the
 * journal (every step sets absolute values, so replaying twice is harmless) before it goes on.
 */
import {
  chmodSync,
  closeSync,
  fsyncSync,
  lchownSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { getXattr, setXattr } from '@lxcq/lxc-ffi';
import { failpoint } from './failpoints.ts';
import { IDS_PER_CONTAINER } from './idmap.ts';

/** Where container ids 0..count-1 go on the host. */
export interface ShiftMap {
  uid: number;
  gid: number;
  count: number;
}

export const CAPS_XATTR = 'security.capability';
export const ACL_ACCESS = 'system.posix_acl_access';
export const ACL_DEFAULT = 'system.posix_acl_default';

const VFS_CAP_REVISION_MASK = 0xff000000;
const VFS_CAP_REVISION_1 = 0x01000000;
const VFS_CAP_REVISION_2 = 0x02000000;
const VFS_CAP_REVISION_3 = 0x03000000;
const CAPS_SIZE = { [VFS_CAP_REVISION_1]: 12, [VFS_CAP_REVISION_2]: 20, [VFS_CAP_REVISION_3]: 24 } as const;

const ACL_VERSION = 2;
const ACL_USER = 0x02;
const ACL_GROUP = 0x08;

/** The root id a capability entry is for: 0 for v1/v2 (the initial namespace), v3's rootid. */
export function capsRootId(value: Buffer): number {
  if (value.length < 4) throw new Error(`a ${CAPS_XATTR} of ${value.length} bytes is malformed`);
  const rev = value.readUInt32LE(0) & VFS_CAP_REVISION_MASK;
  const size = CAPS_SIZE[rev as keyof typeof CAPS_SIZE] as number | undefined;
  if (size === undefined || value.length !== size)
    throw new Error(
      `a ${CAPS_XATTR} of revision 0x${rev.toString(16)} and ${value.length} bytes is malformed`,
    );
  return rev === VFS_CAP_REVISION_3 ? value.readUInt32LE(20) : 0;
}

/** The capabilities as a v3 entry for the namespace whose root is host uid `rootid`. */
export function nsCaps(value: Buffer, rootid: number): Buffer {
  const out = Buffer.alloc(CAPS_SIZE[VFS_CAP_REVISION_3]);
  value.copy(out, 0, 0, Math.min(value.length, 20));
  const flags = value.readUInt32LE(0) & ~VFS_CAP_REVISION_MASK;
  out.writeUInt32LE((VFS_CAP_REVISION_3 | flags) >>> 0, 0);
  out.writeUInt32LE(rootid, 20);
  return out;
}

/** The ACL_USER and ACL_GROUP ids of an ACL xattr value, in order. */
export function aclIds(value: Buffer): { tag: 'user' | 'group'; id: number }[] {
  if (value.length < 4 || (value.length - 4) % 8 !== 0 || value.readUInt32LE(0) !== ACL_VERSION)
    throw new Error(`a POSIX ACL of ${value.length} bytes is malformed`);
  const out: { tag: 'user' | 'group'; id: number }[] = [];
  for (let off = 4; off < value.length; off += 8) {
    const tag = value.readUInt16LE(off);
    if (tag === ACL_USER) out.push({ tag: 'user', id: value.readUInt32LE(off + 4) });
    else if (tag === ACL_GROUP) out.push({ tag: 'group', id: value.readUInt32LE(off + 4) });
  }
  return out;
}

/** The ACL with its ACL_USER ids moved by map.uid and ACL_GROUP ids by map.gid. */
export function shiftAcl(value: Buffer, map: ShiftMap): Buffer {
  aclIds(value); // validates
  const out = Buffer.from(value);
  for (let off = 4; off < out.length; off += 8) {
    const tag = out.readUInt16LE(off);
    const base = tag === ACL_USER ? map.uid : tag === ACL_GROUP ? map.gid : null;
    if (base !== null) out.writeUInt32LE(out.readUInt32LE(off + 4) + base, off + 4);
  }
  return out;
}

/** Whether a (uid, gid) pair is a container's own (below count) or already on the host range. */
export function ownerState(uid: number, gid: number, map: ShiftMap): 'native' | 'shifted' | 'outside' {
  const native = (id: number) => id >= 0 && id < map.count;
  const shifted = (id: number, base: number) => id >= base && id < base + map.count;
  if (native(uid) && native(gid)) return 'native';
  if (shifted(uid, map.uid) && shifted(gid, map.gid)) return 'shifted';
  return 'outside';
}

/** Reads an xattr a file system without xattr support cannot have: absent. */
function xattr(path: string, name: string): Buffer | null {
  try {
    return getXattr(path, name);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOTSUP' || (err as { code?: string }).code === 'EOPNOTSUPP')
      return null;
    throw err;
  }
}

/**
 * Why a path cannot be shifted with this map, or null when it can. Before any file changed
 * (`resumed` false) every id must be a container id; on a re-run (a marker says the work began)
 * a path may also be shifted already, wholly.
 */
export function whyOutside(path: string, st: Stats, map: ShiftMap, resumed: boolean): string | null {
  const owner = ownerState(st.uid, st.gid, map);
  if (owner === 'outside' || (owner === 'shifted' && !resumed)) return `owner ${st.uid}:${st.gid}`;
  if (st.isSymbolicLink()) return null;
  const already = owner === 'shifted';
  const ok = (id: number, base: number) => (already ? id >= base && id < base + map.count : id < map.count);
  for (const name of [ACL_ACCESS, ACL_DEFAULT]) {
    const v = xattr(path, name);
    if (!v) continue;
    for (const e of aclIds(v))
      if (!ok(e.id, e.tag === 'user' ? map.uid : map.gid))
        return `ACL entry ${e.tag}:${e.id} (${name.slice('system.'.length)})`;
  }
  const caps = xattr(path, CAPS_XATTR);
  if (caps) {
    const root = capsRootId(caps);
    if (!ok(root, map.uid)) return `file capabilities for root id ${root}`;
  }
  return null;
}

/** What a scan of some paths found. */
export interface ScanResult {
  /** Paths that cannot be shifted, with why ("/etc/x: owner 70000:0"), at most `limit`. */
  outside: string[];
  /** How many paths cannot be shifted in all. */
  outsideCount: number;
  /** How many of those are owned by the host range already (a rootfs shifted before, whose
   * container lost its lxc.idmap, looks like this). */
  onRange: number;
}

export function scanPaths(
  rootfs: string,
  rels: string[],
  map: ShiftMap,
  resumed: boolean,
  limit = 10,
): ScanResult {
  const out: ScanResult = { outside: [], outsideCount: 0, onRange: 0 };
  for (const rel of rels) {
    const path = join(rootfs, rel);
    const st = lstatSync(path);
    const why = whyOutside(path, st, map, resumed);
    if (why === null) continue;
    out.outsideCount++;
    if (ownerState(st.uid, st.gid, map) === 'shifted') out.onRange++;
    if (out.outside.length < limit) out.outside.push(`/${rel}: ${why}`);
  }
  return out;
}

/** One path's state before its shift: enough to finish the shift after a crash. */
interface JournalEntry {
  path: string;
  uid: number;
  gid: number;
  mode: number;
  link: boolean;
  /** base64 xattr values */
  caps?: string;
  aclAccess?: string;
  aclDefault?: string;
}

/** Writes `data` to `path` whole or not at all (temporary file, fsync, rename, fsync dir). */
function writeDurably(path: string, data: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

export interface ShiftCounts {
  shifted: number;
  capabilities: number;
  acls: number;
}

/** Shifts one path from its journalled state. Every step sets an absolute value. */
function apply(e: JournalEntry, map: ShiftMap, done: number, counts: ShiftCounts): void {
  try {
    lchownSync(e.path, e.uid + map.uid, e.gid + map.gid);
  } catch (err) {
    // Gone since it was journalled: only a replay can meet that (nothing runs in a stopped container).
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  counts.shifted++;
  if (e.link) return;
  const clears = (e.mode & 0o6000) !== 0 || e.caps !== undefined;
  // The failpoint: the owner is changed and what the change cleared is not yet put back.
  if (clears && done > 0) failpoint('convert.mid-shift');
  let acl = false;
  if (e.aclAccess) {
    setXattr(e.path, ACL_ACCESS, shiftAcl(Buffer.from(e.aclAccess, 'base64'), map));
    acl = true;
  }
  if (e.aclDefault) {
    setXattr(e.path, ACL_DEFAULT, shiftAcl(Buffer.from(e.aclDefault, 'base64'), map));
    acl = true;
  }
  if (acl) counts.acls++;
  // After the ACLs: setting an access ACL rewrites the group bits, and the chown cleared setuid.
  chmodSync(e.path, e.mode & 0o7777);
  if (e.caps !== undefined) {
    const caps = Buffer.from(e.caps, 'base64');
    setXattr(e.path, CAPS_XATTR, nsCaps(caps, map.uid + capsRootId(caps)));
    counts.capabilities++;
  }
}

/** Finishes the batch a killed worker was shifting, from its journal; then removes the journal.
 * Run before anything else looks at the rootfs: a journalled path may be chowned and not yet given
 * back its mode, capabilities and shifted ACL entries. */
export function replayJournal(journal: string, map: ShiftMap): ShiftCounts {
  const counts: ShiftCounts = { shifted: 0, capabilities: 0, acls: 0 };
  let entries: JournalEntry[];
  try {
    entries = JSON.parse(readFileSync(journal, 'utf8')) as JournalEntry[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return counts;
    throw err;
  }
  for (const e of entries) apply(e, map, 0, counts);
  rmSync(journal, { force: true });
  return counts;
}

/**
 * Shifts the paths of one batch that are still container-owned (the rest were shifted by an
 * earlier attempt, or are hard links of a path shifted before). `done` is how many paths of the
 * rootfs came before this batch (for the failpoint).
 */
export function shiftBatch(
  rootfs: string,
  rels: string[],
  map: ShiftMap,
  journal: string,
  done: number,
): ShiftCounts {
  const counts = replayJournal(journal, map);
  const entries: JournalEntry[] = [];
  const seen = new Set<string>();
  for (const rel of rels) {
    const path = join(rootfs, rel);
    const st = lstatSync(path);
    const owner = ownerState(st.uid, st.gid, map);
    if (owner === 'shifted') continue;
    if (owner === 'outside')
      throw Object.assign(new Error(`/${rel} is owned by ${st.uid}:${st.gid}, outside the id map`), {
        code: 'LXCQ_IDS_OUT_OF_RANGE',
      });
    const inode = `${st.dev}:${st.ino}`;
    if (seen.has(inode)) continue;
    seen.add(inode);
    const e: JournalEntry = { path, uid: st.uid, gid: st.gid, mode: st.mode, link: st.isSymbolicLink() };
    if (!e.link) {
      const caps = xattr(path, CAPS_XATTR);
      const acc = xattr(path, ACL_ACCESS);
      const def = xattr(path, ACL_DEFAULT);
      if (caps) e.caps = caps.toString('base64');
      if (acc) e.aclAccess = acc.toString('base64');
      if (def) e.aclDefault = def.toString('base64');
    }
    entries.push(e);
  }
  if (entries.length === 0) return counts;
  writeDurably(journal, JSON.stringify(entries));
  for (const [i, e] of entries.entries()) apply(e, map, done + i, counts);
  rmSync(journal, { force: true });
  return counts;
}

/** The default map of a host range (see idmap.ts). */
export function shiftMapOf(range: { uid: number; gid: number }): ShiftMap {
  return { uid: range.uid, gid: range.gid, count: IDS_PER_CONTAINER };
}
