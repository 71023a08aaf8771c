import type { Static } from 'typebox';
import type { OperationDef } from './common.ts';
import { checkpoint } from './checkpoint.ts';
import { clone } from './clone.ts';
import { configClear } from './config-clear.ts';
import { configSet } from './config-set.ts';
import { convert } from './convert.ts';
import { create } from './create.ts';
import { destroy } from './destroy.ts';
import { exec } from './exec.ts';
import { freeze } from './freeze.ts';
import { limitsSet } from './limits-set.ts';
import { migrate } from './migrate.ts';
import { poolCreate, poolDelete } from './pool.ts';
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
  convert,
  'pool.create': poolCreate,
  'pool.delete': poolDelete,
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

/** What of a job a token without the operate scope may not read (see OperationDef.confidential). */
function confidentialOf(op: string): OperationDef['confidential'] {
  return isOperationName(op) ? OPERATIONS[op].confidential : { payload: [], result: [] };
}

/** A job's result as the shared event stream carries it: without its confidential fields. */
export function eventResult(op: string, result: unknown): unknown {
  const hidden = confidentialOf(op).result;
  if (hidden.length === 0 || typeof result !== 'object' || result === null) return result;
  return Object.fromEntries(Object.entries(result).filter(([k]) => !hidden.includes(k)));
}

/**
 * A job as a token without the operate scope sees it: the confidential fields of its payload and
 * result left out and named in `withheld` (`payload.argv`, `result.stdout`, ...).
 */
export function withholdConfidential<
  J extends { operation: string; payload: Record<string, unknown>; result?: unknown },
>(job: J): J & { withheld?: string[] } {
  const c = confidentialOf(job.operation);
  const withheld: string[] = [];
  const strip = (obj: Record<string, unknown>, keys: readonly string[], where: string) =>
    Object.fromEntries(
      Object.entries(obj).filter(([k]) => {
        if (!keys.includes(k)) return true;
        withheld.push(`${where}.${k}`);
        return false;
      }),
    );
  const payload = strip(job.payload, c.payload, 'payload');
  const result =
    typeof job.result === 'object' && job.result !== null
      ? strip(job.result as Record<string, unknown>, c.result, 'result')
      : job.result;
  if (withheld.length === 0) return job;
  return { ...job, payload, ...(job.result !== undefined ? { result } : {}), withheld };
}

export * from './common.ts';
export { Limits } from './limits-set.ts';
export { DownloadImage, LocalImage } from './create.ts';
export * from './pool.ts';
