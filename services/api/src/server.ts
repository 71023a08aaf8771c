// The API process: `tsx services/api/src/server.ts`, configured by LXCQ_* environment variables.
import { pino } from 'pino';
import { stopOnSignals } from '@lxcq/shared';
import { startTracing } from '@lxcq/telemetry';
import { buildApp } from './app.ts';
import { sha256 } from './auth.ts';
import { ConfigError, apiConfig } from './config.ts';

const log = pino({ name: 'lxcq-api', level: process.env.LXCQ_LOG_LEVEL || 'info' });

async function main(): Promise<void> {
  let config;
  let tracing;
  try {
    config = apiConfig(process.env, sha256);
    // Off unless LXCQ_TRACING=1 or an OTLP endpoint is set (docs/observability.md).
    tracing = await startTracing({ service: 'lxcq-api', log });
  } catch (e) {
    if (e instanceof ConfigError) {
      log.fatal(e.message);
      process.exit(2);
    }
    throw e;
  }
  const built = await buildApp(config, { logger: log });
  stopOnSignals(async () => {
    await built.close();
    await tracing.shutdown();
  }, log);
  await built.app.listen({ port: config.port, host: config.bind });
}

main().catch((err: unknown) => {
  log.fatal({ err }, 'api failed to start');
  process.exit(1);
});
