// Extended attributes of a path itself (symlinks not followed), through libc's l*xattr calls:
// Node has no xattr API, and converting a container's rootfs to an id map has to read and rewrite
// POSIX ACLs (system.posix_acl_*) and file capabilities (security.capability), which carry ids.
import koffi from 'koffi';
import { constants } from 'node:os';

interface XattrFns {
  lgetxattr: (path: string, name: string, value: Buffer | null, size: number) => unknown;
  lsetxattr: (path: string, name: string, value: Buffer, size: number, flags: number) => unknown;
  lremovexattr: (path: string, name: string) => unknown;
}

let fns: XattrFns | null = null;

function libc(): XattrFns {
  if (fns) return fns;
  const lib = koffi.load('libc.so.6');
  fns = {
    lgetxattr: lib.func('lgetxattr', 'intptr_t', ['const char *', 'const char *', 'void *', 'size_t']),
    lsetxattr: lib.func('lsetxattr', 'int', [
      'const char *',
      'const char *',
      'const void *',
      'size_t',
      'int',
    ]),
    lremovexattr: lib.func('lremovexattr', 'int', ['const char *', 'const char *']),
  };
  return fns;
}

/** An xattr call's failure, with the errno name (ENOTSUP, EPERM, ...) Node's fs errors carry. */
export class XattrError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly path: string;
  constructor(call: string, path: string, name: string, errno: number) {
    const code =
      Object.entries(constants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${String(errno)}`;
    super(`${call}(${path}, ${name}) failed: ${code}`);
    this.name = 'XattrError';
    this.code = code;
    this.errno = errno;
    this.path = path;
  }
}

const ENODATA = 61;

/** The value of `name` on `path`, or null when the path has no such attribute. */
export function getXattr(path: string, name: string): Buffer | null {
  const f = libc();
  for (;;) {
    const size = Number(f.lgetxattr(path, name, null, 0));
    if (size < 0) {
      const e = koffi.errno();
      if (e === ENODATA) return null;
      throw new XattrError('lgetxattr', path, name, e);
    }
    const buf = Buffer.alloc(size);
    if (size === 0) return buf;
    const got = Number(f.lgetxattr(path, name, buf, size));
    if (got >= 0) return buf.subarray(0, got);
    const e = koffi.errno();
    // ERANGE: it grew between the two calls; ask again.
    if (e !== constants.errno.ERANGE) throw new XattrError('lgetxattr', path, name, e);
  }
}

/** Sets `name` on `path` to `value` (created or replaced). */
export function setXattr(path: string, name: string, value: Buffer): void {
  if (Number(libc().lsetxattr(path, name, value, value.length, 0)) !== 0)
    throw new XattrError('lsetxattr', path, name, koffi.errno());
}

/** Removes `name` from `path`; no such attribute is no error. */
export function removeXattr(path: string, name: string): void {
  if (Number(libc().lremovexattr(path, name)) === 0) return;
  const e = koffi.errno();
  if (e !== ENODATA) throw new XattrError('lremovexattr', path, name, e);
}
