// Loads liblxc.so.1 (and libc, for `free`, `waitpid`, `kill`, `dlsym`) through koffi.
// Loading is lazy and cached per path in this module; a worker thread has its own module
// instance, so each thread loads the library once.
import koffi from 'koffi';
import type { LibraryHandle } from 'koffi';

/** Oldest liblxc this binding accepts: struct lxc_container is append-only since 1.0, and
 * every member up to `reboot2` exists in 3.0; 4.0 is the oldest LTS still supported. */
export const MIN_LIBLXC_VERSION = '4.0.0';

export const INSTALL_HINT =
  'install liblxc: `apt-get install lxc liblxc1` (Debian/Ubuntu) or run scripts/setup-host.sh; ' +
  'set LXCQ_LIBLXC to the path of liblxc.so.1 if it lives elsewhere';

export class LxcLoadError extends Error {
  readonly code = 'LXC_LOAD_FAILED';
  readonly path: string;
  constructor(message: string, path: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LxcLoadError';
    this.path = path;
  }
  toJSON(): { name: string; code: string; message: string; path: string } {
    return { name: this.name, code: this.code, message: this.message, path: this.path };
  }
}

export interface LoadOptions {
  /** Path or soname of liblxc; defaults to $LXCQ_LIBLXC, then `liblxc.so.1`. */
  path?: string;
}

export interface LoadedLibraries {
  readonly path: string;
  readonly lxc: LibraryHandle;
  readonly libc: LibraryHandle;
  readonly version: string;
}

const cache = new Map<string, LoadedLibraries>();

/** Parses "5.0.2" / "4.0.12~devel" into comparable numbers. */
export function parseVersion(v: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(v);
  if (!m) return [0, 0, 0];
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

export function versionAtLeast(v: string, min: string): boolean {
  const a = parseVersion(v);
  const b = parseVersion(min);
  for (let i = 0; i < 3; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

export function resolveLibraryPath(options: LoadOptions = {}): string {
  return options.path ?? process.env['LXCQ_LIBLXC'] ?? 'liblxc.so.1';
}

/** Loads (once per path and thread) liblxc and libc. Throws LxcLoadError when liblxc is
 * missing or older than {@link MIN_LIBLXC_VERSION}. */
export function loadLibraries(options: LoadOptions = {}): LoadedLibraries {
  const path = resolveLibraryPath(options);
  const hit = cache.get(path);
  if (hit) return hit;
  let lxc: LibraryHandle;
  try {
    lxc = koffi.load(path);
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new LxcLoadError(`cannot load liblxc from '${path}' (${detail}); ${INSTALL_HINT}`, path, { cause });
  }
  let version: string;
  try {
    const getVersion = lxc.func('const char *lxc_get_version(void)');
    const v: unknown = getVersion();
    version = typeof v === 'string' ? v : '';
  } catch (cause) {
    lxc.unload();
    throw new LxcLoadError(`'${path}' is not liblxc (no lxc_get_version); ${INSTALL_HINT}`, path, { cause });
  }
  if (!versionAtLeast(version, MIN_LIBLXC_VERSION)) {
    lxc.unload();
    throw new LxcLoadError(
      `liblxc ${version || '(unknown version)'} at '${path}' is older than ${MIN_LIBLXC_VERSION}; ${INSTALL_HINT}`,
      path,
    );
  }
  const libc = koffi.load('libc.so.6');
  const loaded: LoadedLibraries = { path, lxc, libc, version };
  cache.set(path, loaded);
  return loaded;
}
