import type { ContainerState } from './operations/index.ts';

/** Counters of one network interface, as the container's network namespace counts them. */
export interface NicCounters {
  bytes: number;
  packets: number;
  errors: number;
  drops: number;
}

/** One interface of a container: received (rx) and sent (tx), from its /proc/net/dev. */
export interface NicUsage {
  rx: NicCounters;
  tx: NicCounters;
}

/**
 * What one container uses, from the last collection pass of its host's worker. Running (and
 * frozen) containers have every field; a stopped one has `disk` only. A limit is `null` when none
 * is in force.
 */
export interface ContainerUsage {
  name: string;
  state: ContainerState;
  /** When this container's figures were read (ISO 8601). */
  collectedAt: string;
  /** Seconds since the container's init started. */
  uptimeSeconds?: number;
  cpu?: {
    /** CPU time used since the container started (user + system), in seconds. */
    seconds: number;
    /**
     * CPU used over the interval since the previous pass, in percent of one core (200 = two cores
     * busy); null on the first pass after a start (nothing to compare with).
     */
    percent: number | null;
    /** The CPU limit in cores: the CFS quota over its period, or the cpuset's size when that is smaller than the host; null when unlimited. */
    limitCores: number | null;
  };
  memory?: {
    /** The kernel's usage of the cgroup (anonymous memory and page cache, tmpfs included). */
    bytes: number;
    /** The highest usage since the container started, when the kernel tracks it (v1 max_usage, v2 memory.peak). */
    peakBytes: number | null;
    /** Page cache (file and tmpfs pages) within `bytes`. */
    cacheBytes: number;
    /** Swap used, when the kernel accounts swap for the cgroup. */
    swapBytes: number | null;
    limitBytes: number | null;
    /** v1: the memory+swap limit (memsw); v2: the swap limit. */
    swapLimitBytes: number | null;
  };
  pids?: { current: number; limit: number | null };
  /** Per interface, including `lo`. */
  network?: Record<string, NicUsage>;
  /** Disk used by the rootfs, measured every LXCQ_USAGE_DISK_INTERVAL_MS; null until measured or when the storage cannot say. */
  disk: { usedBytes: number; measuredAt: string; method: 'du' } | null;
}

/** What a usage pass says about itself (field `#pass` of the usage hash). */
export interface UsagePass {
  host: string;
  /** When the pass ran (ISO 8601). */
  at: string;
  /** The collection period, LXCQ_USAGE_INTERVAL_MS. */
  intervalMs: number;
  /** Containers of the host, and running ones, at this pass. */
  containers: number;
  running: number;
  /** The running containers' CPU in percent of one core, summed. */
  cpuPercent: number;
  /** The running containers' memory usage, summed. */
  memoryBytes: number;
}

/** The message published on the usage channel after every pass. */
export interface UsagePublished {
  pass: UsagePass;
  containers: ContainerUsage[];
}

/** The field of the usage hash holding the pass (not a container name: those cannot hold `#`). */
export const USAGE_PASS_FIELD = '#pass';

/** `GET /v1/containers/:name/state`: the registry's state and the host's last figures. */
export interface ContainerStateReport extends Omit<ContainerUsage, 'collectedAt'> {
  host: string;
  /** null when the host has no recent usage pass (its worker is down, or just started). */
  collectedAt: string | null;
  intervalMs: number | null;
}

/** A host's totals in `GET /v1/hosts` and `GET /v1/hosts/:id`. */
export interface HostTotals {
  /** From the registry: current as soon as a container changes. */
  containers: number;
  running: number;
  /** From the host's last usage pass; null without a recent one. */
  cpuPercent: number | null;
  memoryBytes: number | null;
  usageCollectedAt: string | null;
}
