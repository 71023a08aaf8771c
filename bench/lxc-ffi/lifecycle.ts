// Start+stop cost through lxc-ffi (from a worker thread) next to the lxc-start/lxc-stop CLI, and the
// monitor's private memory for Container.start() (helper), startInProcess() and lxc-start.
// Usage: pnpm bench lxc-ffi [cycles]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Container, monitorMemory } from '@lxcq/lxc-ffi';
import type { Job, cycles } from './cycles.ts';

{
  const n = Number(process.argv[2] ?? 10);
  const lxcpath = mkdtempSync(join(tmpdir(), 'lxcq-bench-'));
  const name = 'bench1';
  try {
    const c = Container.open(name, lxcpath);
    c.setConfigItem('lxc.net.0.type', 'empty');
    c.setConfigItem('lxc.tty.max', '0');
    c.create('busybox');
    c.saveConfig();
    const inWorker = (mode: Job['mode']): Promise<ReturnType<typeof cycles>> =>
      new Promise((resolve, reject) => {
        const w = new Worker(new URL('./worker.mjs', import.meta.url), {
          workerData: { lxcpath, name, n, mode } satisfies Job,
        });
        w.once('message', (m: ReturnType<typeof cycles>) => {
          void w.terminate();
          resolve(m);
        });
        w.once('error', reject);
      });
    const helper = await inWorker('helper');
    const inproc = await inWorker('inprocess');
    let cliMonitor: ReturnType<typeof monitorMemory> = null;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      execFileSync('lxc-start', ['-n', name, '-P', lxcpath]);
      if (i === 0) cliMonitor = monitorMemory(name, lxcpath);
      execFileSync('lxc-stop', ['-n', name, '-P', lxcpath, '-k']);
    }
    const cliMs = performance.now() - t0;
    const per = (ms: number): string => `${(ms / n).toFixed(1)} ms/cycle`;
    const mem = (m: { privateDirtyKb: number; rssKb: number } | null): string =>
      m ? `monitor rss ${m.rssKb} kB, private_dirty ${m.privateDirtyKb} kB` : 'monitor not found';
    console.log(`${n} start+stop cycles of a busybox container (lxc.net.0.type = empty)`);
    console.log(
      `  Container.start()  (lxc-start helper, worker thread): ${per(helper.ms)}  ratio to CLI ${(helper.ms / cliMs).toFixed(2)}  ${mem(helper.monitor)}`,
    );
    console.log(
      `  startInProcess()   (raw c->start, worker thread):     ${per(inproc.ms)}  ratio to CLI ${(inproc.ms / cliMs).toFixed(2)}  ${mem(inproc.monitor)}`,
    );
    console.log(
      `  lxc-start/lxc-stop -k CLI:                            ${per(cliMs)}  ratio 1.00  ${mem(cliMonitor)}`,
    );
    c.destroy();
    c[Symbol.dispose]();
  } finally {
    rmSync(lxcpath, { recursive: true, force: true });
  }
}
