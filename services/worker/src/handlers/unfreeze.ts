import { on, type Handler } from './context.ts';

export const unfreeze: Handler<'unfreeze'> = async (ctx) =>
  ctx.toInfo(await ctx.lxc({ fn: 'unfreeze', ...on(ctx) }));
