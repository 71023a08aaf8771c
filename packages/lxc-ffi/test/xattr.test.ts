// The l*xattr binding on real files in a temporary directory: values round-trip byte for byte, a
// missing attribute is null, symlinks are never followed, and a failure names its errno.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { XattrError, getXattr, removeXattr, setXattr } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'lxcq-xattr-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('xattr', () => {
  it('sets, reads and removes an attribute; a missing one is null', () => {
    const f = join(dir, 'f');
    writeFileSync(f, '');
    expect(getXattr(f, 'user.lxcq')).toBeNull();
    setXattr(f, 'user.lxcq', Buffer.from([0, 1, 2, 255]));
    expect(getXattr(f, 'user.lxcq')).toEqual(Buffer.from([0, 1, 2, 255]));
    removeXattr(f, 'user.lxcq');
    expect(getXattr(f, 'user.lxcq')).toBeNull();
    removeXattr(f, 'user.lxcq'); // absent: no error
  });

  it('reads what setcap and setfacl wrote (the attributes convert rewrites)', () => {
    const f = join(dir, 'capfile');
    writeFileSync(f, '');
    execFileSync('setcap', ['cap_net_raw+ep', f]);
    const caps = getXattr(f, 'security.capability');
    // v2 entry, effective flag, CAP_NET_RAW (13) permitted
    expect(caps?.readUInt32LE(0)).toBe(0x02000001);
    expect(caps?.readUInt32LE(4)).toBe(1 << 13);
    execFileSync('setfacl', ['-m', 'u:4321:r', f]);
    const acl = getXattr(f, 'system.posix_acl_access');
    expect(acl?.readUInt32LE(0)).toBe(2);
    expect(acl?.includes(Buffer.from([0x02, 0x00, 0x04, 0x00, 0xe1, 0x10, 0, 0]))).toBe(true);
  });

  it('never follows a symlink, and names the errno of a failure', () => {
    const target = join(dir, 'target');
    writeFileSync(target, '');
    setXattr(target, 'user.lxcq', Buffer.from('t'));
    const link = join(dir, 'link');
    symlinkSync(target, link);
    expect(getXattr(link, 'user.lxcq')).toBeNull();
    // user.* attributes are not allowed on symlinks themselves
    let err: unknown;
    try {
      setXattr(link, 'user.lxcq', Buffer.from('l'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(XattrError);
    expect((err as XattrError).code).toBe('EPERM');
    expect(getXattr(target, 'user.lxcq')).toEqual(Buffer.from('t'));
    expect(() => getXattr(join(dir, 'missing'), 'user.lxcq')).toThrow(
      /lgetxattr\(.*missing, user\.lxcq\) failed: ENOENT/,
    );
  });
});
