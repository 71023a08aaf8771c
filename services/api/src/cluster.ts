import cluster, { type Worker } from 'node:cluster';
import { stopOnSignals } from '@lxcq/shared';

/** The subset of a pino logger the supervisor uses. */
export interface SupervisorLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  fatal(obj: object, msg: string): void;
}

export interface SuperviseOptions {
  /** API processes to keep running, all serving the same port (node:cluster shares it). */
  processes: number;
  log: SupervisorLog;
  /** This many unexpected deaths within `crashWindowMs` stop the supervisor (exit 1). */
  maxCrashes?: number;
  crashWindowMs?: number;
  /** Wait before replacing a process that died. */
  restartDelayMs?: number;
  /** Bound on each process's own clean stop before it is killed. */
  stopTimeoutMs?: number;
  /** Added to each process's environment (the secrets, which each removes from it at start). */
  env?: Record<string, string>;
}

/** Exit code of an API process that refused its configuration: replacing it would not help. */
export const CONFIG_EXIT_CODE = 2;

/**
 * Runs the API as `processes` processes on one port, so the WebSocket fan-out (one syscall per
 * subscriber per batch) and request handling use every core. Each process is a complete API:
 * it follows the event stream itself and serves any client, as several API hosts behind a load
 * balancer would (docs/api.md: no sticky sessions); node:cluster's primary only accepts connections
 * and hands them out in turn. A process that dies is replaced; a process that refuses its
 * configuration stops the whole API with the same code; SIGTERM/SIGINT stop every process
 * cleanly (each closes its subscribers with 1001 so they resume elsewhere by cursor).
 */
export function superviseApi(opts: SuperviseOptions): void {
  const { processes, log } = opts;
  const maxCrashes = opts.maxCrashes ?? 5;
  const crashWindowMs = opts.crashWindowMs ?? 60_000;
  const restartDelayMs = opts.restartDelayMs ?? 1000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
  const crashes: number[] = [];
  let stopping = false;
  let exitCode = 0;

  const live = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
  const stopAll = (code: number): Promise<void> => {
    if (!stopping) {
      stopping = true;
      exitCode = code;
      for (const w of live()) w.process.kill('SIGTERM');
      setTimeout(() => {
        for (const w of live()) w.process.kill('SIGKILL');
      }, stopTimeoutMs).unref();
    }
    return new Promise<void>(() => undefined); // the last 'exit' below ends the process
  };

  cluster.on('exit', (w, code, signal) => {
    if (stopping) {
      if (live().length === 0) process.exit(exitCode);
      return;
    }
    if (code === CONFIG_EXIT_CODE) {
      log.fatal({ pid: w.process.pid }, 'an API process refused its configuration; stopping');
      void stopAll(CONFIG_EXIT_CODE);
      if (live().length === 0) process.exit(CONFIG_EXIT_CODE);
      return;
    }
    const now = Date.now();
    crashes.push(now);
    while (crashes.length > 0 && (crashes[0] as number) < now - crashWindowMs) crashes.shift();
    if (crashes.length >= maxCrashes) {
      log.fatal(
        { crashes: crashes.length, windowMs: crashWindowMs },
        'API processes keep dying; stopping (see their logs above for the cause)',
      );
      void stopAll(1);
      if (live().length === 0) process.exit(1);
      return;
    }
    log.error({ pid: w.process.pid, code, signal }, 'an API process died; starting another');
    setTimeout(() => {
      if (!stopping) cluster.fork(opts.env);
    }, restartDelayMs);
  });

  for (let i = 0; i < processes; i++) cluster.fork(opts.env);
  log.info({ processes }, 'API supervisor started');
  stopOnSignals(() => stopAll(0), log);
}
