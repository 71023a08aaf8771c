import { ContainerInfo, Name, defineOperation, object } from './common.ts';

export const rename = defineOperation({
  name: 'rename',
  summary: 'Rename a stopped container.',
  payload: object({ newName: Name }),
  result: ContainerInfo,
  locks: (container, p) => [container, p.newName],
});
