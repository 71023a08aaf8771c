import { assertClearableKeys } from '@lxcq/shared';
import { on, type Handler } from './context.ts';

export const configClear: Handler<'config.clear'> = async (ctx, p) => {
  assertClearableKeys(p.keys, ctx.policy, ctx.who);
  return { config: await ctx.lxc({ fn: 'config', ...on(ctx), set: [], clear: p.keys }) };
};
