import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Markers are small files under `<lxcpath>/.lxcq/<kind>/<name>` that say a container is in the
 * middle of something a dead worker must not mistake for a settled state:
 * - `creating`: written before a container is made (create, clone, received transfer) and removed
 *   once it is whole. Found later, it means a worker died mid-way: what exists under that name is
 *   half-made and is destroyed, so nothing half-created is ever left behind.
 * - `leaving`: written before a container is streamed to another host (migrate) and removed once
 *   the move is settled either way. Found later, the container is in transit: its registry record
 *   is left alone and the worker settles the move from the transfer's outcome (see LeavingMarker).
 */
type Kind = 'creating' | 'leaving';

function dir(lxcpath: string, kind: Kind): string {
  return join(lxcpath, '.lxcq', kind);
}

function put(lxcpath: string, kind: Kind, name: string, content: string): void {
  mkdirSync(dir(lxcpath, kind), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir(lxcpath, kind), name), content);
}

function get(lxcpath: string, kind: Kind, name: string): string | null {
  try {
    return readFileSync(join(dir(lxcpath, kind), name), 'utf8');
  } catch {
    return null;
  }
}

function list(lxcpath: string, kind: Kind): string[] {
  try {
    return readdirSync(dir(lxcpath, kind));
  } catch {
    return [];
  }
}

export function markerPath(lxcpath: string, name: string): string {
  return join(dir(lxcpath, 'creating'), name);
}

export function writeMarker(lxcpath: string, name: string, jobId: string): void {
  put(lxcpath, 'creating', name, jobId);
}

export function readMarker(lxcpath: string, name: string): string | null {
  return get(lxcpath, 'creating', name);
}

export function removeMarker(lxcpath: string, name: string): void {
  rmSync(markerPath(lxcpath, name), { force: true });
}

/** Names with a creating-marker in this lxcpath. */
export function listMarkers(lxcpath: string): string[] {
  return list(lxcpath, 'creating');
}

/** What a worker needs to settle a move its predecessor left unfinished. */
export interface LeavingMarker {
  job: string;
  /** The transfer's id: its outcome key in Redis says whether the target took the container. */
  transfer: string;
  to: string;
  /** A live move: the checkpoint the container was dumped to (it is stopped here). */
  checkpoint?: string;
}

export function writeLeaving(lxcpath: string, name: string, m: LeavingMarker): void {
  put(lxcpath, 'leaving', name, JSON.stringify(m));
}

/** The marker, or null when there is none (or it is unreadable: a torn write predates any transfer). */
export function readLeaving(lxcpath: string, name: string): LeavingMarker | null {
  const raw = get(lxcpath, 'leaving', name);
  if (raw === null) return null;
  try {
    const m = JSON.parse(raw) as Partial<LeavingMarker>;
    if (typeof m.job !== 'string' || typeof m.transfer !== 'string' || typeof m.to !== 'string') return null;
    return {
      job: m.job,
      transfer: m.transfer,
      to: m.to,
      ...(typeof m.checkpoint === 'string' ? { checkpoint: m.checkpoint } : {}),
    };
  } catch {
    return null;
  }
}

export function hasLeaving(lxcpath: string, name: string): boolean {
  return get(lxcpath, 'leaving', name) !== null;
}

export function removeLeaving(lxcpath: string, name: string): void {
  rmSync(join(dir(lxcpath, 'leaving'), name), { force: true });
}

export function listLeaving(lxcpath: string): string[] {
  return list(lxcpath, 'leaving');
}

/**
 * A snapshot job's intent, written before lxc-snapshot runs and removed once the snapshot is whole
 * (and named as asked): the job and the snapshot directories the container had before. One found
 * later means a worker died mid-way: every snapshot directory not in `before` is half-made or
 * unrecorded, and is removed before the job runs again (or when it is given up), so a re-run never
 * leaves a second snapshot behind.
 */
export interface SnapshotIntent {
  job: string;
  before: string[];
}

function intentPath(lxcpath: string, container: string): string {
  return join(lxcpath, '.lxcq', 'snapshotting', container);
}

export function writeSnapshotIntent(lxcpath: string, container: string, intent: SnapshotIntent): void {
  mkdirSync(join(lxcpath, '.lxcq', 'snapshotting'), { recursive: true, mode: 0o700 });
  writeFileSync(intentPath(lxcpath, container), JSON.stringify(intent));
}

export function readSnapshotIntent(lxcpath: string, container: string): SnapshotIntent | null {
  try {
    const v = JSON.parse(readFileSync(intentPath(lxcpath, container), 'utf8')) as Partial<SnapshotIntent>;
    return typeof v.job === 'string' && Array.isArray(v.before) ? { job: v.job, before: v.before } : null;
  } catch {
    return null;
  }
}

export function removeSnapshotIntent(lxcpath: string, container: string): void {
  rmSync(intentPath(lxcpath, container), { force: true });
}

/** Containers with a snapshot intent in this lxcpath. */
export function listSnapshotIntents(lxcpath: string): string[] {
  try {
    return readdirSync(join(lxcpath, '.lxcq', 'snapshotting'));
  } catch {
    return [];
  }
}

/** The entries of a container's snapshot directory (whole snapshots or not). */
export function snapshotDirs(lxcpath: string, container: string): string[] {
  const dir = join(lxcpath, container, 'snaps');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/**
 * A convert job's marker, written before the first file of a rootfs is shifted and removed once
 * the container's config holds its id map: the host ids its files are being shifted onto. One
 * found later means the rootfs is half-shifted. A conversion only goes forward: the next convert
 * of the container (a re-run of the job, or a new one) finishes it, shifting only the files still
 * owned by ids below 65536, and the worker refuses to start the container until then.
 */
export interface ConvertMarker {
  job: string;
  uid: number;
  gid: number;
}

function convertingDir(lxcpath: string): string {
  return join(lxcpath, '.lxcq', 'converting');
}

/** Where a convert job journals the batch of files it is changing (see shift.ts). */
export function convertJournalPath(lxcpath: string, container: string): string {
  return join(convertingDir(lxcpath), `${container}.journal`);
}

export function writeConvertMarker(lxcpath: string, container: string, m: ConvertMarker): void {
  mkdirSync(convertingDir(lxcpath), { recursive: true, mode: 0o700 });
  const path = join(convertingDir(lxcpath), container);
  writeFileSync(`${path}.tmp`, JSON.stringify(m));
  renameSync(`${path}.tmp`, path);
}

export function readConvertMarker(lxcpath: string, container: string): ConvertMarker | null {
  try {
    const v = JSON.parse(
      readFileSync(join(convertingDir(lxcpath), container), 'utf8'),
    ) as Partial<ConvertMarker>;
    return typeof v.job === 'string' && Number.isInteger(v.uid) && Number.isInteger(v.gid)
      ? { job: v.job, uid: v.uid as number, gid: v.gid as number }
      : null;
  } catch {
    return null;
  }
}

export function hasConvertMarker(lxcpath: string, container: string): boolean {
  return existsSync(join(convertingDir(lxcpath), container));
}

/** Removes the marker and any journal (the conversion is done, or the container is gone). */
export function removeConvertMarker(lxcpath: string, container: string): void {
  rmSync(convertJournalPath(lxcpath, container), { force: true });
  rmSync(join(convertingDir(lxcpath), container), { force: true });
}
