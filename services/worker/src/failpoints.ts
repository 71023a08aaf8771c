/**
 * Failpoints for crash tests: LXCQ_FAILPOINTS=name[,name...] makes the worker kill itself
 * (SIGKILL, as a power cut or the OOM killer would) when it reaches a named point, so a test can
 * put a crash exactly in the window it means to prove safe. Never set in production; the worker
 * logs a warning at start when it is.
 *
 * Points: migrate.before-transfer (the container is marked leaving, dumped when live, not sent),
 * migrate.before-purge (the target owns the container; the copy here is not yet removed),
 * make.before-unmark (a create, clone or restore-to-new made the container whole; its
 * creating-marker is not yet removed), convert.mid-shift (a convert has shifted some of the
 * rootfs and changed the owner of a setuid/setgid or capability-carrying file, whose mode and
 * capabilities the owner change cleared and which are not yet put back), pool.mid-snapshot (a
 * snapshot of a btrfs pool container is a subvolume, its timestamp and job tag not yet written),
 * pool.before-record (a loop pool is made and mounted, not yet in the worker's pool record).
 *
 * Damage points do not kill: migrate.break-checkpoint removes the live move's process tree image
 * (pstree.img) right after the dump, so the target's restore and the source's own restore both
 * fail, as with a checkpoint neither host can restore.
 */
import { writeSync } from 'node:fs';

const active = new Set(
  (process.env.LXCQ_FAILPOINTS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

export const FAILPOINTS = [
  'migrate.before-transfer',
  'migrate.before-purge',
  'make.before-unmark',
  'convert.mid-shift',
  'migrate.break-checkpoint',
  'pool.mid-snapshot',
  'pool.before-record',
] as const;
export type Failpoint = (typeof FAILPOINTS)[number];

/** The failpoints this process was started with. */
export function activeFailpoints(): string[] {
  return [...active];
}

/** Whether a damage failpoint is on (the caller does the damage). */
export function failpointActive(name: Failpoint): boolean {
  return active.has(name);
}

export function failpoint(name: Failpoint): void {
  if (!active.has(name)) return;
  // writeSync on fd 2: from a piscina thread, process.stderr is relayed through the main thread,
  // and the SIGKILL below can come before the relay (the test that waits for this line flaked).
  writeSync(2, `lxcq failpoint ${name}: the worker kills itself (LXCQ_FAILPOINTS)\n`);
  process.kill(process.pid, 'SIGKILL');
}
