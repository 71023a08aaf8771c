import Type from 'typebox';
import { ContainerInfo, Name, SnapshotInfo } from '@lxcq/shared';

export const ErrorSchema = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
});

export const JobSchema = Type.Object(
  {
    id: Type.String(),
    operation: Type.String(),
    container: Type.String(),
    host: Type.String(),
    state: Type.Union(['queued', 'active', 'completed', 'failed', 'cancelled'].map((s) => Type.Literal(s))),
    queuePosition: Type.Optional(Type.Integer()),
    progress: Type.Optional(Type.Object({ percent: Type.Number(), stage: Type.String() })),
    payload: Type.Record(Type.String(), Type.Unknown()),
    result: Type.Optional(Type.Unknown()),
    error: Type.Optional(ErrorSchema.properties.error),
    createdAt: Type.String(),
    startedAt: Type.Optional(Type.String()),
    finishedAt: Type.Optional(Type.String()),
    attempts: Type.Optional(Type.Integer()),
    requestId: Type.Optional(Type.String()),
    /** Fields left out because the token lacks the operate scope (`payload.argv`, `result.stdout`, ...). */
    withheld: Type.Optional(Type.Array(Type.String())),
  },
  { $id: 'Job' },
);

export const NameParams = Type.Object({ name: Name }, { additionalProperties: false });
export const SnapParams = Type.Object({ name: Name, snap: Name }, { additionalProperties: false });
export const IdParams = Type.Object(
  { id: Type.String({ pattern: '^[0-9a-f-]{36}$' }) },
  { additionalProperties: false },
);
export const HostParams = Type.Object({ id: Name }, { additionalProperties: false });

/** `?wait=<seconds>` on every mutating route. */
export const WaitQuery = Type.Object(
  { wait: Type.Optional(Type.Number({ minimum: 0, maximum: 3600 })) },
  { additionalProperties: false },
);

export { ContainerInfo, SnapshotInfo };
