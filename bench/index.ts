/**
 * `pnpm bench` lists the benchmarks; `pnpm bench NAME [args]` runs one. Each prints its figures
 * next to a baseline measured in the same run, and most write `results/<name>-latest.json`.
 * They need root, lxc, busybox-static and redis-server (scripts/setup-host.sh installs them).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCHES: Record<string, { file: string; what: string }> = {
  pipeline: {
    file: 'pipeline.ts',
    what: 'container lifecycles/s through the API at concurrency 1 and 4, next to liblxc called directly, BullMQ alone and LXD 5.0',
  },
  events: {
    file: 'events.ts',
    what: 'event fan-out latency to 1/100/1000 WebSocket subscribers, next to a bare node:net server',
  },
  migrate: { file: 'migrate.ts', what: 'cold and live moves between two hosts: time, bytes, downtime' },
  'migrate-ordinary': {
    file: 'migrate-ordinary.ts',
    what: 'live move of a default container (veth, own init), next to lxc-checkpoint dump + restore',
  },
  unprivileged: {
    file: 'unprivileged.ts',
    what: 'what an unprivileged container costs next to a privileged one',
  },
  convert: {
    file: 'convert.ts',
    what: 'converting a privileged container to unprivileged, per 10,000 files',
  },
  pools: {
    file: 'pools.ts',
    what: 'create, clone, snapshot and destroy on a dir pool next to a btrfs pool; CPU per create',
  },
  usage: {
    file: 'usage.ts',
    what: "the worker's CPU per container per usage pass at 10/100/300 containers and the /metrics scrape, next to LXD 5.0's state and metrics",
  },
  trace: { file: 'trace.ts', what: "where a lifecycle's time goes inside the worker" },
  'lxc-ffi': {
    file: 'lxc-ffi/lifecycle.ts',
    what: 'start+stop through lxc-ffi next to lxc-start/lxc-stop, and the monitor fork memory',
  },
};

const [name, ...args] = process.argv.slice(2);
const bench = name === undefined ? undefined : BENCHES[name];
if (bench === undefined) {
  if (name !== undefined) console.error(`no benchmark named ${JSON.stringify(name)}\n`);
  console.log('usage: pnpm bench NAME [args]\n');
  const width = Math.max(...Object.keys(BENCHES).map((n) => n.length));
  for (const [n, b] of Object.entries(BENCHES)) console.log(`  ${n.padEnd(width)}  ${b.what}`);
  process.exit(name === undefined ? 0 : 2);
}
const file = fileURLToPath(new URL(bench.file, import.meta.url));
const run = spawnSync(process.execPath, ['--import', 'tsx', file, ...args], { stdio: 'inherit' });
process.exit(run.status ?? 1);
