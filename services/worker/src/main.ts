// The worker process: `tsx services/worker/src/main.ts`, configured by LXCQ_* environment variables.
import { pino } from 'pino';
import { ConfigError, workerConfig } from './config.ts';
import { buildThreadModule, LxcPool } from './pool.ts';
import { LxcqWorker } from './worker.ts';

const log = pino({ name: 'lxcq-worker', level: process.env.LXCQ_LOG_LEVEL || 'info' });

async function main(): Promise<void> {
  let config;
  try {
    config = workerConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      log.fatal(e.message);
      process.exit(2);
    }
    throw e;
  }
  const pool = new LxcPool({ threads: config.threads, filename: await buildThreadModule() });
  const worker = new LxcqWorker({ config, log, pool });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: finishing running jobs');
    worker.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'unclean stop');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  await worker.start();
}

main().catch((err: unknown) => {
  log.fatal({ err }, 'worker failed to start');
  process.exit(1);
});
