import { on, type Handler } from './context.ts';

export const destroy: Handler<'destroy'> = async (ctx, p) => {
  const target = on(ctx);
  await ctx.lxc({
    fn: 'destroy',
    ...target,
    withSnapshots: p.withSnapshots ?? false,
    force: p.force ?? false,
  });
  return { destroyed: target.name };
};
