import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { RawContainerInfo } from '../protocol.ts';
import { basename, dirname, join } from 'node:path';
import { removeContainerDir } from '../btrfs.ts';
import {
  LxcqError,
  assertConfigAllowed,
  assertStoredConfig,
  assertTemplateArgs,
  parseDiskSize,
  type PayloadOf,
} from '@lxcq/shared';
import { on, type Handler, type HandlerContext } from './context.ts';
import { makeContainer } from './making.ts';
import { hostIdRange, securityConfig } from '../idmap.ts';

/** The template and its arguments for a create request; image files must be in imagesDir. */
export function templateFor(
  ctx: HandlerContext,
  p: PayloadOf<'create'>,
): { template: string; args: string[] } {
  switch (p.template) {
    case 'busybox':
      return { template: 'busybox', args: [] };
    case 'download': {
      if (!p.download)
        throw new LxcqError('LXCQ_VALIDATION', 'template "download" needs download: {dist, release, arch}.');
      const d = p.download;
      return {
        template: 'download',
        args: [
          '--dist',
          d.dist,
          '--release',
          d.release,
          '--arch',
          d.arch,
          ...(d.variant ? ['--variant', d.variant] : []),
        ],
      };
    }
    case 'local': {
      if (!p.local)
        throw new LxcqError(
          'LXCQ_VALIDATION',
          'template "local" needs local: {rootfs, metadata} (tarball names in the images directory).',
        );
      const [rootfs, metadata] = [p.local.rootfs, p.local.metadata].map((f) => join(ctx.imagesDir, f)) as [
        string,
        string,
      ];
      const missing = [rootfs, metadata].filter((f) => !existsSync(f));
      if (missing.length > 0) {
        throw new LxcqError(
          'LXCQ_IMAGE_NOT_FOUND',
          `Image file(s) not found on host ${ctx.host}: ${missing.join(', ')}. Put image tarballs in ${ctx.imagesDir}.`,
        );
      }
      return { template: 'local', args: ['--fstree', rootfs, '--metadata', metadata] };
    }
    case 'oci':
      if (!p.oci)
        throw new LxcqError('LXCQ_VALIDATION', 'template "oci" needs oci: {url} (docker:// or oci: URL).');
      return { template: 'oci', args: ['--url', p.oci.url] };
  }
}

/**
 * The cached base container of an image: named by the tarballs' paths, sizes and times, so a
 * replaced tarball gets a fresh base (the old one stays until removed by hand).
 */
export function imageKey(rootfs: string, metadata: string, security: [string, string][] = []): string {
  const h = createHash('sha256');
  for (const f of [rootfs, metadata]) {
    const st = statSync(f);
    h.update(`${f}\0${st.size}\0${st.mtimeMs}\0`);
  }
  // A privileged and an unprivileged container cannot share a base: its rootfs's owners differ.
  for (const [k, v] of security) h.update(`${k}=${v}\0`);
  return `img-${h.digest('hex').slice(0, 16)}`;
}

/**
 * The config an image brought in (a template wrote it from the image's metadata) passes the same
 * policy as the request's own config. A refused one is removed as files, not with liblxc's
 * destroy, which would run the lxc.hook.destroy it may carry.
 */
function assertImageConfig(ctx: HandlerContext, dir: string, what: string): void {
  try {
    assertStoredConfig(readFileSync(join(dir, 'config'), 'utf8'), {
      policy: ctx.policy,
      who: ctx.who,
      rootfsDirs: [join(dir, 'rootfs')],
      what,
    });
  } catch (err) {
    // A pool container's symlink and pool directory, or a base's (read-only) subvolume, with the rest.
    removeContainerDir(dirname(dir), basename(dir));
    throw err;
  }
}

export const create: Handler<'create'> = async (ctx, p) => {
  const config = Object.entries(p.config ?? {});
  assertTemplateArgs(p, ctx.policy);
  assertConfigAllowed(config, ctx.policy, ctx.who);
  const { template, args } = templateFor(ctx, p);
  // An unknown or unmounted pool, or a quota on the dir pool, is refused before anything is made.
  const poolDir = ctx.pools.containersDir(p.pool);
  if (p.disk !== undefined && poolDir === null)
    throw new LxcqError(
      'LXCQ_QUOTA_UNSUPPORTED',
      'A disk quota needs a btrfs pool (qgroups); the dir pool `default` has none. Create the container with pool set to a btrfs pool, or leave disk out.',
    );
  const diskBytes = p.disk !== undefined ? parseDiskSize(p.disk) : undefined;
  if (diskBytes !== undefined && !Number.isSafeInteger(diskBytes))
    throw new LxcqError('LXCQ_VALIDATION', `disk ${String(p.disk)} is too large a size.`);
  const inPool = {
    ...(poolDir !== null ? { poolDir } : {}),
    ...(diskBytes !== undefined ? { diskBytes } : {}),
  };
  const security = securityConfig(p.privileged ?? false, hostIdRange(), ctx.host);
  const target = on(ctx);
  const info = await makeContainer(ctx, target.name, async () => {
    let made: RawContainerInfo;
    if (template === 'local') {
      const [rootfs, metadata] = [args[1], args[3]] as [string, string];
      const baseName = imageKey(rootfs, metadata, security);
      await ctx.progress(10, `copying the cached image ${p.local?.rootfs ?? ''}`);
      // On a btrfs pool the base lives on the pool (a subvolume each create snapshots), so a
      // create costs no copy; on the dir pool in the lxcpath (each create copies it).
      const imagesLxcpath =
        poolDir !== null ? join(dirname(poolDir), 'images') : join(ctx.lxcpath, '.lxcq', 'images');
      // Only unpacking the base is serialised; copies of it are made in parallel.
      const release = await ctx.imageLocks.acquire([baseName]);
      try {
        await ctx.lxc({
          fn: 'imageBase',
          lxcpath: ctx.lxcpath,
          imagesLxcpath,
          baseName,
          rootfs,
          metadata,
          security,
          ...(poolDir !== null ? { btrfs: true } : {}),
        });
        // Before any copy: lxc-copy would run the base's lxc.hook.clone.
        assertImageConfig(
          ctx,
          join(imagesLxcpath, baseName),
          `The config of image ${p.local?.metadata ?? ''}`,
        );
      } finally {
        release();
      }
      made = await ctx.lxc({ fn: 'createFromImage', ...target, imagesLxcpath, baseName, config, ...inPool });
    } else {
      await ctx.progress(10, `creating the rootfs with the ${template} template`);
      made = await ctx.lxc({ fn: 'create', ...target, template, args, security, config, ...inPool });
      // busybox's config is lxcq's own; download and oci append what their image carries.
      if (template !== 'busybox')
        assertImageConfig(ctx, join(ctx.lxcpath, target.name), `The config the ${template} image brought`);
    }
    if (p.start) {
      await ctx.progress(80, 'starting');
      made = await ctx.lxc({ fn: 'start', ...target });
    }
    return made;
  });
  return ctx.toInfo(info);
};
