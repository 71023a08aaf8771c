/** Small helpers for the benchmark: percentiles and an aligned text table. */

/** Nearest-rank percentile of `xs` (need not be sorted); NaN for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i] as number;
}

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  max: number;
}

export function summarize(xs: readonly number[]): Summary {
  return {
    n: xs.length,
    p50: round(percentile(xs, 50)),
    p99: round(percentile(xs, 99)),
    mean: round(mean(xs)),
    max: round(xs.length ? Math.max(...xs) : Number.NaN),
  };
}

/** Rounds to `d` decimals (3 by default), keeping NaN. */
export function round(x: number, d = 3): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

/** A number for a table cell: fixed decimals, '-' for NaN or undefined. */
export function fmt(x: number | undefined, d = 2): string {
  return x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d);
}

export function ratio(x: number, of: number, d = 2): string {
  return Number.isFinite(x / of) ? `${(x / of).toFixed(d)}x` : '-';
}

/** An aligned table: first column left-aligned, the others right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(headers), rule, ...rows.map(line)].join('\n');
}
