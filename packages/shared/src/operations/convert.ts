import Type from 'typebox';
import { ContainerInfo, defineOperation, object } from './common.ts';

/**
 * Admin only: turns a stopped privileged container into an unprivileged one. Every file of its
 * rootfs is shifted onto the host's id range (owners, POSIX ACL entries, file capabilities), then
 * the id map and LXC's userns.conf are written into its config. A re-run after a worker died
 * mid-way finishes the work without shifting a file twice (docs/unprivileged.md).
 */
export const convert = defineOperation({
  name: 'convert',
  summary:
    'Convert a stopped privileged container to unprivileged: shift its rootfs onto the host id range and write the id map (admin only).',
  payload: object({}),
  result: object({
    container: ContainerInfo,
    /** Paths of the rootfs walked (a file with several hard links counts once per link). */
    files: Type.Integer({ minimum: 0 }),
    /** Paths whose owner this job changed (the rest were shifted by an earlier attempt, or are hard links of one). */
    shifted: Type.Integer({ minimum: 0 }),
    /** Files whose capabilities (security.capability) were rewritten for the container's root. */
    capabilities: Type.Integer({ minimum: 0 }),
    /** Files and directories whose POSIX ACL entries were shifted. */
    acls: Type.Integer({ minimum: 0 }),
    /** False when the container was unprivileged already: nothing was changed. */
    converted: Type.Boolean(),
  }),
  // As host root it rewrites the owner of every file in the container.
  scope: 'admin',
});
