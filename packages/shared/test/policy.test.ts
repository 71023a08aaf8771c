import { describe, expect, it } from 'vitest';
import type { LxcqError } from '../src/index.ts';
import { assertConfigAllowed, checkConfigItem } from '../src/index.ts';

describe('config-key policy', () => {
  it.each([
    ['lxc.hook.pre-start', '/bin/sh -c "id > /tmp/pwn"'],
    ['lxc.hook.start-host', 'x'],
    ['lxc.mount.entry', '/etc etc none bind 0 0'],
    ['lxc.mount.entry', ' /root root none bind 0 0'],
    ['lxc.mount.fstab', '/tmp/fstab'],
    ['lxc.apparmor.profile', 'unconfined'],
    ['lxc.apparmor.raw', 'mount,'],
    ['lxc.cap.keep', 'sys_admin'],
    ['lxc.cap.drop', ''],
    ['lxc.idmap', 'u 0 0 65536'],
    ['lxc.rootfs.path', 'dir:/'],
    ['lxc.include', '/etc/shadow'],
    ['lxc.net.0.script.up', '/tmp/x'],
    ['lxc.net.0.type', 'phys'],
    ['lxc.cgroup2.devices.allow', 'a'],
    ['lxc.cgroup.devices.allow', 'b 8:* rwm'],
    ['lxc.log.file', '/etc/passwd'],
    ['lxc.seccomp.profile', ''],
    ['lxc.namespace.share.net', '1'],
    ['lxc.mount.auto', 'proc:rw sys:rw'],
    ['lxc.environment', 'A=1\nlxc.hook.start = /bin/evil'],
    ['LXC.HOOK.x', '1'],
    ['lxc.', '1'],
    ['notlxc.key', '1'],
  ])('refuses %s=%j', (key, value) => {
    expect(checkConfigItem(key, value).allowed).toBe(false);
  });

  it.each([
    ['lxc.net.0.type', 'empty'],
    ['lxc.net.0.type', 'veth'],
    ['lxc.uts.name', 'web'],
    ['lxc.environment', 'FOO=bar'],
    ['lxc.mount.entry', 'tmpfs tmp tmpfs defaults 0 0'],
    ['lxc.mount.auto', 'proc:mixed sys:ro cgroup:mixed'],
    ['lxc.apparmor.profile', 'generated'],
    ['lxc.cgroup2.memory.max', '256M'],
    ['lxc.tty.max', '0'],
    ['lxc.start.auto', '1'],
  ])('allows %s=%j', (key, value) => {
    expect(checkConfigItem(key, value)).toEqual({ allowed: true });
  });

  it('lets an admin policy allow a refused key by pattern', () => {
    expect(checkConfigItem('lxc.hook.pre-start', '/x', { allow: ['lxc.hook.*'] }).allowed).toBe(true);
    expect(checkConfigItem('lxc.cap.keep', 'x', { allow: ['lxc.hook.*'] }).allowed).toBe(false);
    // Newlines stay refused whatever the policy allows.
    expect(checkConfigItem('lxc.hook.start', 'a\nb', { allow: ['*'] }).allowed).toBe(false);
  });

  it('names every refused key in one error', () => {
    try {
      assertConfigAllowed({ 'lxc.hook.start': 'x', 'lxc.uts.name': 'ok', 'lxc.idmap': 'u 0 0 1' });
      expect.unreachable();
    } catch (e) {
      const err = e as LxcqError;
      expect(err.code).toBe('LXCQ_CONFIG_KEY_FORBIDDEN');
      expect(err.status).toBe(403);
      expect(err.details?.refused).toEqual([
        { key: 'lxc.hook.start', reason: expect.stringMatching(/root on the host/) as unknown },
        { key: 'lxc.idmap', reason: expect.any(String) as unknown },
      ]);
    }
  });
});
