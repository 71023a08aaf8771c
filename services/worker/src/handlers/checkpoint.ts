import { existsSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LxcqError } from '@lxcq/shared';
import { checkpointDir } from '../paths.ts';
import { on, type Handler } from './context.ts';

/** Checkpoint ids sort by time: cp-<UTC timestamp>. */
export function newCheckpointId(now = new Date()): string {
  return `cp-${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
}

/** A whole checkpoint carries the id of the job that made it, so a re-run of that job finds it. */
const JOB_TAG = 'lxcq-job';
/** A dump in progress: invisible (ids never start with a dot), renamed into place once whole. */
const PARTIAL = '.partial-';

/** Removes dumps that never finished (their worker died mid-way) from a container's checkpoints. */
export function removePartialCheckpoints(lxcpath: string, name: string): string[] {
  const base = checkpointDir(lxcpath, name);
  if (!existsSync(base)) return [];
  const gone = readdirSync(base).filter((d) => d.startsWith(PARTIAL));
  for (const d of gone) rmSync(join(base, d), { recursive: true, force: true });
  return gone;
}

function madeBy(lxcpath: string, name: string, id: string): string | null {
  try {
    return readFileSync(join(checkpointDir(lxcpath, name, id), JOB_TAG), 'utf8');
  } catch {
    return null;
  }
}

export const checkpoint: Handler<'checkpoint'> = async (ctx, p) => {
  const target = on(ctx);
  const base = checkpointDir(ctx.lxcpath, target.name);
  if (ctx.attempt > 1 && existsSync(base)) {
    // An earlier attempt finished the dump and died before the job was recorded as done.
    const mine = readdirSync(base).find(
      (d) => !d.startsWith('.') && madeBy(ctx.lxcpath, target.name, d) === ctx.job.id,
    );
    if (mine !== undefined) {
      const info = await ctx.lxc({ fn: 'info', ...target });
      return { checkpoint: mine, stopped: info.state === 'STOPPED' };
    }
  }
  const host = await ctx.lxc({ fn: 'hostInfo', lxcpath: ctx.lxcpath });
  if (!host.criu) {
    throw new LxcqError(
      'LXCQ_CRIU_UNAVAILABLE',
      `Host ${ctx.host} cannot checkpoint: ${host.criuMessage}. Run scripts/setup-host.sh to install CRIU 4.`,
    );
  }
  // Pre-flight: a config criu cannot dump or restore is refused before anything is frozen. A
  // container that is not running is left to the dump, which says so (LXCQ_INVALID_STATE).
  const now = await ctx.lxc({ fn: 'info', ...target });
  const blockers =
    now.state === 'RUNNING' ? (now.migrationBlockers ?? []).filter((b) => b.scope === 'criu') : [];
  if (blockers.length > 0)
    throw new LxcqError(
      'LXCQ_NOT_MIGRATABLE',
      `Container ${target.name} cannot be checkpointed: ${blockers.map((b) => b.message).join('; ')}. It was not touched.`,
      { details: { blockers } },
    );
  // One job runs on a container at a time: a partial dump here is a dead attempt's.
  removePartialCheckpoints(ctx.lxcpath, target.name);
  const id = newCheckpointId();
  const partial = checkpointDir(ctx.lxcpath, target.name, `${PARTIAL}${ctx.job.id}-${ctx.attempt}`);
  await ctx.progress(10, 'dumping processes with CRIU');
  try {
    const { stopped } = await ctx.lxc({ fn: 'checkpoint', ...target, dir: partial, stop: p.stop ?? false });
    writeFileSync(join(partial, JOB_TAG), ctx.job.id);
    renameSync(partial, checkpointDir(ctx.lxcpath, target.name, id));
    return { checkpoint: id, stopped };
  } catch (err) {
    rmSync(partial, { recursive: true, force: true });
    throw err;
  }
};
