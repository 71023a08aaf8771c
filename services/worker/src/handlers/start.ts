import { on, type Handler } from './context.ts';

export const start: Handler<'start'> = async (ctx) => ctx.toInfo(await ctx.lxc({ fn: 'start', ...on(ctx) }));
