/**
 * What unprivileged containers cost: `pnpm bench unprivileged` (as root; needs
 * lxc, busybox-static, redis-server and root's subordinate ids, which scripts/setup-host.sh sets up).
 *
 * On a real stack (private redis-server, the API, one worker, a temporary lxcpath), full
 * lifecycles (create, start, stop, destroy) through the API at concurrency 1, the default
 * (unprivileged: the template runs in the user namespace, so the rootfs is written as the mapped
 * ids) against `privileged: true` (admin token), for the busybox template and for a cached local
 * image (the copy of an unprivileged base keeps its owners). The two kinds alternate, one
 * lifecycle each in turn (the order flipping every round), so a change in the machine's load
 * falls on both alike. Prints lifecycles/s and create p50 per kind with the ratio
 * unprivileged/privileged.
 *
 * Environment: LXCQ_BENCH_N lifecycles per kind and template (default 10).
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Stack, TEST_CONFIG } from '@lxcq/api/testing';
import { buildLocalImage, removeLocalImage } from '@lxcq/api/testing/local-image';
import { fmt, ratio, summarize, table } from './stats.ts';

const N = Number(process.env['LXCQ_BENCH_N'] ?? 10);
if (!Number.isInteger(N) || N < 1) throw new Error(`LXCQ_BENCH_N=${process.env['LXCQ_BENCH_N']} is not >= 1`);

type Kind = 'unprivileged' | 'privileged';
interface Times {
  create: number[];
  total: number[];
}

async function lifecycle(
  s: Stack,
  name: string,
  body: Record<string, unknown>,
): Promise<{ create: number; total: number }> {
  const t0 = performance.now();
  const steps: [string, string, unknown?][] = [
    ['POST', '/v1/containers', { name, ...body, config: TEST_CONFIG }],
    ['POST', `/v1/containers/${name}/start`],
    ['POST', `/v1/containers/${name}/stop`],
    ['DELETE', `/v1/containers/${name}`],
  ];
  let create = 0;
  for (const [method, path, payload] of steps) {
    const j = await s.run(method, path, payload);
    if (j.state !== 'completed') throw new Error(`${method} ${path}: ${JSON.stringify(j.error)}`);
    if (create === 0) create = performance.now() - t0;
  }
  return { create, total: performance.now() - t0 };
}

async function main(): Promise<void> {
  const image = buildLocalImage();
  const s = await Stack.start({ workerEnv: { LXCQ_IMAGES_DIR: image.dir } });
  const templates: Record<string, Record<string, unknown>> = {
    busybox: { template: 'busybox' },
    local: { template: 'local', local: { rootfs: image.rootfs, metadata: image.metadata } },
  };
  const rows: string[][] = [];
  try {
    for (const [tpl, body] of Object.entries(templates)) {
      // one of each first, unmeasured: the local image's bases are unpacked then (once per kind)
      for (const kind of ['unprivileged', 'privileged'] as const)
        await lifecycle(s, `warm-${tpl}-${kind}`, { ...body, privileged: kind === 'privileged' });
      const times: Record<Kind, Times> = {
        unprivileged: { create: [], total: [] },
        privileged: { create: [], total: [] },
      };
      for (let i = 0; i < N; i++) {
        const order: Kind[] = i % 2 === 0 ? ['unprivileged', 'privileged'] : ['privileged', 'unprivileged'];
        for (const kind of order) {
          const t = await lifecycle(s, `b-${tpl}-${kind.slice(0, 1)}${i}`, {
            ...body,
            privileged: kind === 'privileged',
          });
          times[kind].create.push(t.create);
          times[kind].total.push(t.total);
        }
      }
      const perSec = (k: Kind) => (1000 * N) / times[k].total.reduce((a, b) => a + b, 0);
      const p50 = (k: Kind) => summarize(times[k].create).p50;
      for (const k of ['unprivileged', 'privileged'] as const)
        rows.push([tpl, k, String(N), fmt(perSec(k)), fmt(p50(k), 0), fmt(summarize(times[k].total).p50, 0)]);
      rows.push([
        tpl,
        'unprivileged / privileged',
        '',
        ratio(perSec('unprivileged'), perSec('privileged')),
        ratio(p50('unprivileged'), p50('privileged')),
        '',
      ]);
    }
  } finally {
    await s.close();
    removeLocalImage(image);
  }
  console.log(
    `load average at the end: ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  console.log(
    table(['template', 'kind', 'n', 'lifecycles/s (c1)', 'create p50 ms', 'lifecycle p50 ms'], rows),
  );
}

await main();
