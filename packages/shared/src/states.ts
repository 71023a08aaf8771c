/** A container's state, as liblxc names it. */
export type ContainerState =
  'STOPPED' | 'STARTING' | 'RUNNING' | 'STOPPING' | 'ABORTING' | 'FREEZING' | 'FROZEN' | 'THAWED';

/** liblxc's states in the order of its lxc_state_t values (the monitor protocol sends the number). */
export const CONTAINER_STATES: readonly ContainerState[] = [
  'STOPPED',
  'STARTING',
  'RUNNING',
  'STOPPING',
  'ABORTING',
  'FREEZING',
  'FROZEN',
  'THAWED',
];
