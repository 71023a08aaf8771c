/** A fault case's outcome, its table, and the few tools every case shares. */

export type Profile = 'fast' | 'full';

export interface CaseOptions {
  profile: Profile;
  /** Seeds every random choice (kill delays, fuzz input), so a failure can be replayed. */
  seed: number;
  /** Progress lines (the script prints them; the vitest run keeps them quiet). */
  log?: (line: string) => void;
}

export interface CaseResult {
  name: string;
  /** Faults injected: kills, restarts, fuzz requests, load rounds. */
  runs: number;
  /** Jobs the API accepted (202, or 200 with ?wait). */
  submitted: number;
  /** Accepted jobs that ended completed/cancelled, or failed with a documented code. */
  definite: number;
  /** Accepted jobs with no record, or not ended by the deadline. */
  lost: number;
  /** Things left behind (see audit.ts). */
  orphans: number;
  notes: string[];
  /** Every violated expectation, explained; empty when the case passed. */
  problems: string[];
  seconds: number;
}

export function emptyResult(name: string): CaseResult {
  return {
    name,
    runs: 0,
    submitted: 0,
    definite: 0,
    lost: 0,
    orphans: 0,
    notes: [],
    problems: [],
    seconds: 0,
  };
}

/** The table the suite prints (Markdown, so docs/fault-suite.md can carry it as it is). */
export function table(results: readonly CaseResult[]): string {
  const rows = results.map((r) => [
    r.name,
    String(r.runs),
    String(r.submitted),
    String(r.definite),
    String(r.lost),
    String(r.orphans),
    r.problems.length === 0 ? 'pass' : `FAIL (${r.problems.length})`,
    `${Math.round(r.seconds)} s`,
    r.notes.join('; '),
  ]);
  const head = [
    'case',
    'runs',
    'jobs submitted',
    'jobs ended definite',
    'jobs lost',
    'orphans found',
    'result',
    'time',
    'notes',
  ];
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

/** mulberry32: a small seeded generator, enough for delays and choices. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

export const MB = 1024 * 1024;
