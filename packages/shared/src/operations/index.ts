import type { Static } from 'typebox';
import { checkpoint } from './checkpoint.ts';
import { clone } from './clone.ts';
import { configClear } from './config-clear.ts';
import { configSet } from './config-set.ts';
import { create } from './create.ts';
import { destroy } from './destroy.ts';
import { exec } from './exec.ts';
import { freeze } from './freeze.ts';
import { limitsSet } from './limits-set.ts';
import { migrate } from './migrate.ts';
import { reboot } from './reboot.ts';
import { rename } from './rename.ts';
import { restore } from './restore.ts';
import { shutdown } from './shutdown.ts';
import { snapshotCreate } from './snapshot-create.ts';
import { snapshotDestroy } from './snapshot-destroy.ts';
import { snapshotRestore } from './snapshot-restore.ts';
import { start } from './start.ts';
import { stop } from './stop.ts';
import { unfreeze } from './unfreeze.ts';

/** The operation catalogue: one entry per operation, keyed by its name. */
export const OPERATIONS = {
  create,
  start,
  stop,
  shutdown,
  reboot,
  freeze,
  unfreeze,
  destroy,
  rename,
  clone,
  'snapshot.create': snapshotCreate,
  'snapshot.restore': snapshotRestore,
  'snapshot.destroy': snapshotDestroy,
  checkpoint,
  restore,
  migrate,
  exec,
  'config.set': configSet,
  'config.clear': configClear,
  'limits.set': limitsSet,
} as const;

export type Operations = typeof OPERATIONS;
export type OperationName = keyof Operations;
export type PayloadOf<N extends OperationName> = Static<Operations[N]['payload']>;
export type ResultOf<N extends OperationName> = Static<Operations[N]['result']>;

export const OPERATION_NAMES = Object.keys(OPERATIONS) as OperationName[];

export function isOperationName(name: unknown): name is OperationName {
  return typeof name === 'string' && Object.hasOwn(OPERATIONS, name);
}

export function locksOf<N extends OperationName>(op: N, container: string, payload: PayloadOf<N>): string[] {
  const def = OPERATIONS[op] as unknown as { locks: (c: string, p: PayloadOf<N>) => string[] };
  return [...new Set(def.locks(container, payload))].sort();
}

export * from './common.ts';
export { Limits } from './limits-set.ts';
export { DownloadImage, LocalImage } from './create.ts';
