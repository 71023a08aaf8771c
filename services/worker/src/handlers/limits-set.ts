import { parseDiskSize } from '@lxcq/shared';
import { on, type Handler } from './context.ts';

export const limitsSet: Handler<'limits.set'> = async (ctx, p) => {
  const { disk, ...cgroup } = p;
  const { items } = await ctx.lxc({
    fn: 'limits',
    ...on(ctx),
    limits: cgroup,
    ...(disk !== undefined ? { diskBytes: parseDiskSize(disk) } : {}),
  });
  return { limits: { ...items, ...(disk !== undefined ? { disk: String(parseDiskSize(disk)) } : {}) } };
};
