// The config policy through the real API, worker and Redis: each bypass of issue 12 refused through
// create and through PATCH config with 403 LXCQ_CONFIG_FORBIDDEN, nothing made or changed; raw
// keys for admin tokens only where the host allows them; an image's config and a received
// transfer's config checked as if they were a create.
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '@lxcq/shared';
import { sendContainer } from '../../worker/src/transfer.ts';
import { loadOrCreateIdentity, type TransferIdentity } from '../../worker/src/tls-identity.ts';
import { Stack, TEST_CONFIG, type Job } from './harness.ts';
import { buildLocalImage, removeLocalImage, type LocalImage } from './local-image.ts';

const OPERATOR = 'operator-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'lxcq-policy-'));
const tokensFile = join(dir, 'tokens.json');
writeFileSync(
  tokensFile,
  JSON.stringify({ tokens: [{ name: 'operator', token: OPERATOR, scopes: ['operate'] }] }),
);
/** Every hook in this file would touch this file; it must never exist. */
const MARKER = join(dir, 'hook-ran');
/** This host lets admin tokens set one raw key, and nothing else. */
const HOST_POLICY = { LXCQ_CONFIG_POLICY: '{"allow":["lxc.hook.pre-start"]}' };

let s: Stack;
let image: LocalImage;

beforeAll(async () => {
  image = buildLocalImage(
    `lxc.hook.pre-start = /bin/sh -c "touch ${MARKER}"\nlxc.hook.clone = /bin/sh -c "touch ${MARKER}"\n`,
  );
  s = await Stack.start({
    tokensFile,
    apiEnv: HOST_POLICY,
    workerEnv: { ...HOST_POLICY, LXCQ_IMAGES_DIR: image.dir },
  });
  const j = await s.run('POST', '/v1/containers', { name: 'c1', template: 'busybox', config: TEST_CONFIG });
  expect(j.state, JSON.stringify(j.error)).toBe('completed');
}, 120_000);
afterAll(async () => {
  await s?.close();
  if (image) removeLocalImage(image);
  rmSync(dir, { recursive: true, force: true });
});

type Err = {
  error: { code: string; message: string; details?: { refused?: { key: string; reason: string }[] } };
};

/** The bypasses of issue 12, each as one config item. */
const BYPASSES: readonly [string, string][] = [
  ['lxc.mount.auto', 'shmounts:/tmp/x:/mnt/x'],
  ['lxc.mount.auto', 'shmounts:/:/mnt/hostroot'],
  ['lxc.mount.entry', 'overlay mnt/o overlay ro,lowerdir=/tmp/x:/tmp/y,create=dir 0 0'],
  ['lxc.net.0.type', 'none'],
  ['lxc.net.0.type', 'macvlan'],
  ['lxc.net.0.link', 'eth0'],
  ['lxc.hook.pre-start', `/bin/sh -c "touch ${MARKER}"`],
];

const config = (name: string) => readFileSync(join(s.lxcpath, name, 'config'), 'utf8');

describe('the allow-list through the API', () => {
  it.each(BYPASSES)('create with %s = %j is refused (403), nothing is made', async (key, value) => {
    const r = await s.http<Err>(
      'POST',
      '/v1/containers',
      { name: 'evil', template: 'busybox', config: { ...TEST_CONFIG, [key]: value } },
      { token: OPERATOR },
    );
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('LXCQ_CONFIG_FORBIDDEN');
    expect(r.body.error.details?.refused?.map((x) => x.key)).toEqual([key]);
    expect(r.body.error.message).toContain(key);
    expect(s.lxcLs()).toEqual(['c1']);
    expect((await s.http('GET', '/v1/containers/evil')).status).toBe(404);
  });

  it.each(BYPASSES)(
    'PATCH config with %s = %j is refused (403), the config is unchanged',
    async (key, value) => {
      const before = config('c1');
      const r = await s.http<Err>(
        'PATCH',
        '/v1/containers/c1/config',
        { set: { [key]: value } },
        { token: OPERATOR },
      );
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('LXCQ_CONFIG_FORBIDDEN');
      expect(config('c1')).toBe(before);
    },
  );

  it.each(['lxc.idmap', 'lxc.include', 'lxc.cap.drop', 'lxc.rootfs.path'])(
    'clearing %s is refused: it would loosen confinement',
    async (key) => {
      const before = config('c1');
      for (const body of [{ clear: [key] }, { set: { [key]: '' } }]) {
        const r = await s.http<Err>('PATCH', '/v1/containers/c1/config', body, { token: OPERATOR });
        expect(r.status).toBe(403);
        expect(r.body.error.code).toBe('LXCQ_CONFIG_FORBIDDEN');
      }
      expect(config('c1')).toBe(before);
    },
  );

  it('everyday keys pass for operate', async () => {
    const r = await s.http<Job>(
      'PATCH',
      '/v1/containers/c1/config?wait=60',
      {
        set: {
          'lxc.environment': 'APP_MODE=test',
          'lxc.start.auto': '1',
          'lxc.mount.auto': 'proc:mixed sys:ro cgroup:ro',
          'lxc.mount.entry': 'tmpfs scratch tmpfs defaults,size=16m,create=dir 0 0',
          'lxc.net.0.type': 'empty',
          'lxc.net.0.link': 'lxcbr0',
          'lxc.tty.max': '2',
        },
        clear: ['lxc.start.auto', 'lxc.apparmor.allow_nesting'],
      },
      { token: OPERATOR },
    );
    expect(r.body.state, JSON.stringify(r.body.error)).toBe('completed');
    expect(config('c1')).toMatch(/^lxc\.environment = APP_MODE=test$/m);
  });

  it('download fields with . or .. are refused before anything runs', async () => {
    const r = await s.http<Err>(
      'POST',
      '/v1/containers',
      {
        name: 'dl',
        template: 'download',
        download: { dist: '..', release: '..', arch: '..', variant: 'tmp' },
      },
      { token: OPERATOR },
    );
    expect(r.status).toBe(400);
    expect(s.lxcLs()).toEqual(['c1']);
  });

  it('oci: URLs naming a host path are refused; nothing is made', async () => {
    const r = await s.http<Err>(
      'POST',
      '/v1/containers',
      { name: 'oc', template: 'oci', oci: { url: 'oci:/var/lib/some-layout:latest' } },
      { token: OPERATOR },
    );
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('LXCQ_CONFIG_FORBIDDEN');
    expect(r.body.error.details?.refused?.[0]?.key).toBe('oci.url');
    expect(s.lxcLs()).toEqual(['c1']);
  });

  it('a raw key the host allows is for admin tokens only', async () => {
    const hook = { 'lxc.hook.pre-start': `/bin/sh -c "touch ${MARKER}"` };
    const r = await s.http<Err>('PATCH', '/v1/containers/c1/config', { set: hook }, { token: OPERATOR });
    expect(r.status).toBe(403);
    expect(r.body.error.message).toMatch(/admin tokens only/);
    // A raw key the host does not allow is refused to admins too.
    const cap = await s.http<Err>('PATCH', '/v1/containers/c1/config', {
      set: { 'lxc.cap.keep': 'sys_admin' },
    });
    expect(cap.status).toBe(403);
    expect(config('c1')).not.toMatch(/lxc\.hook|lxc\.cap\.keep/);
    // The admin token's request passes the API and the worker's re-check alike (never started here).
    const ok = await s.run('PATCH', '/v1/containers/c1/config', { set: hook });
    expect(ok.state, JSON.stringify(ok.error)).toBe('completed');
    expect(config('c1')).toContain(`lxc.hook.pre-start = /bin/sh -c "touch ${MARKER}"`);
    const back = await s.run('PATCH', '/v1/containers/c1/config', { clear: ['lxc.hook.pre-start'] });
    expect(back.state, JSON.stringify(back.error)).toBe('completed');
    expect(config('c1')).not.toMatch(/lxc\.hook/);
  });
});

describe("an image's config", () => {
  it('a local image carrying a hook is refused to operate: nothing is made, no hook runs', async () => {
    const r = await s.http<Job>(
      'POST',
      '/v1/containers?wait=120',
      {
        name: 'img1',
        template: 'local',
        local: { rootfs: image.rootfs, metadata: image.metadata },
        config: TEST_CONFIG,
      },
      { token: OPERATOR },
    );
    expect(r.body.state).toBe('failed');
    expect(r.body.error?.code).toBe('LXCQ_CONFIG_FORBIDDEN');
    expect(r.body.error?.message).toMatch(/lxc\.hook\.clone/);
    expect(s.lxcLs()).toEqual(['c1']);
    // The unpacked base of the refused image is gone too.
    expect(readdirSync(join(s.lxcpath, '.lxcq', 'images'))).toEqual([]);
    expect(existsSync(MARKER)).toBe(false);
  });
});

describe('the transfer receiver', () => {
  let transferAddress = '';
  let sender: TransferIdentity;
  let peer: { cert: string; fingerprint: string };
  beforeAll(async () => {
    const info = JSON.parse((await s.redis.hget(`lxcq:host:${s.hostId}`, 'info')) ?? '{}') as {
      transfer?: string;
    };
    transferAddress = info.transfer ?? '';
    expect(transferAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    // The sender is a registered host with its own certificate, as a real source worker is: the
    // receiver's TLS pinning lets it through, so what is tested is the policy behind it.
    sender = await loadOrCreateIdentity(join(dir, 'tls-elsewhere'), 'elsewhere');
    await s.redis.hset(
      'lxcq:host:elsewhere',
      'info',
      JSON.stringify({ id: 'elsewhere', transferCert: sender.cert, transferFingerprint: sender.fingerprint }),
    );
    const target = JSON.parse((await s.redis.hget(`lxcq:host:${s.hostId}`, 'info')) ?? '{}') as {
      transferCert?: string;
      transferFingerprint?: string;
    };
    peer = { cert: target.transferCert ?? '', fingerprint: target.transferFingerprint ?? '' };
    expect(peer.fingerprint).toMatch(/^[0-9a-f]{64}$/);
  });
  afterAll(async () => {
    await s.redis.del('lxcq:host:elsewhere');
  });

  /** A container directory as another host would send it: config, rootfs and nothing else. */
  function crafted(name: string, extra: string): string {
    const src = join(dir, `src-${name}`);
    mkdirSync(join(src, 'rootfs', 'bin'), { recursive: true });
    writeFileSync(
      join(src, 'config'),
      `lxc.rootfs.path = dir:${src}/rootfs\nlxc.uts.name = ${name}\nlxc.net.0.type = empty\n${extra}`,
    );
    return src;
  }

  /** Pushes `src` to this host's receiver with a grant stored in Redis, as a source worker does. */
  function push(src: string, name: string) {
    return sendContainer({
      redis: s.redis,
      keys: keys('lxcq'),
      address: transferAddress,
      identity: sender,
      peer,
      grant: {
        job: `test-${name}`,
        mode: 'clone',
        from: 'elsewhere',
        to: s.hostId,
        name,
        srcDir: src,
        newName: name,
      },
    });
  }

  const incoming = () => {
    const d = join(s.lxcpath, '.lxcq', 'incoming');
    return existsSync(d) ? readdirSync(d) : [];
  };

  it('takes a clean container (the control: the push itself works)', async () => {
    const r = await push(crafted('clean1', ''), 'clean1');
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(s.lxcLs()).toContain('clean1');
    const j = await s.run('DELETE', '/v1/containers/clean1');
    expect(j.state, JSON.stringify(j.error)).toBe('completed');
  });

  it('refuses a container whose config has a hook: 403, nothing left, no hook ran', async () => {
    const src = crafted(
      'hooked',
      [
        `lxc.hook.pre-start = /bin/sh -c "touch ${MARKER}"`,
        `lxc.hook.destroy = /bin/sh -c "touch ${MARKER}"`,
        `lxc.hook.start-host = /bin/sh -c "touch ${MARKER}"`,
        '',
      ].join('\n'),
    );
    const r = await push(src, 'hooked');
    expect(r.ok).toBe(false);
    const error = r.ok ? null : r.error;
    expect(error?.code, error?.message).toBe('LXCQ_CONFIG_FORBIDDEN');
    expect(error?.message).toMatch(/lxc\.hook\.pre-start/);
    expect(s.lxcLs()).toEqual(['c1']);
    expect(existsSync(join(s.lxcpath, 'hooked'))).toBe(false);
    expect(incoming()).toEqual([]);
    expect(await s.redis.exists('lxcq:container:hooked')).toBe(0);
    // Nothing registered: starting it is a 404, so the hook can never run.
    expect((await s.http('POST', '/v1/containers/hooked/start')).status).toBe(404);
    expect(existsSync(MARKER)).toBe(false);
  });

  it('refuses a config that is a link (the receiver rewrites it in place): the linked file is untouched', async () => {
    const src = crafted('linked', '');
    // A file the policy alone would pass: only the link itself gives it away.
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'lxc.uts.name = victim\n');
    rmSync(join(src, 'config'));
    symlinkSync(victim, join(src, 'config'));
    const r = await push(src, 'linked');
    expect(r.ok).toBe(false);
    expect(readFileSync(victim, 'utf8')).toBe('lxc.uts.name = victim\n');
    expect(s.lxcLs()).toEqual(['c1']);
    expect(incoming()).toEqual([]);
  });

  it('refuses a rootfs that is a link (it would make a host directory the container root)', async () => {
    const src = crafted('rootlink', '');
    const hostDir = join(dir, 'host-dir');
    mkdirSync(hostDir, { recursive: true });
    rmSync(join(src, 'rootfs'), { recursive: true });
    symlinkSync(hostDir, join(src, 'rootfs'));
    const r = await push(src, 'rootlink');
    expect(r.ok).toBe(false);
    expect(r.ok ? null : r.error.code).toBe('LXCQ_CONFIG_FORBIDDEN');
    expect(s.lxcLs()).toEqual(['c1']);
    expect(existsSync(join(s.lxcpath, 'rootlink'))).toBe(false);
    expect(incoming()).toEqual([]);
  });
});
