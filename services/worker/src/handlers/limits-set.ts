import { on, type Handler } from './context.ts';

export const limitsSet: Handler<'limits.set'> = async (ctx, p) => {
  const { items } = await ctx.lxc({ fn: 'limits', ...on(ctx), limits: p });
  return { limits: items };
};
