import { ContainerInfo, Empty, defineOperation } from './common.ts';

export const unfreeze = defineOperation({
  name: 'unfreeze',
  summary: 'Thaw a frozen container.',
  payload: Empty,
  result: ContainerInfo,
});
