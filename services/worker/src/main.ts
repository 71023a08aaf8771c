// The worker process: `tsx services/worker/src/main.ts`, configured by LXCQ_* environment variables.
import { pino } from 'pino';
import { stopOnSignals } from '@lxcq/shared';
import { startTracing } from '@lxcq/telemetry';
import { ConfigError, workerConfig } from './config.ts';
import { buildThreadModule, LxcPool } from './pool.ts';
import { LxcqWorker } from './worker.ts';

const log = pino({ name: 'lxcq-worker', level: process.env.LXCQ_LOG_LEVEL || 'info' });

async function main(): Promise<void> {
  let config;
  let tracing;
  try {
    config = workerConfig();
    // Off unless LXCQ_TRACING=1 or an OTLP endpoint is set; then jobs continue their request's trace.
    tracing = await startTracing({ service: 'lxcq-worker', log });
  } catch (e) {
    if (e instanceof ConfigError) {
      log.fatal(e.message);
      process.exit(2);
    }
    throw e;
  }
  const pool = new LxcPool({ threads: config.threads, filename: await buildThreadModule() });
  const worker = new LxcqWorker({ config, log, pool });
  stopOnSignals(async () => {
    await worker.close();
    await tracing.shutdown();
  }, log);
  await worker.start();
}

main().catch((err: unknown) => {
  log.fatal({ err }, 'worker failed to start');
  process.exit(1);
});
