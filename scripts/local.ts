// Runs lxcq on one machine: `sudo bash scripts/run.sh` (set-up, then `pnpm exec tsx scripts/local.ts`).
//
// Starts, as child processes of this one:
//   1. a Redis of its own, unless LXCQ_REDIS_URL is set: data (AOF) in $LXCQ_DATA_DIR/redis, bound to
//      127.0.0.1 on a free port, password-protected (a random password in a 0600 config file, so no
//      other local user can reach the root worker's queue);
//   2. the API (services/api/src/server.ts) and 3. one worker (services/worker/src/main.ts), each
//      as `node --import tsx <file>` (one process per service: a stop or kill reaches the service
//      itself, not a launcher).
// Waits for GET /v1/health, then prints the URL, the token and a curl example.
// SIGINT/SIGTERM/SIGHUP stop the worker, then the API, then Redis, each by its pid (SIGTERM, then
// SIGKILL after LXCQ_STOP_TIMEOUT seconds); a second Ctrl-C kills what is left at once. When a child
// exits on its own, the others are stopped the same way and this exits with status 1.
//
// Environment (all optional): LXCQ_DATA_DIR (/var/lib/lxcq), LXCQ_REDIS_URL, LXCQ_PORT (7070),
// LXCQ_HOST_BIND (127.0.0.1), LXCQ_TOKEN (else generated once into $LXCQ_DATA_DIR/token, 0600),
// LXCQ_HOST_ID (hostname), LXCQ_LXCPATH (`lxc-config lxc.lxcpath`), LXCQ_API_USER (run the API as
// this user instead of root), LXCQ_STOP_TIMEOUT (30), LXCQ_START_TIMEOUT (90), and LXCQ_CONFIG_FILE
// (a file of these settings; the environment wins). Every setting is checked first (one table:
// packages/shared/src/settings.ts, docs/configuration.md). Every variable of this process's
// environment, with the file's settings merged in, is passed on to the API and the worker, but
// for the secrets: the token and the Redis URL (its password) reach them in files of their own
// under $LXCQ_DATA_DIR/secrets (LXCQ_TOKEN_FILE, LXCQ_REDIS_URL_FILE; 0600, owned by the process
// that reads it), never in an environment, which whatever they start would inherit (a
// container's exec, CRIU, the lxc-* tools).

import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { applyConfigFile } from '../packages/shared/src/config-file.ts';
import { ConfigError } from '../packages/shared/src/env.ts';
import { setting } from '../packages/shared/src/settings.ts';

const REPO = path.resolve(import.meta.dirname, '..');
const API_ENTRY = 'services/api/src/server.ts';
const WORKER_ENTRY = 'services/worker/src/main.ts';

process.stdout.on('error', () => undefined); // a closed pipe (`| head`) must not crash the supervisor
process.stderr.on('error', () => undefined);

function log(message: string): void {
  process.stdout.write(`lxcq   | ${message}\n`);
}

function fail(message: string): never {
  process.stderr.write(`lxcq   | ERROR: ${message}\n`);
  process.exit(1);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// configuration: the environment over LXCQ_CONFIG_FILE, every value checked by the settings table

// Checks every setting's value too (setting() below cannot throw), and takes the secrets out of
// this process's environment: `settings` holds them, process.env no more.
let settings: NodeJS.ProcessEnv = {};
try {
  settings = applyConfigFile(process.env);
} catch (err) {
  if (err instanceof ConfigError) fail(err.message);
  throw err;
}

const dataDir = path.resolve(setting(process.env, 'LXCQ_DATA_DIR'));
const port = setting(process.env, 'LXCQ_PORT');
if (port === 0) fail('LXCQ_PORT=0: run.sh needs a fixed port to print (1..65535)');
const bind = setting(process.env, 'LXCQ_HOST_BIND');
const hostId = setting(process.env, 'LXCQ_HOST_ID') ?? os.hostname();
const stopTimeoutMs = setting(process.env, 'LXCQ_STOP_TIMEOUT') * 1000;
const startTimeoutMs = setting(process.env, 'LXCQ_START_TIMEOUT') * 1000;

function defaultLxcpath(): string {
  try {
    const out = execFileSync('lxc-config', ['lxc.lxcpath'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out.trim() || '/var/lib/lxc';
  } catch {
    return '/var/lib/lxc';
  }
}
const lxcpath = setting(process.env, 'LXCQ_LXCPATH') ?? defaultLxcpath();

for (const entry of [API_ENTRY, WORKER_ENTRY]) {
  if (!existsSync(path.join(REPO, entry))) fail(`${entry} is missing in ${REPO}`);
}
try {
  mkdirSync(dataDir, { recursive: true, mode: 0o755 });
} catch (err) {
  fail(
    `cannot create LXCQ_DATA_DIR ${dataDir}: ${(err as Error).message} (run as root, or set LXCQ_DATA_DIR)`,
  );
}

/** LXCQ_TOKEN, else the token saved in $LXCQ_DATA_DIR/token, else a new one saved there (0600). */
function adminToken(): { token: string; source: string } {
  const fromEnv = settings.LXCQ_TOKEN;
  if (fromEnv) return { token: fromEnv, source: 'LXCQ_TOKEN' };
  const file = path.join(dataDir, 'token');
  if (existsSync(file)) {
    const saved = readFileSync(file, 'utf8').trim();
    if (saved) {
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
      return { token: saved, source: file };
    }
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, source: `${file} (new)` };
}
const { token, source: tokenSource } = adminToken();

/** One instance per data dir: a second one would start a second Redis on the same AOF. */
const lockFile = path.join(dataDir, 'local.pid');
function processAlive(pid: number, cmdlineHas: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(cmdlineHas);
  } catch {
    return false;
  }
}
if (existsSync(lockFile)) {
  const other = Number(readFileSync(lockFile, 'utf8').trim());
  if (Number.isInteger(other) && other > 0 && other !== process.pid && processAlive(other, 'local.ts')) {
    fail(
      `lxcq is already running from ${dataDir} (pid ${other}); stop it first, or use another LXCQ_DATA_DIR`,
    );
  }
}
writeFileSync(lockFile, `${process.pid}\n`);

// ---------------------------------------------------------------------------------------------
// children

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function describe(exit: Exit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit status ${exit.code}`;
}

class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: SpawnOptions,
  ) {
    // detached: a child gets its own process group, so the terminal's Ctrl-C reaches only this
    // supervisor, which then stops the children in order.
    this.proc = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const label = name.padEnd(6).slice(0, 6);
    for (const [stream, out] of [
      [this.proc.stdout, process.stdout],
      [this.proc.stderr, process.stderr],
    ] as const) {
      if (!stream) continue;
      readline.createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        out.write(`${label} | ${line}\n`);
      });
    }
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.proc.once('error', (err) => {
        // spawn failed (e.g. ENOENT): there will be no 'exit'
        if (this.proc.pid === undefined) {
          process.stderr.write(`${label} | cannot start ${command}: ${err.message}\n`);
          this.exit = { code: 127, signal: null };
          resolve(this.exit);
        }
      });
    });
  }

  get running(): boolean {
    return this.exit === undefined && this.proc.pid !== undefined;
  }

  /** SIGTERM to this child's pid (never its group: the worker's containers must keep running),
   * then SIGKILL when it has not exited after timeoutMs. */
  async stop(timeoutMs: number): Promise<void> {
    if (!this.running) return;
    log(`stopping ${this.name} (pid ${this.proc.pid})`);
    this.proc.kill('SIGTERM');
    const timedOut = await Promise.race([this.exited.then(() => false), sleep(timeoutMs).then(() => true)]);
    if (timedOut && this.running) {
      log(`${this.name} did not stop within ${timeoutMs / 1000} s: SIGKILL`);
      this.proc.kill('SIGKILL');
    }
    const exit = await this.exited;
    log(`${this.name} stopped (${describe(exit)})`);
  }

  kill(): void {
    if (this.running) this.proc.kill('SIGKILL');
  }
}

let redis: Child | undefined;
let api: Child | undefined;
let worker: Child | undefined;
let stopping = false;

async function shutdown(reason: string, status: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    if (status === 0) log(reason);
    else process.stderr.write(`lxcq   | ERROR: ${reason}\n`);
    // the worker first (it may be finishing a container operation), then the API, Redis last
    for (const child of [worker, api, redis]) {
      if (child) await child.stop(stopTimeoutMs);
    }
    rmSync(lockFile, { force: true });
    log(status === 0 ? 'all stopped' : 'all stopped; exiting with status 1');
    process.exit(status);
  }
  return new Promise<never>(() => undefined);
}

let firstSignalAt = 0;
function onSignal(signal: NodeJS.Signals): void {
  if (stopping) {
    // A launcher (tsx's CLI, pnpm exec) relays the terminal's Ctrl-C a few ms after the terminal
    // delivered it to this process too: only a later, separate Ctrl-C means "kill now".
    if (signal === 'SIGINT' && Date.now() - firstSignalAt > 1000) {
      log('second interrupt: killing what is left');
      for (const child of [worker, api, redis]) child?.kill();
      rmSync(lockFile, { force: true });
      process.exit(130);
    }
    return;
  }
  firstSignalAt = Date.now();
  void shutdown(`${signal}: stopping the worker, the API, then Redis (Ctrl-C again to kill at once)`, 0);
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
process.on('exit', () => {
  // last resort (an exception in this script): never leave children behind
  for (const child of [worker, api, redis]) child?.kill();
});

function watch(child: Child): Child {
  void child.exited.then((exit) => {
    if (!stopping)
      void shutdown(`${child.name} exited unexpectedly (${describe(exit)}); stopping the rest`, 1);
  });
  return child;
}

// ---------------------------------------------------------------------------------------------
// Redis

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** True once Redis answers PING (after AUTH); false while it is loading its AOF or not listening. */
function redisReady(redisPort: number, password: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(redisPort, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.on('connect', () => socket.write(`AUTH ${password}\r\nPING\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      if (reply.includes('+PONG')) done(true);
      else if (reply.split('\r\n').length > 2) done(false);
    });
  });
}

async function startRedis(): Promise<string> {
  const dir = path.join(dataDir, 'redis');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const pidFile = path.join(dir, 'redis.pid');
  if (existsSync(pidFile)) {
    const stale = Number(readFileSync(pidFile, 'utf8').trim());
    if (Number.isInteger(stale) && stale > 0 && processAlive(stale, 'redis-server')) {
      fail(
        `a redis-server from an earlier run (pid ${stale}) still uses ${dir}; stop it (kill ${stale}) and start again`,
      );
    }
    rmSync(pidFile, { force: true });
  }
  const redisPort = await freePort();
  const password = randomBytes(24).toString('hex');
  // the password goes into a 0600 file, not onto the command line (which every local user can read)
  const conf = path.join(dir, 'redis.conf');
  writeFileSync(
    conf,
    [
      '# written by lxcq scripts/local.ts on every start',
      'bind 127.0.0.1',
      'protected-mode yes',
      `port ${redisPort}`,
      `dir ${dir}`,
      'appendonly yes',
      'save ""',
      'daemonize no',
      `pidfile ${pidFile}`,
      'loglevel warning',
      `requirepass ${password}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  chmodSync(conf, 0o600);
  log(`starting redis-server on 127.0.0.1:${redisPort} (AOF in ${dir})`);
  redis = watch(new Child('redis', 'redis-server', [conf], { cwd: dir, env: process.env }));
  const deadline = Date.now() + startTimeoutMs;
  while (!(await redisReady(redisPort, password))) {
    if (!redis.running || stopping) return new Promise<never>(() => undefined); // shutdown() is on its way
    if (Date.now() > deadline)
      await shutdown(`redis-server did not answer within ${startTimeoutMs / 1000} s`, 1);
    await sleep(100);
  }
  log('redis ready');
  return `redis://:${password}@127.0.0.1:${redisPort}`;
}

// ---------------------------------------------------------------------------------------------
// API and worker

function userIds(user: string): { uid: number; gid: number } {
  try {
    const id = (flag: string): number =>
      Number(
        execFileSync('id', [flag, user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(),
      );
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return fail(`LXCQ_API_USER=${user}: no such user`);
  }
}

/**
 * Writes `secrets` (setting name -> value) as files for one service under
 * $LXCQ_DATA_DIR/secrets/<service>/, a directory only its user reaches, each file 0600 and owned by
 * that user; answers the `<NAME>_FILE` settings naming them.
 */
function secretFiles(
  service: string,
  secrets: Record<'LXCQ_TOKEN' | 'LXCQ_REDIS_URL', string | undefined>,
  ids?: { uid: number; gid: number },
): Record<string, string> {
  const top = path.join(dataDir, 'secrets');
  mkdirSync(top, { recursive: true, mode: 0o711 });
  chmodSync(top, 0o711); // each service reaches its own directory, lists none
  const dir = path.join(top, service);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  if (ids) chownSync(dir, ids.uid, ids.gid);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(secrets)) {
    if (!value) continue;
    const file = path.join(dir, name === 'LXCQ_TOKEN' ? 'token' : 'redis-url');
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${value}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    if (ids) chownSync(tmp, ids.uid, ids.gid);
    renameSync(tmp, file);
    out[`${name}_FILE`] = file;
  }
  return out;
}

function service(
  name: string,
  entry: string,
  env: NodeJS.ProcessEnv,
  secrets: Record<'LXCQ_TOKEN' | 'LXCQ_REDIS_URL', string | undefined>,
  user?: string,
): Child {
  const ids = user ? userIds(user) : undefined;
  const options: SpawnOptions = { cwd: REPO, env: { ...env, ...secretFiles(name, secrets, ids) } };
  if (ids) Object.assign(options, ids);
  // `node --import tsx <file>`: tsx's loader in the service's own process (and its worker threads)
  return watch(new Child(name, process.execPath, ['--import', 'tsx', entry], options));
}

function connectHost(address: string): string {
  if (address === '0.0.0.0' || address === '') return '127.0.0.1';
  if (address === '::') return '[::1]';
  return address.includes(':') ? `[${address}]` : address;
}

async function httpStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  log(`repo ${REPO}, data ${dataDir}, host id ${hostId}, lxcpath ${lxcpath}`);
  let redisUrl = settings.LXCQ_REDIS_URL;
  const ownRedis = !redisUrl;
  if (!redisUrl) redisUrl = await startRedis();
  else log('using LXCQ_REDIS_URL (no Redis of its own)');

  // process.env holds no secret any more (applyConfigFile): they go in files, per service.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LXCQ_PORT: String(port),
    LXCQ_HOST_BIND: bind,
    LXCQ_HOST_ID: hostId,
    LXCQ_LXCPATH: lxcpath,
    LXCQ_DATA_DIR: dataDir,
  };
  const apiUser = process.env.LXCQ_API_USER || undefined;
  api = service('api', API_ENTRY, env, { LXCQ_TOKEN: token, LXCQ_REDIS_URL: redisUrl }, apiUser);
  // The worker needs no API token: only the Redis its API uses.
  worker = service('worker', WORKER_ENTRY, env, { LXCQ_TOKEN: undefined, LXCQ_REDIS_URL: redisUrl });

  const base = `http://${connectHost(bind)}:${port}`;
  const deadline = Date.now() + startTimeoutMs;
  while ((await httpStatus(`${base}/v1/health`)) !== 200) {
    if (stopping) return;
    if (Date.now() > deadline) {
      await shutdown(`the API did not answer GET ${base}/v1/health within ${startTimeoutMs / 1000} s`, 1);
    }
    await sleep(250);
  }
  if (stopping) return;

  // best effort: has the worker registered its host yet?
  const auth = { authorization: `Bearer ${token}` };
  let registered = false;
  for (let i = 0; i < 20 && !stopping && !registered; i++) {
    registered = (await httpStatus(`${base}/v1/hosts/${encodeURIComponent(hostId)}`, auth)) === 200;
    if (!registered) await sleep(500);
  }
  if (stopping) return;

  const shownRedis = ownRedis
    ? redisUrl.replace(/\/\/:[^@]*@/, '//') + ` (own, AOF in ${dataDir}/redis)`
    : '(LXCQ_REDIS_URL)';
  const rule = '='.repeat(100);
  const lines = [
    rule,
    'lxcq is running',
    `  API      ${base}   (listening on ${bind}:${port}; OpenAPI at ${base}/docs)`,
    `  web      ${base}/ui/   (the dashboard: sign in with the token)`,
    `  token    ${token}`,
    `           (admin; from ${tokenSource})`,
    `  worker   host ${hostId}, lxcpath ${lxcpath}${registered ? ', registered' : ', not registered yet: see its log lines'}`,
    `  redis    ${shownRedis}`,
    `  try      curl -s -H 'Authorization: Bearer ${token}' ${base}/v1/hosts`,
    `  stop     Ctrl-C (or SIGTERM to pid ${process.pid})`,
    rule,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err: unknown) => {
  void shutdown(`start-up failed: ${err instanceof Error ? err.stack || err.message : String(err)}`, 1);
});
