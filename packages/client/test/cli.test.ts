// The real `lxcq` binary (node + tsx) against a real stack, through LXCQ_URL / LXCQ_TOKEN: output,
// exit codes and --json, for the everyday commands and the ways they go wrong.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerInfo, Job } from '@lxcq/shared';
import { Stack, TOKEN } from '../../../services/api/test/harness.ts';
import { freePort, lxcq } from './helpers.ts';

let s: Stack;
let home: string;
let env: Record<string, string>;
const NO_NET = 'lxc.net.0.type=empty';
const hasZsh = (() => {
  try {
    execFileSync('zsh', ['-c', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

beforeAll(async () => {
  s = await Stack.start();
  // A home of its own, so `lxcq login` never touches the real ~/.config.
  home = mkdtempSync(join(tmpdir(), 'lxcq-cli-home-'));
  env = { HOME: home, LXCQ_URL: s.url, LXCQ_TOKEN: TOKEN };
});
afterAll(async () => {
  await s?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('lxcq CLI', () => {
  it('create --start follows the job in plain lines when piped, then prints the container', async () => {
    const r = await lxcq(['create', 'cli1', '--template', 'busybox', '--start', '--config', NO_NET], env);
    expect(r.stderr).toMatch(/^job [0-9a-f-]{36} queued\nactive\n(\d+% .+\n)+completed\n$/);
    expect(r.stderr).toContain('% starting');
    expect(r.stdout).toMatch(/^cli1 RUNNING on h1, pid \d+\n$/);
    expect(r.code).toBe(0);
    expect(s.lxcState('cli1')).toBe('RUNNING');
  });

  it('list prints NAME STATE HOST PID IPS, and JSON with --json', async () => {
    const r = await lxcq(['list'], env);
    expect(r.code).toBe(0);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    expect(header?.split(/\s+/)).toEqual(['NAME', 'STATE', 'HOST', 'PID', 'IPS']);
    expect(rows.map((x) => x.split(/\s+/).slice(0, 3))).toEqual([['cli1', 'RUNNING', 'h1']]);
    const j = await lxcq(['list', '--json', '--state', 'RUNNING'], env);
    expect(j.code).toBe(0);
    expect(j.stderr).toBe('');
    const list = JSON.parse(j.stdout) as ContainerInfo[];
    expect(list.map((c) => [c.name, c.state, c.host])).toEqual([['cli1', 'RUNNING', 'h1']]);
    const q = await lxcq(['ls', '-q'], env);
    expect(q.stdout).toBe('cli1\n');
  });

  it("exec prints the command's output and exits with its exit code", async () => {
    const r = await lxcq(['exec', 'cli1', '--', 'sh', '-c', 'echo hi; echo oops >&2; exit 3'], env);
    expect(r.stdout).toBe('hi\n');
    expect(r.stderr).toBe('oops\n');
    expect(r.code).toBe(3);
    const e = await lxcq(
      ['exec', 'cli1', '--env', 'WHO=you', '--cwd', '/tmp', '--', 'sh', '-c', 'echo "$WHO $PWD"'],
      env,
    );
    expect(e).toMatchObject({ code: 0, stdout: 'you /tmp\n' });
    const j = await lxcq(['exec', '--json', 'cli1', '--', 'sh', '-c', 'echo hi; exit 3'], env);
    expect(j.code).toBe(3);
    expect((JSON.parse(j.stdout) as Job).result).toMatchObject({ exitCode: 3, stdout: 'hi\n' });
  });

  it('a failing operation exits 1 with "error CODE: message" (and the failed job with --json)', async () => {
    expect((await lxcq(['stop', 'cli1'], env)).code).toBe(0);
    const r = await lxcq(['freeze', 'cli1'], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/\nfailed\nerror LXCQ_INVALID_STATE: .+/);
    const j = await lxcq(['freeze', 'cli1', '--json'], env);
    expect(j.code).toBe(1);
    const job = JSON.parse(j.stdout) as Job;
    expect(job).toMatchObject({
      operation: 'freeze',
      state: 'failed',
      error: { code: 'LXCQ_INVALID_STATE' },
    });
    // refused at once by the API
    const taken = await lxcq(['create', 'cli1', '--config', NO_NET], env);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/^error LXCQ_CONTAINER_EXISTS: /);
    const missing = await lxcq(['show', 'nope', '--json'], env);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ error: { code: 'LXCQ_CONTAINER_NOT_FOUND' } });
    // bad input is a usage error
    const bad = await lxcq(['start', '../etc'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error LXCQ_VALIDATION: /);
  });

  it('--async prints the job id and returns; wait, job and log pick it up', async () => {
    const r = await lxcq(['start', 'cli1', '--async'], env);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(UUID);
    expect(r.stderr).toBe('');
    const id = r.stdout.trim();
    const w = await lxcq(['wait', id], env);
    expect(w.code).toBe(0);
    expect(w.stdout).toMatch(/^cli1 RUNNING on h1/);
    const j = await lxcq(['job', id, '--json'], env);
    expect(JSON.parse(j.stdout)).toMatchObject({ id, operation: 'start', state: 'completed' });
    const a = await lxcq(['stop', 'cli1', '--async', '--json'], env);
    expect(JSON.parse(a.stdout)).toMatchObject({ operation: 'stop', container: 'cli1' });
    const jobs = await lxcq(['jobs', '--container', 'cli1', '--limit', '2'], env);
    expect(jobs.stdout.split('\n')[0]?.split(/\s{2,}/)).toEqual([
      'ID',
      'OPERATION',
      'CONTAINER',
      'STATE',
      'PROGRESS/ERROR',
      'CREATED',
    ]);
    expect((await lxcq(['log', id], env)).code).toBe(0);
  });

  it('a wrong or missing token gets a clear message and exit 2', async () => {
    const r = await lxcq(['list'], { ...env, LXCQ_TOKEN: 'not-the-right-token' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `error LXCQ_UNAUTHORIZED: lxcq at ${s.url} refused the token in LXCQ_TOKEN (wrong token?): pass the right one with --token, LXCQ_TOKEN or lxcq login\n`,
    );
    const none = await lxcq(['hosts'], { HOME: home, LXCQ_URL: s.url });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(
      /needs a token and none was given: pass --token, set LXCQ_TOKEN, or run lxcq login/,
    );
    const j = await lxcq(['list', '--json', '--token', 'nope-nope-nope'], env);
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stdout)).toMatchObject({ error: { code: 'LXCQ_UNAUTHORIZED' } });
  });

  it('an unreachable server gets a clear message and exit 2', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const r = await lxcq(['list'], { ...env, LXCQ_URL: url });
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(
      `error LXCQ_UNREACHABLE: cannot reach lxcq at ${url}: ECONNREFUSED; is it running?`,
    );
    expect(r.stderr).toContain('the URL in LXCQ_URL');
    const none = await lxcq(['list'], { HOME: home });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^error LXCQ_USAGE: no lxcq URL: pass --url/);
  });

  it('login saves URL and token (mode 0600) for later commands; flags beat env beat the file', async () => {
    const r = await lxcq(['login', '--url', s.url, '--token', TOKEN], { HOME: home });
    expect(r.code).toBe(0);
    const file = join(home, '.config', 'lxcq', 'config.json');
    expect(r.stdout).toBe(`logged in to ${s.url} (1 host); saved in ${file}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ url: s.url, token: TOKEN });
    expect((await lxcq(['hosts', '-q'], { HOME: home })).stdout).toBe('h1\n');
    // env over the file, flag over env
    const viaEnv = await lxcq(['hosts'], { HOME: home, LXCQ_TOKEN: 'wrong-wrong-wrong' });
    expect(viaEnv.code).toBe(2);
    const viaFlag = await lxcq(['hosts', '-q', '--token', TOKEN], {
      HOME: home,
      LXCQ_TOKEN: 'wrong-wrong-wrong',
    });
    expect(viaFlag).toMatchObject({ code: 0, stdout: 'h1\n' });
    const refused = await lxcq(['login', '--url', s.url, '--token', 'wrong-wrong-wrong'], { HOME: home });
    expect(refused.code).toBe(2);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ url: s.url, token: TOKEN });
  });

  it('convert makes a privileged container unprivileged and says what it shifted; again, nothing', async () => {
    const made = await lxcq(
      ['create', 'cliconv', '--template', 'busybox', '--privileged', '--config', NO_NET],
      env,
    );
    expect(made.code, made.stderr).toBe(0);
    const r = await lxcq(['convert', 'cliconv'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/% shifting files: (\d+)\/\1\n/);
    const [line, summary] = r.stdout.trimEnd().split('\n');
    expect(line).toBe('cliconv STOPPED on h1');
    expect(summary).toMatch(
      /^converted to unprivileged: \d+ of \d+ files shifted, 0 with capabilities, 0 with ACLs$/,
    );
    const again = await lxcq(['convert', 'cliconv'], env);
    expect(again.stdout).toMatch(/^cliconv is unprivileged already: nothing changed$/m);
    expect((await lxcq(['destroy', 'cliconv', '--yes'], env)).code).toBe(0);
  });

  it('usage errors exit 2; destroy wants --yes when it cannot ask; completion scripts parse', async () => {
    expect((await lxcq(['frobnicate'], env)).code).toBe(2);
    expect((await lxcq([], env)).code).toBe(2);
    expect((await lxcq(['limits', 'cli1', '--memory', 'lots'], env)).code).toBe(2);
    expect((await lxcq(['--help'], env)).code).toBe(0);
    const d = await lxcq(['destroy', 'cli1'], env);
    expect(d.code).toBe(2);
    expect(d.stderr).toMatch(/pass --yes/);
    const bash = await lxcq(['completion', 'bash'], env);
    expect(bash.code).toBe(0);
    expect(() => execFileSync('bash', ['-n'], { input: bash.stdout })).not.toThrow();
    expect(bash.stdout).toContain('complete -F _lxcq lxcq');
    const zsh = await lxcq(['completion', 'zsh'], env);
    expect(zsh.stdout).toMatch(/^#compdef lxcq/);
  });

  // zsh is not part of the host set-up: this runs where it is installed, and shows as skipped elsewhere.
  it('the zsh completion script parses (zsh -n)', async () => {
    expect(hasZsh, 'zsh comes with scripts/setup-host.sh').toBe(true);
    const zsh = await lxcq(['completion', 'zsh'], env);
    expect(() => execFileSync('zsh', ['-n'], { input: zsh.stdout })).not.toThrow();
  });

  it('events prints what happened, one line each or NDJSON; destroy --yes removes the container', async () => {
    const r = await lxcq(['destroy', 'cli1', '--yes', '--force'], env);
    expect(r).toMatchObject({ code: 0, stdout: 'destroyed cli1\n' });
    expect(s.lxcLs()).toEqual([]);
    const ev = await lxcq(
      ['events', '--since', '10m', '--container', 'cli1', '--types', 'job.completed'],
      env,
    );
    expect(ev.code).toBe(0);
    const lines = ev.stdout.trimEnd().split('\n');
    expect(lines.every((l) => / job\.completed +cli1 @h1 /.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(/ destroy {2}job /);
    const nd = await lxcq(['events', '--json', '--since', '10m', '--container', 'cli1'], env);
    const events = nd.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; container: string });
    expect(events.length).toBeGreaterThan(lines.length);
    expect(events.every((e) => e.container === 'cli1')).toBe(true);
    expect(events.map((e) => e.type)).toContain('container.destroyed');
  });
});
