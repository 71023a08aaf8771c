/** A setting that cannot work: the process stops at start with this message (never a 4xx). */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A whole-number setting from the environment, with its default and lower bound. */
export function envInt(env: NodeJS.ProcessEnv, key: string, def: number, min = 0): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min)
    throw new ConfigError(`${key}=${raw} is not a whole number >= ${min}.`);
  return n;
}

/**
 * Waits for one step of a shutdown, at most `ms`: true when it settled (a failure counts as
 * settled), false when it was given up on. Redis-bound steps (closing a BullMQ queue, a last
 * write) can hang while their connection is reconnecting; a stop must still end.
 */
export async function settlesWithin(step: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  if (step === undefined) return true;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), ms);
    timer.unref();
  });
  try {
    return await Promise.race([
      step.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long each Redis-bound step of a stop may take once no job runs. */
export const STOP_STEP_MS = 5000;

/**
 * One step of a stop, bounded by STOP_STEP_MS (see settlesWithin): when it is given up on, says
 * so and lets the stop go on.
 */
export async function stopStep(
  what: string,
  step: Promise<unknown> | undefined,
  log: { warn(msg: string): void },
): Promise<void> {
  if (!(await settlesWithin(step, STOP_STEP_MS)))
    log.warn(
      `stopping: ${what} did not finish within ${STOP_STEP_MS / 1000} s (Redis unreachable?); going on`,
    );
}

interface StopLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * Runs `close` once on SIGINT or SIGTERM, then exits (0 when it finished cleanly). The API and the
 * worker stop this way: the worker lets running jobs finish, the API drains its connections.
 */
export function stopOnSignals(close: () => Promise<void>, log: StopLogger): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
