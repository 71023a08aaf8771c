import Type from 'typebox';
import { Name, SnapshotInfo, defineOperation, object } from './common.ts';

export const snapshotCreate = defineOperation({
  name: 'snapshot.create',
  summary: 'Snapshot a container (named snapN unless a name is given).',
  payload: object({ name: Type.Optional(Name), comment: Type.Optional(Type.String({ maxLength: 1024 })) }),
  result: SnapshotInfo,
});
