import { on, type Handler } from './context.ts';

export const stop: Handler<'stop'> = async (ctx) => ctx.toInfo(await ctx.lxc({ fn: 'stop', ...on(ctx) }));
