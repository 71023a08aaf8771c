import Type from 'typebox';
import { defineOperation, object } from './common.ts';

export const destroy = defineOperation({
  name: 'destroy',
  summary:
    'Destroy a stopped container (with its snapshots when asked; `force` stops it first). A missing container is already destroyed.',
  payload: object({ withSnapshots: Type.Optional(Type.Boolean()), force: Type.Optional(Type.Boolean()) }),
  result: object({ destroyed: Type.String() }),
});
