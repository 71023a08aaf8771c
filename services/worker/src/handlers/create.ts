import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LxcqError, assertConfigAllowed, type PayloadOf } from '@lxcq/shared';
import { on, type Handler, type HandlerContext } from './context.ts';
import { makeContainer } from './making.ts';

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

export const create: Handler<'create'> = async (ctx, p) => {
  const config = Object.entries(p.config ?? {});
  assertConfigAllowed(config, ctx.policy);
  const { template, args } = templateFor(ctx, p);
  const target = on(ctx);
  const info = await makeContainer(ctx, target.name, async () => {
    await ctx.progress(10, `creating the rootfs with the ${template} template`);
    let made = await ctx.lxc({ fn: 'create', ...target, template, args, config });
    if (p.start) {
      await ctx.progress(80, 'starting');
      made = await ctx.lxc({ fn: 'start', ...target });
    }
    return made;
  });
  return ctx.toInfo(info);
};
