import Type from 'typebox';
import { defineOperation, object } from './common.ts';
import { DiskSize } from './pool.ts';

/** Sizes as bytes or with a K/M/G suffix, as lxc's own memory keys accept. */
const Size = Type.Union([
  Type.Integer({ minimum: 4096 }),
  Type.String({ pattern: '^[0-9]{1,15}[KMGkmg]?$' }),
]);

export const Limits = object({
  memory: Type.Optional(Size),
  memorySwap: Type.Optional(Size),
  cpus: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 4096 })),
  cpuset: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}([-,][0-9]{1,4}){0,63}$' })),
  cpuWeight: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
  pids: Type.Optional(Type.Integer({ minimum: 1, maximum: 4194304 })),
  /** A disk quota on the container's rootfs (a btrfs qgroup limit); containers on btrfs pools only. */
  disk: Type.Optional(DiskSize),
});

export const limitsSet = defineOperation({
  name: 'limits.set',
  summary:
    'Set cgroup limits (memory, cpus, cpuset, cpu weight, pids), applied live when running and saved to the config, and a disk quota (btrfs pools).',
  payload: Limits,
  result: object({ limits: Type.Record(Type.String(), Type.String()) }),
});
