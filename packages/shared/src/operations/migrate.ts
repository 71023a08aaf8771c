import Type from 'typebox';
import { ContainerInfo, Name, defineOperation, object } from './common.ts';

export const migrate = defineOperation({
  name: 'migrate',
  summary: 'Move a container to another host, cold or live (CRIU).',
  payload: object({ targetHost: Name, live: Type.Optional(Type.Boolean()) }),
  result: ContainerInfo,
  implemented: false,
});
