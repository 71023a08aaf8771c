// Live migration of an ordinary container (busybox template with lxcq's defaults: a veth on
// lxcbr0, its own init; privileged, as CRIU here cannot restore a veth inside a user namespace)
// holding 64 MB of dirtied memory, through the API between two simulated hosts: total time and
// downtime p50/p99, and a cold move of the same container. The floor, measured in the same run on
// the same container: liblxc's own `lxc-checkpoint` dump (stopping it) and restore on one host,
// with no transfer and no lxcq in between. Goal of issue 18: live downtime within 1.5x the floor.
// Run: pnpm bench migrate-ordinary   (LXCQ_BENCH_N moves per mode, default 5)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Stack, type Job } from '@lxcq/api/testing';
import { fmt, percentile, ratio, summarize, table } from './stats.ts';

const N = Number(process.env.LXCQ_BENCH_N ?? 5);
const MB = 64;

async function must(s: Stack, method: string, path: string, body?: unknown): Promise<Job> {
  const j = await s.run(method, path, body);
  if (j.state !== 'completed') throw new Error(`${method} ${path}: ${JSON.stringify(j.error)}`);
  return j;
}

/** The resident memory (kB) of the container's memory holder, read inside the container. */
async function holderRssKb(s: Stack, name: string): Promise<number> {
  const j = await must(s, 'POST', `/v1/containers/${name}/exec`, {
    argv: ['sh', '-c', 'grep VmRSS /proc/$(cat /hold.pid)/status'],
  });
  return Number(/(\d+)/.exec((j.result as { stdout: string }).stdout)?.[1] ?? NaN);
}

async function main(): Promise<void> {
  const s = await Stack.start({ hostId: 'h1' });
  const paths: Record<string, string> = { h1: s.lxcpath };
  try {
    paths.h2 = await s.addHost('h2');
    const hosts = (await s.http<{ id: string; capabilities: { criu: boolean } }[]>('GET', '/v1/hosts')).body;
    if (!hosts.every((h) => h.capabilities.criu)) {
      console.log(
        'no working CRIU on a host: live moves are refused here (LXCQ_CRIU_UNAVAILABLE); nothing to measure',
      );
      return;
    }
    const load0 = loadavg()[0] ?? 0;
    await must(s, 'POST', '/v1/containers', {
      name: 'ord',
      template: 'busybox',
      host: 'h1',
      privileged: true,
    });
    // A process holding 64 MB it wrote (a shell variable), started in its own session by hand.
    writeFileSync(
      join(s.lxcpath, 'ord', 'rootfs', 'hold.sh'),
      `echo $$ > /hold.pid\nv=$(head -c ${MB * 1024 * 1024} /dev/zero | tr '\\0' x)\nwhile true; do sleep 1; done\n`,
    );
    await must(s, 'POST', '/v1/containers/ord/start');
    await must(s, 'POST', '/v1/containers/ord/exec', {
      argv: ['sh', '-c', 'setsid sh /hold.sh </dev/null >/dev/null 2>&1 &'],
    });
    let rss = 0;
    for (let i = 0; i < 100 && !(rss >= MB * 1024); i++) {
      await sleep(200);
      rss = await holderRssKb(s, 'ord').catch(() => 0);
    }
    if (!(rss >= MB * 1024)) throw new Error(`the memory holder did not reach ${MB} MB (VmRSS ${rss} kB)`);

    let at = 'h1';
    const live = {
      total: [] as number[],
      down: [] as number[],
      worker: [] as number[],
      bytes: [] as number[],
    };
    for (let i = 0; i < N; i++) {
      const to = at === 'h1' ? 'h2' : 'h1';
      const t = performance.now();
      const j = await must(s, 'POST', '/v1/containers/ord/migrate', { targetHost: to, live: true });
      live.total.push(performance.now() - t);
      const m = (j.result as { migration: { ms: number; downtimeMs: number; bytes: number } }).migration;
      live.down.push(m.downtimeMs);
      live.worker.push(m.ms);
      live.bytes.push(m.bytes);
      at = to;
    }
    const rssAfter = await holderRssKb(s, 'ord');

    // The floor: lxc-checkpoint dump (stop) and restore, on the host it is on, nothing else.
    const floor = { dump: [] as number[], restore: [] as number[], down: [] as number[] };
    for (let i = 0; i < N; i++) {
      const dir = mkdtempSync(join(tmpdir(), 'lxcq-bench-cp-'));
      const args = ['-n', 'ord', '-P', paths[at] as string, '-D', dir];
      try {
        const t0 = performance.now();
        execFileSync('lxc-checkpoint', ['-s', ...args], { stdio: 'ignore' });
        const t1 = performance.now();
        execFileSync('lxc-checkpoint', ['-r', ...args], { stdio: 'ignore' });
        const t2 = performance.now();
        floor.dump.push(t1 - t0);
        floor.restore.push(t2 - t1);
        floor.down.push(t2 - t0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }

    await must(s, 'POST', '/v1/containers/ord/stop');
    const cold: number[] = [];
    for (let i = 0; i < N; i++) {
      const to = at === 'h1' ? 'h2' : 'h1';
      const t = performance.now();
      await must(s, 'POST', '/v1/containers/ord/migrate', { targetHost: to });
      cold.push(performance.now() - t);
      at = to;
    }
    await must(s, 'DELETE', '/v1/containers/ord?force=true');

    const p = (xs: number[], q: number) => fmt(percentile(xs, q), 0);
    const floorP50 = percentile(floor.down, 50);
    console.log(
      `\nAn ordinary busybox container holding ${MB} MB (VmRSS ${Math.round(rss / 1024)} MB before, ${Math.round(rssAfter / 1024)} MB after the moves), ${N} runs per row, load ${load0.toFixed(1)}-${(loadavg()[0] ?? 0).toFixed(1)}`,
    );
    console.log(
      table(
        ['what', 'total p50 ms', 'total p99 ms', 'downtime p50 ms', 'downtime p99 ms', 'downtime vs floor'],
        [
          [
            'floor: lxc-checkpoint dump + restore, one host',
            p(floor.down, 50),
            p(floor.down, 99),
            p(floor.down, 50),
            p(floor.down, 99),
            '1.00x',
          ],
          [
            'lxcq live move h1 <-> h2',
            p(live.total, 50),
            p(live.total, 99),
            p(live.down, 50),
            p(live.down, 99),
            ratio(percentile(live.down, 50), floorP50),
          ],
          ['lxcq cold move h1 <-> h2 (stopped)', p(cold, 50), p(cold, 99), '-', '-', '-'],
        ],
      ),
    );
    console.log(
      `floor parts p50: dump ${p(floor.dump, 50)} ms, restore ${p(floor.restore, 50)} ms; live move bytes p50 ${fmt(percentile(live.bytes, 50) / 1e6, 1)} MB, worker time p50 ${p(live.worker, 50)} ms`,
    );
    mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
    writeFileSync(
      new URL('./results/migrate-ordinary-latest.json', import.meta.url),
      JSON.stringify(
        {
          date: new Date().toISOString(),
          n: N,
          memoryMB: MB,
          load: [load0, loadavg()[0] ?? 0],
          floorDowntimeMs: summarize(floor.down),
          floorDumpMs: summarize(floor.dump),
          floorRestoreMs: summarize(floor.restore),
          liveTotalMs: summarize(live.total),
          liveDowntimeMs: summarize(live.down),
          liveBytes: summarize(live.bytes),
          coldTotalMs: summarize(cold),
        },
        null,
        2,
      ) + '\n',
    );
  } finally {
    await s.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
