// Migration benchmark: time, bytes moved and (live) downtime of moving a busybox container
// between two simulated hosts (two worker processes, own lxcpaths) through the API, cold and
// live, next to the cost of the local copy the move replaces (a clone on one host) as a baseline.
// Run: pnpm bench migrate   (LXCQ_BENCH_N moves per mode, default 5)
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Stack, TEST_CONFIG, type Job } from '@lxcq/api/testing';

const N = Number(process.env.LXCQ_BENCH_N ?? 5);

interface Migration {
  bytes: number;
  ms: number;
  downtimeMs?: number;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function must(s: Stack, method: string, path: string, body?: unknown): Promise<Job> {
  const j = await s.run(method, path, body);
  if (j.state !== 'completed') throw new Error(`${method} ${path}: ${JSON.stringify(j.error)}`);
  return j;
}

async function main(): Promise<void> {
  const s = await Stack.start({ hostId: 'h1' });
  try {
    const h2 = await s.addHost('h2');
    const load0 = loadavg()[0] ?? 0;
    const rows: { mode: string; wall: number[]; moved: Migration[] }[] = [];

    // Baseline: a full copy on one host (what a cold move has to do, without the network).
    await must(s, 'POST', '/v1/containers', {
      name: 'base',
      template: 'busybox',
      config: TEST_CONFIG,
      host: 'h1',
    });
    const copy: number[] = [];
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      await must(s, 'POST', '/v1/containers/base/clone', { newName: `copy${i}` });
      copy.push(performance.now() - t);
      await must(s, 'DELETE', `/v1/containers/copy${i}`);
    }

    const cold: { wall: number[]; moved: Migration[] } = { wall: [], moved: [] };
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      const j = await must(s, 'POST', '/v1/containers/base/migrate', {
        targetHost: i % 2 === 0 ? 'h2' : 'h1',
      });
      cold.wall.push(performance.now() - t);
      cold.moved.push((j.result as { migration: Migration }).migration);
    }
    rows.push({ mode: 'cold (stopped)', ...cold });

    const hosts = (await s.http<{ id: string; capabilities: { criu: boolean } }[]>('GET', '/v1/hosts')).body;
    const criu = hosts.every((h) => h.capabilities.criu);
    if (criu) {
      await must(s, 'POST', '/v1/containers', {
        name: 'live',
        template: 'busybox',
        config: { 'lxc.net.0.type': 'empty', 'lxc.tty.max': '0', 'lxc.init.cmd': '/bin/sh /count.sh' },
        host: 'h1',
      });
      await must(s, 'PATCH', '/v1/containers/live/config', {
        clear: ['lxc.apparmor.profile', 'lxc.apparmor.allow_nesting'],
      });
      writeFileSync(
        join(s.lxcpath, 'live', 'rootfs', 'count.sh'),
        'i=0\nwhile true; do i=$((i+1)); echo $i > /count; sleep 0.1; done\n',
      );
      await must(s, 'POST', '/v1/containers/live/start');
      await sleep(300);
      const live: { wall: number[]; moved: Migration[] } = { wall: [], moved: [] };
      for (let i = 0; i < N; i++) {
        const t = performance.now();
        const j = await must(s, 'POST', '/v1/containers/live/migrate', {
          targetHost: i % 2 === 0 ? 'h2' : 'h1',
          live: true,
        });
        live.wall.push(performance.now() - t);
        live.moved.push((j.result as { migration: Migration }).migration);
      }
      rows.push({ mode: 'live (running, CRIU)', ...live });
      await must(s, 'DELETE', '/v1/containers/live?force=true');
    } else {
      console.log(
        'live: skipped, a host has no working CRIU (the product refuses live moves with LXCQ_CRIU_UNAVAILABLE)',
      );
    }
    await must(s, 'DELETE', '/v1/containers/base?force=true');

    const copyP50 = pct(copy, 50);
    console.log(
      `\nMigration of a busybox container between two hosts (${N} moves per mode, load ${load0.toFixed(1)}-${(loadavg()[0] ?? 0).toFixed(1)})`,
    );
    console.log(
      'mode                   wall p50 ms  wall p99 ms  worker ms p50  bytes moved p50  MB/s p50  downtime p50 ms  vs local copy',
    );
    console.log(
      '---------------------  -----------  -----------  -------------  ---------------  --------  ---------------  -------------',
    );
    console.log(
      `${'local copy (baseline)'.padEnd(21)}  ${copyP50.toFixed(0).padStart(11)}  ${pct(copy, 99).toFixed(0).padStart(11)}  ${'-'.padStart(13)}  ${'-'.padStart(15)}  ${'-'.padStart(8)}  ${'-'.padStart(15)}  ${'1.00x'.padStart(13)}`,
    );
    const out: Record<string, unknown> = {
      date: new Date().toISOString(),
      n: N,
      copyP50Ms: copyP50,
      modes: {},
    };
    for (const r of rows) {
      const bytes = pct(
        r.moved.map((m) => m.bytes),
        50,
      );
      const ms = pct(
        r.moved.map((m) => m.ms),
        50,
      );
      const down = r.moved.every((m) => m.downtimeMs !== undefined)
        ? pct(
            r.moved.map((m) => m.downtimeMs as number),
            50,
          )
        : NaN;
      const wall = pct(r.wall, 50);
      console.log(
        `${r.mode.padEnd(21)}  ${wall.toFixed(0).padStart(11)}  ${pct(r.wall, 99).toFixed(0).padStart(11)}  ${ms.toFixed(0).padStart(13)}  ${bytes.toFixed(0).padStart(15)}  ${(bytes / 1e6 / (ms / 1000)).toFixed(1).padStart(8)}  ${(Number.isNaN(down) ? '-' : down.toFixed(0)).padStart(15)}  ${(wall / copyP50).toFixed(2).padStart(12)}x`,
      );
      (out.modes as Record<string, unknown>)[r.mode] = {
        wallP50Ms: wall,
        wallP99Ms: pct(r.wall, 99),
        workerMsP50: ms,
        bytesP50: bytes,
        downtimeP50Ms: down,
      };
    }
    mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
    writeFileSync(
      new URL('./results/migrate-latest.json', import.meta.url),
      JSON.stringify(out, null, 2) + '\n',
    );
    void h2;
  } finally {
    await s.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
