/**
 * The API's and the worker's settings: from the environment and LXCQ_CONFIG_FILE through the one
 * table (packages/shared/src/settings.ts), and what the processes do with a bad one.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { workerConfig } from '../../worker/src/config.ts';
import { sha256 } from '../src/auth.ts';
import { ConfigError, apiConfig } from '../src/config.ts';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'lxcq-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function conf(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  chmodSync(file, 0o640);
  return file;
}

/** Starts a service's entry point and collects its output until it exits (a bad setting: at once). */
function run(entry: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', entry], {
      cwd: repo,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000); // it must exit by itself
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('API and worker settings', () => {
  it('apiConfig: the file supplies what the environment does not set; the environment wins', () => {
    const file = conf(
      'api.conf',
      'LXCQ_REDIS_URL=redis://127.0.0.1:6399\nLXCQ_TOKEN=file-token-0123456789\nLXCQ_PORT=8081\nLXCQ_LOG_REQUESTS=1\nLXCQ_THREADS=2\n',
    );
    const config = apiConfig({ LXCQ_CONFIG_FILE: file, LXCQ_PORT: '9091', LXCQ_LOG_LEVEL: 'warn' }, sha256);
    expect(config.port).toBe(9091);
    expect(config.redisUrl).toBe('redis://127.0.0.1:6399');
    expect(config.tokens).toEqual([
      { name: 'admin', sha256: sha256('file-token-0123456789'), scopes: ['admin'] },
    ]);
    expect(config.logRequests).toBe(true);
    expect(config.logLevel).toBe('warn');
    expect(config.prefix).toBe('lxcq'); // defaults from the table
    expect(config.bodyLimit).toBe(1024 * 1024);
  });

  it('workerConfig: transfer addresses that other hosts could not use are refused', () => {
    const base = { LXCQ_REDIS_URL: '/tmp/x.sock', LXCQ_HOST_ID: 'h1', LXCQ_LXCPATH: '/var/lib/lxc' };
    expect(() => workerConfig({ ...base, LXCQ_TRANSFER_BIND: '0.0.0.0:7071' })).toThrow(
      "LXCQ_TRANSFER_BIND=0.0.0.0:7071 listens on every address, so other hosts cannot be told which one reaches this host: set LXCQ_TRANSFER_ADVERTISE=<this host's address>:7071.",
    );
    expect(() => workerConfig({ ...base, LXCQ_TRANSFER_ADVERTISE: '10.0.0.5:7071' })).toThrow(
      'LXCQ_TRANSFER_ADVERTISE needs a fixed port',
    );
    const ok = workerConfig({
      ...base,
      LXCQ_TRANSFER_BIND: '0.0.0.0:7071',
      LXCQ_TRANSFER_ADVERTISE: '10.0.0.5:7071',
    });
    expect(ok.transferBind).toEqual({ host: '0.0.0.0', port: 7071 });
    expect(ok.transferAdvertise).toBe('10.0.0.5:7071');
    expect(() => workerConfig({ ...base, LXCQ_THREADS: 'four' })).toThrow(ConfigError);
  });

  it('the API process stops with status 2 and one clear line on a misspelt name', async () => {
    const r = await run('services/api/src/server.ts', {
      LXCQ_REDIS_URL: 'redis://127.0.0.1:6399',
      LXCQ_TOKEN: 'a-token-0123456789abcdef',
      LXCQ_BODY_LIMT: '2048',
    });
    expect(r.code).toBe(2);
    const line = JSON.parse(r.out.trim().split('\n')[0] as string) as { level: number; msg: string };
    expect(line.level).toBe(60); // fatal
    expect(line.msg).toBe(
      'unknown setting LXCQ_BODY_LIMT in the environment; the closest known setting is LXCQ_BODY_LIMIT (every setting: docs/configuration.md).',
    );
    expect(r.out).not.toContain('a-token-0123456789abcdef');
  });

  it('the API process names the file and line of a bad value, and never shows a secret', async () => {
    const file = conf(
      'bad.conf',
      "# x\nLXCQ_REDIS_URL='http://:p4ssw0rd-secret@127.0.0.1:6399'\nLXCQ_TOKEN=a-token-0123456789abcdef\n",
    );
    const r = await run('services/api/src/server.ts', { LXCQ_CONFIG_FILE: file });
    expect(r.code).toBe(2);
    expect(r.out).toContain(
      `LXCQ_REDIS_URL (value hidden) must be redis://[:password@]host:port[/db], rediss://... (TLS), redis-sentinel://host:port[,host:port...]/<master name>, redis-cluster://host:port[,host:port...] or the absolute path of a unix socket (set in ${file} line 2).`,
    );
    expect(r.out).not.toContain('p4ssw0rd');
  });

  it('the worker process stops with status 2 on a bad value from the environment', async () => {
    const r = await run('services/worker/src/main.ts', {
      LXCQ_REDIS_URL: 'redis://127.0.0.1:6399',
      LXCQ_HOST_ID: 'h1',
      LXCQ_LOCK_MS: '500',
    });
    expect(r.code).toBe(2);
    expect(r.out).toContain('LXCQ_LOCK_MS=500 is not a whole number >= 1000 (set in the environment).');
  });
});
