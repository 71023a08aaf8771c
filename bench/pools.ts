/**
 * What a btrfs pool changes: `pnpm bench pools` (as root; needs lxc,
 * busybox-static, redis-server, btrfs-progs and a kernel with btrfs, as scripts/setup-host.sh
 * sets up).
 *
 * On a real stack (private redis-server, the API, one worker, a temporary lxcpath) with a btrfs
 * loop pool made through the API, in one run, each through the API and each on the dir pool
 * `default` and on the btrfs pool, the two pools alternating (the order flipping every round) so
 * a change in the machine's load falls on both alike:
 * - create from a cached local image (busybox rootfs, see test/local-image.ts), clone of a stopped
 *   container, snapshot of a stopped container, snapshot of a RUNNING one (btrfs only: the dir
 *   pool refuses it), destroy: p50/p99 ms each;
 * - the CPU a create from the image costs (the worker and the processes it waits for: lxc-copy,
 *   rsync), in CPU ms per create;
 * - full lifecycles (create from the image, start, stop, destroy) per second at concurrency 1 and 4.
 * Prints the machine's load average at the start and at the end, and writes everything as JSON
 * to bench/results/pools-latest.json (LXCQ_BENCH_OUT). Removes its stack, pool and image.
 *
 * Environment: LXCQ_BENCH_N operations per kind and pool (default 10).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Stack, TEST_CONFIG } from '@lxcq/api/testing';
import { buildLocalImage, removeLocalImage } from '@lxcq/api/testing/local-image';
import { cpuSnapshot } from './cpu.ts';
import { fmt, ratio, summarize, table } from './stats.ts';

const N = Number(process.env['LXCQ_BENCH_N'] ?? 10);
if (!Number.isInteger(N) || N < 1) throw new Error(`LXCQ_BENCH_N=${process.env['LXCQ_BENCH_N']} is not >= 1`);
const OUT =
  process.env['LXCQ_BENCH_OUT'] || fileURLToPath(new URL('./results/pools-latest.json', import.meta.url));

type PoolKind = 'dir' | 'btrfs';
const POOL: Record<PoolKind, string> = { dir: 'default', btrfs: 'bench' };
const OPS = ['create', 'clone', 'snapshot (stopped)', 'snapshot (running)', 'destroy'] as const;
type Op = (typeof OPS)[number];

async function main(): Promise<void> {
  const loadAtStart = loadavg();
  const image = buildLocalImage();
  const s = await Stack.start({ workerEnv: { LXCQ_IMAGES_DIR: image.dir } });
  const local = { rootfs: image.rootfs, metadata: image.metadata };
  const ok = async (method: string, path: string, body?: unknown) => {
    const t0 = performance.now();
    const j = await s.run(method, path, body, 300);
    if (j.state !== 'completed') throw new Error(`${method} ${path}: ${JSON.stringify(j.error)}`);
    return performance.now() - t0;
  };
  const create = (name: string, kind: PoolKind) =>
    ok('POST', '/v1/containers', { name, template: 'local', local, config: TEST_CONFIG, pool: POOL[kind] });
  const times: Record<PoolKind, Record<Op, number[]>> = {
    dir: Object.fromEntries(OPS.map((o) => [o, []])) as unknown as Record<Op, number[]>,
    btrfs: Object.fromEntries(OPS.map((o) => [o, []])) as unknown as Record<Op, number[]>,
  };
  const cpuPerCreate: Record<PoolKind, number[]> = { dir: [], btrfs: [] };
  const lifecycles: Record<PoolKind, Record<string, number>> = { dir: {}, btrfs: {} };
  try {
    await ok('POST', `/v1/hosts/${s.hostId}/pools`, { name: POOL.btrfs, driver: 'btrfs', size: '4GiB' });
    // Unmeasured: each pool's image base is unpacked by its first create.
    for (const kind of ['dir', 'btrfs'] as const) {
      await create(`warm-${kind}`, kind);
      await ok('DELETE', `/v1/containers/warm-${kind}`);
    }
    const worker = () => s.worker?.pid;
    for (let i = 0; i < N; i++) {
      const order: PoolKind[] = i % 2 === 0 ? ['dir', 'btrfs'] : ['btrfs', 'dir'];
      for (const kind of order) {
        const t = times[kind];
        const a = `${kind}-a${i}`;
        const before = cpuSnapshot({ worker: worker() });
        t.create.push(await create(a, kind));
        const after = cpuSnapshot({ worker: worker() });
        cpuPerCreate[kind].push(
          after.worker.self - before.worker.self + (after.worker.children - before.worker.children),
        );
        t.clone.push(await ok('POST', `/v1/containers/${a}/clone`, { newName: `${kind}-b${i}` }));
        t['snapshot (stopped)'].push(await ok('POST', `/v1/containers/${a}/snapshots`, {}));
        if (kind === 'btrfs') {
          await ok('POST', `/v1/containers/${a}/start`);
          t['snapshot (running)'].push(await ok('POST', `/v1/containers/${a}/snapshots`, {}));
        }
        t.destroy.push(await ok('DELETE', `/v1/containers/${kind}-b${i}?force=true`));
        await ok('DELETE', `/v1/containers/${a}?force=true&withSnapshots=true`);
      }
    }
    for (const conc of [1, 4]) {
      for (const kind of ['dir', 'btrfs'] as const) {
        const t0 = performance.now();
        let done = 0;
        await Promise.all(
          Array.from({ length: conc }, async (_x, w) => {
            for (let i = w; i < N; i += conc) {
              const name = `lc${conc}-${kind}-${i}`;
              await create(name, kind);
              await ok('POST', `/v1/containers/${name}/start`);
              await ok('POST', `/v1/containers/${name}/stop`);
              await ok('DELETE', `/v1/containers/${name}`);
              done++;
            }
          }),
        );
        lifecycles[kind][`c${conc}`] = (1000 * done) / (performance.now() - t0);
      }
    }
    await ok('DELETE', `/v1/hosts/${s.hostId}/pools/${POOL.btrfs}`);
  } finally {
    await s.close();
    removeLocalImage(image);
  }
  const rows: string[][] = [];
  for (const op of OPS) {
    const d = summarize(times.dir[op]);
    const b = summarize(times.btrfs[op]);
    rows.push([
      op,
      d.n ? fmt(d.p50, 0) : 'refused',
      d.n ? fmt(d.p99, 0) : '-',
      fmt(b.p50, 0),
      fmt(b.p99, 0),
      d.n ? ratio(b.p50, d.p50) : '-',
    ]);
  }
  const cpu = (k: PoolKind) => summarize(cpuPerCreate[k]).mean;
  rows.push([
    'CPU ms per create (mean)',
    fmt(cpu('dir'), 0),
    '',
    fmt(cpu('btrfs'), 0),
    '',
    ratio(cpu('btrfs'), cpu('dir')),
  ]);
  for (const c of ['c1', 'c4'])
    rows.push([
      `lifecycles/s ${c}`,
      fmt(lifecycles.dir[c]),
      '',
      fmt(lifecycles.btrfs[c]),
      '',
      ratio(lifecycles.btrfs[c] ?? NaN, lifecycles.dir[c] ?? NaN),
    ]);
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  console.log(
    `machine: ${cpus().length} cores; load average at start ${load(loadAtStart)}, at end ${load(loadavg())}`,
  );
  console.log(`n = ${N} per operation and pool; image rootfs ${image.rootfsBytes} bytes (xz)`);
  console.log(
    table(['operation', 'dir p50 ms', 'dir p99 ms', 'btrfs p50 ms', 'btrfs p99 ms', 'btrfs / dir'], rows),
  );
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(
    OUT,
    JSON.stringify(
      {
        at: new Date().toISOString(),
        cores: cpus().length,
        loadAtStart,
        loadAtEnd: loadavg(),
        n: N,
        ms: Object.fromEntries(
          (['dir', 'btrfs'] as const).map((k) => [
            k,
            Object.fromEntries(OPS.map((o) => [o, summarize(times[k][o])])),
          ]),
        ),
        cpuMsPerCreate: { dir: summarize(cpuPerCreate.dir), btrfs: summarize(cpuPerCreate.btrfs) },
        lifecyclesPerSec: lifecycles,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`results written to ${OUT}`);
}

await main();
