import { LxcqError } from '@lxcq/shared';
import { on, type Handler } from './context.ts';

export const snapshotCreate: Handler<'snapshot.create'> = async (ctx, p) => {
  const target = on(ctx);
  if (p.name !== undefined) {
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
  await ctx.progress(10, 'copying the rootfs into the snapshot');
  return ctx.lxc({
    fn: 'snapshotCreate',
    ...target,
    ...(p.name !== undefined ? { snapName: p.name } : {}),
    ...(p.comment !== undefined ? { comment: p.comment } : {}),
  });
};
