export { LxcqWorker, type WorkerDeps } from './worker.ts';
export { workerConfig, ConfigError, type WorkerConfig } from './config.ts';
export { NameLocks } from './locks.ts';
export { LxcPool } from './pool.ts';
export type { LxcCall, LxcRequest, ReplyOf } from './protocol.ts';
