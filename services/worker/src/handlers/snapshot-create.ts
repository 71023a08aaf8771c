import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LxcqError } from '@lxcq/shared';
import { on, type Handler } from './context.ts';
import { readSnapshotIntent, removeSnapshotIntent, snapshotDirs, writeSnapshotIntent } from './markers.ts';

/** A whole snapshot carries the id of the job that made it, so a re-run of that job finds it. */
const JOB_TAG = 'lxcq-job';

function madeBy(lxcpath: string, container: string, snapshot: string): string | null {
  try {
    return readFileSync(join(lxcpath, container, 'snaps', snapshot, JOB_TAG), 'utf8');
  } catch {
    return null;
  }
}

export const snapshotCreate: Handler<'snapshot.create'> = async (ctx, p) => {
  const target = on(ctx);
  if (ctx.attempt > 1) {
    // An earlier attempt finished the snapshot and died before the job was recorded as done.
    const mine = snapshotDirs(ctx.lxcpath, target.name).find(
      (d) => madeBy(ctx.lxcpath, target.name, d) === ctx.job.id,
    );
    if (mine !== undefined) {
      const info = await ctx.lxc({ fn: 'info', ...target });
      const snap = info.snapshots?.find((x) => x.name === mine);
      if (snap) {
        removeSnapshotIntent(ctx.lxcpath, target.name);
        return snap;
      }
    }
  }
  const intent = readSnapshotIntent(ctx.lxcpath, target.name);
  if (intent !== null) {
    // A snapshot job died mid-way (this one's earlier attempt, or one given up): what it made is
    // half-made or unrecorded; remove it, then make the snapshot again.
    await ctx.progress(2, 'removing a snapshot half-made by an earlier attempt');
    await ctx.lxc({ fn: 'snapshotRollback', ...target, keep: intent.before });
    removeSnapshotIntent(ctx.lxcpath, target.name);
  }
  if (p.name !== undefined) {
    const info = await ctx.lxc({ fn: 'info', ...target });
    if (info.snapshots?.some((s) => s.name === p.name))
      throw new LxcqError(
        'LXCQ_SNAPSHOT_EXISTS',
        `Container ${target.name} already has a snapshot ${p.name}.`,
      );
  }
  const before = snapshotDirs(ctx.lxcpath, target.name);
  writeSnapshotIntent(ctx.lxcpath, target.name, { job: ctx.job.id, before });
  await ctx.progress(10, 'copying the rootfs into the snapshot');
  try {
    const made = await ctx.lxc({
      fn: 'snapshotCreate',
      ...target,
      ...(p.name !== undefined ? { snapName: p.name } : {}),
      ...(p.comment !== undefined ? { comment: p.comment } : {}),
    });
    writeFileSync(join(ctx.lxcpath, target.name, 'snaps', made.name, JOB_TAG), ctx.job.id);
    removeSnapshotIntent(ctx.lxcpath, target.name);
    return made;
  } catch (err) {
    await ctx.lxc({ fn: 'snapshotRollback', ...target, keep: before }).then(
      () => removeSnapshotIntent(ctx.lxcpath, target.name),
      // The intent stays: the next run of a snapshot job on it, or the start-up sweep, retries.
      (e: unknown) => ctx.log.error({ err: e }, 'could not remove a half-made snapshot of %s', target.name),
    );
    throw err;
  }
};
