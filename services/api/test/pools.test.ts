// Storage pools (docs/storage.md), through the real API and worker, on real btrfs loop pools in
// the test's temporary lxcpath: listing and creating them (with the refusals: zfs/lvm on a host
// without their kernel support, bad sizes and paths, the operate scope), containers on a pool
// (liblxc and lxc-ls/lxc-info see them; rootfs, clones and snapshots are subvolumes; a running
// container is snapshotted without stopping; restore, restore to a new name, rename, destroy with
// nested subvolumes), disk quotas (a write past the quota fails inside the container; the host
// and the dir pool are unaffected), a worker restart re-mounting a loop pool, an existing btrfs
// mount as a pool, and removing pools (refused while they hold containers).
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LxcqClient } from '../../../packages/client/src/index.ts';
import { lxcq } from '../../../packages/client/test/helpers.ts';
import { Stack, TEST_CONFIG, TOKEN, mountsBelow, type Job } from './harness.ts';
import { buildLocalImage, removeLocalImage, type LocalImage } from './local-image.ts';

const dir = mkdtempSync(join(tmpdir(), 'lxcq-pools-'));
const tokensFile = join(dir, 'tokens.json');
const OPERATOR = 'operator-token-0123456789';
writeFileSync(
  tokensFile,
  JSON.stringify({ tokens: [{ name: 'operator', token: OPERATOR, scopes: ['operate'] }] }),
);

/** The test's own btrfs mount (for a pool on an existing path), by its exact paths. */
const own = { image: join(dir, 'own.img'), mnt: join(dir, 'own-mnt'), mounted: false };

let s: Stack;
let image: LocalImage;
beforeAll(async () => {
  image = buildLocalImage();
  s = await Stack.start({ tokensFile, workerEnv: { LXCQ_LOCK_MS: '3000', LXCQ_IMAGES_DIR: image.dir } });
}, 120_000);
afterAll(async () => {
  await s?.close();
  if (image) removeLocalImage(image);
  if (own.mounted) execFileSync('umount', [own.mnt]);
  rmSync(dir, { recursive: true, force: true });
});

type Err = { error: { code: string; message: string; details?: Record<string, unknown> } };

type Pool = {
  name: string;
  driver: string;
  source: string;
  path: string;
  capacityBytes?: number;
  freeBytes?: number;
  usedBytes?: number;
  available: boolean;
};

const pools = async () => {
  const r = await s.http<Pool[]>('GET', `/v1/hosts/${s.hostId}/pools`);
  expect(r.status).toBe(200);
  return r.body;
};

const isSubvolume = (p: string) => existsSync(p) && statSync(p).ino === 256;
const exec = async (name: string, cmd: string) => {
  const j = await s.run('POST', `/v1/containers/${name}/exec`, { argv: ['sh', '-c', cmd] });
  expect(j.state, JSON.stringify(j.error)).toBe('completed');
  return j.result as { exitCode: number; stdout: string; stderr: string };
};
const ok = (j: Job) => expect(j.state, JSON.stringify(j.error)).toBe('completed');
const poolPath = () => join(s.lxcpath, '.lxcq', 'pools', 'p1');

describe('pools', () => {
  it('lists the dir pool `default` with its space, and refuses zfs and lvm before any work', async () => {
    const list = await pools();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ name: 'default', driver: 'dir', source: 'lxcpath', path: s.lxcpath });
    expect(list[0]?.capacityBytes).toBeGreaterThan(0);

    const zfs = await s.http<Err>('POST', `/v1/hosts/${s.hostId}/pools`, {
      name: 'z',
      driver: 'zfs',
      size: '1GiB',
    });
    expect(zfs.status).toBe(422);
    expect(zfs.body.error).toMatchObject({ code: 'LXCQ_POOL_DRIVER_UNAVAILABLE' });
    expect(zfs.body.error.message).toMatch(/zfs module/);
    const lvm = await s.http<Err>('POST', `/v1/hosts/${s.hostId}/pools`, {
      name: 'l',
      driver: 'lvm',
      size: '1GiB',
    });
    expect(lvm.status).toBe(422);
    expect(lvm.body.error).toMatchObject({ code: 'LXCQ_POOL_DRIVER_UNAVAILABLE' });
    expect(lvm.body.error.message).toMatch(/device-mapper/);
    expect(await pools()).toHaveLength(1);
    expect(existsSync(join(s.lxcpath, '.lxcq', 'pools'))).toBe(false);
  });

  it('refuses bad sizes, paths and scopes with clear codes, and makes nothing', async () => {
    const url = `/v1/hosts/${s.hostId}/pools`;
    let r = await s.http<Err>('POST', url, { name: 'p', driver: 'btrfs', size: '1GiB' }, { token: OPERATOR });
    expect(r.status).toBe(403);
    r = await s.http<Err>('POST', url, { name: 'p', driver: 'btrfs' });
    expect(r).toMatchObject({ status: 400, body: { error: { code: 'LXCQ_VALIDATION' } } });
    r = await s.http<Err>('POST', url, { name: 'p', driver: 'btrfs', size: '1GiB', path: '/mnt' });
    expect(r).toMatchObject({ status: 400, body: { error: { code: 'LXCQ_VALIDATION' } } });
    r = await s.http<Err>('POST', url, { name: '../x', driver: 'btrfs', size: '1GiB' });
    expect(r.status).toBe(400);
    r = await s.http<Err>('POST', url, { name: 'default', driver: 'btrfs', size: '1GiB' });
    expect(r).toMatchObject({ status: 409, body: { error: { code: 'LXCQ_POOL_EXISTS' } } });
    r = await s.http<Err>('POST', '/v1/hosts/nohost/pools', { name: 'p', driver: 'btrfs', size: '1GiB' });
    expect(r).toMatchObject({ status: 404, body: { error: { code: 'LXCQ_HOST_NOT_FOUND' } } });

    let j = await s.run('POST', url, { name: 'small', driver: 'btrfs', size: '10MiB' });
    expect(j.error?.code).toBe('LXCQ_POOL_SOURCE_INVALID');
    j = await s.run('POST', url, { name: 'huge', driver: 'btrfs', size: '900TiB' });
    expect(j.error?.code).toBe('LXCQ_POOL_SOURCE_INVALID');
    expect(j.error?.message).toMatch(/bytes free/);
    // An admin token still cannot make lxcq format or adopt an arbitrary host path.
    for (const path of [
      dir,
      '/',
      `${dir}/../${dir.split('/').pop() ?? ''}`,
      '/etc/hostname',
      join(dir, 'none'),
    ]) {
      j = await s.run('POST', url, { name: 'bad', driver: 'btrfs', path });
      expect(j.error?.code, path).toBe('LXCQ_POOL_SOURCE_INVALID');
    }
    expect(await pools()).toHaveLength(1);
    expect(existsSync(join(s.lxcpath, '.lxcq', 'pools', 'small.img'))).toBe(false);
    expect(existsSync(join(s.lxcpath, '.lxcq', 'pools', 'huge.img'))).toBe(false);
  });

  it('makes a btrfs loop pool, lists it with its space, and refuses a second of the name', async () => {
    const j = await s.run('POST', `/v1/hosts/${s.hostId}/pools`, {
      name: 'p1',
      driver: 'btrfs',
      size: '1GiB',
    });
    ok(j);
    expect(j.result).toMatchObject({ name: 'p1', driver: 'btrfs', source: 'loop', available: true });
    expect(statfsSync(poolPath()).type).toBe(0x9123683e);
    const p1 = (await pools()).find((p) => p.name === 'p1');
    expect(p1?.capacityBytes).toBeGreaterThan(900 * 1024 ** 2);
    expect(p1?.freeBytes).toBeGreaterThan(0);
    const again = await s.http<Err>('POST', `/v1/hosts/${s.hostId}/pools`, {
      name: 'p1',
      driver: 'btrfs',
      size: '1GiB',
    });
    expect(again).toMatchObject({ status: 409, body: { error: { code: 'LXCQ_POOL_EXISTS' } } });
  });

  it('creates, starts and execs a container on the pool; liblxc and lxc-* see it; its rootfs is a subvolume', async () => {
    let j = await s.run('POST', '/v1/containers', {
      name: 'b1',
      template: 'busybox',
      config: TEST_CONFIG,
      pool: 'p1',
      start: true,
    });
    ok(j);
    expect(j.result).toMatchObject({ name: 'b1', pool: 'p1', state: 'RUNNING', privileged: false });
    expect(readlinkSync(join(s.lxcpath, 'b1'))).toBe(join(poolPath(), 'containers', 'b1'));
    expect(isSubvolume(join(poolPath(), 'containers', 'b1', 'rootfs'))).toBe(true);
    expect(s.lxcLs()).toContain('b1');
    expect(s.lxcState('b1')).toBe('RUNNING');
    const attach = execFileSync('lxc-attach', ['-P', s.lxcpath, '-n', 'b1', '--', 'hostname'], {
      encoding: 'utf8',
    });
    expect(attach.trim()).toBe('b1');
    expect((await exec('b1', 'echo one > /root/f; cat /root/f')).stdout).toBe('one\n');
    const info = await s.http<{ pool?: string; disk?: { usedBytes: number } }>('GET', '/v1/containers/b1');
    expect(info.body.pool).toBe('p1');
    expect(info.body.disk?.usedBytes).toBeGreaterThan(0);

    // An unknown pool is refused before anything is made.
    j = await s.run('POST', '/v1/containers', {
      name: 'b9',
      template: 'busybox',
      config: TEST_CONFIG,
      pool: 'nope',
    });
    expect(j.error?.code).toBe('LXCQ_POOL_NOT_FOUND');
    expect(existsSync(join(s.lxcpath, 'b9'))).toBe(false);
  });

  it('snapshots the RUNNING container without stopping it; restores in place and to a new container', async () => {
    let j = await s.run('POST', '/v1/containers/b1/snapshots', { comment: 'live' });
    ok(j);
    expect(j.result).toMatchObject({ name: 'snap0', comment: 'live' });
    expect(s.lxcState('b1')).toBe('RUNNING');
    expect(isSubvolume(join(poolPath(), 'containers', 'b1', 'snaps', 'snap0', 'rootfs'))).toBe(true);
    j = await s.run('POST', '/v1/containers/b1/snapshots', { name: 'named' });
    ok(j);
    expect(j.result).toMatchObject({ name: 'named' });
    const listed = execFileSync('lxc-snapshot', ['-P', s.lxcpath, '-n', 'b1', '-L'], { encoding: 'utf8' });
    expect(listed).toMatch(/snap0/);
    expect(listed).toMatch(/named/);

    await exec('b1', 'echo two > /root/f');
    ok(await s.run('POST', '/v1/containers/b1/stop'));
    // A new container from the snapshot, on the same pool.
    j = await s.run('POST', '/v1/containers/b1/snapshots/snap0/restore', { newName: 'b2' });
    ok(j);
    expect(j.result).toMatchObject({ name: 'b2', pool: 'p1' });
    expect(isSubvolume(join(poolPath(), 'containers', 'b2', 'rootfs'))).toBe(true);
    // In place: the rootfs is the snapshot's again.
    ok(await s.run('POST', '/v1/containers/b1/snapshots/snap0/restore'));
    ok(await s.run('POST', '/v1/containers/b1/start'));
    expect((await exec('b1', 'cat /root/f')).stdout).toBe('one\n');
    ok(await s.run('POST', '/v1/containers/b2/start'));
    expect((await exec('b2', 'cat /root/f')).stdout).toBe('one\n');
    ok(await s.run('POST', '/v1/containers/b2/stop'));
  });

  it('clones as a subvolume snapshot and renames in place on the pool', async () => {
    let j = await s.run('POST', '/v1/containers/b2/clone', { newName: 'b3' });
    ok(j);
    expect(j.result).toMatchObject({ name: 'b3', pool: 'p1' });
    expect(isSubvolume(join(poolPath(), 'containers', 'b3', 'rootfs'))).toBe(true);
    ok(await s.run('POST', '/v1/containers/b3/snapshots', {}));
    j = await s.run('POST', '/v1/containers/b3/rename', { newName: 'b4' });
    ok(j);
    expect(j.result).toMatchObject({ name: 'b4', pool: 'p1', snapshots: [{ name: 'snap0' }] });
    expect(existsSync(join(s.lxcpath, 'b3'))).toBe(false);
    expect(existsSync(join(poolPath(), 'containers', 'b3'))).toBe(false);
    expect(s.lxcLs()).toEqual(expect.arrayContaining(['b1', 'b2', 'b4']));
    expect(s.lxcLs()).not.toContain('b3');
    ok(await s.run('POST', '/v1/containers/b4/start'));
    expect((await exec('b4', 'hostname; cat /root/f')).stdout).toBe('b4\none\n');
    ok(await s.run('POST', '/v1/containers/b4/stop'));
  });

  it('limits the disk with a qgroup: a write past it fails inside; the dir pool has no quotas', async () => {
    let j = await s.run('PUT', '/v1/containers/b1/limits', { disk: '64MiB' });
    ok(j);
    const before = statfsSync(s.lxcpath);
    const r = await exec('b1', 'dd if=/dev/urandom of=/root/big bs=1M count=200 2>&1; sync; echo rc=$?');
    expect(r.stdout).toMatch(/Disk quota exceeded|No space left/);
    const size = Number((await exec('b1', 'wc -c < /root/big')).stdout.trim());
    expect(size).toBeLessThan(80 * 1024 ** 2);
    // The host's filesystem (the dir pool, and the loop pool's sparse file on it) took no more than
    // the quota's worth of the 200 MiB write.
    const after = statfsSync(s.lxcpath);
    expect((before.bavail - after.bavail) * after.bsize).toBeLessThan(120 * 1024 ** 2);
    const info = await s.http<{ disk?: { limitBytes: number | null } }>('GET', '/v1/containers/b1');
    expect(info.body.disk?.limitBytes).toBe(64 * 1024 ** 2);
    await exec('b1', 'rm /root/big');

    ok(await s.run('POST', '/v1/containers', { name: 'd1', template: 'busybox', config: TEST_CONFIG }));
    j = await s.run('PUT', '/v1/containers/d1/limits', { disk: '1GiB' });
    expect(j.error?.code).toBe('LXCQ_QUOTA_UNSUPPORTED');
    j = await s.run('POST', '/v1/containers', {
      name: 'd2',
      template: 'busybox',
      config: TEST_CONFIG,
      disk: '1GiB',
    });
    expect(j.error?.code).toBe('LXCQ_QUOTA_UNSUPPORTED');
    expect(existsSync(join(s.lxcpath, 'd2'))).toBe(false);
    // A quota given at create holds from the start.
    j = await s.run('POST', '/v1/containers', {
      name: 'q1',
      template: 'busybox',
      config: TEST_CONFIG,
      pool: 'p1',
      disk: '32MiB',
      start: true,
    });
    ok(j);
    expect((await exec('q1', 'dd if=/dev/zero of=/root/big bs=1M count=100 2>&1; sync')).stdout).toMatch(
      /Disk quota exceeded|No space left/,
    );
    ok(await s.run('DELETE', '/v1/containers/q1?force=true'));
  });

  it('clones a dir container onto the pool and back (full copies), the clone on its new pool', async () => {
    let j = await s.run('POST', '/v1/containers/d1/clone', { newName: 'd1b', pool: 'p1' });
    ok(j);
    expect(j.result).toMatchObject({ name: 'd1b', pool: 'p1' });
    expect(isSubvolume(join(poolPath(), 'containers', 'd1b', 'rootfs'))).toBe(true);
    j = await s.run('POST', '/v1/containers/d1b/clone', { newName: 'd1c', pool: 'default' });
    ok(j);
    expect(j.result).toMatchObject({ name: 'd1c', pool: 'default' });
    expect(statSync(join(s.lxcpath, 'd1c')).isDirectory()).toBe(true);
    expect(readFileSync(join(s.lxcpath, 'd1c', 'config'), 'utf8')).toMatch(
      new RegExp(`^lxc.rootfs.path = (dir:)?${s.lxcpath}/d1c/rootfs$`, 'm'),
    );
    // Snapshots of the copy are subvolumes too.
    ok(await s.run('POST', '/v1/containers/d1b/snapshots', {}));
    expect(isSubvolume(join(poolPath(), 'containers', 'd1b', 'snaps', 'snap0', 'rootfs'))).toBe(true);
    for (const n of ['d1b', 'd1c']) {
      ok(await s.run('POST', `/v1/containers/${n}/start`));
      expect((await exec(n, 'hostname')).stdout).toBe(`${n}\n`);
      ok(await s.run('DELETE', `/v1/containers/${n}?force=true&withSnapshots=true`));
    }
    j = await s.run('POST', '/v1/containers/d1/clone', { newName: 'd1x', pool: 'nope' });
    expect(j.error?.code).toBe('LXCQ_POOL_NOT_FOUND');
    expect(existsSync(join(s.lxcpath, 'd1x'))).toBe(false);
  });

  it('unpacks an image once into a read-only base subvolume on the pool; each create snapshots it', async () => {
    const local = { rootfs: image.rootfs, metadata: image.metadata };
    const body = (name: string) => ({ name, template: 'local', local, config: TEST_CONFIG, pool: 'p1' });
    ok(await s.run('POST', '/v1/containers', body('i1')));
    const images = join(poolPath(), 'images');
    const bases = execFileSync('ls', [images], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(bases).toHaveLength(1);
    const baseRootfs = join(images, bases[0] as string, 'rootfs');
    expect(isSubvolume(baseRootfs)).toBe(true);
    expect(
      execFileSync('btrfs', ['property', 'get', '-ts', baseRootfs, 'ro'], { encoding: 'utf8' }).trim(),
    ).toBe('ro=true');
    const uuid = (p: string, field: string) =>
      new RegExp(`^\\s*${field}:\\s*(\\S+)`, 'm').exec(
        execFileSync('btrfs', ['subvolume', 'show', p], { encoding: 'utf8' }),
      )?.[1];
    const baseUuid = uuid(baseRootfs, 'UUID');
    ok(await s.run('POST', '/v1/containers', body('i2')));
    for (const n of ['i1', 'i2']) {
      const rootfs = join(poolPath(), 'containers', n, 'rootfs');
      expect(isSubvolume(rootfs)).toBe(true);
      // A snapshot of the base: no file was copied.
      expect(uuid(rootfs, 'Parent UUID')).toBe(baseUuid);
    }
    ok(await s.run('POST', '/v1/containers/i2/start'));
    expect((await exec('i2', 'echo mine > /x; cat /x')).stdout).toBe('mine\n');
    expect(existsSync(join(baseRootfs, 'x'))).toBe(false);
    for (const n of ['i1', 'i2']) ok(await s.run('DELETE', `/v1/containers/${n}?force=true`));
  });

  it('a worker killed mid-create, mid-clone and mid-snapshot on the pool: the re-run finishes, no orphaned subvolume', async () => {
    const subvolumes = () =>
      execFileSync('btrfs', ['subvolume', 'list', poolPath()], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean)
        .map((l) => l.replace(/^.* path /, ''))
        .filter((p) => p.startsWith('containers/k'))
        .sort();
    /** Submits with the worker set to kill itself at `point`, then starts a sound worker; the job's end. */
    const killedAt = async (point: string, method: string, path: string, body: unknown) => {
      await s.stopWorker();
      await s.startWorker({ LXCQ_FAILPOINTS: point });
      const died = new Promise((r) => s.worker?.once('exit', r));
      const sub = await s.http<Job>(method, path, body);
      expect(sub.status, JSON.stringify(sub.body)).toBe(202);
      await died;
      s.worker = null;
      expect(s.workerLog).toContain(`lxcq failpoint ${point}`);
      await s.startWorker();
      return s.wait(sub.body.id);
    };
    let j = await killedAt('make.before-unmark', 'POST', '/v1/containers', {
      name: 'k1',
      template: 'busybox',
      config: TEST_CONFIG,
      pool: 'p1',
    });
    ok(j);
    expect(j.attempts).toBe(2);
    expect(subvolumes()).toEqual(['containers/k1/rootfs']);
    j = await killedAt('make.before-unmark', 'POST', '/v1/containers/k1/clone', { newName: 'k2' });
    ok(j);
    expect(subvolumes()).toEqual(['containers/k1/rootfs', 'containers/k2/rootfs']);
    ok(await s.run('POST', '/v1/containers/k1/start'));
    j = await killedAt('pool.mid-snapshot', 'POST', '/v1/containers/k1/snapshots', { name: 'live' });
    ok(j);
    expect(subvolumes()).toEqual([
      'containers/k1/rootfs',
      'containers/k1/snaps/live/rootfs',
      'containers/k2/rootfs',
    ]);
    const info = await s.http<{ snapshots: { name: string }[] }>('GET', '/v1/containers/k1');
    expect(info.body.snapshots.map((x) => x.name)).toEqual(['live']);
    j = await killedAt('pool.before-record', 'POST', `/v1/hosts/${s.hostId}/pools`, {
      name: 'k',
      driver: 'btrfs',
      size: '300MiB',
    });
    ok(j);
    expect((await pools()).find((p) => p.name === 'k')).toMatchObject({ available: true });
    expect(mountsBelow(join(s.lxcpath, '.lxcq', 'pools', 'k'))).toHaveLength(1);
    ok(await s.run('DELETE', `/v1/hosts/${s.hostId}/pools/k`));
    for (const n of ['k1', 'k2'])
      ok(await s.run('DELETE', `/v1/containers/${n}?force=true&withSnapshots=true`));
    expect(subvolumes()).toEqual([]);
  }, 300_000);

  it('refuses to remove a pool that holds containers, with the list', async () => {
    const r = await s.http<Err>('DELETE', `/v1/hosts/${s.hostId}/pools/p1`);
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({
      code: 'LXCQ_POOL_IN_USE',
      details: { containers: ['b1', 'b2', 'b4'] },
    });
    expect(r.body.error.message).toMatch(/b1, b2, b4/);
    const op = await s.http<Err>('DELETE', `/v1/hosts/${s.hostId}/pools/p1`, undefined, { token: OPERATOR });
    expect(op.status).toBe(403);
    expect((await pools()).map((p) => p.name)).toContain('p1');
  });

  it('a restarted worker mounts its loop pool again', async () => {
    ok(await s.run('POST', '/v1/containers/b1/stop'));
    await s.stopWorker();
    execFileSync('umount', [poolPath()]);
    await s.startWorker();
    expect(statfsSync(poolPath()).type).toBe(0x9123683e);
    expect((await pools()).find((p) => p.name === 'p1')).toMatchObject({ available: true });
    ok(await s.run('POST', '/v1/containers/b1/start'));
    expect((await exec('b1', 'cat /root/f')).stdout).toBe('one\n');
  }, 120_000);

  it('destroys pool containers with their snapshots and nested subvolumes, then removes the pool', async () => {
    // A subvolume inside the rootfs (as a container's root could make one).
    execFileSync('btrfs', ['subvolume', 'create', join(poolPath(), 'containers', 'b2', 'rootfs', 'nested')]);
    for (const n of ['b1', 'b2', 'b4'])
      ok(await s.run('DELETE', `/v1/containers/${n}?force=true&withSnapshots=true`));
    // Only the image base is left (it belongs to the pool, not to any container).
    expect(
      execFileSync('btrfs', ['subvolume', 'list', poolPath()], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean)
        .map((l) => l.replace(/^.* path /, '').replace(/img-[0-9a-f]+/, 'img')),
    ).toEqual(['images/img/rootfs']);
    expect(s.lxcLs()).toEqual(['d1']);
    const image = `${poolPath()}.img`;
    ok(await s.run('DELETE', `/v1/hosts/${s.hostId}/pools/p1`));
    expect(existsSync(image)).toBe(false);
    expect(existsSync(poolPath())).toBe(false);
    expect(execFileSync('losetup', ['-j', image], { encoding: 'utf8' }).trim()).toBe('');
    expect((await pools()).map((p) => p.name)).toEqual(['default']);
    const r = await s.http<Err>('DELETE', `/v1/hosts/${s.hostId}/pools/p1`);
    expect(r).toMatchObject({ status: 404, body: { error: { code: 'LXCQ_POOL_NOT_FOUND' } } });
  });

  it('adopts an existing btrfs mount as a pool and leaves it mounted when removed', async () => {
    const fd = execFileSync('truncate', ['-s', '512M', own.image]);
    void fd;
    execFileSync('mkfs.btrfs', ['-q', own.image]);
    mkdirSync(own.mnt);
    execFileSync('mount', ['-t', 'btrfs', '-o', 'loop', own.image, own.mnt]);
    own.mounted = true;
    let j = await s.run('POST', `/v1/hosts/${s.hostId}/pools`, {
      name: 'ext',
      driver: 'btrfs',
      path: own.mnt,
    });
    ok(j);
    expect(j.result).toMatchObject({ name: 'ext', source: 'path', path: own.mnt });
    // A second pool on the same path is refused.
    j = await s.run('POST', `/v1/hosts/${s.hostId}/pools`, { name: 'ext2', driver: 'btrfs', path: own.mnt });
    expect(j.error?.code).toBe('LXCQ_POOL_SOURCE_INVALID');
    ok(
      await s.run('POST', '/v1/containers', {
        name: 'e1',
        template: 'busybox',
        config: TEST_CONFIG,
        pool: 'ext',
      }),
    );
    expect(isSubvolume(join(own.mnt, 'containers', 'e1', 'rootfs'))).toBe(true);
    ok(await s.run('DELETE', '/v1/containers/e1'));
    ok(await s.run('DELETE', `/v1/hosts/${s.hostId}/pools/ext`));
    expect(statfsSync(own.mnt).type).toBe(0x9123683e);
    expect(existsSync(join(own.mnt, '.lxcq-pool'))).toBe(false);
    expect(existsSync(join(own.mnt, 'containers'))).toBe(false);
    execFileSync('umount', [own.mnt]);
    own.mounted = false;
  });

  it('the SDK and the lxcq CLI list, create and delete pools, and create onto a pool with a quota', async () => {
    const env = { HOME: dir, LXCQ_URL: s.url, LXCQ_TOKEN: TOKEN };
    let r = await lxcq(['pool', 'create', s.hostId, 'cli1', '--size', '300MiB'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/pool cli1 on h1: btrfs \(loop\)/);
    r = await lxcq(['pool', 'create', s.hostId, 'z1', '--driver', 'zfs', '--size', '1GiB'], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/LXCQ_POOL_DRIVER_UNAVAILABLE/);
    r = await lxcq(['pool', 'list', s.hostId], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+DRIVER/);
    expect(r.stdout).toMatch(/\ncli1\s+btrfs\s+loop\s/);
    r = await lxcq(
      ['create', 'c1', '--pool', 'cli1', '--disk', '64MiB', '--config', 'lxc.net.0.type=empty'],
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    r = await lxcq(['show', 'c1'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^pool:\s+cli1$/m);
    expect(r.stdout).toMatch(/^disk:\s+\S+ used of a 64M quota$/m);
    const sdk = new LxcqClient({ url: s.url, token: TOKEN });
    const c1 = await sdk.containers.get('c1');
    expect(c1).toMatchObject({ pool: 'cli1', disk: { limitBytes: 64 * 1024 ** 2 } });
    expect((await sdk.pools.list(s.hostId)).map((p) => p.name)).toEqual(['default', 'cli1']);
    r = await lxcq(['pool', 'delete', s.hostId, 'cli1'], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/LXCQ_POOL_IN_USE/);
    expect(r.stderr).toMatch(/c1/);
    r = await lxcq(['destroy', 'c1', '--yes'], env);
    expect(r.code, r.stderr).toBe(0);
    const gone = await sdk.pools.delete(s.hostId, 'cli1').wait();
    expect(gone).toEqual({ existed: true });
    expect((await sdk.pools.list(s.hostId)).map((p) => p.name)).toEqual(['default']);
  });
});
