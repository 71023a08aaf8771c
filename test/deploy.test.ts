/**
 * The install command and the systemd units, exercised as far as this machine allows: systemd is
 * not PID 1 in the development and CI sandboxes, so nothing here can `systemctl start` (a stand-in
 * records the systemctl calls install.sh makes). Instead:
 * scripts/install.sh --root installs into a temporary root (a real system user included), its
 * units pass `systemd-analyze verify`, and each unit's ExecStart is run by hand the way systemd
 * would run it (its User=, its Environment=) against a real Redis: the API answers with the token
 * the install generated into the config file, and the worker registers the host id written there.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeLxcpath } from '../services/api/test/harness.ts';

const repo = fileURLToPath(new URL('../', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'lxcq-install-'));
chmodSync(root, 0o755); // the API's user must reach the code under it, as under /opt
const user = `lxcqt${randomBytes(3).toString('hex')}`;
const hostId = `deploy-${randomBytes(3).toString('hex')}`;
const redisPassword = randomBytes(16).toString('hex');
const conf = join(root, 'etc/lxcq/lxcq.conf');
const unitDir = join(root, 'etc/systemd/system');
const children: ChildProcess[] = [];
// systemd is not PID 1 here: a stand-in records what install.sh asks of systemctl
const systemctlLog = join(root, 'systemctl.log');
const systemctl = join(root, 'systemctl');
writeFileSync(systemctl, `#!/bin/sh\necho "$*" >> '${systemctlLog}'\n`, { mode: 0o755 });

/** The systemctl calls since the last look. */
function systemctlCalls(): string[] {
  if (!existsSync(systemctlLog)) return [];
  const calls = readFileSync(systemctlLog, 'utf8').trim().split('\n').filter(Boolean);
  rmSync(systemctlLog);
  return calls;
}
let redis: ChildProcess | undefined;
let redisPort = 0;
let lxcpath = '';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function install(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('bash', [join(repo, 'scripts/install.sh'), '--root', root, '--user', user, ...args], {
    encoding: 'utf8',
    env: { ...process.env, LXCQ_INSTALL_SYSTEMCTL: systemctl },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 300_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The [Service] settings of a unit file: key -> every value given (Environment= may repeat). */
function serviceSection(path: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  let section = '';
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const header = /^\[(.+)\]$/.exec(line);
    if (header) section = header[1] as string;
    else if (section === 'Service' && /^[A-Za-z]+=/.test(line)) {
      const i = line.indexOf('=');
      const key = line.slice(0, i);
      map.set(key, [...(map.get(key) ?? []), line.slice(i + 1)]);
    }
  }
  return map;
}

/** Runs a unit's ExecStart as systemd would: its User=/Group=, its Environment=, a plain PATH. */
function runUnit(unit: string, extraEnv: Record<string, string>): { child: ChildProcess; log: () => string } {
  const s = serviceSection(join(unitDir, unit));
  const exec = s.get('ExecStart')?.[0];
  if (!exec) throw new Error(`${unit} has no ExecStart`);
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  };
  for (const assignment of s.get('Environment') ?? []) {
    const i = assignment.indexOf('=');
    env[assignment.slice(0, i)] = assignment.slice(i + 1);
  }
  const owner = s.get('User')?.[0];
  const ids = owner
    ? {
        uid: Number(execFileSync('id', ['-u', owner], { encoding: 'utf8' }).trim()),
        gid: Number(execFileSync('id', ['-g', s.get('Group')?.[0] ?? owner], { encoding: 'utf8' }).trim()),
      }
    : {};
  const [command, ...args] = exec.split(' ') as [string, ...string[]];
  const child = spawn(command, args, {
    env: { ...env, ...extraEnv },
    ...ids,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let log = '';
  child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  return { child, log: () => log };
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function stop(child: ChildProcess): Promise<number | null> {
  const done = exited(child);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  return done;
}

function confValue(name: string): string {
  const line = readFileSync(conf, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}=`));
  return (line ?? '').slice(name.length + 1).replace(/^'(.*)'$/, '$1');
}

beforeAll(async () => {
  redisPort = await freePort();
  const dir = join(root, 'test-redis');
  mkdirSync(dir);
  redis = spawn(
    'redis-server',
    [
      '--port',
      String(redisPort),
      '--bind',
      '127.0.0.1',
      '--requirepass',
      redisPassword,
      '--dir',
      dir,
      '--save',
      '',
    ],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(redisPort, '127.0.0.1', () => (s.end(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (up) break;
    await sleep(50);
  }
  lxcpath = mkdtempSync(join(tmpdir(), 'lxcq-lxcpath-deploy-'));
  // something else living in /opt/lxcq (setup-host.sh's private CRIU) must survive an uninstall
  mkdirSync(join(root, 'opt/lxcq/criu'), { recursive: true });
  writeFileSync(join(root, 'opt/lxcq/criu/keep'), 'x');
});

afterAll(async () => {
  for (const child of children) await stop(child);
  if (redis) await stop(redis);
  removeLxcpath(lxcpath);
  if (spawnSync('getent', ['passwd', user]).status === 0) spawnSync('userdel', [user]);
  if (spawnSync('getent', ['group', user]).status === 0) spawnSync('groupdel', [user]);
  rmSync(root, { recursive: true, force: true });
});

describe('scripts/install.sh into a temporary root, and the units it installs', () => {
  let token = '';

  it('installs: user, code copy, wrappers, config with a generated token (root:user 0640), units', () => {
    const r = install('--redis-url', `redis://:${redisPassword}@127.0.0.1:${redisPort}`, '--host-id', hostId);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`created system user ${user}`);
    expect(spawnSync('getent', ['passwd', user], { encoding: 'utf8' }).stdout).toMatch(
      /:\/usr\/sbin\/nologin\n$/,
    );
    const st = statSync(conf);
    expect(st.mode & 0o777).toBe(0o640);
    expect(st.uid).toBe(0);
    expect(st.gid).toBe(Number(execFileSync('id', ['-g', user], { encoding: 'utf8' })));
    expect(statSync(join(root, 'etc/lxcq')).mode & 0o777).toBe(0o750);
    token = confValue('LXCQ_TOKEN');
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes, base64url
    expect(confValue('LXCQ_REDIS_URL')).toBe(`redis://:${redisPassword}@127.0.0.1:${redisPort}`);
    expect(confValue('LXCQ_HOST_ID')).toBe(hostId);
    expect(existsSync(join(root, 'opt/lxcq/app/services/api/src/server.ts'))).toBe(true);
    expect(existsSync(join(root, 'opt/lxcq/app/node_modules/tsx'))).toBe(true);
    expect(statSync(join(root, 'opt/lxcq/bin/lxcq-worker')).mode & 0o777).toBe(0o755);
    // the CLI on PATH: /usr/local/bin/lxcq links to its wrapper
    expect(readlinkSync(join(root, 'usr/local/bin/lxcq'))).toBe(join(root, 'opt/lxcq/bin/lxcq'));
    expect(statSync(join(root, 'opt/lxcq/bin/lxcq')).mode & 0o777).toBe(0o755);
    // with a shared Redis there is no lxcq-redis
    expect(existsSync(join(unitDir, 'lxcq-redis.service'))).toBe(false);
    expect(systemctlCalls()).toEqual([
      'daemon-reload',
      'enable lxcq-api.service lxcq-worker.service',
      'restart lxcq-api.service',
      'restart lxcq-worker.service',
      'is-active --quiet lxcq-api.service',
      'is-active --quiet lxcq-worker.service',
    ]);
  });

  it('installs the units of deploy/systemd with only the paths and the user changed', () => {
    for (const unit of ['lxcq-api.service', 'lxcq-worker.service']) {
      const expected = readFileSync(join(repo, 'deploy/systemd', unit), 'utf8')
        .replaceAll('/opt/lxcq/', `${root}/opt/lxcq/`)
        .replaceAll('/etc/lxcq/', `${root}/etc/lxcq/`)
        .replace(/^User=lxcq$/m, `User=${user}`)
        .replace(/^Group=lxcq$/m, `Group=${user}`);
      expect(readFileSync(join(unitDir, unit), 'utf8')).toBe(expected);
    }
    const worker = serviceSection(join(unitDir, 'lxcq-worker.service'));
    expect(worker.get('User')).toBeUndefined(); // root
    expect(worker.get('KillMode')).toEqual(['process']); // a stop never signals containers
    const api = serviceSection(join(unitDir, 'lxcq-api.service'));
    expect(api.get('User')).toEqual([user]);
    expect(api.get('RestartPreventExitStatus')).toEqual(['2']); // a bad setting is not retried
  });

  it('the units pass systemd-analyze verify without a warning; the API sandbox rates OK', () => {
    const units = ['lxcq-api.service', 'lxcq-worker.service'].map((u) => join(unitDir, u));
    const verify = spawnSync('systemd-analyze', ['verify', '--man=no', ...units], { encoding: 'utf8' });
    expect(verify.status, verify.stderr).toBe(0);
    expect(`${verify.stdout}${verify.stderr}`).toBe('');
    const security = spawnSync('systemd-analyze', ['security', '--offline=true', units[0] as string], {
      encoding: 'utf8',
    });
    const exposure = /Overall exposure level for lxcq-api\.service: ([\d.]+)/.exec(security.stdout);
    expect(exposure, security.stdout + security.stderr).not.toBeNull();
    expect(Number(exposure?.[1])).toBeLessThanOrEqual(2);
  });

  it('runs again without changing anything: same token, same files', () => {
    const before = readFileSync(conf, 'utf8');
    const r = install();
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/app is this checkout already/);
    expect(r.out).toContain('lxcq.conf kept as it is');
    expect(r.out).not.toMatch(/ (created|updated) \(/);
    expect(readFileSync(conf, 'utf8')).toBe(before);
    // nothing changed, so nothing is restarted: `start` does nothing to a running unit
    expect(systemctlCalls().filter((c) => !c.startsWith('is-active'))).toEqual([
      'daemon-reload',
      'enable lxcq-api.service lxcq-worker.service',
      'start lxcq-api.service',
      'start lxcq-worker.service',
    ]);
  });

  it("the API unit's ExecStart, run as its user with its environment, serves with the file's token", async () => {
    const port = await freePort();
    // LXCQ_PORT from the environment wins over the file (which keeps the default 7070)
    const api = runUnit('lxcq-api.service', { LXCQ_PORT: String(port) });
    const base = `http://127.0.0.1:${port}`;
    const health = () =>
      fetch(`${base}/v1/health`).then(
        (r) => r.status,
        () => 0,
      );
    // Up: it answers (503 until a worker is online, see below).
    let status = 0;
    for (let i = 0; i < 400 && status === 0; i++) {
      if (api.child.exitCode !== null)
        throw new Error(`the API exited (${api.child.exitCode}):\n${api.log()}`);
      status = await health();
      if (status === 0) await sleep(100);
    }
    expect(status, api.log()).toBe(503);
    // The dashboard was built into the copy, and is served.
    expect((await fetch(`${base}/ui/`)).status).toBe(200);
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }));
    expect(statSync(`/proc/${api.child.pid}`).uid).toBe(uid); // it runs as the unprivileged user
    const ok = await fetch(`${base}/v1/hosts`, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    const bad = await fetch(`${base}/v1/hosts`, {
      headers: { authorization: 'Bearer not-the-token-0123456789' },
    });
    expect(bad.status).toBe(401);

    // The worker unit's ExecStart, as root: it registers the host id from the file.
    const worker = runUnit('lxcq-worker.service', { LXCQ_LXCPATH: lxcpath, LXCQ_HEARTBEAT_MS: '500' });
    let state = '';
    for (let i = 0; i < 1200 && state !== 'online'; i++) {
      if (worker.child.exitCode !== null)
        throw new Error(`the worker exited (${worker.child.exitCode}):\n${worker.log()}`);
      const r = await fetch(`${base}/v1/hosts/${hostId}`, { headers: { authorization: `Bearer ${token}` } });
      if (r.status === 200) state = ((await r.json()) as { status: string }).status;
      if (state !== 'online') await sleep(100);
    }
    try {
      expect(state, worker.log()).toBe('online');
      expect(await health()).toBe(200);
      // LXCQ_LXCPATH from the environment. The host can be online (its first heartbeat) a moment
      // before the worker's "ready" line, which names the lxcpath, reaches the log.
      const want = `"lxcpath":"${lxcpath}"`;
      for (let i = 0; i < 300 && !worker.log().includes(want); i++) await sleep(100);
      expect(worker.log()).toContain(want);

      // The CLI install.sh put on PATH (through its link) talks to this API.
      const cli = spawnSync(
        join(root, 'usr/local/bin/lxcq'),
        ['--url', base, '--token', token, '--json', 'hosts'],
        { encoding: 'utf8', env: { ...process.env, XDG_CONFIG_HOME: join(root, 'cli-config') } },
      );
      expect(cli.status, cli.stderr).toBe(0);
      expect((JSON.parse(cli.stdout) as { id: string }[]).map((h) => h.id)).toContain(hostId);

      // No secret of the config file reaches a container: exec env in a real one shows no
      // LXCQ_* setting, no token and no Redis password (the worker reads them from the file).
      const call = async (method: string, path: string, body: unknown) =>
        (await (
          await fetch(`${base}${path}`, {
            method,
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify(body),
          })
        ).json()) as { state: string; result?: { stdout?: string } };
      const made = await call('POST', '/v1/containers?wait=120', {
        name: 'envcheck',
        template: 'busybox',
        config: { 'lxc.net.0.type': 'empty' },
        host: hostId,
        start: true,
      });
      expect(made.state, JSON.stringify(made)).toBe('completed');
      const ran = await call('POST', '/v1/containers/envcheck/exec?wait=60', { argv: ['env'] });
      expect(ran.state, JSON.stringify(ran)).toBe('completed');
      const env = (ran.result?.stdout ?? '').split('\n').filter(Boolean);
      expect(env.some((e) => e.startsWith('PATH='))).toBe(true);
      expect(env.filter((e) => e.startsWith('LXCQ_'))).toEqual([]);
      expect(env.join('\n')).not.toContain(token);
      expect(env.join('\n')).not.toContain(redisPassword);
    } finally {
      // Stopped whatever happened above: a unit left running as its user would fail the purge test.
      expect(await stop(worker.child)).toBe(0);
      expect(await stop(api.child)).toBe(0);
    }
  });

  it('a typo in the installed config stops the worker at start: exit status 2, the line and the closest name', async () => {
    const before = readFileSync(conf, 'utf8');
    writeFileSync(conf, `${before}LXCQ_THREAD=8\n`);
    try {
      const worker = runUnit('lxcq-worker.service', { LXCQ_LXCPATH: lxcpath });
      expect(await exited(worker.child)).toBe(2);
      expect(worker.log()).toContain(
        `${conf} line ${before.split('\n').length}: unknown setting LXCQ_THREAD in this file; the closest known setting is LXCQ_THREADS`,
      );
      expect(worker.log()).not.toContain(token);
    } finally {
      writeFileSync(conf, before);
    }
  });

  it('--dry-run changes nothing', () => {
    const units = readFileSync(join(unitDir, 'lxcq-api.service'), 'utf8');
    const r = install('--dry-run', '--uninstall', '--purge');
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain('would run: rm -rf');
    expect(r.out).toContain(`would run: ${systemctl} disable --now lxcq-api.service`);
    expect(systemctlCalls()).toEqual([]);
    expect(readFileSync(join(unitDir, 'lxcq-api.service'), 'utf8')).toBe(units);
    expect(existsSync(conf)).toBe(true);
  });

  it('--uninstall keeps config, data and user; a new install without --redis-url adds lxcq-redis', async () => {
    const r = install('--uninstall');
    expect(r.status, r.out).toBe(0);
    for (const gone of [
      'etc/systemd/system/lxcq-api.service',
      'opt/lxcq/bin',
      'opt/lxcq/app',
      'usr/local/bin/lxcq',
    ])
      expect(existsSync(join(root, gone)), gone).toBe(false);
    expect(existsSync(join(root, 'opt/lxcq/criu/keep'))).toBe(true);
    expect(existsSync(conf)).toBe(true);
    expect(spawnSync('getent', ['passwd', user]).status).toBe(0);
    expect(systemctlCalls()).toEqual([
      'disable --now lxcq-api.service',
      'disable --now lxcq-worker.service',
      'daemon-reload',
    ]);

    // A one-host install: its own Redis on a unix socket, with AOF.
    rmSync(conf);
    const again = install('--no-start');
    expect(again.status, again.out).toBe(0);
    expect(systemctlCalls()).toEqual([
      'daemon-reload',
      'enable lxcq-redis.service lxcq-api.service lxcq-worker.service',
    ]);
    const sock = join(root, 'run/lxcq-redis/redis.sock');
    expect(confValue('LXCQ_REDIS_URL')).toBe(sock);
    const units = ['lxcq-redis.service', 'lxcq-api.service', 'lxcq-worker.service'].map((u) =>
      join(unitDir, u),
    );
    const verify = spawnSync('systemd-analyze', ['verify', '--man=no', ...units], { encoding: 'utf8' });
    expect(`${verify.status} ${verify.stdout}${verify.stderr}`).toBe('0 ');
    expect(serviceSection(units[0] as string).get('Group')).toEqual([user]);

    // redis-server runs with the written redis.conf (as lxcq-redis.service would, in the foreground)
    const redisConf = join(root, 'etc/lxcq/redis.conf');
    mkdirSync(join(root, 'run/lxcq-redis'), { recursive: true });
    mkdirSync(join(root, 'var/lib/lxcq-redis'), { recursive: true });
    const own = spawn('redis-server', [redisConf, '--daemonize', 'no'], { stdio: 'ignore' });
    children.push(own);
    for (let i = 0; i < 100 && !existsSync(sock); i++) await sleep(50);
    const cli = (...args: string[]): string =>
      execFileSync('redis-cli', ['-s', sock, ...args], { encoding: 'utf8' });
    expect(cli('CONFIG', 'GET', 'appendonly')).toBe('appendonly\nyes\n');
    expect(cli('CONFIG', 'GET', 'appendfsync')).toBe('appendfsync\neverysec\n');
    expect(cli('CONFIG', 'GET', 'port')).toBe('port\n0\n'); // no TCP
    expect(statSync(sock).mode & 0o777).toBe(0o770);
    expect(await stop(own)).toBe(0);
  });

  it('--uninstall --purge removes config, Redis data and the user, and nothing else of /opt/lxcq', () => {
    const r = install('--uninstall', '--purge');
    expect(r.status, r.out).toBe(0);
    expect(existsSync(join(root, 'etc/lxcq'))).toBe(false);
    expect(existsSync(join(root, 'var/lib/lxcq-redis'))).toBe(false);
    expect(existsSync(join(unitDir, 'lxcq-redis.service'))).toBe(false);
    expect(spawnSync('getent', ['passwd', user]).status).toBe(2);
    expect(existsSync(join(root, 'opt/lxcq/criu/keep'))).toBe(true);
  });
});
