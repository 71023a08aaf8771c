import { CommanderError } from 'commander';
import { LxcqClient } from '../client.ts';
import { LxcqConnectionError, LxcqError } from '../errors.ts';
import { buildProgram, type CliContext } from './commands.ts';
import { UsageError, describeSource, resolveSettings, type Settings } from './config.ts';
import { Output } from './output.ts';

/** Errors of the request rather than of the operation: exit 2 like other usage errors. */
const USAGE_CODES = new Set([
  'LXCQ_BAD_REQUEST',
  'LXCQ_VALIDATION',
  'LXCQ_INVALID_NAME',
  'LXCQ_UNAUTHORIZED',
]);

/** Runs the CLI; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const dashdash = argv.indexOf('--');
  const json = (dashdash === -1 ? argv : argv.slice(0, dashdash)).includes('--json');
  let out = new Output(json);
  let settings: Settings | null = null;
  let client: LxcqClient | null = null;
  const ctx: CliContext = {
    out: () => out,
    client: () => {
      if (client) return client;
      const g = program.opts<{ url?: string; token?: string }>();
      settings = resolveSettings({ url: g.url, token: g.token });
      client = new LxcqClient({ url: settings.url, token: settings.token });
      return client;
    },
    clientFor: (url, token) => new LxcqClient({ url, token }),
    exitCode: 0,
    following: null,
  };
  const program = buildProgram(ctx);
  program.exitOverride();
  program.configureOutput({
    writeOut: (s) => out.stdout.write(s),
    writeErr: (s) => out.stderr.write(s),
  });
  for (const c of program.commands)
    c.exitOverride().configureOutput({
      writeOut: (s) => out.stdout.write(s),
      writeErr: (s) => out.stderr.write(s),
    });

  const onSigint = () => {
    const f = ctx.following;
    f?.interrupt();
    if (f?.job)
      out.err(
        `\nlxcq: stopped following; job ${f.job.id} goes on (lxcq wait ${f.job.id}, lxcq cancel ${f.job.id})`,
      );
    process.exit(130);
  };
  process.on('SIGINT', onSigint);
  try {
    await program.parseAsync(argv, { from: 'user' });
    out = new Output(program.opts<{ json?: boolean }>().json === true);
    return ctx.exitCode;
  } catch (err) {
    out = new Output(program.opts<{ json?: boolean }>().json === true || json);
    return report(out, err, settings);
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

/** Prints an error the way the CLI promises (`error CODE: message`) and picks the exit code. */
function report(out: Output, err: unknown, settings: Settings | null): number {
  if (err instanceof CommanderError) {
    // Help and version print and succeed; everything else commander refuses is a usage error.
    if (err.exitCode === 0) return 0;
    if (out.json) out.data({ error: { code: 'LXCQ_USAGE', message: err.message.replace(/^error: /, '') } });
    return 2;
  }
  let code: string;
  let message: string;
  let details: Record<string, unknown> | undefined;
  let note: string | undefined;
  let exit: number;
  if (err instanceof UsageError) {
    code = 'LXCQ_USAGE';
    message = err.message;
    exit = 2;
  } else if (err instanceof LxcqConnectionError) {
    code = 'LXCQ_UNREACHABLE';
    message = err.message;
    note = `${settings ? `${describeSource(settings.urlSource, 'URL', settings.configPath)}; ` : ''}start lxcq with sudo bash scripts/run.sh, or point --url / LXCQ_URL at it`;
    exit = 2;
  } else if (err instanceof LxcqError && err.code === 'LXCQ_UNAUTHORIZED') {
    code = err.code;
    const where = settings ? `lxcq at ${settings.url}` : 'lxcq';
    message =
      !settings || settings.tokenSource === 'none'
        ? `${where} needs a token and none was given: pass --token, set LXCQ_TOKEN, or run lxcq login --url URL --token TOKEN`
        : `${where} refused ${describeSource(settings.tokenSource, 'token', settings.configPath)} (wrong token?): pass the right one with --token, LXCQ_TOKEN or lxcq login`;
    exit = 2;
  } else if (err instanceof LxcqError) {
    code = err.code;
    message = err.message;
    details = err.details;
    exit = USAGE_CODES.has(err.code) ? 2 : 1;
  } else {
    code = 'LXCQ_CLIENT';
    message = err instanceof Error ? err.message : String(err);
    exit = 1;
  }
  if (out.json) out.data({ error: { code, message, ...(details ? { details } : {}) } });
  else {
    out.err(`error ${code}: ${message}`);
    if (note) out.err(`  (${note})`);
  }
  return exit;
}
