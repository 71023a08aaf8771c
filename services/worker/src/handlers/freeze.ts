import { on, type Handler } from './context.ts';

export const freeze: Handler<'freeze'> = async (ctx) =>
  ctx.toInfo(await ctx.lxc({ fn: 'freeze', ...on(ctx) }));
