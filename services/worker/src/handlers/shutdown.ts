import { LxcqError } from '@lxcq/shared';
import { on, type Handler } from './context.ts';

export const shutdown: Handler<'shutdown'> = async (ctx, p) => {
  const target = on(ctx);
  const timeoutSec = p.timeout ?? 30;
  await ctx.progress(10, `asking init to power off (up to ${timeoutSec}s)`);
  const { clean } = await ctx.lxc({ fn: 'shutdown', ...target, timeoutSec });
  if (!clean) {
    if (!p.force) {
      throw new LxcqError(
        'LXCQ_TIMEOUT',
        `Container ${target.name} did not shut down within ${timeoutSec}s; it was left running. Retry with force to stop it hard.`,
      );
    }
    await ctx.progress(80, 'init did not power off in time: stopping hard');
    await ctx.lxc({ fn: 'stop', ...target });
  }
  return ctx.toInfo(await ctx.lxc({ fn: 'info', ...target }));
};
