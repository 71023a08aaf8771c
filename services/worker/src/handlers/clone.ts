import { LxcqError } from '@lxcq/shared';
import { on, type Handler } from './context.ts';
import { makeContainer } from './making.ts';

export const clone: Handler<'clone'> = async (ctx, p) => {
  if (p.host !== undefined && p.host !== ctx.host) {
    throw new LxcqError(
      'LXCQ_NOT_IMPLEMENTED',
      'Cross-host clone is not available yet; clone on the same host, then migrate.',
    );
  }
  const source = on(ctx);
  const info = await makeContainer(ctx, p.newName, async () => {
    await ctx.progress(10, p.snapshot ? 'making an overlayfs copy-on-write clone' : 'copying the rootfs');
    return ctx.lxc({
      fn: 'clone',
      ...source,
      newName: p.newName,
      snapshot: p.snapshot ?? false,
      keepName: p.keepName ?? false,
    });
  });
  return ctx.toInfo(info);
};
