// The API process: `tsx services/api/src/server.ts`, configured by LXCQ_* environment variables and
// LXCQ_CONFIG_FILE (docs/configuration.md). A bad setting stops it with exit status 2 and the reason.
import cluster from 'node:cluster';
import { pino } from 'pino';
import { applyConfigFile, secretsOf, setting, stopOnSignals } from '@lxcq/shared';
import { startTracing } from '@lxcq/telemetry';
import { buildApp } from './app.ts';
import { sha256 } from './auth.ts';
import { CONFIG_EXIT_CODE, superviseApi } from './cluster.ts';
import { ConfigError, apiConfig } from './config.ts';

const log = pino({ name: 'lxcq-api', level: 'info' }); // LXCQ_LOG_LEVEL applies once the settings are read

async function main(settings: NodeJS.ProcessEnv): Promise<void> {
  let config;
  let tracing;
  try {
    config = apiConfig(settings, sha256);
    // Off unless LXCQ_TRACING=1 or an OTLP endpoint is set (docs/observability.md).
    tracing = await startTracing({ service: 'lxcq-api', log });
  } catch (e) {
    if (e instanceof ConfigError) {
      log.fatal(e.message);
      process.exit(CONFIG_EXIT_CODE);
    }
    throw e;
  }
  log.level = config.logLevel;
  const built = await buildApp(config, { logger: log });
  stopOnSignals(async () => {
    await built.close();
    await tracing.shutdown();
  }, log);
  await built.app.listen({ port: config.port, host: config.bind });
}

/**
 * The settings, read once: applyConfigFile takes the secrets out of this process's environment,
 * so a second read would find no token and no Redis URL. The supervisor hands the secrets to its
 * own API processes only (never to anything else).
 */
function settingsOrExit(): { settings: NodeJS.ProcessEnv; n: number } {
  try {
    const settings = applyConfigFile(process.env);
    return { settings, n: cluster.isPrimary ? setting(settings, 'LXCQ_API_PROCESSES') : 1 };
  } catch (e) {
    log.fatal((e as Error).message);
    process.exit(CONFIG_EXIT_CODE);
  }
}

const { settings, n } = settingsOrExit();
if (n > 1) superviseApi({ processes: n, log, env: secretsOf(settings) });
else
  main(settings).catch((err: unknown) => {
    log.fatal({ err }, 'api failed to start');
    process.exit(1);
  });
