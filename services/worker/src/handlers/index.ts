import type { OperationName } from '@lxcq/shared';
import { checkpoint } from './checkpoint.ts';
import { clone } from './clone.ts';
import { configClear } from './config-clear.ts';
import { configSet } from './config-set.ts';
import type { Handler } from './context.ts';
import { convert } from './convert.ts';
import { create } from './create.ts';
import { destroy } from './destroy.ts';
import { exec } from './exec.ts';
import { freeze } from './freeze.ts';
import { limitsSet } from './limits-set.ts';
import { migrate } from './migrate.ts';
import { poolCreate, poolDelete } from './pools.ts';
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

/** One handler per catalogue entry; the type makes a missing one a compile error. */
export const HANDLERS: { [N in OperationName]: Handler<N> } = {
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
  convert,
  'pool.create': poolCreate,
  'pool.delete': poolDelete,
};
