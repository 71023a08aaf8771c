/** CPU time of the processes in a measurement, from /proc/<pid>/stat (Linux). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSec: number | undefined;
function clockTicks(): number {
  if (ticksPerSec === undefined) {
    try {
      ticksPerSec = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSec = 100;
    }
  }
  return ticksPerSec;
}

/** ms of CPU a process used (all its threads), and its waited-for children used. */
export interface ProcCpu {
  self: number;
  children: number;
}

export function procCpu(pid: number | 'self' | undefined): ProcCpu {
  if (pid === undefined) return { self: 0, children: 0 };
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return { self: 0, children: 0 };
  }
  // Fields after "pid (comm) ": state is field 3, utime/stime/cutime/cstime are fields 14-17.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const at = (field: number) => Number(f[field - 3] ?? 0);
  const ms = 1000 / clockTicks();
  return { self: (at(14) + at(15)) * ms, children: (at(16) + at(17)) * ms };
}

export interface CpuSnapshot {
  bench: ProcCpu;
  worker: ProcCpu;
  redis: ProcCpu;
  at: number;
}

export interface CpuUse {
  /** Child processes liblxc and lxc-ffi ran and waited for: templates, lxc-start, ... */
  children: number;
  /** The lxcq worker process itself (JS, liblxc in its threads). */
  worker: number;
  /** This process: the API and the HTTP client, or the direct lxc-ffi caller. */
  bench: number;
  redis: number;
  total: number;
  /** Cores kept busy on average (total CPU / wall time). */
  cores: number;
}

export function cpuSnapshot(pids: { worker?: number | undefined; redis?: number | undefined }): CpuSnapshot {
  return { bench: procCpu('self'), worker: procCpu(pids.worker), redis: procCpu(pids.redis), at: Date.now() };
}

/** CPU ms per unit of work (lifecycle, job) between two snapshots. */
export function cpuPer(a: CpuSnapshot, b: CpuSnapshot, units: number): CpuUse {
  const children = b.bench.children - a.bench.children + (b.worker.children - a.worker.children);
  const worker = b.worker.self - a.worker.self;
  const bench = b.bench.self - a.bench.self;
  const redis = b.redis.self - a.redis.self;
  const total = children + worker + bench + redis;
  const r = (x: number) => Math.round((x / units) * 10) / 10;
  return {
    children: r(children),
    worker: r(worker),
    bench: r(bench),
    redis: r(redis),
    total: r(total),
    cores: Math.round((total / Math.max(1, b.at - a.at)) * 100) / 100,
  };
}
