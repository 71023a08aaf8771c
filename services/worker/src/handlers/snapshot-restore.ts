import { on, type Handler } from './context.ts';
import { makeContainer } from './making.ts';

export const snapshotRestore: Handler<'snapshot.restore'> = async (ctx, p) => {
  const source = on(ctx);
  const restore = async () => {
    await ctx.progress(10, `restoring snapshot ${p.snapshot}`);
    return ctx.lxc({
      fn: 'snapshotRestore',
      ...source,
      snapshot: p.snapshot,
      ...(p.newName ? { newName: p.newName } : {}),
    });
  };
  const info =
    p.newName !== undefined && p.newName !== source.name
      ? await makeContainer(ctx, p.newName, restore)
      : await restore();
  return ctx.toInfo(info);
};
