import { LxcqError } from '@lxcq/shared';
import { checkpointDir } from '../paths.ts';
import { on, type Handler } from './context.ts';

/** Checkpoint ids sort by time: cp-<UTC timestamp>. */
export function newCheckpointId(now = new Date()): string {
  return `cp-${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
}

export const checkpoint: Handler<'checkpoint'> = async (ctx, p) => {
  const target = on(ctx);
  const host = await ctx.lxc({ fn: 'hostInfo', lxcpath: ctx.lxcpath });
  if (!host.criu) {
    throw new LxcqError(
      'LXCQ_CRIU_UNAVAILABLE',
      `Host ${ctx.host} cannot checkpoint: ${host.criuMessage}. Run scripts/setup-host.sh to install CRIU 4.`,
    );
  }
  const id = newCheckpointId();
  await ctx.progress(10, 'dumping processes with CRIU');
  const { stopped } = await ctx.lxc({
    fn: 'checkpoint',
    ...target,
    dir: checkpointDir(ctx.lxcpath, target.name, id),
    stop: p.stop ?? false,
  });
  return { checkpoint: id, stopped };
};
