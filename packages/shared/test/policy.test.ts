import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { LxcqError } from '../src/index.ts';
import {
  ALLOWED,
  DEFAULT_POLICY,
  assertClearableKeys,
  assertConfigAllowed,
  assertStoredConfig,
  assertTemplateArgs,
  checkClearKey,
  checkConfigItem,
  type ConfigPolicy,
} from '../src/index.ts';

const OPERATE = { admin: false };
const ADMIN = { admin: true };
const HOOKS_FOR_ADMINS: ConfigPolicy = { ...DEFAULT_POLICY, allow: ['lxc.hook.*', 'lxc.mount.entry'] };

function code(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return (e as LxcqError).code;
  }
}

/** Every allow-listed family: [family, key, an allowed value, a refused value]. */
const ALLOWED_CASES: readonly (readonly [string, string, string, string])[] = [
  ['lxc.arch', 'lxc.arch', 'x86_64', 'x86_64 /etc'],
  ['lxc.autodev', 'lxc.autodev', '1', '2'],
  ['lxc.autodev.tmpfs.size', 'lxc.autodev.tmpfs.size', '500000', '-1'],
  ['lxc.cgroup.<limit>, lxc.cgroup2.<limit>', 'lxc.cgroup2.memory.max', '256M', '/sys/fs/cgroup'],
  ['lxc.cgroup.<limit>, lxc.cgroup2.<limit>', 'lxc.cgroup.cpu.cfs_quota_us', '50000', 'a; b'],
  ['lxc.cgroup.<limit>, lxc.cgroup2.<limit>', 'lxc.cgroup2.cpu.max', '50000 100000', 'max max max'],
  ['lxc.cgroup.<limit>, lxc.cgroup2.<limit>', 'lxc.cgroup2.cpuset.cpus', '0-1,3', 'all'],
  ['lxc.cgroup.<limit>, lxc.cgroup2.<limit>', 'lxc.cgroup2.pids.max', 'max', 'unlimited'],
  ['lxc.console.path', 'lxc.console.path', 'none', '/dev/tty1'],
  ['lxc.environment', 'lxc.environment', 'FOO=bar baz', 'LXCQ_TOKEN'],
  ['lxc.ephemeral', 'lxc.ephemeral', '0', 'yes'],
  ['lxc.execute.cmd', 'lxc.execute.cmd', '/bin/sh -c "sleep 1"', 'a\nlxc.hook.start = /x'],
  ['lxc.group', 'lxc.group', 'web,onboot', 'a b'],
  ['lxc.init.cmd', 'lxc.init.cmd', '/sbin/init', 'x\0y'],
  ['lxc.init.cwd', 'lxc.init.cwd', '/srv', 'srv'],
  ['lxc.init.uid, lxc.init.gid', 'lxc.init.uid', '1000', 'root'],
  ['lxc.init.uid, lxc.init.gid', 'lxc.init.gid', '0', '-1'],
  ['lxc.init.groups', 'lxc.init.groups', '10,20', 'wheel'],
  ['lxc.mount.auto', 'lxc.mount.auto', 'proc:mixed sys:ro cgroup:ro', 'proc:rw'],
  ['lxc.mount.auto', 'lxc.mount.auto', 'cgroup:mixed cgroup2:ro:force sys:mixed proc', 'sys:rw'],
  [
    'lxc.mount.entry',
    'lxc.mount.entry',
    'tmpfs tmp tmpfs defaults,size=64m,create=dir 0 0',
    '/etc etc none bind 0 0',
  ],
  [
    'lxc.mount.entry',
    'lxc.mount.entry',
    'mqueue dev/mqueue mqueue defaults,optional,create=dir 0 0',
    'proc mnt/p proc rw 0 0',
  ],
  ['lxc.net (clear all)', 'lxc.net', '', 'x'],
  ['lxc.net.N.type', 'lxc.net.0.type', 'veth', 'none'],
  ['lxc.net.N.type', 'lxc.net.1.type', 'empty', 'macvlan'],
  ['lxc.net.N.link', 'lxc.net.0.link', 'lxcbr0', 'eth0'],
  ['lxc.net.N.flags', 'lxc.net.0.flags', 'up', 'down'],
  ['lxc.net.N.hwaddr', 'lxc.net.0.hwaddr', '00:16:3e:xx:xx:xx', '00:16:3e'],
  ['lxc.net.N.name', 'lxc.net.0.name', 'eth0', 'a/b'],
  ['lxc.net.N.mtu', 'lxc.net.0.mtu', '1500', 'big'],
  ['lxc.net.N.ipv4.address', 'lxc.net.0.ipv4.address', '10.0.3.5/24', '10.0.3.5/24 /x'],
  ['lxc.net.N.ipv4.gateway', 'lxc.net.0.ipv4.gateway', 'auto', 'router'],
  ['lxc.net.N.ipv6.address', 'lxc.net.0.ipv6.address', 'fd00::5/64', 'fd00::5/64 x'],
  ['lxc.net.N.ipv6.gateway', 'lxc.net.0.ipv6.gateway', 'fd00::1', 'gw'],
  ['lxc.net.N.macvlan.mode', 'lxc.net.0.macvlan.mode', 'bridge', 'promisc'],
  ['lxc.net.N.ipvlan.mode', 'lxc.net.0.ipvlan.mode', 'l3', 'l4'],
  ['lxc.net.N.ipvlan.isolation', 'lxc.net.0.ipvlan.isolation', 'private', 'none'],
  ['lxc.no_new_privs', 'lxc.no_new_privs', '1', 'true'],
  ['lxc.pty.max', 'lxc.pty.max', '10', '100000'],
  ['lxc.tty.max', 'lxc.tty.max', '0', '1000'],
  ['lxc.tty.dir', 'lxc.tty.dir', 'lxc', '../x'],
  ['lxc.signal.halt, .reboot, .stop', 'lxc.signal.halt', 'SIGUSR1', 'SIG USR1'],
  ['lxc.signal.halt, .reboot, .stop', 'lxc.signal.stop', '9', 'kill -9'],
  ['lxc.start.auto', 'lxc.start.auto', '1', 'on'],
  ['lxc.start.delay, lxc.start.order', 'lxc.start.delay', '5', 'soon'],
  ['lxc.uts.name', 'lxc.uts.name', 'web-1', 'a b'],
];

/** Every refused family (admin-only, or never), with a value an attacker would use. */
const REFUSED_CASES: readonly (readonly [string, string, RegExp])[] = [
  ['lxc.hook.pre-start', '/bin/sh -c "id > /tmp/pwn"', /hooks run commands as root/],
  ['lxc.hook.start-host', '/tmp/x', /hooks/],
  ['lxc.hook.destroy', '/tmp/x', /hooks/],
  ['lxc.hook.version', '1', /hooks/],
  ['lxc.net.0.script.up', '/tmp/x', /network scripts/],
  ['lxc.net.0.veth.pair', 'eth0', /host's side of the network/],
  ['lxc.net.0.veth.ipv4.route', '127.0.0.0/8', /host's side/],
  ['lxc.net.0.l2proxy', '1', /host's side/],
  ['lxc.include', '/etc/shadow', /includes read arbitrary host files/],
  ['lxc.include', '/usr/share/lxc/config/nesting.conf', /includes/],
  ['lxc.rootfs.path', 'dir:/', /rootfs is a host path/],
  ['lxc.rootfs.mount', '/mnt', /rootfs/],
  ['lxc.rootfs.options', 'idmap=container', /rootfs/],
  ['lxc.idmap', 'u 0 100000 65536', /id map/],
  ['lxc.cap.keep', 'sys_admin', /capabilities/],
  ['lxc.cap.drop', 'sys_module', /capabilities/],
  ['lxc.seccomp.profile', '/dev/null', /seccomp/],
  ['lxc.seccomp.allow_nesting', '1', /seccomp/],
  ['lxc.apparmor.profile', 'unconfined', /AppArmor/],
  ['lxc.apparmor.raw', 'mount,', /AppArmor/],
  ['lxc.apparmor.allow_incomplete', '1', /AppArmor/],
  ['lxc.selinux.context', 'unconfined_t', /SELinux/],
  ['lxc.keyring.session', '0', /keyring/],
  ['lxc.sysctl.kernel.core_pattern', '|/tmp/x', /sysctls/],
  ['lxc.cgroup.dir', '../../', /cgroup placement/],
  ['lxc.cgroup.dir.container', 'x', /cgroup placement/],
  ['lxc.cgroup.dir.monitor', 'x', /cgroup placement/],
  ['lxc.cgroup.relative', '1', /cgroup placement/],
  ['lxc.cgroup2.devices.allow', 'a', /device rules/],
  ['lxc.cgroup.devices.allow', 'b 8:* rwm', /device rules/],
  ['lxc.cgroup2.cgroup.procs', '1', /only the limits/],
  ['lxc.namespace.share.net', '1', /namespace/],
  ['lxc.namespace.keep', 'net', /namespace/],
  ['lxc.namespace.clone', 'mount', /namespace/],
  ['lxc.log.file', '/etc/passwd', /log settings/],
  ['lxc.log.level', 'TRACE', /log/],
  ['lxc.console.logfile', '/etc/passwd', /console/],
  ['lxc.console.buffer.logfile', '/etc/passwd', /console/],
  ['lxc.mount.fstab', '/tmp/fstab', /fstab is a host file/],
  ['lxc.prlimit.memlock', 'unlimited', /resource limits/],
  ['lxc.proc.oom_score_adj', '-1000', /proc settings/],
  ['lxc.monitor.unshare', '1', /monitor/],
  ['lxc.time.offset.boot', '10s', /time/],
  ['lxc.rootfs.managed', '0', /rootfs/],
  ['lxc.network.0.type', 'veth', /not a key lxcq lets containers set/],
];

/** The bypasses of issue 12 (and their relatives): each refused, with why. */
const BYPASSES: readonly (readonly [string, string, RegExp])[] = [
  ['lxc.mount.auto', 'shmounts:/tmp/x:/mnt/x', /shmounts bind-mounts a host directory/],
  ['lxc.mount.auto', 'shmounts:/:/mnt/hostroot', /shmounts/],
  ['lxc.mount.auto', 'proc:mixed shmounts:/tmp/x', /shmounts/],
  ['lxc.mount.auto', 'cgroup-full:ro', /only proc/],
  ['lxc.mount.auto', 'cgroup', /only proc/],
  ['lxc.mount.auto', 'cgroup2', /only proc/],
  ['lxc.mount.entry', 'overlay mnt/o overlay ro,lowerdir=/tmp/x:/tmp/y,create=dir 0 0', /absolute path/],
  ['lxc.mount.entry', 'overlay mnt/o overlay ro,lowerdir=tmp/x,create=dir 0 0', /filesystem overlay/],
  ['lxc.mount.entry', 'tmpfs mnt/o tmpfs ro,lowerdir=x:/tmp/y 0 0', /absolute path/],
  ['lxc.mount.entry', 'etc mnt/x tmpfs bind 0 0', /option bind/],
  ['lxc.mount.entry', 'etc mnt/x none bind,create=dir 0 0', /filesystem none/],
  ['lxc.mount.entry', 'tmpfs ../../tmp tmpfs defaults 0 0', /`\.\.`/],
  ['lxc.mount.entry', 'tmpfs /tmp tmpfs defaults 0 0', /absolute path/],
  ['lxc.mount.entry', 'sysfs mnt/s sysfs rw 0 0', /filesystem sysfs/],
  ['lxc.mount.entry', 'tmpfs a\\040b tmpfs defaults 0 0', /backslashes/],
  ['lxc.net.0.type', 'none', /shares the host network namespace/],
  ['lxc.net.0.type', 'macvlan', /host interface/],
  ['lxc.net.0.type', 'phys', /moves a host interface/],
  ['lxc.net.0.type', 'ipvlan', /host interface/],
  ['lxc.net.0.link', 'eth0', /LXCQ_NETWORK_LINKS/],
  ['lxc.environment', 'LXCQ_REDIS_URL', /copy the variable from the host/],
];

describe('config policy: the allow-list', () => {
  it.each(ALLOWED_CASES)('%s: %s = %j is allowed, = %j refused', (_family, key, ok, bad) => {
    expect(checkConfigItem(key, ok)).toEqual({ allowed: true });
    const d = checkConfigItem(key, bad);
    expect(d.allowed).toBe(false);
    expect(d.reason).toBeTruthy();
  });

  it('covers every allow-listed family, here and in docs/config-policy.md', () => {
    const tested = new Set(ALLOWED_CASES.map((c) => c[0]));
    expect(ALLOWED.map((a) => a.family).filter((f) => !tested.has(f))).toEqual([]);
    const doc = readFileSync(new URL('../../../docs/config-policy.md', import.meta.url), 'utf8');
    expect(ALLOWED.map((a) => a.family).filter((f) => !doc.includes(`| \`${f}\` |`))).toEqual([]);
  });

  it.each(REFUSED_CASES)('refuses %s = %j to operate, saying why', (key, value, why) => {
    const d = checkConfigItem(key, value);
    expect(d.allowed).toBe(false);
    expect(d.reason).toMatch(why);
    // An admin token gets nothing more while the host allows no raw keys.
    expect(checkConfigItem(key, value, DEFAULT_POLICY, ADMIN).allowed).toBe(false);
  });

  it.each(BYPASSES)('refuses the bypass %s = %j', (key, value, why) => {
    const d = checkConfigItem(key, value);
    expect(d.allowed).toBe(false);
    expect(d.reason).toMatch(why);
  });

  it('takes network types and links from the host settings', () => {
    const host: ConfigPolicy = {
      ...DEFAULT_POLICY,
      networkTypes: ['veth', 'macvlan'],
      networkLinks: ['br1', 'eth1'],
    };
    expect(checkConfigItem('lxc.net.0.type', 'macvlan', host).allowed).toBe(true);
    expect(checkConfigItem('lxc.net.0.link', 'eth1', host).allowed).toBe(true);
    expect(checkConfigItem('lxc.net.0.link', 'lxcbr0', host).allowed).toBe(false);
    expect(checkConfigItem('lxc.net.0.type', 'empty', host).allowed).toBe(false);
  });

  it('malformed keys and values are refused whatever the host allows', () => {
    const all: ConfigPolicy = { ...DEFAULT_POLICY, allow: ['*'] };
    for (const [k, v] of [
      ['LXC.HOOK.x', '1'],
      ['lxc.', '1'],
      ['notlxc.key', '1'],
      ['lxc.hook.start', 'a\nb'],
      ['lxc.environment', 'A=1\nlxc.hook.start = /bin/evil'],
      ['lxc.uts.name', 'x'.repeat(5000)],
    ] as const)
      expect(checkConfigItem(k, v, all, ADMIN).allowed).toBe(false);
  });
});

describe('config policy: raw keys', () => {
  it('only an admin token, and only keys the host names, get raw keys', () => {
    expect(checkConfigItem('lxc.hook.pre-start', '/x', HOOKS_FOR_ADMINS, ADMIN).allowed).toBe(true);
    const operate = checkConfigItem('lxc.hook.pre-start', '/x', HOOKS_FOR_ADMINS, OPERATE);
    expect(operate.allowed).toBe(false);
    expect(operate.reason).toMatch(/admin tokens only/);
    expect(checkConfigItem('lxc.cap.keep', 'x', HOOKS_FOR_ADMINS, ADMIN).allowed).toBe(false);
    // The host's allow also lifts a listed key's value rule, for admins only.
    expect(
      checkConfigItem('lxc.mount.entry', '/srv srv none bind 0 0', HOOKS_FOR_ADMINS, ADMIN).allowed,
    ).toBe(true);
    expect(
      checkConfigItem('lxc.mount.entry', '/srv srv none bind 0 0', HOOKS_FOR_ADMINS, OPERATE).allowed,
    ).toBe(false);
  });

  it('names every refused key in one LXCQ_CONFIG_FORBIDDEN error', () => {
    try {
      assertConfigAllowed({ 'lxc.hook.start': 'x', 'lxc.uts.name': 'ok', 'lxc.idmap': 'u 0 0 1' });
      expect.unreachable();
    } catch (e) {
      const err = e as LxcqError;
      expect(err.code).toBe('LXCQ_CONFIG_FORBIDDEN');
      expect(err.status).toBe(403);
      expect(err.message).toMatch(/lxc\.hook\.start \(hooks run commands as root on the host/);
      expect(err.details?.refused).toEqual([
        { key: 'lxc.hook.start', reason: expect.stringMatching(/root on the host/) as unknown },
        { key: 'lxc.idmap', reason: expect.any(String) as unknown },
      ]);
    }
  });
});

describe('config policy: clearing keys', () => {
  it.each([
    'lxc.idmap',
    'lxc.include',
    'lxc.cap.drop',
    'lxc.seccomp.profile',
    'lxc.rootfs.path',
    'lxc.namespace.clone',
    'lxc.apparmor.raw',
  ])('refuses to clear %s (it would loosen confinement)', (key) => {
    const d = checkClearKey(key);
    expect(d.allowed).toBe(false);
    expect(d.reason).toMatch(/clearing it is refused/);
    expect(code(() => assertClearableKeys([key]))).toBe('LXCQ_CONFIG_FORBIDDEN');
    // Setting it to "" is clearing it, and is refused the same way.
    expect(checkConfigItem(key, '').allowed).toBe(false);
  });

  it.each([
    'lxc.net.0.link',
    'lxc.mount.entry',
    'lxc.environment',
    'lxc.net',
    'lxc.apparmor.profile',
    'lxc.apparmor.allow_nesting',
  ])('lets operate clear %s', (key) => {
    expect(checkClearKey(key)).toEqual({ allowed: true });
  });
});

describe('config found on disk (image, template, transfer)', () => {
  const dir = '/var/lib/lxc/c1';
  const opts = {
    policy: DEFAULT_POLICY,
    who: OPERATE,
    rootfsDirs: [`${dir}/rootfs`],
    what: 'The received config',
  };
  // What lxc-create -t busybox writes here, plus what lxcq and LXC's default config add.
  const BUSYBOX = `# Template used to create this container
lxc.net.0.type = veth
lxc.net.0.link = lxcbr0
lxc.net.0.flags = up
lxc.apparmor.profile = generated
lxc.apparmor.allow_nesting = 1
lxc.rootfs.path = dir:${dir}/rootfs
lxc.signal.halt = SIGUSR1
lxc.uts.name = "c1"
lxc.autodev = 1
lxc.tty.max = 5
lxc.cap.drop = sys_module mac_admin mac_override sys_time
lxc.mount.auto = cgroup:mixed proc:mixed sys:ro
lxc.mount.entry = shm dev/shm tmpfs defaults,create=dir 0 0
lxc.mount.entry = /lib lib none ro,bind 0 0
lxc.mount.entry = /usr/lib   usr/lib none ro,bind 0 0
lxc.mount.entry = /sys/kernel/security sys/kernel/security none ro,bind,optional 0 0
lxc.include = /usr/share/lxc/config/common.conf
lxc.include = /usr/share/lxc/config/userns.conf
lxc.idmap = u 0 1000000 65536
lxc.idmap = g 0 1000000 65536
`;

  it('accepts what lxcq, its templates and LXC write', () => {
    expect(() => assertStoredConfig(BUSYBOX, opts)).not.toThrow();
  });

  it.each([
    ['lxc.hook.pre-start = /bin/touch /tmp/m', /lxc\.hook\.pre-start/],
    [`lxc.rootfs.path = dir:/`, /lxc\.rootfs\.path/],
    ['lxc.mount.entry = /etc etc none ro,bind 0 0', /lxc\.mount\.entry/],
    ['lxc.include = /usr/share/lxc/config/nesting.conf', /lxc\.include/],
    ['lxc.include = /tmp/evil.conf', /lxc\.include/],
    ['lxc.idmap = u 0 0 65536', /lxc\.idmap/],
    ['lxc.cap.drop =', /lxc\.cap\.drop/],
    ['lxc.apparmor.profile = unconfined', /lxc\.apparmor\.profile/],
    ['lxc.mount.auto = shmounts:/:/mnt/hostroot', /shmounts/],
    ['lxc.net.0.type = none', /lxc\.net\.0\.type/],
  ])('refuses %j among it', (line, why) => {
    try {
      assertStoredConfig(`${BUSYBOX}${line}\n`, opts);
      expect.unreachable();
    } catch (e) {
      expect((e as LxcqError).code).toBe('LXCQ_CONFIG_FORBIDDEN');
      expect((e as LxcqError).message).toMatch(why);
      expect((e as LxcqError).message).toMatch(/^The received config refused by policy/);
    }
  });

  it('accepts a raw key the host allows only when checked for an admin', () => {
    const text = `${BUSYBOX}lxc.hook.pre-start = /bin/true\n`;
    expect(code(() => assertStoredConfig(text, { ...opts, policy: HOOKS_FOR_ADMINS }))).toBe(
      'LXCQ_CONFIG_FORBIDDEN',
    );
    expect(() => assertStoredConfig(text, { ...opts, policy: HOOKS_FOR_ADMINS, who: ADMIN })).not.toThrow();
  });
});

describe('template arguments', () => {
  it.each([
    [{ dist: '..', release: '..', arch: '..', variant: 'tmp' }],
    [{ dist: '.', release: 'bookworm', arch: 'amd64' }],
    [{ dist: 'debian', release: 'a/b', arch: 'amd64' }],
    [{ dist: 'debian', release: 'bookworm', arch: '.hidden' }],
  ])('refuses the download image %j', (download) => {
    expect(code(() => assertTemplateArgs({ template: 'download', download }))).toBe('LXCQ_CONFIG_FORBIDDEN');
  });

  it('accepts ordinary download images', () => {
    expect(() =>
      assertTemplateArgs({
        template: 'download',
        download: { dist: 'ubuntu', release: '24.04', arch: 'amd64', variant: 'default' },
      }),
    ).not.toThrow();
  });

  it('oci: registries always, local layouts only in the host layout directory', () => {
    const oci = (url: string, policy = DEFAULT_POLICY) =>
      code(() => assertTemplateArgs({ template: 'oci', oci: { url } }, policy));
    expect(oci('docker://docker.io/library/alpine:3.20')).toBeUndefined();
    expect(oci('oci:/var/lib/images/alpine:latest')).toBe('LXCQ_CONFIG_FORBIDDEN');
    expect(oci('oci:/:latest')).toBe('LXCQ_CONFIG_FORBIDDEN');
    expect(oci('docker:alpine')).toBe('LXCQ_CONFIG_FORBIDDEN');
    const host: ConfigPolicy = { ...DEFAULT_POLICY, ociLayoutDir: '/srv/oci' };
    expect(oci('oci:/srv/oci/alpine:latest', host)).toBeUndefined();
    expect(oci('oci:/srv/oci/alpine', host)).toBeUndefined();
    expect(oci('oci:/srv/oci/../../etc:latest', host)).toBe('LXCQ_CONFIG_FORBIDDEN');
    expect(oci('oci:/srv/oci/a/b:latest', host)).toBe('LXCQ_CONFIG_FORBIDDEN');
    expect(oci('oci:/srv/ocifoo/a:latest', host)).toBe('LXCQ_CONFIG_FORBIDDEN');
    expect(oci('oci:/etc:latest', host)).toBe('LXCQ_CONFIG_FORBIDDEN');
  });
});
