import { join } from 'node:path';

/** Where a container's CRIU checkpoints live: inside its own directory, so destroy removes them. */
export function checkpointDir(lxcpath: string, name: string, id?: string): string {
  const base = join(lxcpath, name, 'lxcq-checkpoints');
  return id === undefined ? base : join(base, id);
}
