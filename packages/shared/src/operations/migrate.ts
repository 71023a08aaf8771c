import Type from 'typebox';
import { ContainerInfo, Name, defineOperation, object } from './common.ts';

export const migrate = defineOperation({
  name: 'migrate',
  summary: 'Move a container to another host, cold or live (CRIU).',
  payload: object({ targetHost: Name, live: Type.Optional(Type.Boolean()) }),
  result: Type.Intersect([
    ContainerInfo,
    Type.Object({
      /** What the move cost: bytes streamed, total time, and (live) dump-to-restored downtime. */
      migration: Type.Optional(
        Type.Object({
          from: Type.String(),
          bytes: Type.Integer(),
          ms: Type.Number(),
          downtimeMs: Type.Optional(Type.Number()),
        }),
      ),
    }),
  ]),
  // A worker dying mid-move leaves the container stopped on its source (or owned by the target):
  // running the move again blindly could act on a stale view, so it is reported instead.
  rerunnable: false,
});
