import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
