// The worker process: `tsx services/worker/src/main.ts`, configured by LXCQ_* environment variables and
// LXCQ_CONFIG_FILE (docs/configuration.md). A bad setting stops it with exit status 2 and the reason.
import { pino } from 'pino';
import { applyConfigFile, stopOnSignals } from '@lxcq/shared';
import { startTracing } from '@lxcq/telemetry';
import { ConfigError, workerConfig } from './config.ts';
import { buildThreadModule, LxcPool } from './pool.ts';
import { LxcqWorker } from './worker.ts';

const log = pino({ name: 'lxcq-worker', level: 'info' }); // LXCQ_LOG_LEVEL applies once the settings are read

async function main(): Promise<void> {
  let config;
  let tracing;
  try {
    // into process.env too: the liblxc binding and the thread pool read LXCQ_LIBLXC & co. there
    config = workerConfig(applyConfigFile(process.env));
    // Off unless LXCQ_TRACING=1 or an OTLP endpoint is set; then jobs continue their request's trace.
    tracing = await startTracing({ service: 'lxcq-worker', log });
  } catch (e) {
    if (e instanceof ConfigError) {
      log.fatal(e.message);
      process.exit(2);
    }
    throw e;
  }
  log.level = config.logLevel;
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
