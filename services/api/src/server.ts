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

async function main(): Promise<void> {
  let config;
  let tracing;
  try {
    config = apiConfig(applyConfigFile(process.env), sha256);
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

/** How many API processes, and the secrets the supervisor hands its own processes (never to
 * anything else: applyConfigFile took them out of this process's environment). */
function processes(): { n: number; secrets: Record<string, string> } {
  try {
    const settings = applyConfigFile(process.env);
    return { n: setting(settings, 'LXCQ_API_PROCESSES'), secrets: secretsOf(settings) };
  } catch (e) {
    log.fatal((e as Error).message);
    process.exit(CONFIG_EXIT_CODE);
  }
}

const { n, secrets } = cluster.isPrimary ? processes() : { n: 1, secrets: {} };
if (n > 1) superviseApi({ processes: n, log, env: secrets });
else
  main().catch((err: unknown) => {
    log.fatal({ err }, 'api failed to start');
    process.exit(1);
  });
