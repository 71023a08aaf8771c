import { createInterface } from 'node:readline/promises';
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import type {
  ContainerInfo,
  ContainerState,
  ContainerUsage,
  Job,
  JobState,
  OperationName,
  PayloadOf,
  PoolInfo,
  ResultOf,
} from '@lxcq/shared';
import { CONTAINER_STATES, JOB_STATES, compareCursors, isCursor } from '../shared-runtime.ts';
import type { CreateRequest, LxcqClient } from '../client.ts';
import { isResync, type EventSelector } from '../events.ts';
import type { JobHandle } from '../job-handle.ts';
import { completionScript } from './completion.ts';
import { UsageError, configPath, readConfig, writeConfig } from './config.ts';
import { follow, type FollowMode, type Following } from './follow.ts';
import {
  bytes,
  containerDetails,
  containerRow,
  containerSummary,
  eventLine,
  hostRow,
  jobDetails,
  jobRow,
  sortUsage,
  table,
  topTable,
  usageDetails,
  type Output,
  type TopSort,
} from './output.ts';

/** What every command needs: output, a client (built on first use), and where to put the exit code. */
export interface CliContext {
  out(): Output;
  client(): LxcqClient;
  /** A client for explicit settings (login checks them before saving). */
  clientFor(url: string, token: string): LxcqClient;
  exitCode: number;
  /** The job being followed, so Ctrl-C can say how to pick it up again. */
  following: Following | null;
}

const STATES = CONTAINER_STATES;

// ---- argument parsers ----

/** Collects repeated `--x k=v` into an object. */
function keyValue(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = value.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`expected KEY=VALUE, got ${JSON.stringify(value)}`);
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function integer(value: string): number {
  if (!/^\d+$/.test(value))
    throw new InvalidArgumentError(`expected a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`expected a positive number, got ${JSON.stringify(value)}`);
  return n;
}

function size(value: string): string {
  if (!/^\d{1,15}[KMGkmg]?$/.test(value))
    throw new InvalidArgumentError(
      `expected a size such as 256M, 1G or 1048576, got ${JSON.stringify(value)}`,
    );
  return value;
}

/** A disk size: bytes, or a number with K/M/G/T (optionally KiB/MiB/GiB/TiB). */
function diskSize(value: string): string {
  if (!/^\d{1,15}([KMGT](iB)?)?$/.test(value))
    throw new InvalidArgumentError(
      `expected a size such as 512MiB, 2GiB or 1073741824, got ${JSON.stringify(value)}`,
    );
  return value;
}

/** `--since`: a cursor, an ISO time, or a duration back from now (30s, 10m, 2h, 1d). */
export function sinceCursor(value: string, now = Date.now()): string {
  if (isCursor(value)) return value;
  const d = /^(\d+)(s|m|h|d)$/.exec(value);
  if (d) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[d[2] as 's' | 'm' | 'h' | 'd'];
    return `${Math.max(0, now - Number(d[1]) * unit)}-0`;
  }
  const t = Date.parse(value);
  if (Number.isFinite(t) && /^\d{4}-\d{2}-\d{2}/.test(value)) return `${t}-0`;
  throw new InvalidArgumentError(
    `expected a cursor (1764374400000-0), a time (2026-11-29T10:00:00Z) or a duration (10m), got ${JSON.stringify(value)}`,
  );
}

// ---- running jobs ----

interface JobOpts {
  async?: boolean;
}

/** Follows a job unless --async, prints its result (or `error CODE: message`), sets the exit code. */
async function runJob<N extends OperationName>(
  ctx: CliContext,
  o: JobOpts,
  label: string,
  handle: JobHandle<N>,
  render: (result: ResultOf<N>, job: Job) => number | void,
  kind: 'job' | 'exec' = 'job',
): Promise<void> {
  const out = ctx.out();
  if (o.async) {
    const job = await handle.submitted;
    out.print(job, () => out.line(job.id));
    return;
  }
  const mode: FollowMode = out.json
    ? 'silent'
    : out.stderr.isTTY
      ? 'tty'
      : kind === 'exec'
        ? 'silent'
        : 'plain';
  const ended = await follow(handle, out, mode, label, (f) => (ctx.following = f));
  ctx.following = null;
  if (out.json) {
    out.data(ended);
    ctx.exitCode = ended.state === 'completed' ? exitOf(kind, ended) : 1;
    return;
  }
  if (ended.state === 'completed') {
    const code = render(ended.result as ResultOf<N>, ended);
    ctx.exitCode = typeof code === 'number' ? code : 0;
    return;
  }
  reportEnded(out, ended);
  ctx.exitCode = 1;
}

function exitOf(kind: 'job' | 'exec', job: Job): number {
  if (kind !== 'exec') return 0;
  const r = job.result as ResultOf<'exec'> | undefined;
  return r ? execExit(r) : 0;
}

function execExit(r: ResultOf<'exec'>): number {
  return r.timedOut ? 124 : r.exitCode;
}

/** `error CODE: message` for a failed job, a note for a cancelled one. */
function reportEnded(out: Output, job: Job): void {
  if (job.state === 'failed') {
    const e = job.error;
    out.err(`error ${e?.code ?? 'LXCQ_INTERNAL'}: ${e?.message ?? 'the job failed'}`);
    if (e?.details && Object.keys(e.details).length > 0) out.err(`  details: ${JSON.stringify(e.details)}`);
  } else if (job.state === 'cancelled') {
    out.err(`error cancelled: job ${job.id} (${job.operation} ${job.container}) was cancelled`);
  }
}

/** The human form of a job's result. */
function renderResult(out: Output, job: Job): number {
  const r = job.result;
  switch (job.operation) {
    case 'destroy':
    case 'snapshot.destroy':
      out.line(`destroyed ${(r as ResultOf<'destroy'>).destroyed}`);
      return 0;
    case 'snapshot.create':
      out.line(`snapshot ${(r as ResultOf<'snapshot.create'>).name} of ${job.container}`);
      return 0;
    case 'checkpoint': {
      const c = r as ResultOf<'checkpoint'>;
      out.line(`checkpoint ${c.checkpoint}${c.stopped ? ' (container stopped)' : ''}`);
      return 0;
    }
    case 'exec': {
      const x = r as ResultOf<'exec'>;
      out.stdout.write(x.stdout);
      out.stderr.write(x.stderr);
      if (x.timedOut) out.err(`lxcq: the command timed out (exit 124)`);
      if (x.truncated) out.err('lxcq: the output was truncated');
      return execExit(x);
    }
    case 'config.set':
    case 'config.clear': {
      // The keys this job changed, as they are now.
      const cfg = (r as ResultOf<'config.set'>).config;
      const p = job.payload as PayloadOf<'config.set'> & { keys?: string[] };
      const set = Object.fromEntries(Object.keys(p.set ?? {}).map((k) => [k, cfg[k] ?? '']));
      printMap(out, set);
      for (const k of [...(p.clear ?? []), ...(p.keys ?? [])]) out.line(`${k} (cleared)`);
      return 0;
    }
    case 'limits.set':
      printMap(out, (r as ResultOf<'limits.set'>).limits);
      return 0;
    case 'convert': {
      const c = r as ResultOf<'convert'>;
      out.line(containerSummary(c.container));
      out.line(
        c.converted
          ? `converted to unprivileged: ${c.shifted} of ${c.files} files shifted, ${c.capabilities} with capabilities, ${c.acls} with ACLs`
          : `${job.container} is unprivileged already: nothing changed`,
      );
      return 0;
    }
    default:
      out.line(containerSummary(r as ContainerInfo));
      return 0;
  }
}

/** `key = value` lines, sorted; a multi-valued key (values on several lines) gets a line per value. */
function printMap(out: Output, m: Record<string, string>): void {
  for (const [k, v] of Object.entries(m).sort(([a], [b]) => a.localeCompare(b)))
    for (const one of v.split('\n')) out.line(`${k} = ${one}`);
}

async function confirm(out: Output, question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: out.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

// ---- the program ----

/** Adds `--async` to a command that queues a job. */
function mutating(cmd: Command): Command {
  return cmd.option('--async', 'print the job id and return at once instead of following the job');
}

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('lxcq')
    .description('Control lxcq, a control plane for LXC containers, from the shell.')
    .option('--url <url>', 'lxcq API URL (default: $LXCQ_URL, then the saved login)')
    .option('--token <token>', 'API token (default: $LXCQ_TOKEN, then the saved login)')
    .option('--json', 'print machine-readable JSON only')
    .showHelpAfterError('(lxcq --help for usage)')
    .addHelpText(
      'after',
      `
Mutating commands follow their job live and end with its result; --async prints the job id instead.
Exit codes: 0 ok, 1 the operation failed, 2 usage or configuration (bad flags, unreachable
server, wrong token), exec: the command's own exit code.`,
    );

  program
    .command('login')
    .description(`check a URL and token, and save them in ${configPath()} (mode 0600)`)
    .option('--no-verify', 'save without checking the server')
    .action(async (o: { verify: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<{ url?: string; token?: string }>();
      const url = g.url ?? process.env.LXCQ_URL;
      const token = g.token ?? process.env.LXCQ_TOKEN;
      if (!url || !token) throw new UsageError('lxcq login needs --url URL and --token TOKEN');
      let hosts: number | null = null;
      if (o.verify) hosts = (await ctx.clientFor(url, token).hosts.list()).length;
      const path = configPath();
      writeConfig(path, { ...readConfig(path), url, token });
      const out = ctx.out();
      out.print({ url, config: path, hosts }, () =>
        out.line(
          `logged in to ${url}${hosts !== null ? ` (${hosts} host${hosts === 1 ? '' : 's'})` : ''}; saved in ${path}`,
        ),
      );
    });

  program
    .command('health')
    .description('is the API up, and its Redis and hosts?')
    .action(async () => {
      const h = await ctx.client().health();
      const out = ctx.out();
      out.print(h, () => {
        out.line(
          `${h.status}: redis ${h.redis}${h.hosts ? `, ${h.hosts.online}/${h.hosts.total} hosts online` : ''}`,
        );
        for (const p of h.problems) out.line(`  ${p}`);
      });
      ctx.exitCode = h.status === 'ok' ? 0 : 1;
    });

  // ---- containers ----

  program
    .command('list')
    .alias('ls')
    .description('list containers: NAME STATE HOST PID IPS')
    .option('--host <host>', 'only those on this host')
    .addOption(new Option('--state <state>', 'only those in this state').choices(STATES))
    .option('-q, --quiet', 'names only')
    .action(async (o: { host?: string; state?: ContainerState; quiet?: boolean }) => {
      const list = await ctx.client().containers.list({
        ...(o.host !== undefined ? { host: o.host } : {}),
        ...(o.state !== undefined ? { state: o.state } : {}),
      });
      list.sort((a, b) => a.name.localeCompare(b.name));
      const out = ctx.out();
      out.print(list, () => {
        if (o.quiet) for (const c of list) out.line(c.name);
        else out.line(table(['NAME', 'STATE', 'HOST', 'PID', 'IPS'], list.map(containerRow)));
      });
    });

  program
    .command('show')
    .description('show one container')
    .argument('<name>')
    .action(async (name: string) => {
      const client = ctx.client();
      const [c, usage] = await Promise.all([client.containers.get(name), client.containers.state(name)]);
      const out = ctx.out();
      out.print({ ...c, usage }, () => {
        out.line(containerDetails(c));
        out.line(usageDetails(usage));
      });
    });

  program
    .command('top')
    .description(
      'what each container uses: a live table of CPU, memory, pids, network and disk (q or Ctrl-C ends it)',
    )
    .addOption(
      new Option('--sort <key>', 'sort by').choices(['cpu', 'memory', 'rx', 'tx', 'name']).default('cpu'),
    )
    .option('--host <host>', 'only containers on this host')
    .option('--interval <seconds>', 'seconds between updates (never oftener than the hosts collect)', '5')
    .option('--once', 'print the table once and end (implied by --json)')
    .action(async (o: { sort: TopSort; host?: string; interval: string; once?: boolean }) => {
      const interval = Number(o.interval);
      if (!Number.isInteger(interval) || interval < 1 || interval > 86400)
        throw new UsageError('--interval: a whole number of seconds from 1 to 86400');
      const client = ctx.client();
      const out = ctx.out();
      const rows = new Map<string, ContainerUsage & { host: string }>();
      const list = await client.containers.list(o.host !== undefined ? { host: o.host } : {});
      const queue = [...list];
      await Promise.all(
        Array.from({ length: Math.min(8, queue.length) }, async () => {
          for (let c = queue.shift(); c; c = queue.shift()) {
            const s = await client.containers.state(c.name).catch(() => null);
            if (s) rows.set(c.name, { ...s, collectedAt: s.collectedAt ?? '' });
          }
        }),
      );
      const sorted = () => sortUsage([...rows.values()], o.sort);
      if (out.json || o.once) {
        out.print(sorted(), () => out.line(topTable(sorted(), (u) => u.host)));
        return;
      }
      const draw = () => {
        const now = new Date().toISOString().slice(11, 19);
        out.stdout.write(
          `\x1b[H\x1b[2J lxcq top  ${now}  ${rows.size} containers  sorted by ${o.sort}  (q to quit)\n\n${topTable(sorted(), (u) => u.host)}\n`,
        );
      };
      draw();
      const stream = client.events({
        types: ['container.usage'],
        interval,
        ...(o.host !== undefined ? { host: o.host } : {}),
      });
      let timer: ReturnType<typeof setTimeout> | null = null;
      const stdin = process.stdin;
      const onKey = (b: Buffer) => {
        const k = b.toString();
        if (k === 'q' || k === '\u0003') stream.close();
        const keys: Record<string, TopSort> = { c: 'cpu', m: 'memory', r: 'rx', t: 'tx', n: 'name' };
        if (keys[k]) {
          o.sort = keys[k];
          draw();
        }
      };
      if (stdin.isTTY) {
        stdin.setRawMode(true);
        stdin.on('data', onKey);
      }
      try {
        for await (const item of stream) {
          if (isResync(item) || item.type !== 'container.usage' || !item.host) continue;
          const u = item.data;
          rows.set(u.name, { ...u, host: item.host });
          // A container a host's pass no longer lists is gone from that host.
          for (const [n, r] of rows)
            if (r.host === item.host && r.collectedAt < u.collectedAt) rows.delete(n);
          timer ??= setTimeout(() => {
            timer = null;
            draw();
          }, 100);
        }
      } finally {
        if (timer) clearTimeout(timer);
        if (stdin.isTTY) {
          stdin.off('data', onKey);
          stdin.setRawMode(false);
          stdin.pause();
        }
        stream.close();
      }
    });

  mutating(program.command('create'))
    .description('create a container from a template')
    .argument('<name>')
    .addOption(
      new Option('--template <template>', 'template')
        .choices(['busybox', 'download', 'local', 'oci'])
        .default('busybox'),
    )
    .option('--start', 'start it once created')
    .option('--privileged', 'admin only: no user namespace (its root is root on the host)')
    .option('--config <key=value>', 'a config item (repeatable)', keyValue)
    .option('--host <host>', 'create it on this host (default: the one with the most room)')
    .option('--pool <pool>', "the host's storage pool to create it on (default: the dir pool)")
    .option('--disk <size>', 'disk quota (btrfs pools: 512MiB, 2GiB)', diskSize)
    .option('--dist <dist>', 'download template: distribution (debian, alpine, ...)')
    .option('--release <release>', 'download template: release')
    .option('--arch <arch>', 'download template: architecture', 'amd64')
    .option('--variant <variant>', 'download template: variant')
    .option('--rootfs <file>', 'local template: rootfs tarball in the host images directory')
    .option('--metadata <file>', 'local template: metadata tarball in the host images directory')
    .option('--oci <url>', 'oci template: image URL (docker:... or oci:...)')
    .action(
      async (
        name: string,
        o: JobOpts & {
          template: 'busybox' | 'download' | 'local' | 'oci';
          start?: boolean;
          privileged?: boolean;
          config?: Record<string, string>;
          host?: string;
          pool?: string;
          disk?: string;
          dist?: string;
          release?: string;
          arch: string;
          variant?: string;
          rootfs?: string;
          metadata?: string;
          oci?: string;
        },
      ) => {
        const req: CreateRequest = { name, template: o.template };
        if (o.start) req.start = true;
        if (o.privileged) req.privileged = true;
        if (o.config) req.config = o.config;
        if (o.host !== undefined) req.host = o.host;
        if (o.pool !== undefined) req.pool = o.pool;
        if (o.disk !== undefined) req.disk = o.disk;
        if (o.template === 'download') {
          if (!o.dist || !o.release) throw new UsageError('--template download needs --dist and --release');
          req.download = {
            dist: o.dist,
            release: o.release,
            arch: o.arch,
            ...(o.variant !== undefined ? { variant: o.variant } : {}),
          };
        } else if (o.template === 'local') {
          if (!o.rootfs || !o.metadata)
            throw new UsageError('--template local needs --rootfs and --metadata');
          req.local = { rootfs: o.rootfs, metadata: o.metadata };
        } else if (o.template === 'oci') {
          if (!o.oci) throw new UsageError('--template oci needs --oci URL');
          req.oci = { url: o.oci };
        }
        await runJob(ctx, o, `create ${name}`, ctx.client().containers.create(req), (_r, job) =>
          renderResult(ctx.out(), job),
        );
      },
    );

  for (const op of ['start', 'stop', 'freeze', 'unfreeze'] as const) {
    mutating(program.command(op))
      .description(`${op} a container`)
      .argument('<name>')
      .action(async (name: string, o: JobOpts) => {
        await runJob(ctx, o, `${op} ${name}`, ctx.client().containers[op](name), (_r, job) =>
          renderResult(ctx.out(), job),
        );
      });
  }

  mutating(program.command('reboot'))
    .description('reboot a running container through its init')
    .argument('<name>')
    .option('--timeout <seconds>', 'how long to wait for it to come back', integer)
    .action(async (name: string, o: JobOpts & { timeout?: number }) => {
      const p: PayloadOf<'reboot'> = o.timeout !== undefined ? { timeout: o.timeout } : {};
      await runJob(ctx, o, `reboot ${name}`, ctx.client().containers.reboot(name, p), (_r, job) =>
        renderResult(ctx.out(), job),
      );
    });

  mutating(program.command('shutdown'))
    .description('power a container off cleanly')
    .argument('<name>')
    .option('--timeout <seconds>', 'fail (or with --force, stop hard) after this long', integer)
    .option('--force', 'stop it hard when the timeout passes')
    .action(async (name: string, o: JobOpts & { timeout?: number; force?: boolean }) => {
      const p: PayloadOf<'shutdown'> = {
        ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
        ...(o.force ? { force: true } : {}),
      };
      await runJob(ctx, o, `shutdown ${name}`, ctx.client().containers.shutdown(name, p), (_r, job) =>
        renderResult(ctx.out(), job),
      );
    });

  mutating(program.command('destroy'))
    .description('destroy a container')
    .argument('<name>')
    .option('--with-snapshots', 'destroy its snapshots too')
    .option('--force', 'stop it first if it runs')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(
      async (name: string, o: JobOpts & { withSnapshots?: boolean; force?: boolean; yes?: boolean }) => {
        const out = ctx.out();
        if (!o.yes) {
          if (!process.stdin.isTTY || out.json)
            throw new UsageError(
              `destroy asks for confirmation: pass --yes to destroy ${name} without asking`,
            );
          if (
            !(await confirm(out, `Destroy container ${name}${o.withSnapshots ? ' and its snapshots' : ''}?`))
          ) {
            out.err('not destroyed');
            ctx.exitCode = 1;
            return;
          }
        }
        const p: PayloadOf<'destroy'> = {
          ...(o.withSnapshots ? { withSnapshots: true } : {}),
          ...(o.force ? { force: true } : {}),
        };
        await runJob(ctx, o, `destroy ${name}`, ctx.client().containers.destroy(name, p), (_r, job) =>
          renderResult(out, job),
        );
      },
    );

  mutating(program.command('convert'))
    .description('convert a stopped privileged container to unprivileged (admin token)')
    .argument('<name>')
    .action(async (name: string, o: JobOpts) => {
      await runJob(ctx, o, `convert ${name}`, ctx.client().containers.convert(name), (_r, job) =>
        renderResult(ctx.out(), job),
      );
    });

  mutating(program.command('rename'))
    .description('rename a stopped container')
    .argument('<name>')
    .argument('<new-name>')
    .action(async (name: string, newName: string, o: JobOpts) => {
      await runJob(ctx, o, `rename ${name}`, ctx.client().containers.rename(name, newName), (_r, job) =>
        renderResult(ctx.out(), job),
      );
    });

  mutating(program.command('clone'))
    .description('copy a stopped container under a new name')
    .argument('<name>')
    .argument('<new-name>')
    .option('--snapshot', 'overlayfs copy-on-write clone')
    .option('--host <host>', 'clone onto another host')
    .action(async (name: string, newName: string, o: JobOpts & { snapshot?: boolean; host?: string }) => {
      const p: PayloadOf<'clone'> = {
        newName,
        ...(o.snapshot ? { snapshot: true } : {}),
        ...(o.host !== undefined ? { host: o.host } : {}),
      };
      await runJob(ctx, o, `clone ${name}`, ctx.client().containers.clone(name, p), (_r, job) =>
        renderResult(ctx.out(), job),
      );
    });

  // ---- snapshots ----

  mutating(program.command('snapshot'))
    .description('snapshot a container')
    .argument('<name>')
    .option('--name <snapshot>', 'snapshot name (default: snapN)')
    .option('--comment <text>', 'a comment kept with it')
    .action(async (name: string, o: JobOpts & { name?: string; comment?: string }) => {
      const p: PayloadOf<'snapshot.create'> = {
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...(o.comment !== undefined ? { comment: o.comment } : {}),
      };
      await runJob(ctx, o, `snapshot ${name}`, ctx.client().snapshots.create(name, p), (_r, job) =>
        renderResult(ctx.out(), job),
      );
    });

  program
    .command('snapshots')
    .description("list a container's snapshots")
    .argument('<name>')
    .action(async (name: string) => {
      const list = await ctx.client().snapshots.list(name);
      const out = ctx.out();
      out.print(list, () =>
        out.line(
          table(
            ['NAME', 'CREATED', 'COMMENT'],
            list.map((s) => [s.name, s.createdAt ?? '-', s.comment ?? '']),
          ),
        ),
      );
    });

  mutating(program.command('restore-snapshot'))
    .description('restore a snapshot over the (stopped) container, or into a new one')
    .argument('<name>')
    .argument('<snapshot>')
    .option('--new-name <name>', 'restore into a new container of this name')
    .action(async (name: string, snap: string, o: JobOpts & { newName?: string }) => {
      const p = o.newName !== undefined ? { newName: o.newName } : {};
      await runJob(
        ctx,
        o,
        `restore-snapshot ${name} ${snap}`,
        ctx.client().snapshots.restore(name, snap, p),
        (_r, job) => renderResult(ctx.out(), job),
      );
    });

  mutating(program.command('delete-snapshot'))
    .description('destroy one snapshot')
    .argument('<name>')
    .argument('<snapshot>')
    .action(async (name: string, snap: string, o: JobOpts) => {
      await runJob(
        ctx,
        o,
        `delete-snapshot ${name} ${snap}`,
        ctx.client().snapshots.destroy(name, snap),
        (_r, job) => renderResult(ctx.out(), job),
      );
    });

  // ---- checkpoint, restore, migrate ----

  mutating(program.command('checkpoint'))
    .description("dump a running container's processes with CRIU")
    .argument('<name>')
    .option('--stop', 'stop the container after the dump')
    .action(async (name: string, o: JobOpts & { stop?: boolean }) => {
      await runJob(
        ctx,
        o,
        `checkpoint ${name}`,
        ctx.client().containers.checkpoint(name, o.stop ? { stop: true } : {}),
        (_r, job) => renderResult(ctx.out(), job),
      );
    });

  mutating(program.command('restore'))
    .description('restore a stopped container from one of its checkpoints')
    .argument('<name>')
    .argument('<checkpoint>')
    .action(async (name: string, checkpoint: string, o: JobOpts) => {
      await runJob(ctx, o, `restore ${name}`, ctx.client().containers.restore(name, checkpoint), (_r, job) =>
        renderResult(ctx.out(), job),
      );
    });

  mutating(program.command('migrate'))
    .description('move a container to another host')
    .argument('<name>')
    .requiredOption('--to <host>', 'target host')
    .option('--live', 'live migration with CRIU')
    .action(async (name: string, o: JobOpts & { to: string; live?: boolean }) => {
      const p: PayloadOf<'migrate'> = { targetHost: o.to, ...(o.live ? { live: true } : {}) };
      await runJob(ctx, o, `migrate ${name}`, ctx.client().containers.migrate(name, p), (_r, job) =>
        renderResult(ctx.out(), job),
      );
    });

  // ---- exec, config, limits ----

  mutating(program.command('exec'))
    .description("run a command in a running container; exits with the command's exit code")
    .argument('<name>')
    .argument('<command...>', 'the command and its arguments, after --')
    .option('--env <KEY=VALUE>', 'an environment variable (repeatable)', keyValue)
    .option('--cwd <dir>', 'working directory (absolute)')
    .option('--timeout <seconds>', 'kill it after this long (exit 124)', positive)
    .option('--uid <uid>', 'run as this uid', integer)
    .option('--gid <gid>', 'run as this gid', integer)
    .addHelpText('after', '\nPut the command after --:  lxcq exec web1 -- sh -c "echo hi; exit 3"')
    .action(
      async (
        name: string,
        argv: string[],
        o: JobOpts & {
          env?: Record<string, string>;
          cwd?: string;
          timeout?: number;
          uid?: number;
          gid?: number;
        },
      ) => {
        const p: PayloadOf<'exec'> = {
          argv,
          ...(o.env ? { env: o.env } : {}),
          ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
          ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
          ...(o.uid !== undefined ? { uid: o.uid } : {}),
          ...(o.gid !== undefined ? { gid: o.gid } : {}),
        };
        await runJob(
          ctx,
          o,
          `exec ${name} ${argv.join(' ')}`,
          ctx.client().containers.exec(name, p),
          (_r, job) => renderResult(ctx.out(), job),
          'exec',
        );
      },
    );

  mutating(program.command('config'))
    .description("show a container's config, or change it with --set / --clear")
    .argument('<name>')
    .option('--set <key=value>', 'set a key (repeatable)', keyValue)
    .option('--clear <key>', 'clear a key (repeatable)', collect)
    .action(async (name: string, o: JobOpts & { set?: Record<string, string>; clear?: string[] }) => {
      const out = ctx.out();
      if (!o.set && !o.clear) {
        const cfg = await ctx.client().containers.config(name);
        out.print(cfg, () => printMap(out, cfg));
        return;
      }
      const p: PayloadOf<'config.set'> = {
        ...(o.set ? { set: o.set } : {}),
        ...(o.clear ? { clear: o.clear } : {}),
      };
      await runJob(ctx, o, `config ${name}`, ctx.client().containers.patchConfig(name, p), (_r, job) =>
        renderResult(out, job),
      );
    });

  mutating(program.command('limits'))
    .description('set cgroup limits (applied live when running, saved to the config)')
    .argument('<name>')
    .option('--memory <size>', 'memory limit (256M, 1G, bytes)', size)
    .option('--memory-swap <size>', 'memory + swap limit', size)
    .option('--cpus <n>', 'CPU time, in CPUs (0.5, 2)', positive)
    .option('--cpuset <list>', 'CPUs it may run on (0-3,6)')
    .option('--cpu-weight <n>', 'CPU weight 1-10000', integer)
    .option('--pids <n>', 'process count limit', integer)
    .option('--disk <size>', 'disk quota (btrfs pools: 512MiB, 2GiB)', diskSize)
    .action(
      async (
        name: string,
        o: JobOpts & {
          memory?: string;
          memorySwap?: string;
          cpus?: number;
          cpuset?: string;
          cpuWeight?: number;
          pids?: number;
          disk?: string;
        },
      ) => {
        const p: PayloadOf<'limits.set'> = {
          ...(o.memory !== undefined ? { memory: o.memory } : {}),
          ...(o.memorySwap !== undefined ? { memorySwap: o.memorySwap } : {}),
          ...(o.cpus !== undefined ? { cpus: o.cpus } : {}),
          ...(o.cpuset !== undefined ? { cpuset: o.cpuset } : {}),
          ...(o.cpuWeight !== undefined ? { cpuWeight: o.cpuWeight } : {}),
          ...(o.pids !== undefined ? { pids: o.pids } : {}),
          ...(o.disk !== undefined ? { disk: o.disk } : {}),
        };
        if (Object.keys(p).length === 0)
          throw new UsageError(
            'limits needs at least one of --memory, --memory-swap, --cpus, --cpuset, --cpu-weight, --pids, --disk',
          );
        await runJob(ctx, o, `limits ${name}`, ctx.client().containers.setLimits(name, p), (_r, job) =>
          renderResult(ctx.out(), job),
        );
      },
    );

  // ---- hosts ----

  program
    .command('hosts')
    .description('list hosts')
    .option('-q, --quiet', 'ids only')
    .action(async (o: { quiet?: boolean }) => {
      const hosts = await ctx.client().hosts.list();
      const out = ctx.out();
      out.print(hosts, () =>
        o.quiet
          ? hosts.forEach((h) => out.line(h.id))
          : out.line(
              table(
                ['ID', 'STATUS', 'CONTAINERS', 'RUNNING', 'CORES', 'MEMORY FREE', 'CRIU', 'LAST SEEN'],
                hosts.map(hostRow),
              ),
            ),
      );
    });

  for (const action of ['drain', 'undrain'] as const) {
    program
      .command(action)
      .description(
        action === 'drain' ? 'place no new containers on a host' : 'let a host take new containers again',
      )
      .argument('<host>')
      .action(async (id: string) => {
        const h = await ctx.client().hosts[action](id);
        const out = ctx.out();
        out.print(h, () => out.line(`${h.id} ${h.status}${h.draining ? ' (draining)' : ''}`));
      });
  }

  program
    .command('forget')
    .description('remove an offline host from the registry (admin)')
    .argument('<host>')
    .option('--force', 'also drop the records of the containers it holds (they stay on that machine)')
    .action(async (id: string, o: { force?: boolean }) => {
      const r = await ctx.client().hosts.forget(id, { force: o.force === true });
      const out = ctx.out();
      out.print(r, () =>
        out.line(
          `${r.forgotten} forgotten${r.containers.length > 0 ? `, with the records of ${r.containers.join(', ')}` : ''}`,
        ),
      );
    });

  // ---- storage pools ----

  const pool = program.command('pool').description("a host's storage pools: list, create, delete");
  pool
    .command('list')
    .description("list a host's storage pools with their space")
    .argument('<host>')
    .action(async (host: string) => {
      const pools = await ctx.client().pools.list(host);
      const out = ctx.out();
      out.print(pools, () =>
        out.line(
          table(
            ['NAME', 'DRIVER', 'SOURCE', 'CAPACITY', 'USED', 'FREE', 'PATH'],
            pools.map((p: PoolInfo) => [
              p.name + (p.available ? '' : ' (unavailable)'),
              p.driver,
              p.source,
              p.capacityBytes !== undefined ? bytes(p.capacityBytes) : '-',
              p.usedBytes !== undefined ? bytes(p.usedBytes) : '-',
              p.freeBytes !== undefined ? bytes(p.freeBytes) : '-',
              p.path,
            ]),
          ),
        ),
      );
    });
  mutating(pool.command('create'))
    .description('create a btrfs pool (admin): on a loop file of --size, or on the btrfs mount at --path')
    .argument('<host>')
    .argument('<pool>')
    .addOption(
      new Option('--driver <driver>', 'pool driver').choices(['btrfs', 'zfs', 'lvm']).default('btrfs'),
    )
    .option('--size <size>', 'a loop file of this size under the worker data directory (4GiB)', diskSize)
    .option('--path <path>', 'an existing btrfs mount point')
    .action(
      async (
        host: string,
        name: string,
        o: JobOpts & { driver: 'btrfs' | 'zfs' | 'lvm'; size?: string; path?: string },
      ) => {
        if ((o.size === undefined) === (o.path === undefined))
          throw new UsageError('pool create needs exactly one of --size or --path');
        const p: PayloadOf<'pool.create'> = {
          name,
          driver: o.driver,
          ...(o.size !== undefined ? { size: o.size } : {}),
          ...(o.path !== undefined ? { path: o.path } : {}),
        };
        await runJob(ctx, o, `pool create ${name}`, ctx.client().pools.create(host, p), (r) => {
          ctx.out().line(`pool ${r.name} on ${r.host}: ${r.driver} (${r.source}) at ${r.path}`);
        });
      },
    );
  mutating(pool.command('delete'))
    .description('remove an empty storage pool (admin)')
    .argument('<host>')
    .argument('<pool>')
    .action(async (host: string, name: string, o: JobOpts) => {
      await runJob(ctx, o, `pool delete ${name}`, ctx.client().pools.delete(host, name), (r) => {
        ctx.out().line(r.existed ? `pool ${name} removed` : `pool ${name} did not exist`);
      });
    });

  // ---- jobs ----

  program
    .command('jobs')
    .description('list jobs, newest first')
    .option('--container <name>', "only this container's")
    .option('--host <host>', "only this host's")
    .addOption(new Option('--state <state>', 'only jobs in this state').choices(JOB_STATES))
    .option('--limit <n>', 'at most this many', integer, 20)
    .action(async (o: { container?: string; host?: string; state?: JobState; limit: number }) => {
      const page = await ctx.client().jobs.list({
        ...(o.container !== undefined ? { container: o.container } : {}),
        ...(o.host !== undefined ? { host: o.host } : {}),
        ...(o.state !== undefined ? { state: o.state } : {}),
        limit: o.limit,
      });
      const out = ctx.out();
      out.print(page, () =>
        out.line(
          table(
            ['ID', 'OPERATION', 'CONTAINER', 'STATE', 'PROGRESS/ERROR', 'CREATED'],
            page.jobs.map(jobRow),
          ),
        ),
      );
    });

  program
    .command('job')
    .description('show a job')
    .argument('<id>')
    .action(async (id: string) => {
      const j = await ctx.client().jobs.get(id);
      const out = ctx.out();
      out.print(j, () => out.line(jobDetails(j)));
    });

  program
    .command('wait')
    .description('follow a job to its end (exit 0 if it completed, 1 if not)')
    .argument('<id>')
    .action(async (id: string) => {
      const handle = ctx.client().jobs.handle(id);
      const job = await handle.submitted;
      await runJob(ctx, {}, `${job.operation} ${job.container}`, handle, (_r, ended) =>
        renderResult(ctx.out(), ended),
      );
    });

  program
    .command('cancel')
    .description('cancel a queued job')
    .argument('<id>')
    .action(async (id: string) => {
      const j = await ctx.client().jobs.cancel(id);
      const out = ctx.out();
      out.print(j, () => out.line(`cancelled job ${j.id} (${j.operation} ${j.container})`));
    });

  program
    .command('log')
    .description("print a job's log")
    .argument('<id>')
    .action(async (id: string) => {
      const lines = await ctx.client().jobs.log(id);
      const out = ctx.out();
      out.print(lines, () => {
        for (const l of lines) out.line(l);
      });
    });

  // ---- events ----

  program
    .command('events')
    .description('print events: those since --since (default 15m), and with --follow, live ones as they come')
    .option('-f, --follow', 'keep printing live events (reconnects by itself)')
    .option('--types <list>', 'comma list: job.*, container.state, host.* ...')
    .option('--container <name>')
    .option('--host <host>')
    .option('--job <id>')
    .option('--since <when>', 'a cursor, a time, or a duration back (30s, 10m, 2h, 1d)')
    .action(
      async (o: {
        follow?: boolean;
        types?: string;
        container?: string;
        host?: string;
        job?: string;
        since?: string;
      }) => {
        const out = ctx.out();
        let since: string | undefined;
        try {
          since = o.since !== undefined ? sinceCursor(o.since) : o.follow ? undefined : sinceCursor('15m');
        } catch (err) {
          throw new UsageError(`--since: ${(err as Error).message}`);
        }
        let head: string | null = null;
        let quiet: ReturnType<typeof setTimeout> | null = null;
        const types = o.types
          ?.split(',')
          .map((t) => t.trim())
          .filter(Boolean) as EventSelector[] | undefined;
        const stream = ctx.client().events({
          ...(types ? { types } : {}),
          ...(o.container !== undefined ? { container: o.container } : {}),
          ...(o.host !== undefined ? { host: o.host } : {}),
          ...(o.job !== undefined ? { job: o.job } : {}),
          ...(since !== undefined ? { since } : {}),
          onHello: (cursor) => {
            head ??= cursor;
            if (!o.follow) settle(since !== undefined && compareCursors(since, cursor) >= 0 ? 0 : 1500);
          },
          onReconnect: ({ delayMs, error }) => {
            if (!out.json)
              out.err(
                `lxcq: events connection lost (${error?.message ?? 'closed'}); reconnecting in ${delayMs} ms`,
              );
          },
        });
        // Without --follow: done once the replay is through. The server marks no end of it: it is
        // through at an event at or past the hello's cursor, or after a quiet moment (the replay
        // comes at once, in pages).
        function settle(ms = 500): void {
          if (quiet) clearTimeout(quiet);
          quiet = setTimeout(() => stream.close(), ms);
        }
        try {
          for await (const item of stream) {
            if (isResync(item)) {
              if (out.json) out.ndjson(item);
              else
                out.err('lxcq: events were trimmed from retention before they could be replayed: list again');
              if (!o.follow) break;
              continue;
            }
            if (out.json) out.ndjson(item);
            else out.line(eventLine(item));
            if (!o.follow) {
              if (head !== null && compareCursors(item.id, head) >= 0) break;
              settle();
            }
          }
        } finally {
          if (quiet) clearTimeout(quiet);
          stream.close();
        }
      },
    );

  program
    .command('completion')
    .description('print a shell completion script: eval "$(lxcq completion bash)"')
    .addArgument(new Argument('<shell>').choices(['bash', 'zsh']))
    .action((shell: 'bash' | 'zsh') => {
      ctx.out().stdout.write(completionScript(shell, program));
    });

  return program;
}
