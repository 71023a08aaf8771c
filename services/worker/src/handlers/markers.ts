import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A marker written before a container is made (create, clone) and removed once it is whole.
 * A marker found later means a worker died mid-way: what exists under that name is half-made
 * and is destroyed before the job runs again, so nothing half-created is ever left behind.
 */
export function markerPath(lxcpath: string, name: string): string {
  return join(lxcpath, '.lxcq', 'creating', name);
}

export function writeMarker(lxcpath: string, name: string, jobId: string): void {
  mkdirSync(join(lxcpath, '.lxcq', 'creating'), { recursive: true, mode: 0o700 });
  writeFileSync(markerPath(lxcpath, name), jobId);
}

export function readMarker(lxcpath: string, name: string): string | null {
  try {
    return readFileSync(markerPath(lxcpath, name), 'utf8');
  } catch {
    return null;
  }
}

export function removeMarker(lxcpath: string, name: string): void {
  rmSync(markerPath(lxcpath, name), { force: true });
}

/** Names with a creating-marker in this lxcpath. */
export function listMarkers(lxcpath: string): string[] {
  try {
    return readdirSync(join(lxcpath, '.lxcq', 'creating'));
  } catch {
    return [];
  }
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
