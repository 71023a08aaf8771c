// The API process: `tsx services/api/src/server.ts`, configured by LXCQ_* environment variables and
// LXCQ_CONFIG_FILE (docs/configuration.md). A bad setting stops it with exit status 2 and the reason.
import { pino } from 'pino';
import { applyConfigFile, stopOnSignals } from '@lxcq/shared';
import { buildApp } from './app.ts';
import { sha256 } from './auth.ts';
import { ConfigError, apiConfig } from './config.ts';

const log = pino({ name: 'lxcq-api', level: 'info' }); // LXCQ_LOG_LEVEL applies once the settings are read

async function main(): Promise<void> {
  let config;
  try {
    config = apiConfig(applyConfigFile(process.env), sha256);
  } catch (e) {
    if (e instanceof ConfigError) {
      log.fatal(e.message);
      process.exit(2);
    }
    throw e;
  }
  log.level = config.logLevel;
  const built = await buildApp(config, { logger: log });
  stopOnSignals(() => built.close(), log);
  await built.app.listen({ port: config.port, host: config.bind });
}

main().catch((err: unknown) => {
  log.fatal({ err }, 'api failed to start');
  process.exit(1);
});
