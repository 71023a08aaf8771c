// One worker thread's share of the benchmark: N start+stop cycles of one container.
import { Container, monitorMemory } from '@lxcq/lxc-ffi';

export interface Job {
  lxcpath: string;
  name: string;
  n: number;
  mode: 'helper' | 'inprocess';
}

export function cycles(job: Job): { ms: number; monitor: { privateDirtyKb: number; rssKb: number } | null } {
  using c = Container.open(job.name, job.lxcpath);
  let monitor: { privateDirtyKb: number; rssKb: number } | null = null;
  const t0 = performance.now();
  for (let i = 0; i < job.n; i++) {
    if (job.mode === 'helper') c.start();
    else c.startInProcess();
    if (i === 0) monitor = monitorMemory(job.name, job.lxcpath);
    c.stop();
    c.wait('STOPPED', 10);
  }
  return { ms: performance.now() - t0, monitor };
}
