// Unprivileged containers by default. Each escape a privileged container allows is attempted for
// real as root inside a default container (made through the API with no options, started, exec);
// the targets are a marker file this test wrote and the host's own root device mounted read-only,
// so nothing on the host changes whichever way the attempt goes. Then: privileged is an admin-only
// choice, shown in the container's info; a container made privileged outside lxcq is flagged; and
// every other way to make a container (local image, clone, snapshot restore to a new name) gives
// an unprivileged one too.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, TEST_CONFIG, type Job } from './harness.ts';
import { buildLocalImage, removeLocalImage, type LocalImage } from './local-image.ts';

const dir = mkdtempSync(join(tmpdir(), 'lxcq-unpriv-'));
const tokensFile = join(dir, 'tokens.json');
const OPERATOR = 'operator-token-0123456789';
writeFileSync(
  tokensFile,
  JSON.stringify({ tokens: [{ name: 'operator', token: OPERATOR, scopes: ['operate'] }] }),
);
/** What a container's root must not reach: a file on the host's root filesystem. */
const marker = join(dir, 'marker');
const MARK = `lxcq-unpriv-${process.pid}-${Date.now()}`;
writeFileSync(marker, MARK);

/** root's first subordinate uid (scripts/setup-host.sh writes root:1000000:1000000000). */
const SUB_UID = Number(/^root:(\d+):/m.exec(execFileSync('cat', ['/etc/subuid'], { encoding: 'utf8' }))?.[1]);

let s: Stack;
let image: LocalImage;

beforeAll(async () => {
  image = buildLocalImage();
  s = await Stack.start({ tokensFile, workerEnv: { LXCQ_IMAGES_DIR: image.dir } });
  const j = await s.run('POST', '/v1/containers', {
    name: 'u1',
    template: 'busybox',
    config: TEST_CONFIG,
    start: true,
  });
  expect(j.state, JSON.stringify(j.error)).toBe('completed');
}, 300_000);
afterAll(async () => {
  await s?.close();
  if (image) removeLocalImage(image);
  rmSync(dir, { recursive: true, force: true });
});

type ExecResult = { exitCode: number; stdout: string; stderr: string };
async function sh(name: string, script: string): Promise<ExecResult> {
  const j = await s.run('POST', `/v1/containers/${name}/exec`, { argv: ['sh', '-c', script] });
  expect(j.state, JSON.stringify(j.error)).toBe('completed');
  return j.result as ExecResult;
}

/** The capability numbers set in a /proc/<pid>/status Cap* mask. */
function caps(status: string, field: string): Set<number> {
  const hex = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? '0';
  const v = BigInt(`0x${hex}`);
  const out = new Set<number>();
  for (let i = 0; i < 64; i++) if ((v >> BigInt(i)) & 1n) out.add(i);
  return out;
}

async function uidMap(name: string): Promise<string> {
  return (await sh(name, 'cat /proc/self/uid_map')).stdout.trim().replace(/\s+/g, ' ');
}

describe('a default container, as root inside it', () => {
  it('is shown unprivileged, with an id map from the host range and a rootfs owned by it', async () => {
    const c = await s.http<{ privileged?: boolean; config?: Record<string, string> }>(
      'GET',
      '/v1/containers/u1',
    );
    expect(c.body.privileged).toBe(false);
    expect(c.body.config?.['lxc.idmap']).toBe(`u 0 ${SUB_UID} 65536\ng 0 ${SUB_UID} 65536`);
    const root = statSync(join(s.lxcpath, 'u1', 'rootfs'));
    expect([root.uid, root.gid]).toEqual([SUB_UID, SUB_UID]);
    expect(statSync(join(s.lxcpath, 'u1', 'rootfs', 'bin', 'busybox')).uid).toBe(SUB_UID);
  });

  it('runs in a user namespace: /proc/self/uid_map is not the identity map', async () => {
    const r = await sh('u1', 'id -u; cat /proc/self/uid_map /proc/self/gid_map');
    const [uid, ...maps] = r.stdout.trim().split('\n');
    expect(uid).toBe('0');
    expect(maps.map((l) => l.trim().split(/\s+/))).toEqual([
      ['0', String(SUB_UID), '65536'],
      ['0', String(SUB_UID), '65536'],
    ]);
  });

  it("cannot make a node of the host's disk nor mount it", async () => {
    const dev = statSync(marker).dev;
    const [major, minor] = [(dev >> 8) & 0xfff, (dev & 0xff) | ((dev >> 12) & 0xfff00)];
    // read-only: even where the mount succeeded (a privileged container), the host is untouched
    const r = await sh(
      'u1',
      `mknod /tmp/hostdisk b ${major} ${minor}; echo "mknod=$?"; mkdir -p /tmp/h; ` +
        `mount -o ro /tmp/hostdisk /tmp/h; echo "mount=$?"; cat /tmp/h${marker}; echo "cat=$?"`,
    );
    expect(r.stdout).toMatch(/^mknod=1$/m);
    expect(r.stderr).toMatch(/mknod: \/tmp\/hostdisk: Operation not permitted/);
    expect(r.stdout).not.toMatch(/^mount=0$/m);
    expect(r.stdout).not.toContain(MARK);
  });

  it('cannot set a cgroup v1 release_agent nor open host-wide sysctls for writing', async () => {
    // Writing release_agent's own value back, and `: >>` (opens for writing, writes nothing): a
    // refusal proves the point, a success would change nothing. Each in a subshell: a failed
    // redirection of `:` (a special built-in) ends a POSIX shell.
    const r = await sh(
      'u1',
      'mkdir -p /tmp/cg /tmp/p; mount -t cgroup -o memory cgroup /tmp/cg; ' +
        '(v=$(cat /tmp/cg/release_agent) && printf "%s\\n" "$v" > /tmp/cg/release_agent); echo "cgroup=$?"; ' +
        '(: >> /proc/sys/kernel/core_pattern); echo "sysctl=$?"; ' +
        'mount -o remount,rw /proc/sys; (: >> /proc/sys/kernel/core_pattern); echo "remounted=$?"; ' +
        'mount -t proc proc /tmp/p && (: >> /tmp/p/sys/kernel/core_pattern); echo "newproc=$?"; ' +
        '(: >> /tmp/p/sysrq-trigger); echo "sysrq=$?"',
    );
    for (const what of ['cgroup', 'sysctl', 'remounted', 'newproc', 'sysrq'])
      expect(r.stdout, `${what}: ${r.stdout}${r.stderr}`).toMatch(new RegExp(`^${what}=[1-9]\\d*$`, 'm'));
  });

  it("lacks the capabilities LXC's common.conf drops, and runs under its seccomp filter", async () => {
    const r = await sh('u1', 'cat /proc/self/status');
    const eff = caps(r.stdout, 'CapEff');
    expect(eff.has(21), 'CAP_SYS_ADMIN (in its own namespace)').toBe(true);
    // CAP_SYS_MODULE 16, CAP_SYS_RAWIO 17, CAP_SYS_TIME 25, CAP_MAC_OVERRIDE 32, CAP_MAC_ADMIN 33
    for (const cap of [16, 17, 25, 32, 33]) expect(eff.has(cap), `capability ${cap}`).toBe(false);
    expect(caps(r.stdout, 'CapBnd').has(16)).toBe(false);
    expect(r.stdout).toMatch(/^Seccomp:\s+2$/m);
  });
});

describe('privileged containers', () => {
  it('privileged: true needs the admin scope; an operate token gets 403 and nothing is made', async () => {
    const r = await s.http<{ error: { code: string } }>(
      'POST',
      '/v1/containers?wait=60',
      { name: 'p0', template: 'busybox', config: TEST_CONFIG, privileged: true },
      { token: OPERATOR },
    );
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('LXCQ_PRIVILEGED_FORBIDDEN');
    expect(s.lxcLs()).not.toContain('p0');
    // the same token makes unprivileged containers
    const ok = await s.http<Job>(
      'POST',
      '/v1/containers?wait=60',
      { name: 'op1', template: 'busybox', config: TEST_CONFIG, privileged: false },
      { token: OPERATOR },
    );
    expect(ok.body.state, JSON.stringify(ok.body.error)).toBe('completed');
    expect(ok.body.result).toMatchObject({ privileged: false });
    expect((await s.run('DELETE', '/v1/containers/op1')).state).toBe('completed');
  });

  it('an admin gets one: identity map, flagged in its info, still under seccomp', async () => {
    const j = await s.run('POST', '/v1/containers', {
      name: 'p1',
      template: 'busybox',
      config: TEST_CONFIG,
      privileged: true,
      start: true,
    });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect(j.result).toMatchObject({ privileged: true, state: 'RUNNING' });
    expect((await s.http('GET', '/v1/containers/p1')).body.privileged).toBe(true);
    expect(await uidMap('p1')).toBe('0 0 4294967295');
    expect((await sh('p1', 'grep Seccomp: /proc/self/status')).stdout).toMatch(/Seccomp:\s+2/);
    expect((await s.run('DELETE', '/v1/containers/p1?force=true')).state).toBe('completed');
  });

  it('a container made privileged outside lxcq (no lxc.idmap) is flagged and keeps working', async () => {
    execFileSync('lxc-create', ['-P', s.lxcpath, '-n', 'legacy1', '-t', 'busybox'], { stdio: 'ignore' });
    execFileSync('sh', ['-c', `echo 'lxc.net.0.type = empty' >> ${join(s.lxcpath, 'legacy1', 'config')}`]);
    let info: { privileged?: boolean } = {};
    for (let i = 0; i < 100 && info.privileged === undefined; i++) {
      const r = await s.http<{ privileged?: boolean }>('GET', '/v1/containers/legacy1');
      if (r.status === 200) info = r.body;
      else await new Promise((res) => setTimeout(res, 100));
    }
    expect(info.privileged).toBe(true);
    const j = await s.run('POST', '/v1/containers/legacy1/start');
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect(await uidMap('legacy1')).toBe('0 0 4294967295');
    expect((await s.run('DELETE', '/v1/containers/legacy1?force=true')).state).toBe('completed');
  });
});

describe('every way of making a container gives an unprivileged one', () => {
  async function expectUnprivileged(name: string): Promise<void> {
    const info = await s.http<{ privileged?: boolean }>('GET', `/v1/containers/${name}`);
    expect(info.body.privileged, name).toBe(false);
    expect(statSync(join(s.lxcpath, name, 'rootfs', 'bin', 'busybox')).uid, name).toBe(SUB_UID);
    const j = await s.run('POST', `/v1/containers/${name}/start`);
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect(await uidMap(name)).toBe(`0 ${SUB_UID} 65536`);
    expect((await s.run('DELETE', `/v1/containers/${name}?force=true`)).state).toBe('completed');
  }

  it('a local image (unpacked once into a cached base, then copied)', async () => {
    for (const name of ['img1', 'img2']) {
      const j = await s.run('POST', '/v1/containers', {
        name,
        template: 'local',
        local: { rootfs: image.rootfs, metadata: image.metadata },
        config: TEST_CONFIG,
      });
      expect(j.state, JSON.stringify(j.error)).toBe('completed');
      await expectUnprivileged(name);
    }
  });

  it('a clone, a copy-on-write clone and a snapshot restored to a new name', async () => {
    expect((await s.run('POST', '/v1/containers/u1/stop')).state).toBe('completed');
    let j = await s.run('POST', '/v1/containers/u1/clone', { newName: 'cl1' });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    await expectUnprivileged('cl1');
    j = await s.run('POST', '/v1/containers/u1/clone', { newName: 'cow1', snapshot: true });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    expect((await s.http('GET', '/v1/containers/cow1')).body.privileged).toBe(false);
    const started = await s.run('POST', '/v1/containers/cow1/start');
    expect(started.state, JSON.stringify(started.error)).toBe('completed');
    expect(await uidMap('cow1')).toBe(`0 ${SUB_UID} 65536`);
    expect((await s.run('DELETE', '/v1/containers/cow1?force=true')).state).toBe('completed');
    j = await s.run('POST', '/v1/containers/u1/snapshots', { name: 'base' });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    j = await s.run('POST', '/v1/containers/u1/snapshots/base/restore', { newName: 'rs1' });
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
    await expectUnprivileged('rs1');
  });
});
