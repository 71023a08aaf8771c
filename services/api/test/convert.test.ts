// convert: a privileged busybox container (made by an admin) with files of odd owners, modes,
// setuid/setgid bits, symlinks, hard links, POSIX ACLs and file capabilities becomes unprivileged.
// Checked on disk (every id moved by the host range, exactly once) and from inside the started
// container (its user namespace maps the range, the files show their old owners, a capability
// works as the namespace's). Then the refusals (operate token, running, snapshots, ids out of
// range: nothing changed) and a worker killed in the middle of the shift (failpoint): the re-run
// finishes it without shifting anything twice.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG, TOKEN, type Job } from './harness.ts';
import { Sub } from './ws-client.ts';

const dir = mkdtempSync(join(tmpdir(), 'lxcq-convert-'));
const tokensFile = join(dir, 'tokens.json');
const OPERATOR = 'operator-token-0123456789';
writeFileSync(
  tokensFile,
  JSON.stringify({ tokens: [{ name: 'operator', token: OPERATOR, scopes: ['operate'] }] }),
);
/** A host file a symlink in the rootfs points at: a chown that follows links would change it. */
const hostTarget = join(dir, 'host-target');
writeFileSync(hostTarget, 'host');

/** root's first subordinate uid and gid (scripts/setup-host.sh writes root:1000000:1000000000). */
const SUB = Number(/^root:(\d+):/m.exec(readFileSync('/etc/subuid', 'utf8'))?.[1]);
const SUBG = Number(/^root:(\d+):/m.exec(readFileSync('/etc/subgid', 'utf8'))?.[1]);

let s: Stack;
beforeAll(async () => {
  // A short lock: a killed worker's job is taken up again within seconds.
  s = await Stack.start({ tokensFile, workerEnv: { LXCQ_LOCK_MS: '3000' } });
}, 120_000);
afterAll(async () => {
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

const rootfs = (name: string) => join(s.lxcpath, name, 'rootfs');

async function privileged(name: string): Promise<void> {
  const j = await s.run('POST', '/v1/containers', {
    name,
    template: 'busybox',
    config: TEST_CONFIG,
    privileged: true,
  });
  expect(j.state, JSON.stringify(j.error)).toBe('completed');
  expect((j.result as { privileged?: boolean }).privileged).toBe(true);
}

/** Every path of a tree with its owner and mode (lstat: links themselves). */
function owners(root: string): Map<string, { uid: number; gid: number; mode: number }> {
  const out = new Map<string, { uid: number; gid: number; mode: number }>();
  const walk = (rel: string) => {
    const st = lstatSync(join(root, rel));
    out.set(rel, { uid: st.uid, gid: st.gid, mode: st.mode });
    if (st.isDirectory()) for (const e of readdirSync(join(root, rel))) walk(rel ? `${rel}/${e}` : e);
  };
  walk('');
  return out;
}

/** How many distinct files (inodes) a tree has. */
function inodes(root: string): number {
  const seen = new Set<string>();
  const walk = (path: string) => {
    const st = lstatSync(path);
    seen.add(`${st.dev}:${st.ino}`);
    if (st.isDirectory()) for (const e of readdirSync(path)) walk(join(path, e));
  };
  walk(root);
  return seen.size;
}

/** The odd files of the main case, made as host root in a stopped container's rootfs. */
function oddFiles(root: string): void {
  const odd = join(root, 'odd');
  mkdirSync(odd);
  const file = (rel: string, uid: number, gid: number, mode: number, content = rel) => {
    writeFileSync(join(odd, rel), content);
    lchownSync(join(odd, rel), uid, gid);
    chmodSync(join(odd, rel), mode);
  };
  file('user', 1000, 1000, 0o640);
  file('setuid', 0, 0, 0o4755);
  file('setgid', 1000, 50, 0o2750);
  file('nobody', 65534, 65534, 0o600);
  mkdirSync(join(odd, 'sticky'));
  chmodSync(join(odd, 'sticky'), 0o1777);
  mkdirSync(join(odd, 'sgid-dir'));
  lchownSync(join(odd, 'sgid-dir'), 0, 2000);
  chmodSync(join(odd, 'sgid-dir'), 0o2775);
  symlinkSync(hostTarget, join(odd, 'to-host'));
  lchownSync(join(odd, 'to-host'), 1234, 4321);
  symlinkSync('user', join(odd, 'to-user'));
  file('hard1', 1500, 1500, 0o644);
  linkSync(join(odd, 'hard1'), join(odd, 'hard2'));
  execFileSync('mkfifo', [join(odd, 'fifo')]);
  lchownSync(join(odd, 'fifo'), 7, 7);
  file('acl', 1000, 1000, 0o640);
  execFileSync('setfacl', ['-m', 'u:1001:rw,g:2002:r', join(odd, 'acl')]);
  mkdirSync(join(odd, 'acl-dir'));
  execFileSync('setfacl', ['-d', '-m', 'u:1003:rx', join(odd, 'acl-dir')]);
  // busybox with a file capability: run inside, it shows what the kernel grants
  // (named busybox-*: busybox then takes its first argument as the applet)
  copyFileSync(join(root, 'bin', 'busybox'), join(odd, 'busybox-cap'));
  chmodSync(join(odd, 'busybox-cap'), 0o755);
  execFileSync('setcap', ['cap_net_raw+ep', join(odd, 'busybox-cap')]);
}

type ExecResult = { exitCode: number; stdout: string; stderr: string };
async function sh(name: string, script: string, uid?: number): Promise<ExecResult> {
  const j = await s.run('POST', `/v1/containers/${name}/exec`, {
    argv: ['sh', '-c', script],
    ...(uid !== undefined ? { uid, gid: uid } : {}),
  });
  expect(j.state, JSON.stringify(j.error)).toBe('completed');
  return j.result as ExecResult;
}

/** Every path moved by the host range exactly once, its mode (setuid/setgid included) kept. */
/**
 * Submits a convert of `name` to a worker that dies at the failpoint in the middle of the shift
 * (SIGKILLed once it has), and returns the submitted job.
 */
async function convertDyingMidShift(name: string): Promise<Job> {
  await s.stopWorker('SIGTERM');
  await s.startWorker({ LXCQ_FAILPOINTS: 'convert.mid-shift' });
  // 'close': after the worker's output is all read (its last line names the failpoint)
  const dead = new Promise((r) => s.worker?.once('close', r));
  const r = await s.http<Job>('POST', `/v1/containers/${name}/convert`);
  expect(r.status).toBe(202);
  await dead;
  await s.stopWorker('SIGKILL');
  expect(s.workerLog).toMatch(/lxcq failpoint convert\.mid-shift/);
  return r.body;
}

function expectShifted(
  before: Map<string, { uid: number; gid: number; mode: number }>,
  after: Map<string, { uid: number; gid: number; mode: number }>,
): void {
  expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
  const wrong: string[] = [];
  for (const [rel, b] of before) {
    const a = after.get(rel);
    if (!a || a.uid !== b.uid + SUB || a.gid !== b.gid + SUBG || a.mode !== b.mode)
      wrong.push(`/${rel}: ${JSON.stringify(b)} -> ${JSON.stringify(a)}`);
  }
  expect(wrong).toEqual([]);
}

describe('convert', () => {
  it('shifts a privileged container onto the host range; inside, its files keep their owners', async () => {
    await privileged('pc1');
    oddFiles(rootfs('pc1'));
    const before = owners(rootfs('pc1'));
    const sub = await Sub.open(s.url, '?types=job.progress', { token: TOKEN });
    const j = await s.run('POST', '/v1/containers/pc1/convert');
    await sub.close();
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    const r = j.result as {
      container: { privileged: boolean; config?: Record<string, string> };
      files: number;
      shifted: number;
      capabilities: number;
      acls: number;
      converted: boolean;
    };
    expect(r.converted).toBe(true);
    expect(r.container.privileged).toBe(false);
    expect(r.files).toBe(before.size);
    // a file with several hard links (hard1 and hard2, and the template's) is shifted once
    expect(r.shifted).toBe(inodes(rootfs('pc1')));
    expect(r.shifted).toBeLessThan(r.files);
    expect(r.capabilities).toBe(1);
    expect(r.acls).toBe(2);
    // progress counted the files
    const stages = sub
      .events()
      .filter((m) => m.job === j.id)
      .map((m) => String(m.data?.stage));
    expect(stages).toContain(`shifting files: ${before.size}/${before.size}`);

    // on disk: every owner moved once, modes kept, the link's target outside untouched
    expectShifted(before, owners(rootfs('pc1')));
    expect(lstatSync(hostTarget).uid).toBe(0);
    const odd = join(rootfs('pc1'), 'odd');
    const acl = execFileSync('getfacl', ['-n', '-p', join(odd, 'acl')], { encoding: 'utf8' });
    expect(acl).toMatch(new RegExp(`^user:${1001 + SUB}:rw-$`, 'm'));
    expect(acl).toMatch(new RegExp(`^group:${2002 + SUBG}:r--$`, 'm'));
    const dacl = execFileSync('getfacl', ['-n', '-p', join(odd, 'acl-dir')], { encoding: 'utf8' });
    expect(dacl).toMatch(new RegExp(`^default:user:${1003 + SUB}:r-x$`, 'm'));
    expect(execFileSync('getcap', ['-n', join(odd, 'busybox-cap')], { encoding: 'utf8' })).toMatch(
      new RegExp(`cap_net_raw=ep \\[rootid=${SUB}\\]`),
    );
    // the container's directory belongs to its root, as liblxc makes an unprivileged one's
    expect(lstatSync(join(s.lxcpath, 'pc1')).uid).toBe(SUB);

    // the config: an id map, userns.conf; the info says unprivileged
    const info = await s.http<{ privileged: boolean; config: Record<string, string> }>(
      'GET',
      '/v1/containers/pc1',
    );
    expect(info.body.privileged).toBe(false);
    expect(info.body.config['lxc.idmap']).toBe(`u 0 ${SUB} 65536\ng 0 ${SUBG} 65536`);
    const config = readFileSync(join(s.lxcpath, 'pc1', 'config'), 'utf8');
    expect(config).toMatch(/^lxc\.include = \/usr\/share\/lxc\/config\/userns\.conf$/m);

    // inside: a user namespace on the range, the old owners and modes
    expect((await s.run('POST', '/v1/containers/pc1/start')).state).toBe('completed');
    const map = await sh('pc1', 'cat /proc/self/uid_map /proc/self/gid_map');
    expect(
      map.stdout
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/)),
    ).toEqual([
      ['0', String(SUB), '65536'],
      ['0', String(SUBG), '65536'],
    ]);
    const names = [
      'user',
      'setuid',
      'setgid',
      'nobody',
      'sticky',
      'sgid-dir',
      'to-host',
      'hard1',
      'hard2',
      'fifo',
    ];
    const st = await sh('pc1', `cd /odd && for f in ${names.join(' ')}; do stat -c "%n %u:%g %a" $f; done`);
    const want = names.map((n) => {
      const b = before.get(`odd/${n}`);
      const mode = b && (b.mode & 0o170000) === 0o120000 ? 0o777 : (b?.mode ?? 0) & 0o7777;
      return `${n} ${b?.uid}:${b?.gid} ${mode.toString(8)}`;
    });
    expect(want.slice(0, 7)).toEqual([
      'user 1000:1000 640',
      'setuid 0:0 4755',
      'setgid 1000:50 2750',
      'nobody 65534:65534 600',
      'sticky 0:0 1777',
      'sgid-dir 0:2000 2775',
      'to-host 1234:4321 777',
    ]);
    expect(st.stdout.trim().split('\n')).toEqual(want);
    // the capability is the namespace's: a uid-1000 process running busybox-cap has CAP_NET_RAW (13)
    const caps = await sh('pc1', '/odd/busybox-cap cat /proc/self/status', 1000);
    const eff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(caps.stdout)?.[1] ?? '0'}`);
    expect((eff >> 13n) & 1n).toBe(1n);
    const plain = await sh('pc1', 'cat /proc/self/status', 1000);
    expect(/^CapEff:\s*0+$/m.test(plain.stdout)).toBe(true);
  }, 300_000);

  it('an operate token is refused (403 LXCQ_FORBIDDEN), and nothing is queued', async () => {
    await privileged('pc2');
    const r = await s.http<{ error: { code: string; message: string } }>(
      'POST',
      '/v1/containers/pc2/convert',
      undefined,
      { token: OPERATOR },
    );
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('LXCQ_FORBIDDEN');
    expect(r.body.error.message).toMatch(/needs the admin scope; token operator has operate/);
    const jobs = await s.http<{ jobs: Job[] }>('GET', '/v1/jobs?container=pc2');
    expect(jobs.body.jobs.map((x) => x.operation)).toEqual(['create']);
  });

  it('a running container is refused (LXCQ_INVALID_STATE, stop it first), and so is one with snapshots', async () => {
    expect((await s.run('POST', '/v1/containers/pc2/start')).state).toBe('completed');
    const j = await s.run('POST', '/v1/containers/pc2/convert');
    expect(j.state).toBe('failed');
    expect(j.error?.code).toBe('LXCQ_INVALID_STATE');
    expect(j.error?.message).toMatch(/is RUNNING; .*stop it first/);
    expect((await s.run('POST', '/v1/containers/pc2/stop')).state).toBe('completed');
    expect((await s.run('POST', '/v1/containers/pc2/snapshots', { name: 'before' })).state).toBe('completed');
    const snap = await s.run('POST', '/v1/containers/pc2/convert');
    expect(snap.state).toBe('failed');
    expect(snap.error?.code).toBe('LXCQ_INVALID_STATE');
    expect(snap.error?.message).toMatch(/has snapshots \(before\)/);
    expect(snap.error?.details).toEqual({ snapshots: ['before'] });
    const info = await s.http<{ privileged: boolean }>('GET', '/v1/containers/pc2');
    expect(info.body.privileged).toBe(true);
    expect(lstatSync(rootfs('pc2')).uid).toBe(0);
  });

  it('ids the map cannot hold are refused with the files named, and nothing is changed', async () => {
    await privileged('pc3');
    const root = rootfs('pc3');
    writeFileSync(join(root, 'big-uid'), 'x');
    lchownSync(join(root, 'big-uid'), 70000, 0);
    writeFileSync(join(root, 'big-acl'), 'x');
    execFileSync('setfacl', ['-m', 'g:65536:r', join(root, 'big-acl')]);
    const before = owners(root);
    const config = readFileSync(join(s.lxcpath, 'pc3', 'config'), 'utf8');
    const j = await s.run('POST', '/v1/containers/pc3/convert');
    expect(j.state).toBe('failed');
    expect(j.error?.code).toBe('LXCQ_IDS_OUT_OF_RANGE');
    expect(j.error?.message).toMatch(/^2 file\(s\) of container pc3 have ids its id map cannot hold/);
    expect(j.error?.message).toMatch(/Nothing was changed/);
    expect((j.error?.details?.examples as string[]).sort()).toEqual([
      '/big-acl: ACL entry group:65536 (posix_acl_access)',
      '/big-uid: owner 70000:0',
    ]);
    expect(owners(root)).toEqual(before);
    expect(readFileSync(join(s.lxcpath, 'pc3', 'config'), 'utf8')).toBe(config);
    expect(existsSync(join(s.lxcpath, '.lxcq', 'converting', 'pc3'))).toBe(false);
    expect((await s.http<{ privileged: boolean }>('GET', '/v1/containers/pc3')).body.privileged).toBe(true);
  });

  it('a worker killed in the middle of the shift: the re-run finishes it, shifting nothing twice', async () => {
    await privileged('pc4');
    const root = rootfs('pc4');
    // Several batches of files, with setuid/setgid files and capabilities among them.
    for (let d = 0; d < 6; d++) {
      mkdirSync(join(root, `many${d}`));
      for (let f = 0; f < 500; f++) {
        const p = join(root, `many${d}`, `f${f}`);
        writeFileSync(p, '');
        lchownSync(p, (d * 500 + f) % 65536, f % 100);
        if (f % 50 === 7) chmodSync(p, 0o6755);
      }
    }
    copyFileSync(join(root, 'bin', 'busybox'), join(root, 'many3', 'capbox'));
    execFileSync('setcap', ['cap_net_bind_service+ep', join(root, 'many3', 'capbox')]);
    const before = owners(root);

    const r = await convertDyingMidShift('pc4');
    // half-shifted: a marker, the batch's journal, some paths on the host range and some not
    expect(existsSync(join(s.lxcpath, '.lxcq', 'converting', 'pc4'))).toBe(true);
    expect(existsSync(join(s.lxcpath, '.lxcq', 'converting', 'pc4.journal'))).toBe(true);
    const mid = [...owners(root).values()];
    expect(mid.some((o) => o.uid >= SUB)).toBe(true);
    expect(mid.some((o) => o.uid < 65536)).toBe(true);

    await s.startWorker();
    const done = await s.wait(r.id, 180);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    expect(done.attempts).toBe(2);
    expectShifted(before, owners(root));
    expect(execFileSync('getcap', ['-n', join(root, 'many3', 'capbox')], { encoding: 'utf8' })).toMatch(
      new RegExp(`cap_net_bind_service=ep \\[rootid=${SUB}\\]`),
    );
    expect(existsSync(join(s.lxcpath, '.lxcq', 'converting', 'pc4'))).toBe(false);
    expect(existsSync(join(s.lxcpath, '.lxcq', 'converting', 'pc4.journal'))).toBe(false);
    expect((await s.http<{ privileged: boolean }>('GET', '/v1/containers/pc4')).body.privileged).toBe(false);
    // a convert of what is unprivileged now changes nothing
    const again = await s.run('POST', '/v1/containers/pc4/convert');
    expect(again.state).toBe('completed');
    expect((again.result as { converted: boolean }).converted).toBe(false);
    expectShifted(before, owners(root));
    // and it starts
    expect((await s.run('POST', '/v1/containers/pc4/start')).state).toBe('completed');
    expect((await sh('pc4', 'stat -c "%u:%g %a" /many0/f7')).stdout.trim()).toBe('7:7 6755');
  }, 400_000);

  it('a conversion whose job ended half-way: the container refuses to start, a new convert finishes it', async () => {
    await privileged('pc5');
    const root = rootfs('pc5');
    const before = owners(root);
    const r = await convertDyingMidShift('pc5');
    // While no worker runs, the API's watchdog fails the job: it will not run again.
    const failed = await s.wait(r.id, 120);
    expect(failed.state).toBe('failed');
    expect(failed.error?.code).toBe('LXCQ_HOST_OFFLINE');
    expect(existsSync(join(s.lxcpath, '.lxcq', 'converting', 'pc5'))).toBe(true);
    await s.startWorker();
    const start = await s.run('POST', '/v1/containers/pc5/start');
    expect(start.state).toBe('failed');
    expect(start.error?.code).toBe('LXCQ_INVALID_STATE');
    expect(start.error?.message).toMatch(/half converted to unprivileged.*Run convert again/);
    expect(s.lxcState('pc5')).toBe('STOPPED');
    const again = await s.run('POST', '/v1/containers/pc5/convert');
    expect(again.state, JSON.stringify(again.error)).toBe('completed');
    expect((again.result as { converted: boolean }).converted).toBe(true);
    expectShifted(before, owners(root));
    expect(existsSync(join(s.lxcpath, '.lxcq', 'converting', 'pc5'))).toBe(false);
    expect((await s.run('POST', '/v1/containers/pc5/start')).state).toBe('completed');
  }, 400_000);

  it('a converted rootfs whose config lost its id map is refused with the hint to put the map back', async () => {
    expect((await s.run('POST', '/v1/containers/pc5/stop')).state).toBe('completed');
    const file = join(s.lxcpath, 'pc5', 'config');
    writeFileSync(
      file,
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => !l.startsWith('lxc.idmap'))
        .join('\n'),
    );
    // (the registry learns of a hand edit at its next inventory; the job reads the config itself)
    const before = owners(rootfs('pc5'));
    const j = await s.run('POST', '/v1/containers/pc5/convert');
    expect(j.state).toBe('failed');
    expect(j.error?.code).toBe('LXCQ_IDS_OUT_OF_RANGE');
    expect(j.error?.message).toMatch(/Every file is owned by the host range .* already.*Put the id map back/);
    expect(owners(rootfs('pc5'))).toEqual(before);
  });
});
