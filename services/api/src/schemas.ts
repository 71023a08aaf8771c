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

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const NicCounters = Type.Object({
  bytes: Type.Number(),
  packets: Type.Number(),
  errors: Type.Number(),
  drops: Type.Number(),
});

/** GET /v1/containers/:name/state: the container's usage from its host's last collection pass. */
export const ContainerStateSchema = Type.Object({
  name: Type.String(),
  host: Type.String(),
  state: Type.String(),
  /** When the figures were read; null when the host has no recent pass (its worker is down or just started). */
  collectedAt: Nullable(Type.String()),
  /** The host's collection period, ms. */
  intervalMs: Nullable(Type.Integer()),
  uptimeSeconds: Type.Optional(Type.Number()),
  cpu: Type.Optional(
    Type.Object({
      seconds: Type.Number(),
      percent: Nullable(Type.Number()),
      limitCores: Nullable(Type.Number()),
    }),
  ),
  memory: Type.Optional(
    Type.Object({
      bytes: Type.Number(),
      peakBytes: Nullable(Type.Number()),
      cacheBytes: Type.Number(),
      swapBytes: Nullable(Type.Number()),
      limitBytes: Nullable(Type.Number()),
      swapLimitBytes: Nullable(Type.Number()),
    }),
  ),
  pids: Type.Optional(Type.Object({ current: Type.Integer(), limit: Nullable(Type.Integer()) })),
  network: Type.Optional(Type.Record(Type.String(), Type.Object({ rx: NicCounters, tx: NicCounters }))),
  disk: Nullable(Type.Object({ usedBytes: Type.Number(), measuredAt: Type.String(), method: Type.String() })),
});

/** A host's totals: counts from the registry (current at every change), usage from its last pass. */
export const HostTotals = Type.Object({
  containers: Type.Integer(),
  running: Type.Integer(),
  /** Running containers' CPU in percent of one core, summed; null without a recent pass. */
  cpuPercent: Nullable(Type.Number()),
  /** Running containers' memory usage, summed; null without a recent pass. */
  memoryBytes: Nullable(Type.Number()),
  usageCollectedAt: Nullable(Type.String()),
});
