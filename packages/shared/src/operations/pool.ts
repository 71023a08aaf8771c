import Type, { type Static } from 'typebox';
import { Name, defineOperation, object } from './common.ts';

/** The storage drivers a pool can name; zfs and lvm are refused on hosts without their kernel support. */
export const PoolDriver = Type.Union([
  Type.Literal('dir'),
  Type.Literal('btrfs'),
  Type.Literal('zfs'),
  Type.Literal('lvm'),
]);
export type PoolDriver = Static<typeof PoolDriver>;

/**
 * A size in bytes, or a decimal number with a binary unit (`512MiB`, `2GiB`, `1TiB`; K/M/G/T alone
 * mean the same powers of 1024).
 */
export const DiskSize = Type.Union([
  Type.Integer({ minimum: 1 }),
  Type.String({ pattern: '^[0-9]{1,15}([KMGT](iB)?)?$' }),
]);

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** Bytes of a DiskSize value (already schema-checked); NaN for anything else. */
export function parseDiskSize(v: number | string): number {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : NaN;
  const m = /^([0-9]{1,15})(?:([KMGT])(?:iB)?)?$/.exec(v);
  if (!m) return NaN;
  const n = Number(m[1]) * (UNITS[m[2] ?? ''] as number);
  return Number.isSafeInteger(n) ? n : NaN;
}

/** What lxcq knows of a storage pool on a host (the worker writes it; `dir` pool `default` is implicit). */
export const PoolInfo = Type.Object({
  name: Type.String(),
  host: Type.String(),
  driver: PoolDriver,
  /** `loop`: a loop file lxcq made and mounts; `path`: an existing btrfs mount; `lxcpath`: the default dir pool. */
  source: Type.Union([Type.Literal('loop'), Type.Literal('path'), Type.Literal('lxcpath')]),
  /** Where the pool's filesystem is mounted on the host (the loop file's mount, the given path). */
  path: Type.String(),
  /** The size asked for a loop pool, in bytes. */
  sizeBytes: Type.Optional(Type.Integer()),
  capacityBytes: Type.Optional(Type.Integer()),
  usedBytes: Type.Optional(Type.Integer()),
  freeBytes: Type.Optional(Type.Integer()),
  /** Whether the pool's filesystem is mounted and usable now; false says why in `problem`. */
  available: Type.Boolean(),
  problem: Type.Optional(Type.String()),
  createdAt: Type.Optional(Type.String()),
  updatedAt: Type.String(),
});
export type PoolInfo = Static<typeof PoolInfo>;

/** A pool name: a name (names.ts) that is not `default`, the implicit dir pool. */
export const PoolName = Name;

export const poolCreate = defineOperation({
  name: 'pool.create',
  summary:
    'Create a storage pool on a host: btrfs on a loop file lxcq makes (size) or on an existing btrfs mount (path).',
  payload: object({
    name: PoolName,
    driver: PoolDriver,
    /** A loop pool: the size of the loop file lxcq creates under its data directory. */
    size: Type.Optional(DiskSize),
    /** An existing mount: an absolute path that is already a mounted btrfs filesystem. */
    path: Type.Optional(Type.String({ pattern: '^/[^\\0]{0,1023}$' })),
  }),
  result: PoolInfo,
  needsContainer: false,
  scope: 'admin',
});

export const poolDelete = defineOperation({
  name: 'pool.delete',
  summary: 'Remove a storage pool that holds no container (a loop pool is unmounted and its file removed).',
  payload: object({ name: PoolName }),
  result: object({ existed: Type.Boolean() }),
  scope: 'admin',
});

/** The lock (and job target) of a pool job: not a container name, so it never meets one. */
export function poolTarget(name: string): string {
  return `pool:${name}`;
}

/** Operations that act on a host rather than a container: queued to the host asked for. */
export const HOST_OPERATIONS = new Set(['pool.create', 'pool.delete']);
