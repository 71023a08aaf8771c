import { LxcqError } from '@lxcq/shared';
import { on, type Handler } from './context.ts';
import { readSnapshotIntent, removeSnapshotIntent, snapshotDirs, writeSnapshotIntent } from './markers.ts';

export const snapshotCreate: Handler<'snapshot.create'> = async (ctx, p) => {
  const target = on(ctx);
  const intent = readSnapshotIntent(ctx.lxcpath, target.name);
  if (intent !== null) {
    // A snapshot job died mid-way (this one's earlier attempt, or one given up): what it made is
    // half-made or unrecorded; remove it, then make the snapshot again.
    await ctx.progress(2, 'removing a snapshot half-made by an earlier attempt');
    await ctx.lxc({ fn: 'snapshotRollback', ...target, keep: intent.before });
    removeSnapshotIntent(ctx.lxcpath, target.name);
  } else if (p.name !== undefined) {
    const info = await ctx.lxc({ fn: 'info', ...target });
    const existing = info.snapshots?.find((s) => s.name === p.name);
    // A re-run after a crash finds its snapshot made already.
    if (existing && ctx.attempt > 1) return existing;
    if (existing)
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
