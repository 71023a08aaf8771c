import { on, type Handler } from './context.ts';

export const reboot: Handler<'reboot'> = async (ctx, p) =>
  ctx.toInfo(await ctx.lxc({ fn: 'reboot', ...on(ctx), timeoutSec: p.timeout ?? 30 }));
