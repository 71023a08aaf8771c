/** Small helpers for monitor.test.ts: run lxc tools without blocking, and record events. */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type { ExitEvent, StateEvent, StateMonitor } from '../src/monitor.ts';

const execFileP = promisify(execFile);

/** Runs an lxc-* tool (or any command); rejects with its stderr when it fails. */
export async function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { timeout: timeoutMs });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

export type Recorded =
  | ({ kind: 'state' } & StateEvent)
  | ({ kind: 'exit' } & ExitEvent)
  | { kind: 'disconnected'; at: number }
  | { kind: 'reconnected'; at: number };

/** Keeps every event of a monitor, in order, and waits for one to match. */
export class Recorder {
  readonly events: Recorded[] = [];
  private waiters = new Set<() => void>();

  constructor(monitor: StateMonitor) {
    monitor.on('state', (e) => this.push({ kind: 'state', ...e }));
    monitor.on('exit', (e) => this.push({ kind: 'exit', ...e }));
    monitor.on('disconnected', () => this.push({ kind: 'disconnected', at: Date.now() }));
    monitor.on('reconnected', () => this.push({ kind: 'reconnected', at: Date.now() }));
  }

  private push(e: Recorded): void {
    this.events.push(e);
    for (const w of [...this.waiters]) w();
  }

  /** Index to pass as `from` for "events after now". */
  mark(): number {
    return this.events.length;
  }

  /** Resolves with the first event at index >= from matching pred; rejects after timeoutMs. */
  waitFor(pred: (e: Recorded) => boolean, from = 0, timeoutMs = 15_000, what = 'event'): Promise<Recorded> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = this.events.slice(from).find(pred);
        if (!hit) return false;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; saw ${JSON.stringify(this.events.slice(from))}`,
          ),
        );
      }, timeoutMs);
      if (!check()) this.waiters.add(check);
    });
  }

  waitState(name: string, state: StateEvent['state'], from = 0, timeoutMs?: number): Promise<Recorded> {
    return this.waitFor(
      (e) => e.kind === 'state' && e.name === name && e.state === state,
      from,
      timeoutMs,
      `${name} ${state}`,
    );
  }

  /** States of one container since `from`, in order. */
  states(name: string, from = 0): string[] {
    return this.events
      .slice(from)
      .flatMap((e) =>
        e.kind === 'state' && e.name === name
          ? [e.state]
          : e.kind === 'exit' && e.name === name
            ? [`exit:${e.status}`]
            : [],
      );
  }
}

/** True while a process with this pid exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Waits until the process is gone and reaped (no /proc entry, not even a zombie). */
export async function reaped(pid: number, timeoutMs = 5000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (existsSync(`/proc/${pid}`) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  return !existsSync(`/proc/${pid}`);
}
