/**
 * What every fault case checks once the dust settles: each accepted job ended definitely (completed,
 * cancelled, or failed with a documented code and a message), nothing accepted was lost, and nothing
 * is left behind: no creating-marker, no half-made container (nor a whole one whose making job
 * failed), rootfs, snapshot or checkpoint, no registry record that `lxc-ls` does not show (or the
 * reverse), no name reservation or lock of an ended job, nothing stuck in the host's BullMQ queue,
 * and no helper process (lxc-copy, rsync, lxc-snapshot, criu) of a dead worker still at work on the
 * lxcpath.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { ERROR_CODES, isFinal, type Store, type StoredJob } from '@lxcq/shared';
import type { FaultStack } from './stack.ts';

export interface Settled {
  /** Jobs that ended completed or cancelled, or failed with a documented code and a message. */
  definite: number;
  /** Accepted jobs with no record, or not ended by the deadline (stuck queued or active). */
  lost: string[];
  /** Ended, but failed without a documented code or message. */
  unclear: string[];
  /** "completed", "cancelled", or the failure code: how many of each. */
  outcomes: Map<string, number>;
  jobs: Map<string, StoredJob>;
}

export function isDefinite(j: StoredJob): boolean {
  if (j.state === 'completed' || j.state === 'cancelled') return true;
  if (j.state !== 'failed') return false;
  return !!j.error && Object.hasOwn(ERROR_CODES, j.error.code) && j.error.message.length > 0;
}

export function outcomeOf(j: StoredJob | undefined): string {
  if (!j) return 'missing';
  if (j.state === 'failed') return j.error?.code ?? 'failed-without-code';
  return j.state;
}

/** Waits (up to `timeoutMs`) until every job in `ids` has ended, then sorts them out. */
export async function settle(s: FaultStack, ids: Iterable<string>, timeoutMs = 120_000): Promise<Settled> {
  const all = [...new Set(ids)];
  const jobs = new Map<string, StoredJob>();
  const deadline = Date.now() + timeoutMs;
  let open = all;
  for (;;) {
    const next: string[] = [];
    for (let i = 0; i < open.length; i += 200) {
      const batch = open.slice(i, i + 200);
      const got = await Promise.all(batch.map((id) => s.store.getJob(id)));
      got.forEach((j, k) => {
        const id = batch[k] as string;
        if (j) jobs.set(id, j);
        if (!j || !isFinal(j.state)) next.push(id);
      });
    }
    open = next;
    if (open.length === 0 || Date.now() > deadline) break;
    await sleep(250);
  }
  const out: Settled = { definite: 0, lost: [], unclear: [], outcomes: new Map(), jobs };
  for (const id of all) {
    const j = jobs.get(id);
    const o = outcomeOf(j);
    out.outcomes.set(o, (out.outcomes.get(o) ?? 0) + 1);
    if (!j || !isFinal(j.state)) out.lost.push(`${id} (${j ? `${j.operation} ${j.state}` : 'no record'})`);
    else if (isDefinite(j)) out.definite++;
    else out.unclear.push(`${id} (${j.operation} ${o}: ${JSON.stringify(j.error)})`);
  }
  return out;
}

export function formatOutcomes(m: Map<string, number>): string {
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

/** `<lxcpath>/<name>`'s rootfs is whole: the busybox template's binary is there. */
function rootfsProblem(lxcpath: string, dir: string, label: string): string | null {
  const configPath = join(dir, 'config');
  if (!existsSync(configPath)) return `${label}: no config file (half-made)`;
  const cfg = readFileSync(configPath, 'utf8');
  const m = /^\s*lxc\.rootfs\.path\s*=\s*(\S+)\s*$/m.exec(cfg);
  if (!m?.[1]) return `${label}: config has no lxc.rootfs.path (half-made)`;
  const spec = m[1];
  if (spec.startsWith('overlay:') || spec.startsWith('overlayfs:')) {
    const [, lower = '', upper = ''] = spec.split(':');
    if (!existsSync(upper)) return `${label}: overlay upper dir ${upper} missing`;
    if (!existsSync(join(lower, 'bin', 'busybox')))
      return `${label}: overlay lower dir ${lower} is not whole`;
    return null;
  }
  const path = spec.replace(/^dir:/, '');
  if (!path.startsWith(lxcpath)) return null; // not one of ours to judge
  if (!existsSync(join(path, 'bin', 'busybox')))
    return `${label}: rootfs ${path} is not whole (no bin/busybox)`;
  return null;
}

/** Everything left behind in the lxcpath and in Redis; an empty list when clean. */
export async function findOrphans(
  s: FaultStack,
  opts: { registryWaitMs?: number; checkProcesses?: boolean } = {},
): Promise<string[]> {
  const found: string[] = [];
  const lx = s.lxcpath;
  // 1. creating-markers: a container some job started making and nobody finished or removed
  const markers = join(lx, '.lxcq', 'creating');
  if (existsSync(markers))
    for (const m of readdirSync(markers))
      found.push(`creating-marker left for ${m} (job ${readFileSync(join(markers, m), 'utf8')})`);
  // 2. half-made containers, snapshots and checkpoints
  const defined = new Set(s.lxcLs());
  for (const name of readdirSync(lx)) {
    if (name.startsWith('.')) continue;
    const dir = join(lx, name);
    if (!statSync(dir).isDirectory()) {
      found.push(`stray file ${dir}`);
      continue;
    }
    if (!defined.has(name)) {
      found.push(`directory ${name} is no container lxc-ls knows (half-made or half-removed)`);
      continue;
    }
    const p = rootfsProblem(lx, dir, `container ${name}`);
    if (p) found.push(p);
    const snaps = join(dir, 'snaps');
    if (existsSync(snaps)) {
      for (const snap of readdirSync(snaps)) {
        const sp = rootfsProblem(lx, join(snaps, snap), `snapshot ${name}/${snap}`);
        if (sp) found.push(sp);
      }
    }
    const cps = join(dir, 'lxcq-checkpoints');
    if (existsSync(cps)) {
      for (const cp of readdirSync(cps)) {
        if (!existsSync(join(cps, cp, 'inventory.img')))
          found.push(`checkpoint ${name}/${cp} is incomplete (no inventory.img: a dump that never finished)`);
      }
    }
  }
  // 2b. whole containers that the job making them did not complete (its marker gone, itself not)
  found.push(...(await unmadeContainers(s.store, lx)));
  // 3. the registry (Redis) against lxc-ls, snapshots included; the inventory may trail a moment
  const deadline = Date.now() + (opts.registryWaitMs ?? 10_000);
  let diff: string[] = [];
  for (;;) {
    diff = await registryDiff(s);
    if (diff.length === 0 || Date.now() > deadline) break;
    await sleep(250);
  }
  found.push(...diff);
  // 4. reservations and locks held for jobs that have ended
  for (const key of await scanKeys(s, `${s.keys.prefix}:claim:*`)) {
    const id = await s.redis.get(key);
    const j = id ? await s.store.getJob(id) : null;
    if (!j || isFinal(j.state))
      found.push(`name reservation ${key} held by ended job ${id} (${outcomeOf(j ?? undefined)})`);
  }
  for (const key of await scanKeys(s, `${s.keys.prefix}:pending:*`)) {
    for (const id of await s.redis.zrange(key, '0', '-1')) {
      const j = await s.store.getJob(id);
      if (!j || isFinal(j.state))
        found.push(`lock queue ${key} still lists ended job ${id} (${outcomeOf(j ?? undefined)})`);
    }
  }
  // 5. the host's BullMQ queue drains (entries of ended jobs are skipped by the worker)
  const q = new Queue(s.keys.queue(s.hostId), { connection: s.redis, prefix: s.keys.bullPrefix });
  try {
    let counts: Record<string, number> = {};
    for (let i = 0; i < 40; i++) {
      counts = await q.getJobCounts('active', 'wait', 'delayed', 'prioritized', 'waiting-children');
      if (Object.values(counts).every((n) => n === 0)) break;
      await sleep(250);
    }
    const left = Object.entries(counts).filter(([, n]) => n > 0);
    if (left.length > 0)
      found.push(`BullMQ queue not drained: ${left.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  } finally {
    await q.close();
  }
  // 6. helper processes of a dead worker still working on the lxcpath
  if (opts.checkProcesses !== false) found.push(...helperProcesses(lx));
  return found;
}

/** The name a job makes, for the operations that make a container. */
function madeName(j: StoredJob): string | undefined {
  if (j.operation === 'create') return j.container;
  if (j.operation === 'clone' || j.operation === 'rename' || j.operation === 'snapshot.restore') {
    const n = (j.payload as { newName?: unknown }).newName;
    return typeof n === 'string' ? n : undefined;
  }
  return undefined;
}

/**
 * Container directories whose making job did not complete: the last create, clone, rename or
 * restore-to-new of the name ended failed or cancelled, so nothing of it may stay. A container
 * whose creating-marker was removed and whose directory was not (a start-up sweep that only
 * unmarks) is whole, so lxc-ls lists it and the inventory records it: only its job tells.
 * LXCQ_CONTAINER_EXISTS failures are left out: the directory there was never the job's.
 */
export async function unmadeContainers(store: Store, lxcpath: string): Promise<string[]> {
  const dirs = readdirSync(lxcpath).filter(
    (n) => !n.startsWith('.') && statSync(join(lxcpath, n)).isDirectory(),
  );
  if (dirs.length === 0) return [];
  const last = new Map<string, StoredJob>();
  const ids = await store.redis.zrange(store.keys.jobs, '0', '-1');
  for (let i = 0; i < ids.length; i += 200) {
    for (const j of await Promise.all(ids.slice(i, i + 200).map((id) => store.getJob(id)))) {
      const name = j ? madeName(j) : undefined;
      if (j && name !== undefined && (last.get(name)?.seq ?? -1) < j.seq) last.set(name, j);
    }
  }
  const found: string[] = [];
  for (const name of dirs) {
    const j = last.get(name);
    if (!j || (j.state !== 'failed' && j.state !== 'cancelled')) continue;
    if (j.error?.code === 'LXCQ_CONTAINER_EXISTS') continue;
    found.push(
      `container ${name} is on disk, but the ${j.operation} job ${j.id} making it ended ${outcomeOf(j)} (not removed)`,
    );
  }
  return found;
}

/** lxc-copy, rsync, lxc-snapshot, criu ... still running on `lxcpath` (container monitors aside). */
export function helperProcesses(lxcpath: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.includes(lxcpath) && !l.includes('[lxc monitor]') && !l.includes('lxc-monitord'))
    .filter((l) => !/\bps -eo\b/.test(l))
    .map((l) => `helper process still running: ${l.trim().slice(0, 200)}`);
}

async function scanKeys(s: FaultStack, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await s.redis.scan(cursor, 'MATCH', pattern, 'COUNT', '1000');
    cursor = next;
    out.push(...batch);
  } while (cursor !== '0');
  return out;
}

/** Differences between the registry and what liblxc's tools see on disk; empty when they agree. */
export async function registryDiff(s: FaultStack): Promise<string[]> {
  const reg = (await s.store.listContainers()).filter((c) => c.host === s.hostId);
  const disk = s.lxcLs();
  const regNames = reg.map((c) => c.name).sort();
  const out: string[] = [];
  for (const n of regNames) if (!disk.includes(n)) out.push(`registry lists ${n}, lxc-ls does not`);
  for (const n of disk) if (!regNames.includes(n)) out.push(`lxc-ls lists ${n}, the registry does not`);
  for (const c of reg) {
    if (!disk.includes(c.name)) continue;
    const snapsDir = join(s.lxcpath, c.name, 'snaps');
    const onDisk = existsSync(snapsDir)
      ? readdirSync(snapsDir)
          .filter((d) => existsSync(join(snapsDir, d, 'config')))
          .sort()
      : [];
    const listed = (c.snapshots ?? []).map((x) => x.name).sort();
    if (JSON.stringify(onDisk) !== JSON.stringify(listed))
      out.push(`snapshots of ${c.name}: registry [${listed.join(',')}], disk [${onDisk.join(',')}]`);
  }
  return out;
}

/**
 * Every job record in Redis that has not ended, accepted or not: a record left queued by a request
 * that failed half-way would sit in GET /v1/jobs forever. Waits up to `timeoutMs` for them to end.
 */
export async function unfinishedJobs(s: FaultStack, timeoutMs = 30_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ids = await s.redis.zrange(s.keys.jobs, '0', '-1');
    const open: string[] = [];
    for (let i = 0; i < ids.length; i += 200) {
      const batch = ids.slice(i, i + 200);
      const jobs = await Promise.all(batch.map((id) => s.store.getJob(id)));
      jobs.forEach((j, k) => {
        if (j && !isFinal(j.state)) open.push(`${batch[k]} (${j.operation} on ${j.container}, ${j.state})`);
      });
    }
    if (open.length === 0 || Date.now() > deadline) return open;
    await sleep(500);
  }
}
