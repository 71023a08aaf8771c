import { on, type Handler } from './context.ts';

export const snapshotDestroy: Handler<'snapshot.destroy'> = async (ctx, p) => {
  await ctx.lxc({ fn: 'snapshotDestroy', ...on(ctx), snapshot: p.snapshot });
  return { destroyed: p.snapshot };
};
