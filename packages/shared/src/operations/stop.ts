import { ContainerInfo, Empty, defineOperation } from './common.ts';

export const stop = defineOperation({
  name: 'stop',
  summary: 'Stop a container at once (a no-op when stopped).',
  payload: Empty,
  result: ContainerInfo,
});
