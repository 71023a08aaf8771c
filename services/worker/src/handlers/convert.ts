import { lstat, opendir } from 'node:fs/promises';
import { existsSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { LxcqError } from '@lxcq/shared';
import { hostIdRange } from '../idmap.ts';
import { shiftMapOf, type ShiftCounts, type ShiftMap } from '../shift.ts';
import { on, type Handler, type HandlerContext } from './context.ts';
import {
  convertJournalPath,
  hasConvertMarker,
  readConvertMarker,
  removeConvertMarker,
  writeConvertMarker,
} from './markers.ts';

/** Paths handed to a thread at a time: one journal, one progress event. */
export const SHIFT_BATCH = 1000;

/**
 * The rootfs's paths relative to it ('' is the rootfs itself), in batches, without following
 * symlinks. Walked here with non-blocking directory reads; the threads stat and change them.
 */
export async function* walkBatches(rootfs: string, size = SHIFT_BATCH): AsyncGenerator<string[]> {
  let batch: string[] = [''];
  const dirs: string[] = [''];
  for (let rel = dirs.pop(); rel !== undefined; rel = dirs.pop()) {
    for await (const d of await opendir(join(rootfs, rel))) {
      const child = rel === '' ? d.name : `${rel}/${d.name}`;
      batch.push(child);
      if (d.isDirectory() || (typeOf(d) === 'unknown' && (await lstat(join(rootfs, child))).isDirectory()))
        dirs.push(child);
      if (batch.length >= size) {
        yield batch;
        batch = [];
      }
    }
  }
  if (batch.length > 0) yield batch;
}

/** A directory entry's type; 'unknown' where the file system does not say (DT_UNKNOWN: lstat it). */
function typeOf(d: Dirent): 'known' | 'unknown' {
  return d.isFile() ||
    d.isDirectory() ||
    d.isSymbolicLink() ||
    d.isFIFO() ||
    d.isSocket() ||
    d.isBlockDevice() ||
    d.isCharacterDevice()
    ? 'known'
    : 'unknown';
}

function refuse(code: 'LXCQ_INVALID_STATE' | 'LXCQ_UNSUPPORTED', message: string, details?: object): never {
  throw new LxcqError(code, message, details ? { details: details as Record<string, unknown> } : {});
}

/** The id map of a conversion: the one a half-done conversion began with, else the host's. */
function mapFor(ctx: HandlerContext, name: string): { map: ShiftMap; resumed: boolean } {
  const marker = readConvertMarker(ctx.lxcpath, name);
  if (marker) return { map: shiftMapOf(marker), resumed: true };
  const range = hostIdRange();
  if (!range)
    throw new LxcqError(
      'LXCQ_NO_ID_RANGE',
      `Host ${ctx.host} has no subordinate id range for root in /etc/subuid and /etc/subgid, so it cannot convert a container to unprivileged. Run scripts/setup-host.sh there (it adds root:1000000:1000000000).`,
    );
  // A marker that cannot be read (a torn write) still says that files may be shifted already.
  return { map: shiftMapOf(range), resumed: hasConvertMarker(ctx.lxcpath, name) };
}

/**
 * convert: a stopped privileged container becomes unprivileged. Checks first, changes nothing
 * until every path of the rootfs is known to fit the id map; then a marker, the shift (journalled
 * per batch, see shift.ts), the config, and the marker goes. A re-run after a crash (or a new
 * convert of a half-converted container) takes up the marker's map and shifts only what is left.
 */
export const convert: Handler<'convert'> = async (ctx) => {
  const target = on(ctx);
  const name = target.name;
  const c = await ctx.lxc({ fn: 'convertInspect', ...target });
  const half = hasConvertMarker(ctx.lxcpath, name);
  if (c.state !== 'STOPPED')
    refuse(
      'LXCQ_INVALID_STATE',
      `Container ${name} is ${c.state}; a conversion to unprivileged needs it stopped: stop it first (POST /v1/containers/${name}/stop), then convert it.`,
      { state: c.state },
    );
  if (!c.privileged && !half) {
    return {
      container: ctx.toInfo(await ctx.lxc({ fn: 'info', ...target })),
      files: 0,
      shifted: 0,
      capabilities: 0,
      acls: 0,
      converted: false,
    };
  }
  if (c.snapshots.length > 0)
    refuse(
      'LXCQ_INVALID_STATE',
      `Container ${name} has snapshots (${c.snapshots.join(', ')}), which convert does not shift: their files would keep host root's ids. Destroy them first (or restore one into a new container and convert that), then convert ${name}.`,
      { snapshots: c.snapshots },
    );
  if (c.clones.length > 0)
    refuse(
      'LXCQ_INVALID_STATE',
      `Container ${name} has copy-on-write clones (${c.clones.join(', ')}) built on its rootfs; shifting it would change theirs. Destroy them first.`,
      { clones: c.clones },
    );
  if (c.rootfs === null)
    refuse(
      'LXCQ_UNSUPPORTED',
      c.backend === 'none'
        ? `Container ${name}'s config names no rootfs (no lxc.rootfs.path): there is nothing to convert. Restore its config, or destroy it.`
        : `Container ${name}'s rootfs is on ${c.backend} storage; convert shifts plain directory rootfs only. Clone it to a new container (a full copy, not a snapshot clone) and convert that.`,
      { backend: c.backend },
    );
  if (c.mounts.length > 0)
    refuse(
      'LXCQ_INVALID_STATE',
      `Something is mounted inside container ${name}'s rootfs (${c.mounts.slice(0, 5).join(', ')}); convert would change the owners of what is mounted there. Unmount it first.`,
      { mounts: c.mounts },
    );
  const rootfs = c.rootfs;
  if (!existsSync(rootfs))
    throw new LxcqError(
      'LXCQ_CONTAINER_BROKEN',
      `Container ${name}'s rootfs ${rootfs} does not exist: there is nothing to convert. Restore it, or destroy the container.`,
    );
  const { map, resumed } = mapFor(ctx, name);
  const journal = convertJournalPath(ctx.lxcpath, name);
  const counts: ShiftCounts = { shifted: 0, capabilities: 0, acls: 0 };
  const add = (n: ShiftCounts) => {
    counts.shifted += n.shifted;
    counts.capabilities += n.capabilities;
    counts.acls += n.acls;
  };

  // A killed attempt's last batch first: until it is replayed, its paths look half-shifted.
  if (resumed) {
    await ctx.progress(1, 'finishing the batch of files an earlier attempt was shifting');
    add(await ctx.lxc({ fn: 'convertReplay', lxcpath: ctx.lxcpath, journal, map }));
  }

  // 1. Every path must fit the map before anything changes.
  await ctx.progress(2, `checking the owners of ${name}'s files`);
  let total = 0;
  const outside: string[] = [];
  let outsideCount = 0;
  let onRange = 0;
  for await (const paths of walkBatches(rootfs)) {
    const r = await ctx.lxc({ fn: 'convertScan', lxcpath: ctx.lxcpath, rootfs, paths, map, resumed });
    total += paths.length;
    outsideCount += r.outsideCount;
    onRange += r.onRange;
    outside.push(...r.outside.slice(0, 10 - outside.length));
  }
  if (outsideCount > 0)
    throw new LxcqError(
      'LXCQ_IDS_OUT_OF_RANGE',
      `${outsideCount} file(s) of container ${name} have ids its id map cannot hold (container ids 0-${map.count - 1}), e.g. ${outside.slice(0, 3).join('; ')}. Nothing was changed. ` +
        (onRange === total
          ? `Every file is owned by the host range (${map.uid} and up) already: the rootfs looks converted, and the container's config probably lost its lxc.idmap. Put the id map back in its config (lxc.idmap = u 0 ${map.uid} ${map.count}, and g) instead of converting.`
          : `Give them ids below ${map.count} (chown, setfacl, setcap), then convert again.`),
      { details: { count: outsideCount, examples: outside } },
    );

  // 2. The shift, batch by batch, each journalled.
  if (!resumed) writeConvertMarker(ctx.lxcpath, name, { job: ctx.job.id, uid: map.uid, gid: map.gid });
  await ctx.progress(5, `shifting files: 0/${total}`);
  let done = 0;
  for await (const paths of walkBatches(rootfs)) {
    add(await ctx.lxc({ fn: 'convertShift', lxcpath: ctx.lxcpath, rootfs, paths, map, journal, done }));
    done += paths.length;
    await ctx.progress(
      5 + (90 * Math.min(done, total)) / Math.max(total, 1),
      `shifting files: ${done}/${total}`,
    );
  }

  // 3. The config, then the marker goes: the container is whole.
  await ctx.progress(96, 'writing the id map into the config');
  const info = await ctx.lxc({ fn: 'convertFinish', ...target, map });
  removeConvertMarker(ctx.lxcpath, name);
  ctx.log.info({ container: name, files: done, ...counts }, 'converted to unprivileged');
  return { container: ctx.toInfo(info), files: done, ...counts, converted: true };
};
