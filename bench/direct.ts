/**
 * The baseline: the same liblxc steps lxcq's worker runs, called directly through @lxcq/lxc-ffi in
 * this thread, with no HTTP, Redis, queue or thread hop in between.
 */
import { performance } from 'node:perf_hooks';
import { Container } from '@lxcq/lxc-ffi';

/** Milliseconds each step of one lifecycle took, and the whole. */
export interface LifecycleTimes {
  create: number;
  start: number;
  stop: number;
  destroy: number;
  total: number;
}

/**
 * How a lifecycle makes its container: the busybox template (a shell script), a local image
 * (lxc-local unpacking rootfs and metadata xz tarballs: "create from a cached image"), or an
 * overlayfs copy-on-write clone of a stopped base container.
 */
export type Make =
  { kind: 'busybox' } | { kind: 'local'; rootfs: string; metadata: string } | { kind: 'clone'; base: string };

/** Makes `name` as the worker's create or clone handler does; the container is returned open. */
function make(name: string, lxcpath: string, how: Make): Container {
  if (how.kind === 'clone') {
    using b = Container.open(how.base, lxcpath);
    return b.clone(name, { snapshot: true, bdevtype: 'overlayfs' });
  }
  const c = Container.open(name, lxcpath);
  try {
    if (how.kind === 'local') c.create('local', ['--fstree', how.rootfs, '--metadata', how.metadata]);
    else c.create('busybox');
    c.setConfigItem('lxc.net.0.type', 'empty');
    c.saveConfig();
    return c;
  } catch (err) {
    c[Symbol.dispose]();
    throw err;
  }
}

/**
 * make (see Make) + start + stop + destroy of a new container `name`, net empty. The `create`
 * time is the template's or the clone's.
 */
export function directLifecycle(name: string, lxcpath: string, how: Make): LifecycleTimes {
  const t0 = performance.now();
  using c = make(name, lxcpath, how);
  const t1 = performance.now();
  c.start();
  const t2 = performance.now();
  c.stop();
  const t3 = performance.now();
  c.destroy();
  const t4 = performance.now();
  return { create: t1 - t0, start: t2 - t1, stop: t3 - t2, destroy: t4 - t3, total: t4 - t0 };
}

/** Makes the stopped container `name` (e.g. the base clones are made from). */
export function directMakeStopped(name: string, lxcpath: string, how: Make): void {
  using c = make(name, lxcpath, how);
  if (!c.defined) throw new Error(`${name} was not made`);
}

/** The liblxc part of a no-op start: open the container, read its state, dispose. */
export function directStateCheck(name: string, lxcpath: string): number {
  const t0 = performance.now();
  {
    using c = Container.open(name, lxcpath);
    if (!c.defined || c.state !== 'RUNNING' || !c.running) throw new Error(`${name} is not running`);
  }
  return performance.now() - t0;
}

/** Makes and starts `name` (for the freeze/unfreeze baseline). */
export function directMakeRunning(name: string, lxcpath: string, how: Make): void {
  using c = make(name, lxcpath, how);
  c.start();
}

/** One freeze and one unfreeze of a running container; ms for each. */
export function directFreezePair(name: string, lxcpath: string): { freeze: number; unfreeze: number } {
  using c = Container.open(name, lxcpath);
  const t0 = performance.now();
  c.freeze();
  const t1 = performance.now();
  c.unfreeze();
  const t2 = performance.now();
  return { freeze: t1 - t0, unfreeze: t2 - t1 };
}

/** Stops (if running) and destroys `name`, ignoring a missing one. */
export function directRemove(name: string, lxcpath: string): void {
  using c = Container.open(name, lxcpath);
  if (!c.defined) return;
  if (c.state !== 'STOPPED') c.stop();
  c.destroy();
}

/** c.ips() on a running container: liblxc forks a child into the container's netns for it. */
export function directIps(name: string, lxcpath: string): number {
  using c = Container.open(name, lxcpath);
  const t0 = performance.now();
  c.ips();
  return performance.now() - t0;
}
