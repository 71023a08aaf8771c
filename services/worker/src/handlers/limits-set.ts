import { LxcqError, parseDiskSize } from '@lxcq/shared';
import { on, type Handler } from './context.ts';

export const limitsSet: Handler<'limits.set'> = async (ctx, p) => {
  const { disk, ...cgroup } = p;
  if (disk !== undefined && !Number.isSafeInteger(parseDiskSize(disk)))
    throw new LxcqError('LXCQ_VALIDATION', `disk ${String(disk)} is too large a size.`);
  const { items } = await ctx.lxc({
    fn: 'limits',
    ...on(ctx),
    limits: cgroup,
    ...(disk !== undefined ? { diskBytes: parseDiskSize(disk) } : {}),
  });
  return { limits: { ...items, ...(disk !== undefined ? { disk: String(parseDiskSize(disk)) } : {}) } };
};
