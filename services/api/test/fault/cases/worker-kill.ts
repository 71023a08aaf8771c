/**
 * Fault case 1: the worker killed with SIGKILL in the middle of each operation type.
 *
 * Each round prepares containers through the API (the worker alive), submits one job per operation
 * (one operation per round, or all of them at once in a batch round), waits for the moment to
 * strike, SIGKILLs the worker by pid, starts it again, and then checks:
 * - every job ended: completed, or failed with a documented code (exec: LXCQ_WORKER_LOST, since
 *   it may have run); a job whose operation is safe to re-run must complete;
 * - the operation's effect is whole (a clone has its whole rootfs, a named snapshot exists once,
 *   a destroyed container is gone, a started one runs ...);
 * - nothing is left behind (audit.ts: markers, half-made rootfs, snapshots and checkpoints, the
 *   registry against lxc-ls, leaked reservations, helper processes).
 * Kill points: right after the job went active, right after its first progress event, after a
 * random delay, and `twice` (again when the re-run goes active: the job is then given up).
 */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isFinal, type StoredJob } from '@lxcq/shared';
import { TEST_CONFIG } from '../../harness.ts';
import { findOrphans, formatOutcomes, outcomeOf, settle } from '../audit.ts';
import { emptyResult, rng, type CaseOptions, type CaseResult, MB } from '../report.ts';
import { FaultStack } from '../stack.ts';
import { EventTap } from '../tap.ts';

type Kill = 'active' | 'progress' | 'random' | 'twice';

interface Req {
  method: string;
  path: string;
  body?: unknown;
}

interface Ctx {
  s: FaultStack;
  tap: EventTap;
  padFile: string;
  padBytes: number;
  criu: boolean;
  problems: string[];
  /** Every accepted job id. */
  jobs: Set<string>;
  random: () => number;
  log: (line: string) => void;
}

interface OpCase {
  key: string;
  /** The handler reports progress (so the `progress` kill point applies). */
  progress?: boolean;
  /** Needs a working CRIU. */
  criu?: boolean;
  /** Makes a new container: worth killing twice (the half-made one must go when the job is given up). */
  maker?: boolean;
  prepare(c: Ctx, p: string): Promise<void>;
  request(p: string): Req;
  /** Problems with the operation's effect, given how its job ended. */
  verify(c: Ctx, p: string, job: StoredJob): string[];
  /** Failure codes that are right after a kill besides completing. */
  mayFail?: string[];
}

// What CRIU needs of a container here (docs/live-migration.md): no tty, no network, an init that holds no sockets.
const CRIU_CONFIG = {
  'lxc.net.0.type': 'empty',
  'lxc.tty.max': '0',
  'lxc.init.cmd': '/bin/sh /count.sh',
};
const COUNT_SH = 'i=0\nwhile true; do i=$((i+1)); echo $i > /count; sleep 0.1; done\n';

/** Submits through the API and waits; anything but a completed job is a broken preparation. */
async function must(c: Ctx, method: string, path: string, body?: unknown): Promise<StoredJob> {
  const sep = path.includes('?') ? '&' : '?';
  const r = await c.s.http<StoredJob>(method, `${path}${sep}wait=180`, body);
  if (r.body.id) c.jobs.add(r.body.id);
  if (r.status !== 200 || r.body.state !== 'completed') {
    const name = /^\/v1\/containers\/([^/?]+)/.exec(path)?.[1];
    const seen = c.tap.events.filter((e) => name !== undefined && e.container === name);
    throw new Error(
      `preparing: ${method} ${path} answered ${r.status}: ${r.text.slice(0, 400)}; events of ${name}: ${JSON.stringify(seen).slice(-3000)}`,
    );
  }
  return r.body;
}

async function mk(
  c: Ctx,
  name: string,
  o: { start?: boolean; pad?: boolean; criu?: boolean; snapshot?: string; freeze?: boolean } = {},
): Promise<void> {
  await must(c, 'POST', '/v1/containers', {
    name,
    template: 'busybox',
    config: o.criu ? CRIU_CONFIG : TEST_CONFIG,
  });
  const rootfs = join(c.s.lxcpath, name, 'rootfs');
  if (o.criu) {
    await must(c, 'PATCH', `/v1/containers/${name}/config`, {
      clear: ['lxc.apparmor.profile', 'lxc.apparmor.allow_nesting'],
    });
    writeFileSync(join(rootfs, 'count.sh'), COUNT_SH);
  }
  if (o.pad) copyFileSync(c.padFile, join(rootfs, 'pad'));
  if (o.snapshot) {
    await must(c, 'POST', `/v1/containers/${name}/snapshots`, { name: o.snapshot });
    writeFileSync(join(rootfs, 'after-snapshot'), 'written after the snapshot\n');
  }
  if (o.start) await must(c, 'POST', `/v1/containers/${name}/start`);
  if (o.freeze) await must(c, 'POST', `/v1/containers/${name}/freeze`);
}

/** root's first subordinate uid and gid (scripts/setup-host.sh): where convert shifts ids to. */
const subStart = (file: string) => Number(/^root:(\d+):/m.exec(readFileSync(file, 'utf8'))?.[1]);
const SUB_UID = subStart('/etc/subuid');
const SUB_GID = subStart('/etc/subgid');

const has = (c: Ctx, name: string) => c.s.lxcLs().includes(name);
const padOk = (c: Ctx, name: string): boolean => {
  try {
    return statSync(join(c.s.lxcpath, name, 'rootfs', 'pad')).size === c.padBytes;
  } catch {
    return false;
  }
};
const snapsOnDisk = (c: Ctx, name: string): string[] => {
  const d = join(c.s.lxcpath, name, 'snaps');
  return existsSync(d)
    ? readdirSync(d)
        .filter((x) => existsSync(join(d, x, 'config')))
        .sort()
    : [];
};
const checkpointsOnDisk = (c: Ctx, name: string): string[] => {
  const d = join(c.s.lxcpath, name, 'lxcq-checkpoints');
  return existsSync(d) ? readdirSync(d).sort() : [];
};
const stateIs = (c: Ctx, name: string, want: string): string[] => {
  const st = c.s.lxcState(name);
  return st === want ? [] : [`${name} is ${st}, expected ${want}`];
};
const completedOnly = (job: StoredJob, check: () => string[]): string[] =>
  job.state === 'completed' ? check() : [];

export const OPS: OpCase[] = [
  {
    key: 'create',
    progress: true,
    maker: true,
    prepare: () => Promise.resolve(),
    request: (p) => ({
      method: 'POST',
      path: '/v1/containers',
      body: { name: p, template: 'busybox', config: TEST_CONFIG, start: true },
    }),
    verify: (c, p, job) =>
      completedOnly(job, () => (has(c, p) ? stateIs(c, p, 'RUNNING') : [`${p} was not created`])),
  },
  {
    key: 'clone',
    progress: true,
    maker: true,
    prepare: (c, p) => mk(c, p, { pad: true }),
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/clone`, body: { newName: `${p}-c` } }),
    verify: (c, p, job) =>
      completedOnly(job, () => [
        ...(padOk(c, `${p}-c`) ? [] : [`clone ${p}-c has no whole rootfs (pad file missing or short)`]),
        ...(padOk(c, p) ? [] : [`clone source ${p} lost its rootfs`]),
      ]),
  },
  {
    key: 'clone-cow',
    progress: true,
    maker: true,
    prepare: (c, p) => mk(c, p, { pad: true }),
    request: (p) => ({
      method: 'POST',
      path: `/v1/containers/${p}/clone`,
      body: { newName: `${p}-c`, snapshot: true },
    }),
    verify: (c, p, job) => completedOnly(job, () => (has(c, `${p}-c`) ? [] : [`clone ${p}-c missing`])),
  },
  {
    key: 'snapshot',
    progress: true,
    prepare: (c, p) => mk(c, p, { pad: true }),
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/snapshots`, body: { name: 'keep' } }),
    verify: (c, p, job) => {
      const snaps = snapsOnDisk(c, p);
      const want = job.state === 'completed' ? ['keep'] : [];
      // A failed job may leave no snapshot at all; it must never leave a stray one.
      return JSON.stringify(snaps) === JSON.stringify(want) ||
        (job.state !== 'completed' && snaps.length === 0)
        ? []
        : [
            `${p} has snapshots [${snaps.join(',')}] after a snapshot job that ended ${outcomeOf(job)} (expected [${want.join(',')}])`,
          ];
    },
  },
  {
    key: 'snapshot-auto',
    progress: true,
    prepare: (c, p) => mk(c, p, { pad: true }),
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/snapshots`, body: {} }),
    verify: (c, p, job) => {
      const snaps = snapsOnDisk(c, p);
      const want = job.state === 'completed' ? 1 : 0;
      return snaps.length === want
        ? []
        : [
            `${p} has ${snaps.length} snapshots [${snaps.join(',')}] after one unnamed snapshot job (${outcomeOf(job)})`,
          ];
    },
  },
  {
    key: 'snap-restore',
    progress: true,
    prepare: (c, p) => mk(c, p, { pad: true, snapshot: 's0' }),
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/snapshots/s0/restore` }),
    verify: (c, p, job) =>
      completedOnly(job, () => [
        ...(existsSync(join(c.s.lxcpath, p, 'rootfs', 'after-snapshot'))
          ? [`${p} still has a file written after the snapshot it was restored to`]
          : []),
        ...(padOk(c, p) ? [] : [`${p}'s restored rootfs is not whole`]),
        ...(JSON.stringify(snapsOnDisk(c, p)) === '["s0"]'
          ? []
          : [`${p} snapshots [${snapsOnDisk(c, p).join(',')}]`]),
      ]),
  },
  {
    key: 'snap-restore-new',
    progress: true,
    maker: true,
    prepare: (c, p) => mk(c, p, { pad: true, snapshot: 's0' }),
    request: (p) => ({
      method: 'POST',
      path: `/v1/containers/${p}/snapshots/s0/restore`,
      body: { newName: `${p}-n` },
    }),
    verify: (c, p, job) =>
      completedOnly(job, () => [
        ...(padOk(c, `${p}-n`) ? [] : [`${p}-n (restored from a snapshot) has no whole rootfs`]),
        ...(existsSync(join(c.s.lxcpath, p, 'rootfs', 'after-snapshot')) ? [] : [`source ${p} was changed`]),
      ]),
  },
  {
    key: 'snap-destroy',
    prepare: (c, p) => mk(c, p, { pad: true, snapshot: 's0' }),
    request: (p) => ({ method: 'DELETE', path: `/v1/containers/${p}/snapshots/s0` }),
    verify: (c, p, job) =>
      completedOnly(job, () => (snapsOnDisk(c, p).length === 0 ? [] : [`${p}'s snapshot s0 is still there`])),
  },
  {
    key: 'rename',
    maker: true,
    prepare: (c, p) => mk(c, p, { pad: true }),
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/rename`, body: { newName: `${p}-r` } }),
    verify: (c, p, job) =>
      job.state === 'completed'
        ? [
            ...(has(c, p) ? [`${p} still exists after its rename`] : []),
            ...(padOk(c, `${p}-r`) ? [] : [`renamed ${p}-r has no whole rootfs`]),
          ]
        : // not renamed: the original must still be whole
          has(c, `${p}-r`) || !padOk(c, p)
          ? [`a failed rename left ${p}/${p}-r inconsistent`]
          : [],
  },
  {
    key: 'destroy',
    prepare: (c, p) => mk(c, p, { pad: true }),
    request: (p) => ({ method: 'DELETE', path: `/v1/containers/${p}` }),
    verify: (c, p, job) =>
      completedOnly(job, () =>
        has(c, p) || existsSync(join(c.s.lxcpath, p)) ? [`${p} still exists after its destroy`] : [],
      ),
  },
  {
    key: 'destroy-running',
    prepare: (c, p) => mk(c, p, { start: true }),
    request: (p) => ({ method: 'DELETE', path: `/v1/containers/${p}?force=true` }),
    verify: (c, p, job) =>
      completedOnly(job, () =>
        has(c, p) || existsSync(join(c.s.lxcpath, p)) ? [`${p} still exists after its destroy`] : [],
      ),
  },
  {
    key: 'start',
    prepare: (c, p) => mk(c, p),
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/start` }),
    verify: (c, p, job) => completedOnly(job, () => stateIs(c, p, 'RUNNING')),
  },
  {
    key: 'convert',
    progress: true,
    // A privileged container with a few thousand files, every 50th setuid: a kill lands mid-shift.
    prepare: async (c, p) => {
      await must(c, 'POST', '/v1/containers', {
        name: p,
        template: 'busybox',
        config: TEST_CONFIG,
        privileged: true,
      });
      const many = join(c.s.lxcpath, p, 'rootfs', 'many');
      mkdirSync(many);
      for (let i = 0; i < 3000; i++) {
        writeFileSync(join(many, `f${i}`), '');
        lchownSync(join(many, `f${i}`), i, i % 100);
        if (i % 50 === 0) chmodSync(join(many, `f${i}`), 0o4755);
      }
    },
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/convert` }),
    verify: (c, p, job) =>
      completedOnly(job, () => {
        const root = join(c.s.lxcpath, p, 'rootfs');
        const wrong: string[] = [];
        for (const i of [0, 1, 50, 2999]) {
          const st = lstatSync(join(root, 'many', `f${i}`));
          const want = [i + SUB_UID, (i % 100) + SUB_GID, i % 50 === 0 ? 0o4755 : st.mode & 0o7777];
          if (st.uid !== want[0] || st.gid !== want[1] || (st.mode & 0o7777) !== want[2])
            wrong.push(`${p}/many/f${i} is ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`);
        }
        const busybox = lstatSync(join(root, 'bin', 'busybox'));
        if (busybox.uid !== SUB_UID || (busybox.mode & 0o4000) === 0)
          wrong.push(`${p}/bin/busybox is ${busybox.uid} ${(busybox.mode & 0o7777).toString(8)}`);
        if (!/^lxc\.idmap = u 0 /m.test(readFileSync(join(c.s.lxcpath, p, 'config'), 'utf8')))
          wrong.push(`${p}'s config has no id map after a completed convert`);
        if (existsSync(join(c.s.lxcpath, '.lxcq', 'converting', p)))
          wrong.push(`${p} still has its converting marker after a completed convert`);
        return wrong.length > 0 ? [`convert of ${p} not whole: ${wrong.join('; ')}`] : [];
      }),
  },
  {
    key: 'stop',
    prepare: (c, p) => mk(c, p, { start: true }),
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/stop` }),
    verify: (c, p, job) => completedOnly(job, () => stateIs(c, p, 'STOPPED')),
  },
  {
    key: 'shutdown',
    progress: true,
    prepare: (c, p) => mk(c, p, { start: true }),
    request: (p) => ({
      method: 'POST',
      path: `/v1/containers/${p}/shutdown`,
      body: { timeout: 20, force: true },
    }),
    verify: (c, p, job) => completedOnly(job, () => stateIs(c, p, 'STOPPED')),
  },
  {
    key: 'reboot',
    prepare: (c, p) => mk(c, p, { start: true }),
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/reboot`, body: { timeout: 20 } }),
    verify: (c, p, job) => completedOnly(job, () => stateIs(c, p, 'RUNNING')),
  },
  {
    key: 'freeze',
    prepare: (c, p) => mk(c, p, { start: true }),
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/freeze` }),
    verify: (c, p, job) => completedOnly(job, () => stateIs(c, p, 'FROZEN')),
  },
  {
    key: 'unfreeze',
    prepare: (c, p) => mk(c, p, { start: true, freeze: true }),
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/unfreeze` }),
    verify: (c, p, job) => completedOnly(job, () => stateIs(c, p, 'RUNNING')),
  },
  {
    key: 'exec',
    prepare: (c, p) => mk(c, p, { start: true }),
    request: (p) => ({
      method: 'POST',
      path: `/v1/containers/${p}/exec`,
      body: { argv: ['sh', '-c', 'echo ran >> /runs; sleep 1'] },
    }),
    mayFail: ['LXCQ_WORKER_LOST'],
    verify: (c, p, job) => {
      let runs = 0;
      try {
        runs = readFileSync(join(c.s.lxcpath, p, 'rootfs', 'runs'), 'utf8')
          .split('\n')
          .filter(Boolean).length;
      } catch {
        runs = 0;
      }
      if (runs > 1) return [`exec ran its command ${runs} times`];
      if (job.state === 'completed' && runs !== 1)
        return [`exec completed but its command ran ${runs} times`];
      return [];
    },
  },
  {
    key: 'config',
    prepare: (c, p) => mk(c, p),
    request: (p) => ({
      method: 'PATCH',
      path: `/v1/containers/${p}/config`,
      body: { set: { 'lxc.environment': 'FAULT=1' } },
    }),
    verify: (c, p, job) =>
      completedOnly(job, () =>
        readFileSync(join(c.s.lxcpath, p, 'config'), 'utf8').includes('FAULT=1')
          ? []
          : [`${p}'s config lacks the key set`],
      ),
  },
  {
    key: 'limits',
    prepare: (c, p) => mk(c, p, { start: true }),
    request: (p) => ({
      method: 'PUT',
      path: `/v1/containers/${p}/limits`,
      body: { pids: 200, memory: 256 * MB },
    }),
    verify: (c, p, job) =>
      completedOnly(job, () =>
        readFileSync(join(c.s.lxcpath, p, 'config'), 'utf8').includes('pids.max')
          ? []
          : [`${p}'s config lacks pids.max`],
      ),
  },
  {
    key: 'checkpoint',
    progress: true,
    criu: true,
    prepare: (c, p) => mk(c, p, { criu: true, start: true }),
    request: (p) => ({ method: 'POST', path: `/v1/containers/${p}/checkpoint`, body: { stop: false } }),
    verify: (c, p, job) => {
      const cps = checkpointsOnDisk(c, p);
      if (job.state !== 'completed')
        return cps.length === 0 ? [] : [`a failed checkpoint left [${cps.join(',')}]`];
      const id = (job.result as { checkpoint?: string } | undefined)?.checkpoint;
      return [
        ...(JSON.stringify(cps) === JSON.stringify([id])
          ? []
          : [`${p} has checkpoints [${cps.join(',')}] after one checkpoint job (result ${id})`]),
        ...stateIs(c, p, 'RUNNING'),
      ];
    },
  },
  {
    key: 'restore',
    progress: true,
    criu: true,
    prepare: async (c, p) => {
      await mk(c, p, { criu: true, start: true });
      const j = await must(c, 'POST', `/v1/containers/${p}/checkpoint`, { stop: true });
      restoreIds.set(p, (j.result as { checkpoint: string }).checkpoint);
    },
    request: (p) => ({
      method: 'POST',
      path: `/v1/containers/${p}/restore`,
      body: { checkpoint: restoreIds.get(p) ?? 'none' },
    }),
    verify: (c, p, job) => completedOnly(job, () => stateIs(c, p, 'RUNNING')),
  },
];
const restoreIds = new Map<string, string>();

interface Round {
  ops: OpCase[];
  kill: Kill;
}

/** The rounds a profile runs. */
function plan(profile: CaseOptions['profile'], criu: boolean): Round[] {
  const ops = OPS.filter((o) => criu || !o.criu);
  if (profile === 'fast') {
    return [
      { ops, kill: 'active' },
      { ops, kill: 'random' },
      { ops: ops.filter((o) => o.maker), kill: 'twice' },
    ];
  }
  const rounds: Round[] = [];
  for (const op of ops) {
    rounds.push({ ops: [op], kill: 'active' });
    if (op.progress) rounds.push({ ops: [op], kill: 'progress' });
    rounds.push({ ops: [op], kill: 'random' });
    if (op.maker || op.key === 'snapshot' || op.key === 'checkpoint')
      rounds.push({ ops: [op], kill: 'twice' });
  }
  rounds.push({ ops, kill: 'active' }, { ops, kill: 'random' }, { ops, kill: 'random' });
  return rounds;
}

export async function workerKillCase(o: CaseOptions): Promise<CaseResult> {
  const t0 = Date.now();
  const result = emptyResult('worker SIGKILL mid-operation');
  const log = o.log ?? (() => undefined);
  const s = await FaultStack.start({ appendfsync: 'always' });
  const padDir = mkdtempSync(join(tmpdir(), 'lxcq-fault-pad-'));
  const tap = await EventTap.open(s.redisServer.url, s.keys);
  const padBytes = (o.profile === 'full' ? 96 : 48) * MB;
  const padFile = join(padDir, 'pad');
  // Random bytes: a copy of the rootfs takes a while (a kill lands mid-copy), and cannot be sparse.
  execFileSync('dd', ['if=/dev/urandom', `of=${padFile}`, 'bs=1M', `count=${padBytes / MB}`], {
    stdio: 'ignore',
  });
  const hosts = await s.http<{ capabilities: { criu: boolean } }[]>('GET', '/v1/hosts');
  const criu = hosts.body[0]?.capabilities.criu ?? false;
  const c: Ctx = {
    s,
    tap,
    padFile,
    padBytes,
    criu,
    problems: result.problems,
    jobs: new Set(),
    random: rng(o.seed),
    log,
  };
  const struck = new Map<string, number>();
  const outcomesByOp = new Map<string, Map<string, number>>();
  let orphans = 0;
  try {
    const rounds = plan(o.profile, criu);
    for (const [i, r] of rounds.entries()) {
      const label = `round ${i + 1}/${rounds.length}: kill at ${r.kill}, ${r.ops.length === 1 ? r.ops[0]?.key : `${r.ops.length} operations at once`}`;
      log(label);
      const found = await runRound(c, i + 1, r, struck, outcomesByOp);
      result.runs += r.kill === 'twice' ? 2 : 1;
      orphans += found.length;
      for (const f of found) result.problems.push(`${label}: left behind: ${f}`);
      if (!FaultStack.alive(s.api)) throw new Error('the API process died');
    }
    const settled = await settle(s, c.jobs, 30_000);
    result.submitted = c.jobs.size;
    result.definite = settled.definite;
    result.lost = settled.lost.length;
    result.orphans = orphans;
    for (const l of settled.lost) result.problems.push(`job lost: ${l}`);
    for (const u of settled.unclear) result.problems.push(`job ended without a clear code: ${u}`);
    const ops = [...struck.entries()].map(([k, n]) => `${k} ${n}`).join(', ');
    result.notes.push(`criu ${criu ? 'working' : 'unavailable: checkpoint/restore not covered'}`);
    result.notes.push(`kills landing while the job ran, by operation: ${ops}`);
    const lostWorker = [...outcomesByOp.entries()]
      .map(([k, m]) => [k, [...m.entries()].filter(([x]) => x !== 'completed')] as const)
      .filter(([, m]) => m.length > 0)
      .map(([k, m]) => `${k}: ${m.map(([x, n]) => `${x} ${n}`).join(' ')}`);
    result.notes.push(`struck jobs not completed: ${lostWorker.join('; ') || 'none'}`);
    result.notes.push(`all jobs: ${formatOutcomes(settled.outcomes)}`);
  } catch (err) {
    result.problems.push(`case aborted: ${(err as Error).stack ?? String(err)}`);
    result.problems.push(`worker log tail: ${s.workerLog.text.slice(-3000)}`);
  } finally {
    await tap.close();
    await s.close();
    rmSync(padDir, { recursive: true, force: true });
    result.seconds = (Date.now() - t0) / 1000;
  }
  return result;
}

async function runRound(
  c: Ctx,
  n: number,
  r: Round,
  struck: Map<string, number>,
  outcomesByOp: Map<string, Map<string, number>>,
): Promise<string[]> {
  const { s, tap } = c;
  const name = (op: OpCase) => `k${n}-${op.key}`;
  await Promise.all(r.ops.map((op) => op.prepare(c, name(op))));
  const from = tap.events.length;
  const ids = new Map<string, OpCase>();
  await Promise.all(
    r.ops.map(async (op) => {
      const q = op.request(name(op));
      const res = await s.http<StoredJob>(q.method, q.path, q.body);
      if (res.status !== 202 || !res.body.id) {
        c.problems.push(`round ${n}: ${op.key} was not accepted: ${res.status} ${res.text.slice(0, 300)}`);
        return;
      }
      ids.set(res.body.id, op);
      c.jobs.add(res.body.id);
    }),
  );
  const mine = (e: { job?: string }) => e.job !== undefined && ids.has(e.job);
  // The moment to strike.
  const first = await tap.waitFor((e) => e.type === 'job.active' && mine(e), 60_000, from);
  if (r.kill === 'progress') {
    const op = ids.get(first.job as string);
    if (op?.progress)
      await tap
        .waitFor((e) => e.type === 'job.progress' && e.job === first.job, 30_000, from)
        .catch(() => undefined);
  } else if (r.kill === 'random') {
    await sleep(Math.floor(c.random() * 1200));
  }
  await strike(c, ids, struck);
  await s.startWorker();
  if (r.kill === 'twice') {
    // Strike again as soon as any re-run goes active (attempt 2): that job is then given up.
    const again = await tap
      .waitFor(
        (e) => e.type === 'job.active' && mine(e) && (e.data as { attempt?: number }).attempt === 2,
        30_000,
        from,
      )
      .catch(() => null);
    if (again) {
      await strike(c, ids, struck);
      await s.startWorker();
    }
  }
  const settled = await settle(s, ids.keys(), 180_000);
  for (const [id, op] of ids) {
    const job = settled.jobs.get(id);
    const outcome = outcomeOf(job);
    let m = outcomesByOp.get(op.key);
    if (!m) outcomesByOp.set(op.key, (m = new Map<string, number>()));
    m.set(outcome, (m.get(outcome) ?? 0) + 1);
    if (!job || !isFinal(job.state)) {
      c.problems.push(`round ${n}: ${op.key} job ${id} did not end (${outcome})`);
      continue;
    }
    const allowed = ['completed', ...(op.mayFail ?? []), ...(r.kill === 'twice' ? ['LXCQ_WORKER_LOST'] : [])];
    if (!allowed.includes(outcome))
      c.problems.push(`round ${n} (${r.kill}): ${op.key} ended ${outcome}: ${job.error?.message ?? ''}`);
    for (const p of op.verify(c, name(op), job)) c.problems.push(`round ${n} (${r.kill}): ${op.key}: ${p}`);
  }
  const found = await findOrphans(s);
  // Clear the round's containers so rounds do not pile up (destroy through the API, checked too).
  // Copy-on-write clones first: their origins cannot go while they stand.
  const left = s.lxcLs().filter((x) => x.startsWith(`k${n}-`));
  const clones = left.filter((x) => existsSync(join(s.lxcpath, x, 'lxc_rdepends')));
  for (const batch of [clones, left.filter((x) => !clones.includes(x))]) {
    const cleanup = await Promise.all(
      batch.map((x) =>
        s.http<StoredJob>('DELETE', `/v1/containers/${x}?force=true&withSnapshots=true&wait=120`),
      ),
    );
    for (const [i, res] of cleanup.entries()) {
      if (res.body.id) c.jobs.add(res.body.id);
      if (res.status !== 200 || res.body.state !== 'completed')
        c.problems.push(
          `round ${n}: clean-up destroy of ${batch[i]} answered ${res.status} ${res.text.slice(0, 300)}`,
        );
    }
  }
  return found;
}

/** SIGKILLs the worker by pid and counts the round's jobs that were still running. */
async function strike(c: Ctx, ids: Map<string, OpCase>, struck: Map<string, number>): Promise<void> {
  await c.s.stopWorker('SIGKILL');
  for (const [id, op] of ids) {
    const j = await c.s.store.getJob(id);
    if (j?.state === 'active') struck.set(op.key, (struck.get(op.key) ?? 0) + 1);
  }
}
