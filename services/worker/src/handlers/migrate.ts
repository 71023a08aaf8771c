import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { LxcqError } from '@lxcq/shared';
import { failpoint, failpointActive } from '../failpoints.ts';
import { checkpointDir } from '../paths.ts';
import { newCheckpointId } from './checkpoint.ts';
import { on, type Handler } from './context.ts';
import { removeLeaving, writeLeaving } from './markers.ts';
import { targetHost, transferTo } from './transfer-out.ts';

/**
 * Moves a container to another host. Cold (a stopped container): stream its directory, the target
 * registers it, then the copy here is destroyed. Live (a running one, CRIU on both hosts): dump
 * with stop, stream directory and images, the target restores it and registers it, then the copy
 * here is destroyed. Any failure before the target owns it puts it back as it was here.
 *
 * A leaving-marker, written before anything changes, makes the move crash-safe: a worker that
 * dies mid-way (or a target that answers too late) leaves it behind, and the worker's settleMoves
 * ends the container on exactly one host from the transfer's outcome in Redis.
 */
export const migrate: Handler<'migrate'> = async (ctx, p) => {
  const source = on(ctx);
  const t0 = performance.now();
  const info = await ctx.lxc({ fn: 'info', ...source });
  if (!info.defined)
    throw new LxcqError(
      'LXCQ_CONTAINER_NOT_FOUND',
      `Container ${source.name} does not exist on host ${ctx.host}.`,
    );
  const live = info.state !== 'STOPPED';
  if (live && !p.live)
    throw new LxcqError(
      'LXCQ_INVALID_STATE',
      `Container ${source.name} is ${info.state}; a cold migration needs it stopped (or pass live: true).`,
      { details: { state: info.state } },
    );
  if (live && info.state !== 'RUNNING')
    throw new LxcqError(
      'LXCQ_INVALID_STATE',
      `Container ${source.name} is ${info.state}; unfreeze it first.`,
      {
        details: { state: info.state },
      },
    );
  // Pre-flight: what the config says cannot move live is refused before anything stops.
  const blockers = live ? (info.migrationBlockers ?? []) : [];
  if (blockers.length > 0)
    throw new LxcqError(
      'LXCQ_NOT_MIGRATABLE',
      `Container ${source.name} cannot move live: ${blockers.map((b) => b.message).join('; ')}. It was not touched; stop it for a cold move, or change its config.`,
      { details: { blockers } },
    );
  const to = await targetHost(ctx, p.targetHost, { criu: live });
  await ctx.progress(5, `moving to ${to.id} (${live ? 'live' : 'cold'})`);

  const transfer = randomUUID();
  const checkpoint = live ? `migrate-${newCheckpointId()}` : undefined;
  writeLeaving(ctx.lxcpath, source.name, {
    job: ctx.job.id,
    transfer,
    to: to.id,
    ...(checkpoint ? { checkpoint } : {}),
  });
  let dumpedAt = 0;
  if (checkpoint) {
    await ctx.progress(10, 'dumping processes with CRIU (the container stops here)');
    dumpedAt = performance.now();
    await ctx.lxc({
      fn: 'checkpoint',
      ...source,
      dir: checkpointDir(ctx.lxcpath, source.name, checkpoint),
      stop: true,
    });
  }
  if (checkpoint && failpointActive('migrate.break-checkpoint'))
    rmSync(join(checkpointDir(ctx.lxcpath, source.name, checkpoint), 'pstree.img'), { force: true });
  failpoint('migrate.before-transfer');
  const r = await transferTo(ctx, to, {
    id: transfer,
    name: source.name,
    newName: source.name,
    mode: live ? 'live' : 'migrate',
    ...(checkpoint ? { checkpoint } : {}),
  });
  if (!r.ok && r.unsure) {
    // The leaving-marker stays: the worker settles the move once the target's outcome is known.
    throw new LxcqError(
      'LXCQ_INTERNAL',
      `Host ${to.id} did not finish restoring ${source.name} in time; it was left stopped here${checkpoint ? ` with its checkpoint ${checkpoint}` : ''} and not restarted, so it cannot run twice. ${r.error.message}`,
    );
  }
  if (!r.ok && !r.owned) {
    // The target does not have it: back to how it was here.
    if (checkpoint) {
      await ctx.progress(90, 'transfer failed: restoring the container here from its checkpoint');
      const dir = checkpointDir(ctx.lxcpath, source.name, checkpoint);
      try {
        await ctx.lxc({ fn: 'restore', ...source, dir });
      } catch (e) {
        // Neither host can restore the checkpoint: a workload never stays stopped because a move
        // failed. Start it afresh here and keep the checkpoint for whoever wants to look at it.
        const why = `migration to ${to.id} failed (${r.error.message}) and restoring here failed too (${(e as Error).message})`;
        removeLeaving(ctx.lxcpath, source.name);
        try {
          await ctx.lxc({ fn: 'start', ...source });
        } catch (startErr) {
          throw new LxcqError(
            'LXCQ_LXC_ERROR',
            `Live ${why}; starting it afresh failed as well (${(startErr as Error).message}): the container is stopped on ${ctx.host} with checkpoint ${checkpoint}.`,
          );
        }
        await ctx.store.addEvent(
          'container.cold-started',
          { checkpoint, reason: why },
          { host: ctx.host, container: source.name, job: ctx.job.id },
        );
        throw new LxcqError(
          'LXCQ_LXC_ERROR',
          `Live ${why}; the container was started again on ${ctx.host} (a cold start: its processes began anew, their memory was not restored) and checkpoint ${checkpoint} was kept.`,
          { details: { coldStarted: true, checkpoint, host: ctx.host } },
        );
      }
      rmSync(dir, { recursive: true, force: true });
    }
    removeLeaving(ctx.lxcpath, source.name);
    throw r.error;
  }
  // The target owns it now (registry and container.moved are the target's): remove the copy here.
  const downtimeMs = live ? performance.now() - dumpedAt : undefined;
  await ctx.progress(95, `${to.id} has it: removing the copy on ${ctx.host}`);
  failpoint('migrate.before-purge');
  await ctx.lxc({ fn: 'purge', ...source });
  removeLeaving(ctx.lxcpath, source.name);
  const moved = r.ok ? r.reply.info : await ctx.store.getContainer(source.name);
  if (!moved)
    throw new LxcqError('LXCQ_INTERNAL', `Host ${to.id} took ${source.name} but did not register it.`);
  return {
    ...moved,
    migration: {
      from: ctx.host,
      bytes: r.ok ? r.bytes : 0,
      ms: Math.round(performance.now() - t0),
      ...(downtimeMs !== undefined ? { downtimeMs: Math.round(downtimeMs) } : {}),
    },
  };
};
