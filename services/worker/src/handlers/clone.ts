import { LxcqError } from '@lxcq/shared';
import { on, type Handler } from './context.ts';
import { makeContainer } from './making.ts';
import { targetHost, transferTo } from './transfer-out.ts';

export const clone: Handler<'clone'> = async (ctx, p) => {
  const source = on(ctx);
  if (p.host !== undefined && p.host !== ctx.host) {
    // Cross-host: the same stream as a cold migration; the source stays, the target gets the new name.
    if (p.snapshot)
      throw new LxcqError('LXCQ_VALIDATION', 'A copy-on-write (snapshot) clone cannot span two hosts.');
    if (p.pool !== undefined)
      throw new LxcqError(
        'LXCQ_VALIDATION',
        "pool on a clone to another host is not supported yet: the copy lands on the target host's dir pool. Leave pool out, then clone it there onto a pool.",
      );
    const info = await ctx.lxc({ fn: 'info', ...source });
    if (!info.defined)
      throw new LxcqError(
        'LXCQ_CONTAINER_NOT_FOUND',
        `Container ${source.name} does not exist on host ${ctx.host}.`,
      );
    if (info.state !== 'STOPPED')
      throw new LxcqError(
        'LXCQ_INVALID_STATE',
        `Container ${source.name} is ${info.state}; clone needs it stopped.`,
        {
          details: { state: info.state },
        },
      );
    const to = await targetHost(ctx, p.host, {});
    await ctx.progress(5, `copying to ${to.id} as ${p.newName}`);
    const r = await transferTo(ctx, to, { name: source.name, newName: p.newName, mode: 'clone' });
    if (r.ok) return r.reply.info;
    if (r.owned) {
      const made = await ctx.store.getContainer(p.newName);
      if (made) return made;
    }
    throw r.error;
  }
  // An unknown or unmounted pool is refused before anything is made.
  const poolDir = p.pool !== undefined ? ctx.pools.containersDir(p.pool) : undefined;
  const info = await makeContainer(ctx, p.newName, async () => {
    await ctx.progress(10, p.snapshot ? 'making an overlayfs copy-on-write clone' : 'copying the rootfs');
    return ctx.lxc({
      fn: 'clone',
      ...source,
      newName: p.newName,
      snapshot: p.snapshot ?? false,
      keepName: p.keepName ?? false,
      ...(poolDir !== undefined ? { poolDir } : {}),
    });
  });
  return ctx.toInfo(info);
};
