// Public entry point of @lxcq/lxc-ffi.
import { LxcError } from './errors.ts';
import { Container } from './container.ts';
import type { ContainerOptions } from './container.ts';
import { defaultRaw } from './raw.ts';
import type { ListKind, RawLxc } from './raw.ts';

export {
  Container,
  decodeWaitStatus,
  START_LOG_FILE,
  START_OUTPUT_FILE,
  START_LOG_LEVEL,
} from './container.ts';
export type {
  BdevSpecs,
  ContainerOptions,
  ContainerState,
  ExecOptions,
  ExecResult,
  MigrateOptions,
  SnapshotInfo,
  StartOptions,
} from './container.ts';
export { LxcError, LXC_ERROR_CODES } from './errors.ts';
export type { LxcErrorCode, LxcErrorJSON } from './errors.ts';
export { LxcLoadError, MIN_LIBLXC_VERSION, loadLibraries } from './load.ts';
export type { LoadOptions } from './load.ts';
export { RawLxc, defaultRaw, MEMBER_NAMES, FEATURE_MEM_TRACK, FEATURE_LAZY_PAGES } from './raw.ts';
export type { MemberName } from './raw.ts';
export { CRIU_PROBE_PROGRAM, criuStatus, findMonitorPid, monitorMemory, toolEnv } from './host.ts';
export type { CriuStatus } from './host.ts';

/** Every module-level function takes an optional binding (default: this thread's). */
export interface BindingOption {
  raw?: RawLxc;
}

const r = (o?: BindingOption): RawLxc => o?.raw ?? defaultRaw();

/** lxc_get_version, e.g. '5.0.2'. */
export function lxcVersion(o?: BindingOption): string {
  return r(o).getVersion();
}
/** lxc_has_api_extension. */
export function hasApiExtension(name: string, o?: BindingOption): boolean {
  return r(o).hasApiExtension(name);
}
/** lxc_config_item_is_supported. */
export function configItemIsSupported(key: string, o?: BindingOption): boolean {
  return r(o).configItemIsSupported(key);
}
/** lxc_get_global_config_item (e.g. 'lxc.lxcpath'); null for unknown keys. */
export function globalConfigItem(key: string, o?: BindingOption): string | null {
  return r(o).getGlobalConfigItem(key);
}
/** lxc_get_wait_states. */
export function waitStates(o?: BindingOption): string[] {
  return r(o).getWaitStates();
}
/** list_{defined,active,all}_containers names (sorted as liblxc returns them). */
export function listContainers(lxcpath: string, which: ListKind = 'defined', o?: BindingOption): string[] {
  const res = r(o).listContainers(which, lxcpath, false);
  if (!res)
    throw new LxcError('LXC_LIST_FAILED', `cannot list ${which} containers in '${lxcpath}'`, {
      operation: `list_${which}_containers`,
    });
  return res.names;
}
/** list_*_containers with the struct lxc_container array: one open Container per name; the
 * caller disposes each. */
export function openContainers(
  lxcpath: string,
  which: ListKind = 'defined',
  o?: BindingOption & ContainerOptions,
): Container[] {
  const raw = r(o);
  const res = raw.listContainers(which, lxcpath, true);
  if (!res)
    throw new LxcError('LXC_LIST_FAILED', `cannot list ${which} containers in '${lxcpath}'`, {
      operation: `list_${which}_containers`,
    });
  return res.containers.map((p) => Container.fromPointer(p, { ...o, raw, lxcpath }));
}
/** lxc_log_init: liblxc's own log (file, level). */
export function logInit(
  log: { name?: string; lxcpath?: string; file?: string; level?: string; prefix?: string; quiet?: boolean },
  o?: BindingOption,
): void {
  const rc = r(o).logInit(log);
  if (rc !== 0)
    throw new LxcError('LXC_CALL_FAILED', `lxc_log_init returned ${rc}`, { operation: 'lxc_log_init' });
}
/** lxc_log_close. */
export function logClose(o?: BindingOption): void {
  r(o).logClose();
}
export { XattrError, getXattr, removeXattr, setXattr } from './xattr.ts';
