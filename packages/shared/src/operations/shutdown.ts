import Type from 'typebox';
import { ContainerInfo, defineOperation, object } from './common.ts';

export const shutdown = defineOperation({
  name: 'shutdown',
  summary:
    'Ask the init to power off cleanly; after `timeout` seconds fail with LXCQ_TIMEOUT, or stop hard if `force`.',
  payload: object({
    timeout: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 })),
    force: Type.Optional(Type.Boolean()),
  }),
  result: ContainerInfo,
});
