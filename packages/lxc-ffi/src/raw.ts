// koffi binding of every function in liblxc's public lxccontainer.h (5.0 ABI).
//
// struct lxc_container is not called through exported symbols: liblxc fills in a table of
// function pointers per container, so each member is read at its offset and called with
// koffi.call() and an anonymous koffi.proto(). Every pointer is a BigInt (koffi 3); memory
// liblxc allocates is released with libc free() through `RawLxc.free` so that tests can count
// it. Memory we hand to liblxc comes from an `Arena` and is released with koffi.free().
import koffi from 'koffi';
import type { TypeObject } from 'koffi';
import { loadLibraries, versionAtLeast } from './load.ts';
import type { LoadedLibraries, LoadOptions } from './load.ts';

export type Ptr = bigint;
export const NULL: Ptr = 0n;

/** Normalises koffi's NULL (null or 0n) for pointer results. */
export function asPtr(v: unknown): Ptr {
  if (typeof v === 'bigint') return v;
  if (v === null || v === undefined) return NULL;
  if (typeof v === 'number') return BigInt(v);
  throw new TypeError(`expected a pointer, got ${typeof v}`);
}

// ---------------------------------------------------------------------------------------------
// Structs (x86-64 / aarch64 LP64 layout; verified against gcc in test/layout.test.ts)

/** The data members before the function-pointer table, in header order. */
export const LXC_CONTAINER_DATA_FIELDS = [
  ['name', 'void *'],
  ['configfile', 'void *'],
  ['pidfile', 'void *'],
  ['slock', 'void *'],
  ['privlock', 'void *'],
  ['numthreads', 'int'],
  ['lxc_conf', 'void *'],
  ['error_string', 'void *'],
  ['error_num', 'int'],
  ['daemonize', 'bool'],
  ['config_path', 'void *'],
] as const;

interface MemberDef {
  /** koffi result type and argument types after `struct lxc_container *c`. */
  readonly result: string;
  readonly args: readonly string[];
  /** Variadic members: fixed args only; extra args are passed as (type, value) pairs. */
  readonly variadic?: true;
  /** API extension that announces the member (checked with lxc_has_api_extension). */
  readonly extension?: string;
  /** First liblxc version with the member. */
  readonly since?: string;
}

/** Every function-pointer member of struct lxc_container, in header order (the order is the
 * layout). `void *` stands for every struct pointer; strings liblxc allocates are `void *` so
 * that they can be freed. */
export const MEMBERS = {
  is_defined: { result: 'bool', args: [] },
  state: { result: 'const char *', args: [] },
  is_running: { result: 'bool', args: [] },
  freeze: { result: 'bool', args: [] },
  unfreeze: { result: 'bool', args: [] },
  init_pid: { result: 'int', args: [] },
  load_config: { result: 'bool', args: ['const char *'] },
  start: { result: 'bool', args: ['int', 'void *'] },
  startl: { result: 'bool', args: ['int'], variadic: true },
  stop: { result: 'bool', args: [] },
  want_daemonize: { result: 'bool', args: ['bool'] },
  want_close_all_fds: { result: 'bool', args: ['bool'] },
  config_file_name: { result: 'void *', args: [] },
  wait: { result: 'bool', args: ['const char *', 'int'] },
  set_config_item: { result: 'bool', args: ['const char *', 'const char *'] },
  destroy: { result: 'bool', args: [] },
  save_config: { result: 'bool', args: ['const char *'] },
  create: { result: 'bool', args: ['const char *', 'const char *', 'void *', 'int', 'void *'] },
  createl: { result: 'bool', args: ['const char *', 'const char *', 'void *', 'int'], variadic: true },
  rename: { result: 'bool', args: ['const char *'] },
  reboot: { result: 'bool', args: [] },
  shutdown: { result: 'bool', args: ['int'] },
  clear_config: { result: 'void', args: [] },
  clear_config_item: { result: 'bool', args: ['const char *'] },
  get_config_item: { result: 'int', args: ['const char *', 'void *', 'int'] },
  get_running_config_item: { result: 'void *', args: ['const char *'] },
  get_keys: { result: 'int', args: ['const char *', 'void *', 'int'] },
  get_interfaces: { result: 'void *', args: [] },
  get_ips: { result: 'void *', args: ['const char *', 'const char *', 'int'] },
  get_cgroup_item: { result: 'int', args: ['const char *', 'void *', 'int'] },
  set_cgroup_item: { result: 'bool', args: ['const char *', 'const char *'] },
  get_config_path: { result: 'const char *', args: [] },
  set_config_path: { result: 'bool', args: ['const char *'] },
  clone: {
    result: 'void *',
    args: ['const char *', 'const char *', 'int', 'const char *', 'const char *', 'uint64_t', 'void *'],
  },
  console_getfd: { result: 'int', args: ['void *', 'void *'] },
  console: { result: 'int', args: ['int', 'int', 'int', 'int', 'int'] },
  attach: { result: 'int', args: ['void *', 'void *', 'void *', 'void *'] },
  attach_run_wait: { result: 'int', args: ['void *', 'const char *', 'void *'] },
  attach_run_waitl: { result: 'int', args: ['void *', 'const char *', 'const char *'], variadic: true },
  snapshot: { result: 'int', args: ['const char *'] },
  snapshot_list: { result: 'int', args: ['void *'] },
  snapshot_restore: { result: 'bool', args: ['const char *', 'const char *'] },
  snapshot_destroy: { result: 'bool', args: ['const char *'] },
  may_control: { result: 'bool', args: [] },
  add_device_node: { result: 'bool', args: ['const char *', 'const char *'] },
  remove_device_node: { result: 'bool', args: ['const char *', 'const char *'] },
  attach_interface: { result: 'bool', args: ['const char *', 'const char *'] },
  detach_interface: { result: 'bool', args: ['const char *', 'const char *'] },
  checkpoint: { result: 'bool', args: ['const char *', 'bool', 'bool'] },
  restore: { result: 'bool', args: ['const char *', 'bool'] },
  destroy_with_snapshots: { result: 'bool', args: [] },
  snapshot_destroy_all: { result: 'bool', args: [] },
  migrate: { result: 'int', args: ['unsigned int', 'void *', 'unsigned int'] },
  console_log: { result: 'int', args: ['void *'], extension: 'console_log' },
  reboot2: { result: 'bool', args: ['int'], extension: 'reboot2' },
  mount: {
    result: 'int',
    args: ['const char *', 'const char *', 'const char *', 'unsigned long', 'void *', 'void *'],
    extension: 'mount_injection_file',
  },
  umount: {
    result: 'int',
    args: ['const char *', 'unsigned long', 'void *'],
    extension: 'mount_injection_file',
  },
  seccomp_notify_fd: { result: 'int', args: [], extension: 'seccomp_notify' },
  seccomp_notify_fd_active: { result: 'int', args: [], extension: 'seccomp_notify_fd_active' },
  init_pidfd: { result: 'int', args: [], extension: 'pidfd' },
  devpts_fd: { result: 'int', args: [], extension: 'devpts_fd' },
} as const satisfies Record<string, MemberDef>;

export type MemberName = keyof typeof MEMBERS;
export const MEMBER_NAMES = Object.keys(MEMBERS) as MemberName[];

type S = string | null;
/** TypeScript view of each member (after the implicit container argument). */
export interface MemberSignatures {
  is_defined(): boolean;
  state(): S;
  is_running(): boolean;
  freeze(): boolean;
  unfreeze(): boolean;
  init_pid(): number;
  load_config(altFile: S): boolean;
  start(useinit: number, argv: Ptr): boolean;
  startl(useinit: number, ...vararg: unknown[]): boolean;
  stop(): boolean;
  want_daemonize(state: boolean): boolean;
  want_close_all_fds(state: boolean): boolean;
  config_file_name(): Ptr;
  wait(state: string, timeout: number): boolean;
  set_config_item(key: string, value: string): boolean;
  destroy(): boolean;
  save_config(altFile: S): boolean;
  create(t: S, bdevtype: S, specs: Ptr, flags: number, argv: Ptr): boolean;
  createl(t: S, bdevtype: S, specs: Ptr, flags: number, ...vararg: unknown[]): boolean;
  rename(newname: string): boolean;
  reboot(): boolean;
  shutdown(timeout: number): boolean;
  clear_config(): void;
  clear_config_item(key: string): boolean;
  get_config_item(key: string, retv: Ptr | Buffer, inlen: number): number;
  get_running_config_item(key: string): Ptr;
  get_keys(prefix: S, retv: Ptr | Buffer, inlen: number): number;
  get_interfaces(): Ptr;
  get_ips(iface: S, family: S, scope: number): Ptr;
  get_cgroup_item(subsys: string, retv: Ptr | Buffer, inlen: number): number;
  set_cgroup_item(subsys: string, value: string): boolean;
  get_config_path(): S;
  set_config_path(path: string): boolean;
  clone(newname: S, lxcpath: S, flags: number, bdevtype: S, bdevdata: S, newsize: bigint, hookargs: Ptr): Ptr;
  console_getfd(ttynum: Ptr, ptxfd: Ptr): number;
  console(ttynum: number, stdinfd: number, stdoutfd: number, stderrfd: number, escape: number): number;
  attach(execFunction: Ptr, payload: Ptr, options: Ptr, pidOut: Ptr): number;
  attach_run_wait(options: Ptr, program: string, argv: Ptr): number;
  attach_run_waitl(options: Ptr, program: string, arg: S, ...vararg: unknown[]): number;
  snapshot(commentFile: S): number;
  snapshot_list(out: Ptr): number;
  snapshot_restore(snapname: string, newname: S): boolean;
  snapshot_destroy(snapname: string): boolean;
  may_control(): boolean;
  add_device_node(src: S, dst: S): boolean;
  remove_device_node(src: S, dst: S): boolean;
  attach_interface(dev: string, dstDev: S): boolean;
  detach_interface(dev: string, dstDev: S): boolean;
  checkpoint(directory: string, stop: boolean, verbose: boolean): boolean;
  restore(directory: string, verbose: boolean): boolean;
  destroy_with_snapshots(): boolean;
  snapshot_destroy_all(): boolean;
  migrate(cmd: number, opts: Ptr, size: number): number;
  console_log(log: Ptr): number;
  reboot2(timeout: number): boolean;
  mount(source: S, target: string, fstype: S, flags: bigint | number, data: Ptr, mnt: Ptr): number;
  umount(target: string, flags: bigint | number, mnt: Ptr): number;
  seccomp_notify_fd(): number;
  seccomp_notify_fd_active(): number;
  init_pidfd(): number;
  devpts_fd(): number;
}

function buildContainerStruct(): TypeObject {
  const def: Record<string, string> = {};
  for (const [name, type] of LXC_CONTAINER_DATA_FIELDS) def[name] = type;
  for (const name of MEMBER_NAMES) def[name] = 'void *';
  return koffi.struct(def);
}

/** struct lxc_container: data members, then one `void *` per function-pointer member. */
export const LxcContainerStruct = buildContainerStruct();

export const LxcSnapshotStruct = koffi.struct({
  name: 'void *',
  comment_pathname: 'void *',
  timestamp: 'void *',
  lxcpath: 'void *',
  free: 'void *',
});

export const BdevSpecsStruct = koffi.struct({
  fstype: 'void *',
  fssize: 'uint64_t',
  zfs: koffi.struct({ zfsroot: 'void *' }),
  lvm: koffi.struct({ vg: 'void *', lv: 'void *', thinpool: 'void *' }),
  dir: 'void *',
  rbd: koffi.struct({ rbdname: 'void *', rbdpool: 'void *' }),
});

export const MigrateOptsStruct = koffi.struct({
  directory: 'void *',
  verbose: 'bool',
  stop: 'bool',
  predump_dir: 'void *',
  pageserver_address: 'void *',
  pageserver_port: 'void *',
  preserves_inodes: 'bool',
  action_script: 'void *',
  disable_skip_in_flight: 'bool',
  ghost_limit: 'uint64_t',
  features_to_check: 'uint64_t',
});

export const LxcConsoleLogStruct = koffi.struct({
  clear: 'bool',
  read: 'bool',
  read_max: 'void *',
  data: 'void *',
});

export const LxcMountStruct = koffi.struct({ version: 'int' });

export const LxcGroupsStruct = koffi.struct({ size: 'size_t', list: 'void *' });

export const LxcAttachOptionsStruct = koffi.struct({
  attach_flags: 'int',
  namespaces: 'int',
  personality: 'long',
  initial_cwd: 'void *',
  uid: 'uint32_t',
  gid: 'uint32_t',
  env_policy: 'int',
  extra_env_vars: 'void *',
  extra_keep_env: 'void *',
  stdin_fd: 'int',
  stdout_fd: 'int',
  stderr_fd: 'int',
  log_fd: 'int',
  lsm_label: 'void *',
  groups: LxcGroupsStruct,
});

export const LxcAttachCommandStruct = koffi.struct({ program: 'void *', argv: 'void *' });

export const LxcLogStruct = koffi.struct({
  name: 'void *',
  lxcpath: 'void *',
  file: 'void *',
  level: 'void *',
  prefix: 'void *',
  quiet: 'bool',
});

/** Named structs of the header, for the layout test. */
export const STRUCTS: Record<string, TypeObject> = {
  lxc_container: LxcContainerStruct,
  lxc_snapshot: LxcSnapshotStruct,
  bdev_specs: BdevSpecsStruct,
  migrate_opts: MigrateOptsStruct,
  lxc_console_log: LxcConsoleLogStruct,
  lxc_mount: LxcMountStruct,
  lxc_attach_options_t: LxcAttachOptionsStruct,
  lxc_attach_command_t: LxcAttachCommandStruct,
  lxc_groups_t: LxcGroupsStruct,
  lxc_log: LxcLogStruct,
};

// Constants from the headers.
export const LXC_CLONE_KEEPNAME = 1 << 0;
export const LXC_CLONE_KEEPMACADDR = 1 << 1;
export const LXC_CLONE_SNAPSHOT = 1 << 2;
export const LXC_CLONE_KEEPBDEVTYPE = 1 << 3;
export const LXC_CLONE_MAYBE_SNAPSHOT = 1 << 4;
export const LXC_CLONE_ALLOW_RUNNING = 1 << 6;
export const LXC_CREATE_QUIET = 1 << 0;
export const LXC_MOUNT_API_V1 = 1;
export const LXC_ATTACH_DEFAULT = 0x0000ffff;
export const LXC_ATTACH_KEEP_ENV = 0;
export const LXC_ATTACH_CLEAR_ENV = 1;
export const MIGRATE_PRE_DUMP = 0;
export const MIGRATE_DUMP = 1;
export const MIGRATE_RESTORE = 2;
export const MIGRATE_FEATURE_CHECK = 3;
/** features_to_check bits of struct migrate_opts (lxccontainer.h FEATURE_*). */
export const FEATURE_MEM_TRACK = 1n << 0n;
export const FEATURE_LAZY_PAGES = 1n << 1n;

// ---------------------------------------------------------------------------------------------
// Native memory we own

/** Native allocations handed to liblxc for the duration of one call; `dispose` frees them. */
export class Arena implements Disposable {
  private readonly ptrs: Ptr[] = [];

  alloc(type: string | TypeObject, count = 1): Ptr {
    const p = asPtr(koffi.alloc(type, count));
    this.ptrs.push(p);
    return p;
  }

  /** NUL-terminated copy of `s` (NULL for null/undefined). */
  str(s: string | null | undefined): Ptr {
    if (s === null || s === undefined) return NULL;
    const bytes = Buffer.from(`${s}\0`, 'utf8');
    const p = this.alloc('uint8_t', bytes.length);
    koffi.encode(p, koffi.array('uint8_t', bytes.length, 'Typed'), new Uint8Array(bytes));
    return p;
  }

  /** NULL-terminated array of C strings (NULL for null/undefined). */
  strArray(items: readonly string[] | null | undefined): Ptr {
    if (items === null || items === undefined) return NULL;
    const p = this.alloc('void *', items.length + 1);
    items.forEach((s, i) => koffi.encode(p, i * 8, 'void *', this.str(s)));
    koffi.encode(p, items.length * 8, 'void *', NULL);
    return p;
  }

  struct(type: TypeObject, value: Record<string, unknown>): Ptr {
    const p = this.alloc(type);
    koffi.encode(p, type, value);
    return p;
  }

  [Symbol.dispose](): void {
    for (const p of this.ptrs.splice(0)) koffi.free(p);
  }
}

// ---------------------------------------------------------------------------------------------
// The binding

export type ListKind = 'defined' | 'active' | 'all';

export interface RawOptions extends LoadOptions {
  /** Replaces libc free() for memory liblxc allocated (tests count calls through it). */
  free?: (p: Ptr) => void;
  /** Use already loaded libraries instead of loading. */
  libraries?: LoadedLibraries;
}

export interface SupportReport {
  supported: boolean;
  reason?: string;
}

/** Low-level liblxc: free functions and calls through struct lxc_container members. */
export class RawLxc {
  readonly libraries: LoadedLibraries;
  readonly version: string;
  readonly free: (p: Ptr) => void;
  private readonly protos = new Map<MemberName, TypeObject>();
  private readonly support = new Map<MemberName, SupportReport>();
  private readonly fn: {
    containerNew: (name: string, path: S) => unknown;
    containerGet: (c: Ptr) => unknown;
    containerPut: (c: Ptr) => unknown;
    getWaitStates: (states: Ptr) => unknown;
    getGlobalConfigItem: (key: string) => unknown;
    getVersion: () => unknown;
    list: Record<ListKind, (lxcpath: S, names: Ptr, cret: Ptr) => unknown>;
    logInit: (log: Ptr) => unknown;
    logClose: () => unknown;
    configItemIsSupported: (key: string) => unknown;
    hasApiExtension: (ext: string) => unknown;
    libcFree: (p: Ptr) => unknown;
    waitpid: (pid: number, status: Ptr, options: number) => unknown;
    kill: (pid: number, sig: number) => unknown;
    close: (fd: number) => unknown;
    dlopen: (path: S, flags: number) => unknown;
    dlsym: (handle: Ptr, name: string) => unknown;
  };

  constructor(options: RawOptions = {}) {
    const libs = options.libraries ?? loadLibraries(options);
    this.libraries = libs;
    this.version = libs.version;
    const { lxc, libc } = libs;
    this.fn = {
      containerNew: lxc.func('lxc_container_new', 'void *', ['const char *', 'const char *']),
      containerGet: lxc.func('lxc_container_get', 'int', ['void *']),
      containerPut: lxc.func('lxc_container_put', 'int', ['void *']),
      getWaitStates: lxc.func('lxc_get_wait_states', 'int', ['void *']),
      getGlobalConfigItem: lxc.func('lxc_get_global_config_item', 'const char *', ['const char *']),
      getVersion: lxc.func('lxc_get_version', 'const char *', []),
      list: {
        defined: lxc.func('list_defined_containers', 'int', ['const char *', 'void *', 'void *']),
        active: lxc.func('list_active_containers', 'int', ['const char *', 'void *', 'void *']),
        all: lxc.func('list_all_containers', 'int', ['const char *', 'void *', 'void *']),
      },
      logInit: lxc.func('lxc_log_init', 'int', ['void *']),
      logClose: lxc.func('lxc_log_close', 'void', []),
      configItemIsSupported: lxc.func('lxc_config_item_is_supported', 'bool', ['const char *']),
      hasApiExtension: lxc.func('lxc_has_api_extension', 'bool', ['const char *']),
      libcFree: libc.func('free', 'void', ['void *']),
      waitpid: libc.func('waitpid', 'int', ['int', 'void *', 'int']),
      kill: libc.func('kill', 'int', ['int', 'int']),
      close: libc.func('close', 'int', ['int']),
      dlopen: libc.func('dlopen', 'void *', ['const char *', 'int']),
      dlsym: libc.func('dlsym', 'void *', ['void *', 'const char *']),
    };
    const libcFree = this.fn.libcFree;
    this.free = options.free ?? ((p: Ptr) => void libcFree(p));
  }

  // -- free functions ----------------------------------------------------------------------

  containerNew(name: string, configPath: S): Ptr {
    return asPtr(this.fn.containerNew(name, configPath));
  }
  containerGet(c: Ptr): number {
    return Number(this.fn.containerGet(c));
  }
  containerPut(c: Ptr): number {
    return Number(this.fn.containerPut(c));
  }
  getVersion(): string {
    const v: unknown = this.fn.getVersion();
    return typeof v === 'string' ? v : '';
  }
  getGlobalConfigItem(key: string): string | null {
    const v: unknown = this.fn.getGlobalConfigItem(key);
    return typeof v === 'string' ? v : null;
  }
  configItemIsSupported(key: string): boolean {
    return this.fn.configItemIsSupported(key) === true;
  }
  hasApiExtension(ext: string): boolean {
    return this.fn.hasApiExtension(ext) === true;
  }
  /** lxc_get_wait_states: first call with NULL for the count, then with an array of
   * `const char *` that point at liblxc's static strings (nothing to free). */
  getWaitStates(): string[] {
    const n = Number(this.fn.getWaitStates(NULL));
    using arena = new Arena();
    const arr = arena.alloc('void *', Math.max(n, 1));
    this.fn.getWaitStates(arr);
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(koffi.decode.string(koffi.decode(arr, i * 8, 'void *')));
    return out;
  }
  logInit(log: {
    name?: string;
    lxcpath?: string;
    file?: string;
    level?: string;
    prefix?: string;
    quiet?: boolean;
  }): number {
    using arena = new Arena();
    const p = arena.struct(LxcLogStruct, {
      name: arena.str(log.name),
      lxcpath: arena.str(log.lxcpath),
      file: arena.str(log.file),
      level: arena.str(log.level),
      prefix: arena.str(log.prefix),
      quiet: log.quiet ?? false,
    });
    return Number(this.fn.logInit(p));
  }
  logClose(): void {
    this.fn.logClose();
  }

  /** list_{defined,active,all}_containers. Names are copied and freed; with `withContainers`
   * the returned struct lxc_container pointers each hold one reference the caller must put. */
  listContainers(
    kind: ListKind,
    lxcpath: S,
    withContainers = false,
  ): { names: string[]; containers: Ptr[] } | null {
    using arena = new Arena();
    const namesSlot = arena.alloc('void *');
    koffi.encode(namesSlot, 'void *', NULL);
    const cretSlot = withContainers ? arena.alloc('void *') : NULL;
    if (cretSlot !== NULL) koffi.encode(cretSlot, 'void *', NULL);
    const n = Number(this.fn.list[kind](lxcpath, namesSlot, cretSlot));
    const namesArr = asPtr(koffi.decode(namesSlot, 'void *'));
    const cretArr = cretSlot === NULL ? NULL : asPtr(koffi.decode(cretSlot, 'void *'));
    if (n < 0) return null;
    const names: string[] = [];
    const containers: Ptr[] = [];
    for (let i = 0; i < n; i++) {
      if (namesArr !== NULL) {
        const s = asPtr(koffi.decode(namesArr, i * 8, 'void *'));
        names.push(this.takeString(s) ?? '');
      }
      if (cretArr !== NULL) containers.push(asPtr(koffi.decode(cretArr, i * 8, 'void *')));
    }
    if (namesArr !== NULL) this.free(namesArr);
    if (cretArr !== NULL) this.free(cretArr);
    return { names, containers };
  }

  // -- struct lxc_container ----------------------------------------------------------------

  private proto(name: MemberName): TypeObject {
    let p = this.protos.get(name);
    if (!p) {
      const def: MemberDef = MEMBERS[name];
      const args = ['void *', ...def.args];
      if (def.variadic) args.push('...');
      p = koffi.proto(null, def.result, args);
      this.protos.set(name, p);
    }
    return p;
  }

  /** Whether the loaded liblxc has `name` (members newer than it must never be read). */
  supports(name: MemberName): SupportReport {
    let r = this.support.get(name);
    if (!r) {
      const def: MemberDef = MEMBERS[name];
      if (def.since && !versionAtLeast(this.version, def.since)) {
        r = { supported: false, reason: `needs liblxc >= ${def.since}, loaded ${this.version}` };
      } else if (def.extension && !this.hasApiExtension(def.extension)) {
        r = { supported: false, reason: `liblxc ${this.version} lacks API extension '${def.extension}'` };
      } else {
        r = { supported: true };
      }
      this.support.set(name, r);
    }
    return r;
  }

  /** Address of member `name` in the container's function table. */
  memberPointer(c: Ptr, name: MemberName): Ptr {
    return asPtr(koffi.decode(c, koffi.offsetof(LxcContainerStruct, name), 'void *'));
  }

  /** Calls c->name(c, ...args). Callers must check `supports(name)` first (Container does). */
  call<K extends MemberName>(
    c: Ptr,
    name: K,
    ...args: Parameters<MemberSignatures[K]>
  ): ReturnType<MemberSignatures[K]> {
    if (c === NULL) throw new TypeError(`lxc_container ${name}: NULL container`);
    const fp = this.memberPointer(c, name);
    if (fp === NULL) throw new TypeError(`lxc_container ${name}: NULL function pointer`);
    const r: unknown = koffi.call(fp, this.proto(name), c, ...args);
    const def: MemberDef = MEMBERS[name];
    if (def.result === 'void *') return asPtr(r) as ReturnType<MemberSignatures[K]>;
    return r as ReturnType<MemberSignatures[K]>;
  }

  readField(c: Ptr, field: 'error_num' | 'numthreads'): number;
  readField(c: Ptr, field: 'daemonize'): boolean;
  readField(c: Ptr, field: 'name' | 'error_string' | 'config_path' | 'configfile' | 'pidfile'): string | null;
  readField(c: Ptr, field: string): unknown {
    const off = koffi.offsetof(LxcContainerStruct, field);
    if (field === 'error_num' || field === 'numthreads') return Number(koffi.decode(c, off, 'int'));
    if (field === 'daemonize') return koffi.decode(c, off, 'bool') === true;
    const p = asPtr(koffi.decode(c, off, 'void *'));
    return p === NULL ? null : koffi.decode.string(p);
  }

  // -- memory liblxc allocated --------------------------------------------------------------

  /** Copies a malloc'd C string and frees it. */
  takeString(p: Ptr): string | null {
    if (p === NULL) return null;
    const s = koffi.decode.string(p);
    this.free(p);
    return s;
  }

  /** Copies a malloc'd NULL-terminated array of malloc'd strings and frees all of it. */
  takeStringArray(p: Ptr): string[] | null {
    if (p === NULL) return null;
    const out: string[] = [];
    for (let i = 0; ; i++) {
      const s = asPtr(koffi.decode(p, i * 8, 'void *'));
      if (s === NULL) break;
      out.push(this.takeString(s) ?? '');
    }
    this.free(p);
    return out;
  }

  // -- libc helpers for attach ----------------------------------------------------------------

  /** Address of an exported liblxc function (dlopen with RTLD_NOLOAD + dlsym). */
  symbolAddress(name: string): Ptr {
    const RTLD_NOW = 2;
    const RTLD_NOLOAD = 4;
    const h = asPtr(this.fn.dlopen(this.libraries.path, RTLD_NOW | RTLD_NOLOAD));
    if (h === NULL) throw new Error(`dlopen(${this.libraries.path}) failed`);
    const p = asPtr(this.fn.dlsym(h, name));
    if (p === NULL) throw new Error(`dlsym(${name}) failed`);
    return p;
  }
  /** waitpid(pid, &status, options) → [ret, status, errno]. */
  waitpid(pid: number, options: number): [number, number, number] {
    using arena = new Arena();
    const slot = arena.alloc('int');
    koffi.encode(slot, 'int', 0);
    const r = Number(this.fn.waitpid(pid, slot, options));
    const err = r < 0 ? koffi.errno() : 0;
    return [r, Number(koffi.decode(slot, 'int')), err];
  }
  kill(pid: number, sig: number): number {
    return Number(this.fn.kill(pid, sig));
  }
  closeFd(fd: number): number {
    return Number(this.fn.close(fd));
  }
  errno(): number {
    return koffi.errno();
  }
}

const rawCache = new Map<string, RawLxc>();

/** The default binding for this thread (lazy, once per library path). */
export function defaultRaw(options: LoadOptions = {}): RawLxc {
  const libs = loadLibraries(options);
  let r = rawCache.get(libs.path);
  if (!r) {
    r = new RawLxc({ libraries: libs });
    rawCache.set(libs.path, r);
  }
  return r;
}
