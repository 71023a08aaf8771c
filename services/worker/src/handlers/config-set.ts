import { assertClearableKeys, assertConfigAllowed } from '@lxcq/shared';
import { on, type Handler } from './context.ts';

export const configSet: Handler<'config.set'> = async (ctx, p) => {
  const set = Object.entries(p.set ?? {});
  const clear = p.clear ?? [];
  assertConfigAllowed(set, ctx.policy, ctx.who);
  assertClearableKeys(clear, ctx.policy, ctx.who);
  return { config: await ctx.lxc({ fn: 'config', ...on(ctx), set, clear }) };
};
