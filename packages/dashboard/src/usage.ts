/**
 * What each container uses, over the last hour, from `container.usage` events (pure: the store
 * feeds it). One point per event; rates (network bytes per second) from two consecutive points.
 */
import type { ContainerUsage } from '@lxcq/client';

/** How much history a container keeps. */
export const HISTORY_MS = 60 * 60_000;

export interface UsageHistory {
  latest: ContainerUsage;
  /** Seconds since the epoch, one per point (uPlot's x axis). */
  t: number[];
  /** Percent of one core (null: no figure yet, or stopped). */
  cpu: (number | null)[];
  memory: (number | null)[];
  /** Bytes per second over every interface but lo, since the previous point. */
  rx: (number | null)[];
  tx: (number | null)[];
}

function nicTotals(u: ContainerUsage): { rx: number; tx: number } | null {
  if (!u.network) return null;
  let rx = 0;
  let tx = 0;
  for (const [nic, c] of Object.entries(u.network)) {
    if (nic === 'lo') continue;
    rx += c.rx.bytes;
    tx += c.tx.bytes;
  }
  return { rx, tx };
}

/** The history with `u` added (a new object; older points than HISTORY_MS dropped). */
export function addUsage(prev: UsageHistory | undefined, u: ContainerUsage): UsageHistory {
  const at = Date.parse(u.collectedAt) / 1000;
  const last = prev?.t[prev.t.length - 1];
  if (prev && last !== undefined && at <= last) return { ...prev, latest: u };
  const now = nicTotals(u);
  const before = prev ? nicTotals(prev.latest) : null;
  const dt = last !== undefined ? at - last : 0;
  const rate = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && dt > 0 && a >= b ? (a - b) / dt : null;
  const from = prev ? prev.t.findIndex((x) => x >= at - HISTORY_MS / 1000) : 0;
  const keep = <T>(xs: T[] | undefined, x: T): T[] => [...(xs ?? []).slice(Math.max(0, from)), x];
  return {
    latest: u,
    t: keep(prev?.t, at),
    cpu: keep(prev?.cpu, u.cpu?.percent ?? null),
    memory: keep(prev?.memory, u.memory?.bytes ?? null),
    rx: keep(prev?.rx, rate(now?.rx, before?.rx)),
    tx: keep(prev?.tx, rate(now?.tx, before?.tx)),
  };
}

/** An SVG polyline's points for a sparkline of `values` in a w×h box (null values skipped). */
export function sparkPoints(values: readonly (number | null)[], w: number, h: number, max?: number): string {
  const xs = values.slice(-60);
  const top = Math.max(max ?? 0, ...xs.map((v) => v ?? 0), 1e-9);
  const step = xs.length > 1 ? w / (xs.length - 1) : 0;
  const pts: string[] = [];
  xs.forEach((v, i) => {
    if (v === null) return;
    pts.push(`${(i * step).toFixed(1)},${(h - (v / top) * h).toFixed(1)}`);
  });
  return pts.join(' ');
}
