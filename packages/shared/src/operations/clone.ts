import Type from 'typebox';
import { ContainerInfo, Name, defineOperation, object } from './common.ts';

export const clone = defineOperation({
  name: 'clone',
  summary:
    'Copy a stopped container under a new name on the same host; `snapshot` makes an overlayfs copy-on-write clone.',
  payload: object({
    newName: Name,
    host: Type.Optional(Name),
    snapshot: Type.Optional(Type.Boolean()),
    keepName: Type.Optional(Type.Boolean()),
    /** The storage pool of the copy (same host): the source's when left out. */
    pool: Type.Optional(Name),
  }),
  result: ContainerInfo,
  locks: (container, p) => [container, p.newName],
});
