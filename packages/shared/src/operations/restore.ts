import { ContainerInfo, Name, defineOperation, object } from './common.ts';

export const restore = defineOperation({
  name: 'restore',
  summary: 'Restore a stopped container from one of its CRIU checkpoints.',
  payload: object({ checkpoint: Name }),
  result: ContainerInfo,
});
