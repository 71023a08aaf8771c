/**
 * The one table of lxcq error codes: every error a client can receive names one of these codes,
 * with the HTTP status it travels with and what it means. docs/errors.md is generated from it
 * and a test checks that each code is documented.
 */
export const ERROR_CODES = {
  LXCQ_BAD_REQUEST: {
    status: 400,
    meaning: 'The request is malformed (JSON syntax, wrong content type, bad query).',
  },
  LXCQ_VALIDATION: {
    status: 400,
    meaning: 'The body or query does not match the schema of the route; details name the field.',
  },
  LXCQ_INVALID_NAME: {
    status: 400,
    meaning:
      'A container, snapshot, host or checkpoint name is not allowed (letters, digits, "-", ".", "_"; no "/", no ".."; 1-64 characters).',
  },
  LXCQ_UNAUTHORIZED: {
    status: 401,
    meaning: 'No token, or an unknown token. Send "Authorization: Bearer <token>".',
  },
  LXCQ_FORBIDDEN: {
    status: 403,
    meaning: 'The token lacks the scope the route needs (read, operate or admin).',
  },
  LXCQ_TRANSFER_UNTRUSTED: {
    status: 403,
    meaning:
      'A migration or cross-host clone met a worker whose TLS certificate is not the one the host registry holds for that host (an impostor, or a host that lost its key); nothing was sent or taken, the container stays on its source.',
  },
  LXCQ_CONFIG_FORBIDDEN: {
    status: 403,
    meaning:
      'A config item, a cleared key or a template argument is refused by the config policy (an allow-list: docs/config-policy.md); details.refused names each key and why. Raw keys (hooks, includes, idmaps, capabilities...) need an admin token and a host that allows them (LXCQ_CONFIG_POLICY).',
  },
  LXCQ_PRIVILEGED_FORBIDDEN: {
    status: 403,
    meaning:
      'A privileged container (privileged: true, no user namespace: root inside is root on the host) needs the admin scope.',
  },
  LXCQ_NOT_FOUND: { status: 404, meaning: 'No such route.' },
  LXCQ_CONTAINER_NOT_FOUND: { status: 404, meaning: 'No container of that name is known on any host.' },
  LXCQ_SNAPSHOT_NOT_FOUND: { status: 404, meaning: 'The container has no snapshot of that name.' },
  LXCQ_CHECKPOINT_NOT_FOUND: { status: 404, meaning: 'The container has no checkpoint of that id.' },
  LXCQ_JOB_NOT_FOUND: { status: 404, meaning: 'No job of that id (it may have passed its retention).' },
  LXCQ_HOST_NOT_FOUND: { status: 404, meaning: 'No host of that id has registered.' },
  LXCQ_CONTAINER_EXISTS: {
    status: 409,
    meaning: 'A container of that name already exists (or is being created).',
  },
  LXCQ_SNAPSHOT_EXISTS: { status: 409, meaning: 'A snapshot of that name already exists on the container.' },
  LXCQ_IDEMPOTENCY_CONFLICT: {
    status: 409,
    meaning: 'The Idempotency-Key was used before for a different request.',
  },
  LXCQ_JOB_NOT_CANCELLABLE: {
    status: 409,
    meaning: 'The job has ended, or is running an operation that cannot be cancelled once started.',
  },
  LXCQ_REQUEST_TIMEOUT: {
    status: 408,
    meaning: 'The request did not arrive whole in time (the server closed the connection).',
  },
  LXCQ_BODY_TOO_LARGE: { status: 413, meaning: 'The request body is larger than the configured bound.' },
  LXCQ_HEADERS_TOO_LARGE: {
    status: 431,
    meaning: "The request's headers are larger than the server accepts (16 KiB in all).",
  },
  LXCQ_CONTAINER_BROKEN: {
    status: 422,
    meaning:
      "The container's config is unusable (liblxc cannot load it, or it names no rootfs, so the container would run on the host's root): lxcq will not start it. Restore the config from a backup or a snapshot, or destroy the container.",
  },
  LXCQ_INVALID_STATE: {
    status: 422,
    meaning:
      "The operation is impossible in the container's current state (e.g. freeze a stopped container).",
  },
  LXCQ_UNSUPPORTED: {
    status: 422,
    meaning:
      'The operation cannot be done on this container as it is built (e.g. renaming an overlayfs copy-on-write clone); nothing was changed, and the message says what to do instead.',
  },
  LXCQ_CRIU_UNAVAILABLE: {
    status: 422,
    meaning:
      "The container's host has no working CRIU, so checkpoint, restore and live migration are refused. Install CRIU 4 (scripts/setup-host.sh).",
  },
  LXCQ_NOT_MIGRATABLE: {
    status: 422,
    meaning:
      "The container's config stands in the way of a live move (or a checkpoint): host ttys, AppArmor keys on a kernel without AppArmor, a host device or a host bind mount. Refused before anything stops; details.blockers names each, and GET /v1/containers/:name shows them as liveMigration.",
  },
  LXCQ_TEMPLATE_FAILED: {
    status: 422,
    meaning:
      'The container template failed; the half-made container was removed. details.log has its output.',
  },
  LXCQ_IMAGE_NOT_FOUND: {
    status: 422,
    meaning: 'The local image tarball named by the create request does not exist on the host.',
  },
  LXCQ_NO_ID_RANGE: {
    status: 422,
    meaning:
      'The host has no subordinate id range for root in /etc/subuid and /etc/subgid, so it cannot make unprivileged containers. Run scripts/setup-host.sh.',
  },
  LXCQ_IDS_OUT_OF_RANGE: {
    status: 422,
    meaning:
      "A convert to unprivileged found ids the container's id map cannot hold (owners, POSIX ACL entries or file capabilities with ids of 65536 and up); nothing was changed. details.examples names some files; give them ids below 65536 first.",
  },
  LXCQ_POOL_NOT_FOUND: {
    status: 404,
    meaning:
      'The host has no storage pool of that name (GET /v1/hosts/:id/pools lists them; `default` is the dir pool).',
  },
  LXCQ_POOL_EXISTS: { status: 409, meaning: 'The host already has a storage pool of that name.' },
  LXCQ_POOL_IN_USE: {
    status: 409,
    meaning:
      'The pool still holds containers (details.containers names them): destroy or move them first. Nothing was changed.',
  },
  LXCQ_POOL_DRIVER_UNAVAILABLE: {
    status: 422,
    meaning:
      'The host cannot run that pool driver (zfs needs the zfs kernel module, lvm thin pools need device-mapper; btrfs needs btrfs-progs): refused before any work; the message names what the host lacks.',
  },
  LXCQ_POOL_SOURCE_INVALID: {
    status: 422,
    meaning:
      "A pool's size or path is refused: a loop pool's size must fit the worker's data directory, and an existing path must be a mounted btrfs filesystem that is not the host's root or another pool. Nothing was made.",
  },
  LXCQ_POOL_UNAVAILABLE: {
    status: 503,
    meaning:
      "The pool's filesystem is not mounted (a loop file that could not be mounted again, a path that is gone): the message says why; fix the host, then restart the worker.",
  },
  LXCQ_QUOTA_UNSUPPORTED: {
    status: 422,
    meaning:
      'A disk quota needs the container on a btrfs pool (qgroups); a container on the dir pool cannot have one. Create or clone it onto a btrfs pool.',
  },
  LXCQ_LXC_ERROR: {
    status: 500,
    meaning: "liblxc reported a failure; the message carries liblxc's own error string.",
  },
  LXCQ_INTERNAL: {
    status: 500,
    meaning: 'An unexpected error inside lxcq. The message and the server log say more.',
  },
  LXCQ_NOT_IMPLEMENTED: {
    status: 501,
    meaning: 'The operation is in the contract but this version of lxcq does not perform it yet.',
  },
  LXCQ_WORKER_LOST: {
    status: 500,
    meaning: 'The worker running the job died repeatedly; the job was given up after cleaning up.',
  },
  LXCQ_NO_HOST: {
    status: 503,
    meaning: 'No online, non-draining host can take the operation. Start a worker or undrain a host.',
  },
  LXCQ_HOST_OFFLINE: {
    status: 503,
    meaning:
      "The container's host stopped sending heartbeats; its queued jobs fail rather than wait forever.",
  },
  LXCQ_HOST_DRAINING: { status: 503, meaning: 'The requested host is draining and takes no new containers.' },
  LXCQ_SHUTTING_DOWN: {
    status: 503,
    meaning:
      'This API process is stopping; nothing was accepted. Retry (another API process, or this one once restarted, answers).',
  },
  LXCQ_REDIS_UNAVAILABLE: {
    status: 503,
    meaning: 'Redis cannot be reached; nothing was accepted. Retry later.',
  },
  LXCQ_TIMEOUT: {
    status: 504,
    meaning:
      'The operation did not finish within its time bound (e.g. shutdown timeout); the container was left as it was.',
  },
} as const satisfies Record<string, { status: number; meaning: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The wire shape of an error, in HTTP bodies (`{"error": ...}`), job records and events. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/** The project's error: what every boundary (HTTP handler, piscina task, koffi call) normalises to. */
export class LxcqError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  /** Failures that will fail again the same way if retried (bad input, wrong state). */
  readonly permanent: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { details?: Record<string, unknown>; cause?: unknown; permanent?: boolean } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LxcqError';
    this.code = code;
    this.details = opts.details;
    this.permanent = opts.permanent ?? ERROR_CODES[code].status < 500;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  toJSON(): ErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  static fromBody(body: ErrorBody): LxcqError {
    return new LxcqError(body.code, body.message, body.details ? { details: body.details } : {});
  }
}

/** Normalise anything thrown into an LxcqError, keeping the original as `cause`. */
export function toLxcqError(err: unknown, fallback: ErrorCode = 'LXCQ_INTERNAL'): LxcqError {
  if (err instanceof LxcqError) return err;
  if (err && typeof err === 'object' && 'code' in err && isErrorCode(err.code) && 'message' in err) {
    const details =
      'details' in err && err.details && typeof err.details === 'object'
        ? (err.details as Record<string, unknown>)
        : undefined;
    return new LxcqError(err.code, String(err.message), details ? { details, cause: err } : { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new LxcqError(fallback, message, { cause: err });
}
