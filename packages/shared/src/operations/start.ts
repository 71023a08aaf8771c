import { ContainerInfo, Empty, defineOperation } from './common.ts';

export const start = defineOperation({
  name: 'start',
  summary: 'Start a stopped container (a no-op when it runs).',
  payload: Empty,
  result: ContainerInfo,
});
