/**
 * The messages between the worker's main thread and its piscina threads: one request type per
 * blocking liblxc step, and one reply shape. The main thread never calls liblxc itself.
 */
import type { ExecResult } from '@lxcq/lxc-ffi';
import type { ContainerState, ErrorBody, PayloadOf, SnapshotInfo } from '@lxcq/shared';
import type { MigrationBlocker } from './migratable.ts';
import type { ScanResult, ShiftCounts, ShiftMap } from './shift.ts';

export interface RawContainerInfo {
  name: string;
  defined: boolean;
  state: ContainerState;
  pid?: number;
  ips?: string[];
  snapshots?: SnapshotInfo[];
  checkpoints?: string[];
  config?: Record<string, string>;
  /** Why the container cannot be used (its config is unloadable or has no rootfs). */
  broken?: string;
  /** No user namespace: the config has no lxc.idmap (set when the container is defined). */
  privileged?: boolean;
  migrationBlockers?: MigrationBlocker[];
  pool?: string;
  disk?: { usedBytes: number; limitBytes: number | null };
}

/** What exec answers: liblxc's attach result, exit code and captured output. */
export type ExecReply = ExecResult;

type Base<F extends string> = { fn: F; lxcpath: string };
type On<F extends string> = Base<F> & { name: string };

/** Each request's `reply` is the type of its answer. */
export type LxcRequest =
  | (Base<'list'> & { reply?: string[] })
  | (On<'info'> & { withConfig?: boolean; reply?: RawContainerInfo })
  | (On<'create'> & {
      template: string;
      args: string[];
      /** lxcq's own keys (idmap, includes), set before the template runs (idmap.ts). */
      security: [string, string][];
      config: [string, string][];
      /** A btrfs pool's containers directory: the container is made there (see btrfs.ts). */
      poolDir?: string;
      /** A disk quota in bytes (btrfs pools). */
      diskBytes?: number;
      reply?: RawContainerInfo;
    })
  | (Base<'imageBase'> & {
      /** Where unpacked images live as stopped base containers (one lxcpath of their own). */
      imagesLxcpath: string;
      baseName: string;
      rootfs: string;
      metadata: string;
      security: [string, string][];
      /** Unpack it into a btrfs subvolume (imagesLxcpath is on a btrfs pool), made read-only. */
      btrfs?: boolean;
      reply?: { created: boolean };
    })
  | (On<'createFromImage'> & {
      imagesLxcpath: string;
      baseName: string;
      config: [string, string][];
      poolDir?: string;
      diskBytes?: number;
      reply?: RawContainerInfo;
    })
  | (On<'start'> & { reply?: RawContainerInfo })
  | (On<'stop'> & { reply?: RawContainerInfo })
  | (On<'shutdown'> & { timeoutSec: number; reply?: { clean: boolean } })
  | (On<'reboot'> & { timeoutSec: number; reply?: RawContainerInfo })
  | (On<'freeze'> & { reply?: RawContainerInfo })
  | (On<'unfreeze'> & { reply?: RawContainerInfo })
  | (On<'destroy'> & { withSnapshots: boolean; force: boolean; reply?: { existed: boolean } })
  | (On<'purge'> & { reply?: { existed: boolean } })
  | (On<'rename'> & { newName: string; reply?: RawContainerInfo })
  | (On<'clone'> & {
      newName: string;
      snapshot: boolean;
      keepName: boolean;
      /** The target pool's containers directory (null: the dir pool); the source's pool when absent. */
      poolDir?: string | null;
      reply?: RawContainerInfo;
    })
  | (On<'snapshotCreate'> & { snapName?: string; comment?: string; reply?: SnapshotInfo })
  | (On<'snapshotRestore'> & { snapshot: string; newName?: string; reply?: RawContainerInfo })
  | (On<'snapshotDestroy'> & { snapshot: string; reply?: { existed: boolean } })
  /** Removes every snapshot (whole or half-made) of the container whose name is not in `keep`. */
  | (On<'snapshotRollback'> & { keep: string[]; reply?: { removed: string[] } })
  | (On<'checkpoint'> & { dir: string; stop: boolean; reply?: { stopped: boolean } })
  | (On<'restore'> & { dir: string; reply?: RawContainerInfo })
  | (On<'exec'> & {
      argv: string[];
      env?: Record<string, string>;
      cwd?: string;
      uid?: number;
      gid?: number;
      timeoutMs?: number;
      maxOutputBytes: number;
      reply?: ExecReply;
    })
  | (On<'config'> & { set: [string, string][]; clear: string[]; reply?: Record<string, string> })
  | (On<'limits'> & {
      limits: PayloadOf<'limits.set'>;
      diskBytes?: number;
      reply?: { applied: boolean; items: Record<string, string>; disk?: number };
    })
  /** What a convert needs to know before it touches anything (see handlers/convert.ts). */
  | (On<'convertInspect'> & {
      reply?: {
        state: ContainerState;
        privileged: boolean;
        /** The rootfs directory; null when the rootfs is not a plain directory (`backend`). */
        rootfs: string | null;
        backend: string;
        snapshots: string[];
        clones: string[];
        /** Mount points inside the rootfs. */
        mounts: string[];
      };
    })
  | (Base<'convertReplay'> & { journal: string; map: ShiftMap; reply?: ShiftCounts })
  | (Base<'convertScan'> & {
      rootfs: string;
      paths: string[];
      map: ShiftMap;
      resumed: boolean;
      reply?: ScanResult;
    })
  | (Base<'convertShift'> & {
      rootfs: string;
      paths: string[];
      map: ShiftMap;
      journal: string;
      done: number;
      reply?: ShiftCounts;
    })
  /** Writes the id map and userns.conf into the config and gives the container's directory to its root. */
  | (On<'convertFinish'> & { map: ShiftMap; reply?: RawContainerInfo })
  | (Base<'hostInfo'> & { reply?: { liblxcVersion: string; criu: boolean; criuMessage: string } });

export type LxcFn = LxcRequest['fn'];
export type RequestOf<F extends LxcFn> = Omit<Extract<LxcRequest, { fn: F }>, 'reply'>;
/** A request as sent (without its phantom `reply`). */
export type LxcCall = { [F in LxcFn]: RequestOf<F> }[LxcFn];
export type ReplyOf<F extends LxcFn> = NonNullable<Extract<LxcRequest, { fn: F }>['reply']>;

/** A step's answer, with the milliseconds it ran in its thread (`ms`: metrics and trace spans). */
export type LxcReply<T = unknown> = ({ ok: true; value: T } | { ok: false; error: ErrorBody }) & {
  ms?: number;
};
