/**
 * What converting a privileged container to unprivileged costs: `pnpm bench convert` (as root; needs lxc, busybox-static, redis-server, setfacl, setcap and root's
 * subordinate ids, which scripts/setup-host.sh sets up).
 *
 * On a real stack (private redis-server, the API, one worker, a temporary lxcpath), each round
 * creates a privileged busybox container (admin token), adds LXCQ_BENCH_FILES files to its rootfs
 * in directories of 500 (every 100th setuid, every 100th with a POSIX ACL, one with a file
 * capability), then converts it through the API and waits. The job's own time (startedAt to
 * finishedAt: the check pass, the shift, the config) is divided by the paths it walked. Prints
 * per round and the median, as ms per 10 000 files.
 *
 * Environment: LXCQ_BENCH_FILES files added per container (default 10000), LXCQ_BENCH_N rounds
 * (default 3).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, lchownSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Stack, TEST_CONFIG } from '@lxcq/api/testing';
import { fmt, summarize, table } from './stats.ts';

const FILES = Number(process.env['LXCQ_BENCH_FILES'] ?? 10000);
const N = Number(process.env['LXCQ_BENCH_N'] ?? 3);
for (const [k, v] of [
  ['LXCQ_BENCH_FILES', FILES],
  ['LXCQ_BENCH_N', N],
] as const)
  if (!Number.isInteger(v) || v < 1) throw new Error(`${k}=${process.env[k]} is not >= 1`);

function populate(rootfs: string): void {
  for (let i = 0; i < FILES; i++) {
    const d = join(rootfs, 'bench', `d${Math.floor(i / 500)}`);
    if (i % 500 === 0) mkdirSync(d, { recursive: true });
    const f = join(d, `f${i}`);
    writeFileSync(f, '');
    lchownSync(f, i % 65536, (i * 7) % 65536);
    if (i % 100 === 1) chmodSync(f, 0o4755);
    if (i % 100 === 2) execFileSync('setfacl', ['-m', `u:${i % 60000}:r`, f]);
  }
  execFileSync('setcap', ['cap_net_raw+ep', join(rootfs, 'bench', 'd0', 'f0')]);
}

async function main(): Promise<void> {
  const s = await Stack.start();
  const rows: string[][] = [];
  const per10k: number[] = [];
  try {
    for (let round = 0; round < N; round++) {
      const name = `bc${round}`;
      const made = await s.run('POST', '/v1/containers', {
        name,
        template: 'busybox',
        config: TEST_CONFIG,
        privileged: true,
      });
      if (made.state !== 'completed') throw new Error(`create ${name}: ${JSON.stringify(made.error)}`);
      populate(join(s.lxcpath, name, 'rootfs'));
      const j = await s.run('POST', `/v1/containers/${name}/convert`, undefined, 600);
      if (j.state !== 'completed') throw new Error(`convert ${name}: ${JSON.stringify(j.error)}`);
      const r = j.result as { files: number; shifted: number; capabilities: number; acls: number };
      const times = j as unknown as { startedAt: string; finishedAt: string };
      const ms = Date.parse(times.finishedAt) - Date.parse(times.startedAt);
      const each = (ms * 10000) / r.files;
      per10k.push(each);
      rows.push([
        String(round + 1),
        String(r.files),
        String(r.shifted),
        String(r.acls),
        String(r.capabilities),
        fmt(ms, 0),
        fmt(each, 0),
      ]);
      const gone = await s.run('DELETE', `/v1/containers/${name}`);
      if (gone.state !== 'completed') throw new Error(`destroy ${name}: ${JSON.stringify(gone.error)}`);
    }
  } finally {
    await s.close();
  }
  rows.push(['median', '', '', '', '', '', fmt(summarize(per10k).p50, 0)]);
  console.log(
    `load average at the end: ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  console.log(table(['round', 'paths', 'shifted', 'ACLs', 'caps', 'job ms', 'ms per 10k files'], rows));
}

await main();
