import { on, type Handler } from './context.ts';

export const rename: Handler<'rename'> = async (ctx, p) => {
  on(ctx, p.newName);
  return ctx.toInfo(await ctx.lxc({ fn: 'rename', ...on(ctx), newName: p.newName }));
};
