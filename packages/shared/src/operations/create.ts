import Type from 'typebox';
import { ContainerInfo, Name, defineOperation, object } from './common.ts';
import { DiskSize } from './pool.ts';

/**
 * Images for the `download` template (images.linuxcontainers.org style: dist/release/arch). Each
 * field is a component of lxc-download's cache path: it starts with a letter or digit, so `.`
 * and `..` (which would point the cache elsewhere) are refused.
 */
export const DownloadImage = object({
  dist: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,31}$' }),
  release: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,31}$' }),
  arch: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,15}$' }),
  variant: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,31}$' })),
});

/**
 * An LXC image for the `local` template: its rootfs tarball and metadata tarball (with the
 * image's `config`), both xz-compressed and named inside the worker's images directory
 * (LXCQ_IMAGES_DIR), e.g. the rootfs.tar.xz and meta.tar.xz that distrobuilder produces.
 */
export const LocalImage = object({ rootfs: Name, metadata: Name });

export const create = defineOperation({
  name: 'create',
  summary:
    'Create a container from a template (busybox, download, local image tarballs), optionally with config and started.',
  payload: object({
    template: Type.Union([
      Type.Literal('busybox'),
      Type.Literal('download'),
      Type.Literal('local'),
      Type.Literal('oci'),
    ]),
    download: Type.Optional(DownloadImage),
    local: Type.Optional(LocalImage),
    // docker:// registries; oci:<layout dir> only where the host allows it (LXCQ_OCI_LAYOUT_DIR).
    oci: Type.Optional(object({ url: Type.String({ pattern: '^(docker|oci):[^\\s]{1,512}$' }) })),
    config: Type.Optional(Type.Record(Type.String({ maxLength: 128 }), Type.String({ maxLength: 4096 }))),
    start: Type.Optional(Type.Boolean()),
    /** The storage pool to create the container on (GET /v1/hosts/:id/pools); `default` (dir) if left out. */
    pool: Type.Optional(Name),
    /** A disk quota for the container's rootfs (btrfs pools only). */
    disk: Type.Optional(DiskSize),
    /**
     * Admin only: a container without a user namespace (root inside is root on the host). By
     * default every container is unprivileged (lxc.idmap from the host's subordinate range).
     */
    privileged: Type.Optional(Type.Boolean()),
  }),
  result: ContainerInfo,
  needsContainer: false,
});
