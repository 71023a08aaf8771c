import { existsSync } from 'node:fs';
import { LxcqError } from '@lxcq/shared';
import { checkpointDir } from '../paths.ts';
import { on, type Handler } from './context.ts';

export const restore: Handler<'restore'> = async (ctx, p) => {
  const target = on(ctx);
  const dir = checkpointDir(ctx.lxcpath, target.name, p.checkpoint);
  if (!existsSync(dir))
    throw new LxcqError(
      'LXCQ_CHECKPOINT_NOT_FOUND',
      `Container ${target.name} has no checkpoint ${p.checkpoint}.`,
    );
  const host = await ctx.lxc({ fn: 'hostInfo', lxcpath: ctx.lxcpath });
  if (!host.criu) {
    throw new LxcqError(
      'LXCQ_CRIU_UNAVAILABLE',
      `Host ${ctx.host} cannot restore: ${host.criuMessage}. Run scripts/setup-host.sh to install CRIU 4.`,
    );
  }
  await ctx.progress(10, 'restoring processes with CRIU');
  return ctx.toInfo(await ctx.lxc({ fn: 'restore', ...target, dir }));
};
