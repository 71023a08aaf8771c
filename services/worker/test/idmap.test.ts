// The pure part of idmap.ts: which subordinate range is root's, and the keys a new container gets.
import { describe, expect, it } from 'vitest';
import { LxcqError } from '@lxcq/shared';
import { isPrivilegedConfig, rootRange, securityConfig } from '../src/idmap.ts';

describe('rootRange', () => {
  it("takes root's first range of at least 65536 ids, by name or as uid 0", () => {
    expect(rootRange('alice:100000:65536\nroot:1000000:1000000000\n')).toBe(1000000);
    expect(rootRange('0:200000:65536\n')).toBe(200000);
    expect(rootRange('root:300000:1000\nroot:400000:65536\n')).toBe(400000);
  });
  it('is null without one', () => {
    expect(rootRange('')).toBeNull();
    expect(rootRange('alice:100000:65536\nroot:300000:65535\n')).toBeNull();
    expect(rootRange('# root:1000000:1000000000\n')).toBeNull();
  });
});

describe('securityConfig', () => {
  const range = { uid: 1000000, gid: 2000000 };
  it('unprivileged: common.conf, userns.conf, both maps, then the capability drops', () => {
    expect(securityConfig(false, range, 'h1')).toEqual([
      ['lxc.include', '/usr/share/lxc/config/common.conf'],
      ['lxc.include', '/usr/share/lxc/config/userns.conf'],
      ['lxc.idmap', 'u 0 1000000 65536'],
      ['lxc.idmap', 'g 0 2000000 65536'],
      ['lxc.cap.drop', 'mac_admin mac_override sys_time sys_module sys_rawio'],
    ]);
  });
  it('privileged: common.conf and the drops, no map (and needs no range)', () => {
    const c = securityConfig(true, null, 'h1');
    expect(c.map(([k]) => k)).toEqual(['lxc.include', 'lxc.cap.drop']);
  });
  it('refuses an unprivileged container on a host without a range, naming the fix', () => {
    try {
      securityConfig(false, null, 'h1');
      expect.unreachable('no range: must throw');
    } catch (e) {
      expect(e).toBeInstanceOf(LxcqError);
      expect((e as LxcqError).code).toBe('LXCQ_NO_ID_RANGE');
      expect((e as Error).message).toMatch(/setup-host\.sh/);
    }
  });
  it('privileged means no lxc.idmap in the config', () => {
    expect(isPrivilegedConfig('')).toBe(true);
    expect(isPrivilegedConfig('u 0 1000000 65536\ng 0 1000000 65536')).toBe(false);
  });
});
