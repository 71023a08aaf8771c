// One table of error codes; LxcError carries liblxc's own error_string/error_num and errno.

/** Every code an LxcError can carry. `retryable: false` marks failures a job queue must not
 * retry (same input, same result). */
export const LXC_ERROR_CODES = {
  LXC_LOAD_FAILED: { retryable: false, meaning: 'liblxc.so.1 is missing or older than 4.0' },
  LXC_UNSUPPORTED: {
    retryable: false,
    meaning:
      'the loaded liblxc lacks this member/API extension, or the kernel lacks a feature the call needs',
  },
  LXC_DISPOSED: { retryable: false, meaning: 'the Container was used after [Symbol.dispose]()' },
  LXC_INVALID_ARGUMENT: { retryable: false, meaning: 'an argument was rejected before calling liblxc' },
  LXC_NEW_FAILED: { retryable: false, meaning: 'lxc_container_new returned NULL' },
  LXC_NOT_DEFINED: { retryable: false, meaning: 'the container does not exist (no config)' },
  LXC_ALREADY_DEFINED: { retryable: false, meaning: 'a container with this name already exists' },
  LXC_NOT_RUNNING: { retryable: false, meaning: 'the operation needs a running container' },
  LXC_ALREADY_RUNNING: { retryable: false, meaning: 'the operation needs a stopped container' },
  LXC_CREATE_FAILED: { retryable: true, meaning: 'c->create (template) failed' },
  LXC_START_FAILED: { retryable: true, meaning: 'the container did not reach RUNNING' },
  LXC_STOP_FAILED: { retryable: true, meaning: 'c->stop failed' },
  LXC_SHUTDOWN_FAILED: { retryable: true, meaning: 'c->shutdown could not signal the container' },
  LXC_REBOOT_FAILED: { retryable: true, meaning: 'c->reboot/reboot2 failed' },
  LXC_FREEZE_FAILED: { retryable: true, meaning: 'c->freeze failed' },
  LXC_UNFREEZE_FAILED: { retryable: true, meaning: 'c->unfreeze failed' },
  LXC_DESTROY_FAILED: { retryable: true, meaning: 'c->destroy / destroy_with_snapshots failed' },
  LXC_RENAME_FAILED: { retryable: false, meaning: 'c->rename failed' },
  LXC_CLONE_FAILED: { retryable: true, meaning: 'c->clone returned NULL' },
  LXC_SNAPSHOT_FAILED: { retryable: true, meaning: 'a snapshot member failed' },
  LXC_CONFIG_FAILED: { retryable: false, meaning: 'a config member failed (unknown key, bad value, I/O)' },
  LXC_CONFIG_BROKEN: {
    retryable: false,
    meaning:
      "the container's config is unusable (no lxc.rootfs.path): starting it would run on the host's root",
  },
  LXC_CGROUP_FAILED: { retryable: false, meaning: 'get/set_cgroup_item failed' },
  LXC_NETWORK_FAILED: {
    retryable: true,
    meaning: 'get_interfaces/get_ips/attach_interface/detach_interface failed',
  },
  LXC_EXEC_FAILED: { retryable: true, meaning: 'c->attach could not start the command' },
  LXC_DEVICE_FAILED: { retryable: false, meaning: 'add/remove_device_node failed' },
  LXC_CONSOLE_FAILED: { retryable: true, meaning: 'console/console_getfd/console_log failed' },
  LXC_MOUNT_FAILED: { retryable: false, meaning: 'c->mount / c->umount failed' },
  LXC_CRIU_UNAVAILABLE: { retryable: false, meaning: 'criu is missing or `criu check` fails on this host' },
  LXC_CHECKPOINT_FAILED: { retryable: true, meaning: 'checkpoint (CRIU dump) failed' },
  LXC_RESTORE_FAILED: { retryable: true, meaning: 'restore (CRIU restore) failed' },
  LXC_MIGRATE_FAILED: { retryable: true, meaning: 'c->migrate failed' },
  LXC_LIST_FAILED: { retryable: true, meaning: 'list_*_containers failed' },
  LXC_CALL_FAILED: { retryable: true, meaning: 'a member returned failure (see operation)' },
} as const;

export type LxcErrorCode = keyof typeof LXC_ERROR_CODES;

export interface LxcErrorJSON {
  name: 'LxcError';
  code: LxcErrorCode;
  message: string;
  operation: string;
  container?: string;
  errorNum?: number;
  errorString?: string;
  errno?: number;
  retryable: boolean;
  stack?: string;
}

export interface LxcErrorDetails {
  operation: string;
  container?: string | undefined;
  errorNum?: number | undefined;
  errorString?: string | null | undefined;
  errno?: number | undefined;
  cause?: unknown;
}

export class LxcError extends Error {
  readonly code: LxcErrorCode;
  readonly operation: string;
  readonly container?: string;
  readonly errorNum?: number;
  readonly errorString?: string;
  readonly errno?: number;

  constructor(code: LxcErrorCode, message: string, details: LxcErrorDetails) {
    const extras: string[] = [];
    if (details.errorString) extras.push(`liblxc: ${details.errorString}`);
    if (details.errorNum !== undefined && details.errorNum !== 0)
      extras.push(`error_num ${details.errorNum}`);
    if (details.errno !== undefined && details.errno !== 0) extras.push(`errno ${details.errno}`);
    const where = details.container ? `${details.operation}(${details.container})` : details.operation;
    super(`${where}: ${message}${extras.length ? ` (${extras.join(', ')})` : ''}`, { cause: details.cause });
    this.name = 'LxcError';
    this.code = code;
    this.operation = details.operation;
    if (details.container !== undefined) this.container = details.container;
    if (details.errorNum !== undefined) this.errorNum = details.errorNum;
    if (details.errorString) this.errorString = details.errorString;
    if (details.errno !== undefined) this.errno = details.errno;
  }

  /** Whether retrying the same call can succeed (see LXC_ERROR_CODES). */
  get retryable(): boolean {
    return LXC_ERROR_CODES[this.code].retryable;
  }

  /** Plain data, safe for postMessage / structured clone / JSON. */
  toJSON(): LxcErrorJSON {
    const j: LxcErrorJSON = {
      name: 'LxcError',
      code: this.code,
      message: this.message,
      operation: this.operation,
      retryable: this.retryable,
    };
    if (this.container !== undefined) j.container = this.container;
    if (this.errorNum !== undefined) j.errorNum = this.errorNum;
    if (this.errorString !== undefined) j.errorString = this.errorString;
    if (this.errno !== undefined) j.errno = this.errno;
    if (this.stack !== undefined) j.stack = this.stack;
    return j;
  }

  /** Rebuilds an LxcError on the other side of a worker_threads boundary. */
  static fromJSON(j: LxcErrorJSON): LxcError {
    const e = new LxcError(j.code, '', {
      operation: j.operation,
      container: j.container,
      errorNum: j.errorNum,
      errorString: j.errorString,
      errno: j.errno,
    });
    e.message = j.message;
    if (j.stack !== undefined) e.stack = j.stack;
    return e;
  }

  static isJSON(v: unknown): v is LxcErrorJSON {
    if (typeof v !== 'object' || v === null) return false;
    const o = v as Record<string, unknown>;
    return o['name'] === 'LxcError' && typeof o['code'] === 'string' && o['code'] in LXC_ERROR_CODES;
  }
}
