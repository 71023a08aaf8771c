import Type from 'typebox';
import { ContainerInfo, defineOperation, object } from './common.ts';

export const reboot = defineOperation({
  name: 'reboot',
  summary: 'Reboot a running container through its init; waits up to `timeout` seconds for it to come back.',
  payload: object({ timeout: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 })) }),
  result: ContainerInfo,
});
