import Type from 'typebox';
import { ContainerInfo, Name, defineOperation, object } from './common.ts';

export const snapshotRestore = defineOperation({
  name: 'snapshot.restore',
  summary: 'Restore a snapshot over the (stopped) container, or into a new container `newName`.',
  payload: object({ snapshot: Name, newName: Type.Optional(Name) }),
  result: ContainerInfo,
  locks: (container, p) => (p.newName ? [container, p.newName] : [container]),
});
