import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LxcqError } from '@lxcq/shared';
import type { RawContainerInfo } from '../protocol.ts';
import { on, type HandlerContext } from './context.ts';
import { failpoint } from '../failpoints.ts';
import { readMarker, removeMarker, writeMarker } from './markers.ts';

/**
 * Makes a new container `name` (create, clone, restore-to-new) safely:
 * - a marker left by a dead earlier attempt means a half-made container: destroy it first;
 * - a whole container of that name that an earlier attempt of this job made: done already;
 * - any other existing container: the name is taken;
 * - any failure while making it destroys what was made.
 */
export async function makeContainer(
  ctx: HandlerContext,
  name: string,
  make: () => Promise<RawContainerInfo>,
): Promise<RawContainerInfo> {
  const target = on(ctx, name);
  if (readMarker(ctx.lxcpath, name) !== null) {
    await ctx.progress(2, 'removing a half-made container left by an earlier attempt');
    await ctx.lxc({ fn: 'purge', ...target });
    removeMarker(ctx.lxcpath, name);
  } else {
    const existing = await ctx.lxc({ fn: 'info', ...target });
    if (existing.defined) {
      if (ctx.attempt > 1) return existing;
      throw new LxcqError(
        'LXCQ_CONTAINER_EXISTS',
        `A container named ${name} already exists on host ${ctx.host}.`,
      );
    }
    // Something lxcq did not make (no marker) and liblxc does not know: not ours to overwrite,
    // nor to remove when making the container fails.
    if (existsSync(join(ctx.lxcpath, name)))
      throw new LxcqError(
        'LXCQ_CONTAINER_EXISTS',
        `${join(ctx.lxcpath, name)} exists on host ${ctx.host} and is not a container; remove it or pick another name.`,
      );
  }
  writeMarker(ctx.lxcpath, name, ctx.job.id);
  let made: RawContainerInfo;
  try {
    made = await make();
  } catch (err) {
    try {
      await ctx.lxc({ fn: 'purge', ...target });
      removeMarker(ctx.lxcpath, name);
    } catch (e) {
      // The marker stays: the next run of this job, or the worker's start-up sweep, retries.
      ctx.log.error({ err: e }, 'could not remove the half-made container %s', name);
    }
    throw err;
  }
  failpoint('make.before-unmark');
  removeMarker(ctx.lxcpath, name);
  return made;
}
