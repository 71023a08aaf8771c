import { on, type Handler } from './context.ts';
import { removeConvertMarker } from './markers.ts';

export const destroy: Handler<'destroy'> = async (ctx, p) => {
  const target = on(ctx);
  await ctx.lxc({
    fn: 'destroy',
    ...target,
    withSnapshots: p.withSnapshots ?? false,
    force: p.force ?? false,
  });
  // A half-done conversion of what is gone has nothing left to finish.
  removeConvertMarker(ctx.lxcpath, target.name);
  return { destroyed: target.name };
};
