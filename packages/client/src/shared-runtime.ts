/**
 * The runtime values the client takes from @lxcq/shared, imported from their own modules rather
 * than the package index: the index also loads the operation catalogue and with it typebox,
 * which the client never calls and which costs the CLI most of a second at every start (and a
 * browser bundle its weight). Same files, so `LxcqError` is the very class @lxcq/shared exports.
 * Types still come from '@lxcq/shared'.
 */
export { LxcqError, isErrorCode } from '../../shared/src/errors.ts';
export { isFinal, JOB_STATES } from '../../shared/src/job.ts';
export { CONTAINER_STATES } from '../../shared/src/states.ts';
export { compareCursors, isCursor, parseEventFilter } from '../../shared/src/event-filter.ts';
