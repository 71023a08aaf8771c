/**
 * @lxcq/client: a typed SDK for lxcq's REST + events API, usable from Node (>= 20) and browsers.
 * The `lxcq` CLI (src/cli) is built on it.
 */
export {
  LxcqClient,
  ContainersApi,
  SnapshotsApi,
  JobsApi,
  HostsApi,
  type LxcqClientOptions,
  type SubmitOptions,
  type CreateRequest,
  type HealthInfo,
  type JobFilter,
  type JobPage,
  type FetchLike,
  type ResponseLike,
} from './client.ts';
export { JobHandle, resultOf, type JobEvent, type JobEventType, type WaitOptions } from './job-handle.ts';
export {
  EventStream,
  isResync,
  type EventOf,
  type EventSelector,
  type EventsOptions,
  type ResyncRequired,
  type Selected,
} from './events.ts';
export {
  LxcqError,
  LxcqConnectionError,
  JobFailedError,
  JobCancelledError,
  WaitTimeoutError,
} from './errors.ts';
export type { WebSocketConstructor, WebSocketLike } from './websocket.ts';
export type {
  ContainerInfo,
  ContainerState,
  ContainerStateReport,
  ContainerUsage,
  ErrorBody,
  ErrorCode,
  EventDataMap,
  EventType,
  HostInfo,
  HostTotals,
  Job,
  JobState,
  LxcqEvent,
  OperationName,
  PayloadOf,
  ResultOf,
  SnapshotInfo,
} from '@lxcq/shared';
