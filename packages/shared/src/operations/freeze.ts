import { ContainerInfo, Empty, defineOperation } from './common.ts';

export const freeze = defineOperation({
  name: 'freeze',
  summary: 'Freeze every process of a running container.',
  payload: Empty,
  result: ContainerInfo,
});
