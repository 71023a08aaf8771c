import Type, { type Static, type TSchema } from 'typebox';
import { NAME_PATTERN } from '../names.ts';
import type { ContainerState as LiblxcState } from '../states.ts';

/** A container, snapshot, host or checkpoint name (see names.ts for the rule and why). */
export const Name = Type.String({ pattern: NAME_PATTERN, minLength: 1, maxLength: 64 });

export const ContainerState = Type.Union([
  Type.Literal('STOPPED'),
  Type.Literal('STARTING'),
  Type.Literal('RUNNING'),
  Type.Literal('STOPPING'),
  Type.Literal('ABORTING'),
  Type.Literal('FREEZING'),
  Type.Literal('FROZEN'),
  Type.Literal('THAWED'),
]);
export { CONTAINER_STATES } from '../states.ts';
export type ContainerState = LiblxcState;

export const SnapshotInfo = Type.Object({
  name: Type.String(),
  comment: Type.Optional(Type.String()),
  createdAt: Type.Optional(Type.String()),
});
export type SnapshotInfo = Static<typeof SnapshotInfo>;

/** What lxcq knows of a container: the record the worker keeps in Redis and most jobs return. */
export const ContainerInfo = Type.Object({
  name: Type.String(),
  host: Type.String(),
  state: ContainerState,
  pid: Type.Optional(Type.Integer()),
  ips: Type.Optional(Type.Array(Type.String())),
  snapshots: Type.Optional(Type.Array(SnapshotInfo)),
  checkpoints: Type.Optional(Type.Array(Type.String())),
  config: Type.Optional(Type.Record(Type.String(), Type.String())),
  /** Set when the container cannot be used, saying why and what to do (its config is unloadable or
   * names no rootfs); lxcq refuses to start it. */
  broken: Type.Optional(Type.String()),
  /** The storage pool holding the container (`default`: the dir pool in the worker's lxcpath). */
  pool: Type.Optional(Type.String()),
  /** A btrfs pool container's disk: bytes its rootfs references, and its quota (null: none). */
  disk: Type.Optional(
    Type.Object({ usedBytes: Type.Integer(), limitBytes: Type.Union([Type.Integer(), Type.Null()]) }),
  ),
  /** Whether the container runs without a user namespace (its config has no lxc.idmap). */
  privileged: Type.Optional(Type.Boolean()),
  /**
   * Whether a live move (and a checkpoint) can work as the container's config stands, and what
   * stands in the way: scope `criu` blocks checkpoints too, `move` only a move to another host.
   */
  liveMigration: Type.Optional(
    Type.Object({
      possible: Type.Boolean(),
      blockers: Type.Array(
        Type.Object({
          reason: Type.Union([
            Type.Literal('tty'),
            Type.Literal('apparmor'),
            Type.Literal('device'),
            Type.Literal('bind-mount'),
            Type.Literal('network'),
          ]),
          scope: Type.Union([Type.Literal('criu'), Type.Literal('move')]),
          message: Type.String(),
        }),
      ),
    }),
  ),
  updatedAt: Type.String(),
});
export type ContainerInfo = Static<typeof ContainerInfo>;

export const Empty = Type.Object({}, { additionalProperties: false });

/** Which names a job locks: operations on one name run one at a time in submission order. */
export type LockFn<P> = (container: string, payload: P) => string[];

export interface OperationDef<
  N extends string = string,
  P extends TSchema = TSchema,
  R extends TSchema = TSchema,
> {
  name: N;
  summary: string;
  /** Payload besides the container name. */
  payload: P;
  result: R;
  /** A queued job can always be cancelled; this says whether a running one can be. */
  cancellableWhileRunning: boolean;
  locks: LockFn<Static<P>>;
  /** Runs against a container that must already exist (all but create). */
  needsContainer: boolean;
  /** Refused with LXCQ_NOT_IMPLEMENTED until the multi-host work lands. */
  implemented: boolean;
  /**
   * Whether a job whose worker died mid-way may simply run again. Container operations are
   * written to be (a start of a running container succeeds...); exec is not: the command may
   * already have run, so such a job fails with LXCQ_WORKER_LOST instead of running it twice.
   */
  rerunnable: boolean;
  /**
   * Fields of the payload and of the result only tokens with the operate scope may read (an
   * exec's argv, env and output can hold anything, secrets included): a read token gets the job
   * without them, and the shared event stream never carries the result's.
   */
  confidential: { payload: readonly string[]; result: readonly string[] };
  /** The scope a token needs to queue the operation (operate, or admin for host-level changes). */
  scope: 'operate' | 'admin';
}

type Defaulted =
  | 'locks'
  | 'needsContainer'
  | 'cancellableWhileRunning'
  | 'implemented'
  | 'rerunnable'
  | 'confidential'
  | 'scope';

export function defineOperation<N extends string, P extends TSchema, R extends TSchema>(
  def: Omit<OperationDef<N, P, R>, Defaulted> & Partial<Pick<OperationDef<N, P, R>, Defaulted>>,
): OperationDef<N, P, R> {
  return {
    locks: (container) => [container],
    needsContainer: true,
    cancellableWhileRunning: false,
    implemented: true,
    rerunnable: true,
    confidential: { payload: [], result: [] },
    scope: 'operate',
    ...def,
  };
}

export const object = <T extends Record<string, TSchema>>(props: T) =>
  Type.Object(props, { additionalProperties: false });
