// The config rewrite behind config.set and limits.set: a single-valued key's new value takes the
// place of its first line and the others go, unless an include after it could set the key again.
// (The end-to-end proof, against liblxc and a real container, is in services/api/test/lifecycle.test.ts.)
import { describe, expect, it } from 'vitest';
import { replaceInPlace } from '../src/thread.ts';

const FILE = [
  '# Template used to create this container',
  'lxc.net.0.type = veth',
  'lxc.tty.max = 5',
  'lxc.uts.name = "c1"',
  'lxc.mount.entry = shm dev/shm tmpfs defaults,create=dir 0 0',
  'lxc.tty.max = 0',
  'lxc.uts.name = web',
  '',
].join('\n');

describe('replaceInPlace', () => {
  it("puts the value at the key's first line and drops its later lines", () => {
    const out = replaceInPlace(FILE, [
      ['lxc.tty.max', '0'],
      ['lxc.uts.name', 'web'],
    ]);
    expect(out.split('\n')).toEqual([
      '# Template used to create this container',
      'lxc.net.0.type = veth',
      'lxc.tty.max = 0',
      'lxc.uts.name = web',
      'lxc.mount.entry = shm dev/shm tmpfs defaults,create=dir 0 0',
      '',
    ]);
  });

  it('leaves a key that appears once, and keys it was not asked about, as they are', () => {
    expect(replaceInPlace(FILE, [['lxc.net.0.type', 'veth']])).toBe(FILE);
    expect(replaceInPlace(FILE, [])).toBe(FILE);
  });

  it('keeps the last line in force when an include follows the first (it could set the key again)', () => {
    const withInclude = FILE.replace(
      'lxc.mount.entry',
      'lxc.include = /usr/share/lxc/config/common.conf\nlxc.mount.entry',
    );
    expect(replaceInPlace(withInclude, [['lxc.tty.max', '0']])).toBe(withInclude);
  });

  it('matches the whole key, not a prefix of another', () => {
    const text = 'lxc.cgroup2.memory.max = 1\nlxc.cgroup2.memory.max.extra = 2\nlxc.cgroup2.memory.max = 3\n';
    expect(replaceInPlace(text, [['lxc.cgroup2.memory.max', '3']])).toBe(
      'lxc.cgroup2.memory.max = 3\nlxc.cgroup2.memory.max.extra = 2\n',
    );
  });
});
