// shift.ts on real files in a temporary directory (the test runs as root, as the worker does):
// the capability and ACL encodings, which ids fit a map, a batch shifted once even when run twice,
// and a journal left by a killed batch replayed to the same end. Plus thread.ts's pure helpers for
// convert: the rootfs of a config, mount points under a directory, the keys a conversion adds.
import { execFileSync } from 'node:child_process';
import { chmodSync, lchownSync, lstatSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getXattr } from '@lxcq/lxc-ffi';
import {
  capsRootId,
  nsCaps,
  ownerState,
  replayJournal,
  scanPaths,
  shiftAcl,
  shiftBatch,
  type ShiftMap,
} from '../src/shift.ts';
import { convertKeys, mountsUnder, rootfsOf } from '../src/thread.ts';
import { walkBatches } from '../src/handlers/convert.ts';

const map: ShiftMap = { uid: 1000000, gid: 2000000, count: 65536 };
const dir = mkdtempSync(join(tmpdir(), 'lxcq-shift-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tree(name: string): string {
  const root = join(dir, name);
  execFileSync('mkdir', ['-p', join(root, 'd')]);
  const put = (rel: string, uid: number, gid: number, mode: number) => {
    writeFileSync(join(root, rel), rel);
    lchownSync(join(root, rel), uid, gid);
    chmodSync(join(root, rel), mode);
  };
  put('suid', 0, 0, 0o4755);
  put('d/sgid', 5, 6, 0o2711);
  put('d/cap', 10, 10, 0o755);
  execFileSync('setcap', ['cap_net_raw+ep', join(root, 'd/cap')]);
  execFileSync('setfacl', ['-m', 'u:33:rw,g:44:r', join(root, 'd/sgid')]);
  symlinkSync('/etc/passwd', join(root, 'd/link'));
  lchownSync(join(root, 'd/link'), 7, 8);
  return root;
}
const PATHS = ['', 'suid', 'd', 'd/sgid', 'd/cap', 'd/link'];

function expectShifted(root: string): void {
  // 2771: setfacl made the group bits the ACL mask (rwx); a chown would also have cleared setgid
  const st = (rel: string) => lstatSync(join(root, rel));
  expect([st('suid').uid, st('suid').gid, st('suid').mode & 0o7777]).toEqual([1000000, 2000000, 0o4755]);
  expect([st('d/sgid').uid, st('d/sgid').gid, st('d/sgid').mode & 0o7777]).toEqual([
    1000005, 2000006, 0o2771,
  ]);
  expect([st('d/link').uid, st('d/link').gid]).toEqual([1000007, 2000008]);
  expect(lstatSync('/etc/passwd').uid).toBe(0);
  const caps = getXattr(join(root, 'd/cap'), 'security.capability');
  expect(caps && capsRootId(caps)).toBe(1000000);
  expect(caps?.readUInt32LE(4)).toBe(1 << 13);
  const acl = execFileSync('getfacl', ['-n', '-p', join(root, 'd/sgid')], { encoding: 'utf8' });
  expect(acl).toMatch(/^user:1000033:rw-$/m);
  expect(acl).toMatch(/^group:2000044:r--$/m);
}

describe('encodings', () => {
  it('capabilities: v2 becomes v3 for the namespace root, flags and sets kept', () => {
    const v2 = Buffer.alloc(20);
    v2.writeUInt32LE(0x02000001, 0);
    v2.writeUInt32LE(0x2000, 4);
    v2.writeUInt32LE(0x1, 8);
    v2.writeUInt32LE(0x4, 12);
    expect(capsRootId(v2)).toBe(0);
    const v3 = nsCaps(v2, 1000000);
    expect(v3.length).toBe(24);
    expect(v3.readUInt32LE(0)).toBe(0x03000001);
    expect([v3.readUInt32LE(4), v3.readUInt32LE(8), v3.readUInt32LE(12)]).toEqual([0x2000, 0x1, 0x4]);
    expect(capsRootId(v3)).toBe(1000000);
    expect(() => capsRootId(Buffer.alloc(7))).toThrow(/malformed/);
  });
  it('ACLs: user and group entries move by their own base, the others stay', () => {
    const acl = Buffer.alloc(4 + 3 * 8);
    acl.writeUInt32LE(2, 0);
    acl.writeUInt16LE(0x01, 4); // USER_OBJ
    acl.writeUInt32LE(0xffffffff, 8);
    acl.writeUInt16LE(0x02, 12); // USER 33
    acl.writeUInt32LE(33, 16);
    acl.writeUInt16LE(0x08, 20); // GROUP 44
    acl.writeUInt32LE(44, 24);
    const out = shiftAcl(acl, map);
    expect([out.readUInt32LE(8), out.readUInt32LE(16), out.readUInt32LE(24)]).toEqual([
      0xffffffff, 1000033, 2000044,
    ]);
  });
  it('owners: container ids, host-range ids, anything else', () => {
    expect(ownerState(0, 65535, map)).toBe('native');
    expect(ownerState(1000000, 2065535, map)).toBe('shifted');
    expect(ownerState(65536, 0, map)).toBe('outside');
    expect(ownerState(1000000, 0, map)).toBe('outside');
  });
});

describe('a batch', () => {
  it('is checked first: ids outside the map are named, and a shifted path only counts on a re-run', () => {
    const root = tree('scan');
    expect(scanPaths(root, PATHS, map, false)).toEqual({ outside: [], outsideCount: 0, onRange: 0 });
    lchownSync(join(root, 'suid'), 70000, 0);
    execFileSync('setfacl', ['-m', 'u:65536:r', join(root, 'd/cap')]);
    expect(scanPaths(root, PATHS, map, false)).toEqual({
      outside: ['/suid: owner 70000:0', '/d/cap: ACL entry user:65536 (posix_acl_access)'],
      outsideCount: 2,
      onRange: 0,
    });
    lchownSync(join(root, 'suid'), 1000000, 2000000);
    expect(scanPaths(root, ['suid'], map, false)).toMatchObject({ outsideCount: 1, onRange: 1 });
    expect(scanPaths(root, ['suid'], map, true).outsideCount).toBe(0);
  });

  it('shifts owners, keeps setuid/setgid, rewrites caps and ACLs; run again, it changes nothing', () => {
    const root = tree('twice');
    const journal = join(dir, 'twice.journal');
    expect(shiftBatch(root, PATHS, map, journal, 0)).toEqual({ shifted: 6, capabilities: 1, acls: 1 });
    expectShifted(root);
    expect(shiftBatch(root, PATHS, map, journal, 6)).toEqual({ shifted: 0, capabilities: 0, acls: 0 });
    expectShifted(root);
  });

  it("a killed batch's journal is replayed: chowned files get their mode, caps and ACLs back", () => {
    const root = tree('killed');
    const journal = join(dir, 'killed.journal');
    // What a batch journals before it changes anything, then a kill right after the chowns.
    const entry = (rel: string) => {
      const p = join(root, rel);
      const st = lstatSync(p);
      const x = (n: string) => getXattr(p, n)?.toString('base64');
      return {
        path: p,
        uid: st.uid,
        gid: st.gid,
        mode: st.mode,
        link: st.isSymbolicLink(),
        ...(st.isSymbolicLink()
          ? {}
          : {
              ...(x('security.capability') ? { caps: x('security.capability') } : {}),
              ...(x('system.posix_acl_access') ? { aclAccess: x('system.posix_acl_access') } : {}),
            }),
      };
    };
    const entries = PATHS.map(entry);
    writeFileSync(journal, JSON.stringify(entries));
    for (const e of entries) lchownSync(e.path, e.uid + map.uid, e.gid + map.gid);
    // the kernel cleared what a chown clears
    expect(lstatSync(join(root, 'suid')).mode & 0o7777).toBe(0o755);
    expect(getXattr(join(root, 'd/cap'), 'security.capability')).toBeNull();
    // a re-run: the journal first, then the batch again finds nothing left to do
    expect(replayJournal(journal, map)).toEqual({ shifted: 6, capabilities: 1, acls: 1 });
    expectShifted(root);
    expect(shiftBatch(root, PATHS, map, journal, 0)).toEqual({ shifted: 0, capabilities: 0, acls: 0 });
    expectShifted(root);
  });
});

describe('walkBatches', () => {
  it('yields every path once, the root first as "", in batches; never through a symlink', async () => {
    const root = tree('walk');
    symlinkSync(join(root, 'd'), join(root, 'd-link'));
    const batches: string[][] = [];
    for await (const b of walkBatches(root, 4)) batches.push(b);
    expect(batches.slice(0, -1).every((b) => b.length === 4)).toBe(true);
    const all = batches.flat();
    expect(all[0]).toBe('');
    expect([...all].sort()).toEqual([...PATHS, 'd-link'].sort());
  });
});

describe('thread helpers', () => {
  it('rootfsOf: the last lxc.rootfs.path, its storage type (dir when untyped)', () => {
    expect(rootfsOf('lxc.rootfs.path = dir:/var/lib/lxc/c/rootfs\n')).toEqual({
      backend: 'dir',
      path: '/var/lib/lxc/c/rootfs',
    });
    expect(rootfsOf('lxc.rootfs.path = /a\nlxc.rootfs.path = overlay:/b:/c\n')).toEqual({
      backend: 'overlay',
      path: '/b:/c',
    });
    expect(rootfsOf('lxc.uts.name = c\n')).toBeNull();
  });
  it('mountsUnder: mount points at or below a directory, octal escapes decoded', () => {
    const info =
      '22 1 8:1 / / rw - ext4 /dev/sda1 rw\n' +
      '30 22 0:5 / /var/lib/lxc/c/rootfs/mnt\\040x rw - tmpfs t rw\n' +
      '31 22 0:6 / /var/lib/lxc/c/rootfs2 rw - tmpfs t rw\n';
    expect(mountsUnder('/var/lib/lxc/c/rootfs', info)).toEqual(['/var/lib/lxc/c/rootfs/mnt x']);
  });
  it('convertKeys: userns.conf, both maps, the drops; common.conf only when missing; none once mapped', () => {
    const common = 'lxc.include = /usr/share/lxc/config/common.conf\n';
    const keys = [
      ['lxc.include', '/usr/share/lxc/config/userns.conf'],
      ['lxc.idmap', 'u 0 1000000 65536'],
      ['lxc.idmap', 'g 0 2000000 65536'],
      ['lxc.cap.drop', 'mac_admin mac_override sys_time sys_module sys_rawio'],
    ];
    expect(convertKeys(common, map)).toEqual(keys);
    expect(convertKeys('', map)).toEqual([['lxc.include', '/usr/share/lxc/config/common.conf'], ...keys]);
    expect(convertKeys(`${common}lxc.idmap = u 0 1000000 65536\n`, map)).toEqual([]);
  });
});
