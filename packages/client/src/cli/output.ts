import type { ContainerInfo, ContainerStateReport, ContainerUsage, HostInfo, Job } from '@lxcq/shared';
import type { EventOf } from '../events.ts';

/** Where the CLI writes: stdout for results, stderr for progress and errors. */
export class Output {
  constructor(
    readonly json: boolean,
    readonly stdout: NodeJS.WriteStream = process.stdout,
    readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {}

  /** Colours only on a terminal, and not when NO_COLOR is set. */
  get color(): boolean {
    return this.stderr.isTTY && !process.env.NO_COLOR;
  }

  line(text = ''): void {
    this.stdout.write(`${text}\n`);
  }

  err(text: string): void {
    this.stderr.write(`${text}\n`);
  }

  data(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** One JSON document per line (event streams). */
  ndjson(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value)}\n`);
  }

  /** Human output, or `value` as JSON with --json. */
  print(value: unknown, human: () => void): void {
    if (this.json) this.data(value);
    else human();
  }
}

/** Left-aligned columns, two spaces apart, headers in capitals. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [fmt(headers), ...rows.map(fmt)].join('\n');
}

/** `key: value` lines, keys aligned. */
export function keyValues(pairs: [string, string][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(w)} ${v}`).join('\n');
}

export function containerRow(c: ContainerInfo): string[] {
  return [
    c.name,
    c.state,
    c.host,
    c.pid !== undefined ? String(c.pid) : '-',
    c.ips?.length ? c.ips.join(',') : '-',
  ];
}

export function containerSummary(c: ContainerInfo): string {
  const parts = [`${c.name} ${c.state} on ${c.host}`];
  if (c.pid !== undefined) parts.push(`pid ${c.pid}`);
  if (c.ips?.length) parts.push(`ips ${c.ips.join(',')}`);
  return parts.join(', ');
}

export function containerDetails(c: ContainerInfo): string {
  const pairs: [string, string][] = [
    ['name', c.name],
    ['state', c.state],
    ['host', c.host],
    ['pid', c.pid !== undefined ? String(c.pid) : '-'],
    ['ips', c.ips?.length ? c.ips.join(', ') : '-'],
    ['snapshots', c.snapshots?.length ? c.snapshots.map((s) => s.name).join(', ') : '-'],
    ['checkpoints', c.checkpoints?.length ? c.checkpoints.join(', ') : '-'],
    [
      'privileged',
      c.privileged === undefined
        ? '-'
        : c.privileged
          ? 'yes (no user namespace: its root is root on the host)'
          : 'no (user namespace)',
    ],
    ['pool', c.pool ?? '-'],
    [
      'disk',
      c.disk
        ? `${bytes(c.disk.usedBytes)} used${c.disk.limitBytes !== null ? ` of a ${bytes(c.disk.limitBytes)} quota` : ', no quota'}`
        : '-',
    ],
    ['updated', c.updatedAt],
  ];
  return keyValues(pairs);
}

export function bytes(n: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)}${units[i] ?? ''}`;
}

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function hostRow(h: HostInfo): string[] {
  const c = h.capabilities;
  return [
    h.id,
    h.status,
    String(c.containers),
    String(c.running),
    String(c.cores),
    `${bytes(c.freeMemoryBytes)}/${bytes(c.memoryBytes)}`,
    c.criu ? 'yes' : 'no',
    ago(h.lastSeen),
  ];
}

export function jobRow(j: Job): string[] {
  const progress =
    j.state === 'active' && j.progress
      ? `${j.progress.percent}% ${j.progress.stage}`
      : j.error
        ? j.error.code
        : '';
  return [j.id, j.operation, j.container, j.state, progress, ago(j.createdAt)];
}

export function jobDetails(j: Job): string {
  const pairs: [string, string][] = [
    ['id', j.id],
    ['operation', j.operation],
    ['container', j.container],
    ['host', j.host],
    ['state', j.state],
  ];
  if (j.queuePosition !== undefined && j.state === 'queued')
    pairs.push(['queue position', String(j.queuePosition)]);
  if (j.progress) pairs.push(['progress', `${j.progress.percent}% ${j.progress.stage}`]);
  pairs.push(['payload', JSON.stringify(j.payload)]);
  pairs.push(['created', j.createdAt]);
  if (j.startedAt) pairs.push(['started', j.startedAt]);
  if (j.finishedAt) pairs.push(['finished', j.finishedAt]);
  if (j.attempts !== undefined) pairs.push(['attempts', String(j.attempts)]);
  if (j.result !== undefined) pairs.push(['result', JSON.stringify(j.result)]);
  if (j.error) pairs.push(['error', `${j.error.code}: ${j.error.message}`]);
  return keyValues(pairs);
}

/** One line per event: time, type, where, what. */
export function eventLine(e: EventOf): string {
  const where = [e.container, e.host && `@${e.host}`].filter(Boolean).join(' ');
  let what: string;
  switch (e.type) {
    case 'container.state':
      what = `${e.data.from} -> ${e.data.to} (${e.data.source}${e.data.exitStatus !== undefined ? `, exit ${e.data.exitStatus}` : ''})`;
      break;
    case 'container.created':
    case 'container.destroyed':
      what = `(${e.data.source})`;
      break;
    case 'container.renamed':
    case 'container.moved':
      what = `${e.data.from} -> ${e.data.to}`;
      break;
    case 'container.broken':
      what = `BROKEN: ${e.data.reason}`;
      break;
    case 'container.cold-started':
      what = `started afresh, checkpoint ${e.data.checkpoint} kept: ${e.data.reason}`;
      break;
    case 'job.queued':
      what = `${e.data.operation} (queue position ${e.data.queuePosition})`;
      break;
    case 'job.active':
      what = `${e.data.operation} (attempt ${e.data.attempt})`;
      break;
    case 'job.progress':
      what = `${e.data.percent}% ${e.data.stage}`;
      break;
    case 'job.completed':
      what = e.data.operation;
      break;
    case 'job.failed':
      what = `${e.data.operation}: ${e.data.error.code}: ${e.data.error.message}`;
      break;
    case 'job.cancelled':
      what = e.data.operation;
      break;
    case 'container.usage':
      what = usageLine(e.data);
      break;
    case 'host.online':
      what = 'online';
      break;
    case 'host.offline':
      what = `offline (last seen ${e.data.lastSeen})`;
      break;
    case 'host.draining':
      what = e.data.draining ? 'draining' : 'undrained';
      break;
    case 'host.forgotten':
      what = `forgotten${e.data.containers.length > 0 ? ` with its containers ${e.data.containers.join(', ')}` : ''}`;
      break;
  }
  const job = e.job ? `  job ${e.job}` : '';
  return `${e.time}  ${e.type.padEnd(19)}  ${where}  ${what}${job}`;
}

// ---- usage ----

/** `42%` of one core, with the limit when there is one: `42%/200%`. */
export function cpuText(cpu: ContainerUsage['cpu']): string {
  if (!cpu) return '-';
  const pct = cpu.percent === null ? '-' : `${cpu.percent.toFixed(cpu.percent < 10 ? 1 : 0)}%`;
  return cpu.limitCores !== null ? `${pct}/${Math.round(cpu.limitCores * 100)}%` : pct;
}

/** Memory use with the limit next to it, and `!` at 90% of the limit or more. */
export function memoryText(m: ContainerUsage['memory']): string {
  if (!m) return '-';
  if (m.limitBytes === null) return bytes(m.bytes);
  return `${bytes(m.bytes)}/${bytes(m.limitBytes)}${m.bytes >= m.limitBytes * 0.9 ? ' !' : ''}`;
}

/** Bytes received and sent over every interface but `lo`. */
export function networkTotals(u: Pick<ContainerUsage, 'network'>): { rx: number; tx: number } {
  let rx = 0;
  let tx = 0;
  for (const [nic, c] of Object.entries(u.network ?? {})) {
    if (nic === 'lo') continue;
    rx += c.rx.bytes;
    tx += c.tx.bytes;
  }
  return { rx, tx };
}

export function usageLine(u: ContainerUsage): string {
  if (u.state === 'STOPPED') return `stopped, disk ${u.disk ? bytes(u.disk.usedBytes) : '-'}`;
  const n = networkTotals(u);
  return `cpu ${cpuText(u.cpu)}  mem ${memoryText(u.memory)}  pids ${u.pids?.current ?? '-'}  rx ${bytes(n.rx)} tx ${bytes(n.tx)}`;
}

/** `lxcq show` with usage: the state report as key: value lines. */
export function usageDetails(s: ContainerStateReport): string {
  if (s.collectedAt === null)
    return keyValues([
      ['usage', `none yet (host ${s.host} has no recent usage pass: is its worker running?)`],
    ]);
  const pairs: [string, string][] = [];
  if (s.cpu)
    pairs.push([
      'cpu',
      `${cpuText(s.cpu)} of one core (limit ${s.cpu.limitCores === null ? 'none' : `${s.cpu.limitCores} cores`}), ${s.cpu.seconds.toFixed(1)} s in all`,
    ]);
  if (s.memory) {
    const m = s.memory;
    pairs.push([
      'memory',
      `${bytes(m.bytes)} (limit ${m.limitBytes === null ? 'none' : bytes(m.limitBytes)}), peak ${m.peakBytes === null ? '-' : bytes(m.peakBytes)}, cache ${bytes(m.cacheBytes)}, swap ${m.swapBytes === null ? '-' : bytes(m.swapBytes)}`,
    ]);
  }
  if (s.pids) pairs.push(['pids', `${s.pids.current} (limit ${s.pids.limit ?? 'none'})`]);
  for (const [nic, c] of Object.entries(s.network ?? {}))
    pairs.push([
      `net ${nic}`,
      `rx ${bytes(c.rx.bytes)} ${c.rx.packets} pkts ${c.rx.errors} err ${c.rx.drops} drop, tx ${bytes(c.tx.bytes)} ${c.tx.packets} pkts ${c.tx.errors} err ${c.tx.drops} drop`,
    ]);
  pairs.push([
    'disk',
    s.disk ? `${bytes(s.disk.usedBytes)} (measured ${s.disk.measuredAt})` : 'not measured yet',
  ]);
  if (s.uptimeSeconds !== undefined) pairs.push(['uptime', `${Math.round(s.uptimeSeconds)} s`]);
  pairs.push(['collected', s.collectedAt]);
  return keyValues(pairs);
}

export type TopSort = 'cpu' | 'memory' | 'rx' | 'tx' | 'name';

/** Sorts rows for `lxcq top`: biggest first (by name: alphabetical). */
export function sortUsage<T extends ContainerUsage>(rows: T[], by: TopSort): T[] {
  const key = (u: ContainerUsage): number =>
    by === 'cpu'
      ? (u.cpu?.percent ?? -1)
      : by === 'memory'
        ? (u.memory?.bytes ?? -1)
        : by === 'rx'
          ? networkTotals(u).rx
          : networkTotals(u).tx;
  return [...rows].sort((a, b) => (by === 'name' ? 0 : key(b) - key(a)) || a.name.localeCompare(b.name));
}

export function topTable<T extends ContainerUsage>(rows: T[], hostOf: (u: T) => string): string {
  return table(
    ['NAME', 'HOST', 'STATE', 'CPU', 'MEMORY', 'PIDS', 'RX', 'TX', 'DISK'],
    rows.map((u) => {
      const n = networkTotals(u);
      return [
        u.name,
        hostOf(u),
        u.state,
        cpuText(u.cpu),
        memoryText(u.memory),
        u.pids ? String(u.pids.current) : '-',
        u.network ? bytes(n.rx) : '-',
        u.network ? bytes(n.tx) : '-',
        u.disk ? bytes(u.disk.usedBytes) : '-',
      ];
    }),
  );
}
