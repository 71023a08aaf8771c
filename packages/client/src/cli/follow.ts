import type { Job, OperationName } from '@lxcq/shared';
import { isFinal } from '../shared-runtime.ts';
import type { JobEvent, JobHandle } from '../job-handle.ts';
import type { Output } from './output.ts';

/** How a job is followed: a spinner on a terminal, plain lines when piped, nothing (exec, --json). */
export type FollowMode = 'tty' | 'plain' | 'silent';

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const BAR = 20;

/** The spinner line: redrawn in place with ANSI sequences (carriage return, erase line). */
class Spinner {
  private frame = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private status = 'submitting';
  private percent: number | null = null;
  private readonly started = Date.now();

  constructor(
    private readonly out: Output,
    private readonly label: string,
  ) {}

  start(): void {
    this.out.stderr.write('\x1b[?25l');
    this.draw();
    this.timer = setInterval(() => this.draw(), 80);
  }

  set(status: string, percent: number | null = this.percent): void {
    this.status = status;
    this.percent = percent;
    this.draw();
  }

  private draw(): void {
    this.frame = (this.frame + 1) % FRAMES.length;
    const c = this.out.color;
    const dim = (s: string) => (c ? `\x1b[2m${s}\x1b[22m` : s);
    const cyan = (s: string) => (c ? `\x1b[36m${s}\x1b[39m` : s);
    let bar = '';
    if (this.percent !== null) {
      const full = Math.round((this.percent / 100) * BAR);
      bar = ` ${cyan('━'.repeat(full))}${dim('─'.repeat(BAR - full))} ${String(this.percent).padStart(3)}%`;
    }
    const secs = dim(` ${((Date.now() - this.started) / 1000).toFixed(1)}s`);
    const text = `${cyan(FRAMES[this.frame] ?? '')} ${this.label}${bar}  ${this.status}${secs}`;
    this.out.stderr.write(`\r\x1b[2K${truncate(text, this.out.stderr.columns)}`);
  }

  stop(final: string | null): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.out.stderr.write('\r\x1b[2K\x1b[?25h');
    if (final !== null)
      this.out.stderr.write(`${final} ${((Date.now() - this.started) / 1000).toFixed(1)}s\n`);
  }
}

// eslint-disable-next-line no-control-regex -- matching terminal escape sequences is the point
const ESCAPE = /^\x1b\[[0-9;?]*[A-Za-z]/;

/** Cuts a line with escape sequences to the terminal's width (escapes take no room). */
function truncate(s: string, columns: number | undefined): string {
  if (!columns) return s;
  let visible = 0;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\x1b') {
      const m = ESCAPE.exec(s.slice(i));
      if (m) {
        out += m[0];
        i += m[0].length - 1;
        continue;
      }
    }
    if (visible >= columns - 1) continue;
    out += s[i];
    visible++;
  }
  return out;
}

/** A running follow, so Ctrl-C can clean up the terminal. */
export interface Following {
  job: Job | null;
  interrupt(): void;
}

/**
 * Follows a job to its end: queued, active, each progress stage, then the final state. The job's
 * events (job.progress) give the stages; the long-poll on the job is what decides the end.
 */
export async function follow<N extends OperationName>(
  handle: JobHandle<N>,
  out: Output,
  mode: FollowMode,
  label: string,
  onStart?: (f: Following) => void,
): Promise<Job> {
  const spinner = mode === 'tty' ? new Spinner(out, label) : null;
  spinner?.start();
  const f: Following = { job: null, interrupt: () => spinner?.stop(null) };
  onStart?.(f);
  let job: Job;
  try {
    job = await handle.submitted;
  } catch (err) {
    spinner?.stop(null);
    throw err;
  }
  f.job = job;
  if (mode === 'plain') out.err(`job ${job.id} ${job.state}`);
  spinner?.set(
    job.state === 'queued' && job.queuePosition ? `queued (position ${job.queuePosition})` : job.state,
  );
  if (mode === 'silent') return handle.ended();
  if (isFinal(job.state)) {
    // Ended before we looked (lxcq wait on an old job): its history is in `lxcq job` / `lxcq log`.
    spinner?.stop(`${job.state === 'completed' ? '✓' : '✗'} ${label} ${job.state}`);
    return job;
  }

  const stop = new AbortController();
  let sawEnd = false;
  const wakers: (() => void)[] = [];
  const show = (e: JobEvent) => {
    switch (e.type) {
      case 'job.queued':
        break;
      case 'job.active':
        if (mode === 'plain') out.err('active');
        spinner?.set('active');
        break;
      case 'job.progress':
        if (mode === 'plain') out.err(`${e.data.percent}% ${e.data.stage}`);
        spinner?.set(e.data.stage, e.data.percent);
        break;
      default:
        sawEnd = true;
    }
  };
  const watcher = (async () => {
    try {
      for await (const e of handle.progress({ signal: stop.signal })) {
        show(e);
        if (sawEnd) break;
      }
    } catch {
      // Progress comes from the event stream, a nicety: the job's end comes from the long-poll.
    } finally {
      sawEnd = true;
      for (const w of wakers.splice(0)) w();
    }
  })();
  let ended: Job;
  try {
    ended = await handle.ended();
  } catch (err) {
    stop.abort();
    spinner?.stop(null);
    throw err;
  }
  // Let the last progress events arrive before the final line, briefly.
  if (!sawEnd)
    await new Promise<void>((r) => {
      const t = setTimeout(r, 1500);
      wakers.push(() => {
        clearTimeout(t);
        r();
      });
    });
  stop.abort();
  await watcher;
  if (mode === 'plain') out.err(ended.state);
  if (spinner) {
    const c = out.color;
    const mark =
      ended.state === 'completed' ? (c ? '\x1b[32m✓\x1b[39m' : '✓') : c ? '\x1b[31m✗\x1b[39m' : '✗';
    spinner.stop(`${mark} ${label} ${ended.state}`);
  }
  return ended;
}
