import type { RedisConnection as Redis } from '@lxcq/shared';
import type { Logger } from 'pino';
import type {
  ConfigPolicy,
  ContainerInfo,
  Keys,
  OperationName,
  PayloadOf,
  Requester,
  ResultOf,
  Store,
  StoredJob,
} from '@lxcq/shared';
import type { NameLocks } from '../locks.ts';
import type { LxcPool } from '../pool.ts';
import type { PoolManager } from '../pools.ts';
import type { RawContainerInfo } from '../protocol.ts';
import type { TransferIdentity } from '../tls-identity.ts';

/** What a handler gets: the job, its host's lxcpath, the thread pool, and ways to report. */
export interface HandlerContext {
  job: StoredJob;
  /** 1 on the first run; more when a worker died mid-way and the job runs again. */
  attempt: number;
  host: string;
  lxcpath: string;
  imagesDir: string;
  policy: ConfigPolicy;
  /** Who submitted the job: an admin token's request may use the raw keys the host allows. */
  who: Requester;
  maxExecOutputBytes: number;
  lxc: LxcPool['call'];
  /** The shared records (hosts, registry, events) and Redis, for work spanning two hosts. */
  store: Store;
  redis: Redis;
  keys: Keys;
  /** Another host silent this long is offline. */
  hostOfflineMs: number;
  /** Cut a transfer whose connection is silent this long. */
  transferIdleMs: number;
  /** This worker's TLS key and certificate for transfers (tls-identity.ts). */
  transferIdentity: TransferIdentity;
  log: Logger;
  progress(percent: number, stage: string): Promise<void>;
  /** The record of a container as the API shows it, from a fresh look through liblxc. */
  toInfo(raw: RawContainerInfo): ContainerInfo;
  /** Serialises work on one cached image (its base container is made once). */
  imageLocks: NameLocks;
  /** The host's storage pools. */
  pools: PoolManager;
  /** Writes the pools (with their space) to Redis. */
  publishPools(): Promise<void>;
  /** Names whose inventory record must be refreshed (or removed) once the job ends. */
  touched: Set<string>;
}

export type Handler<N extends OperationName> = (
  ctx: HandlerContext,
  payload: PayloadOf<N>,
) => Promise<ResultOf<N>>;

export function on(ctx: HandlerContext, name = ctx.job.container): { name: string; lxcpath: string } {
  ctx.touched.add(name);
  return { name, lxcpath: ctx.lxcpath };
}
