import { Name, defineOperation, object } from './common.ts';
import Type from 'typebox';

export const snapshotDestroy = defineOperation({
  name: 'snapshot.destroy',
  summary: 'Destroy one snapshot of a container.',
  payload: object({ snapshot: Name }),
  result: object({ destroyed: Type.String() }),
});
