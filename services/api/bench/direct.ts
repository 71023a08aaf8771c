/**
 * The baseline: the same liblxc steps lxcq's worker runs, called directly through @lxcq/lxc-ffi in
 * this thread, with no HTTP, Redis, queue or thread hop in between.
 */
import { performance } from 'node:perf_hooks';
import { Container } from '../../../packages/lxc-ffi/src/index.ts';

/** Milliseconds each step of one lifecycle took, and the whole. */
export interface LifecycleTimes {
  create: number;
  start: number;
  stop: number;
  destroy: number;
  total: number;
}

/** create (busybox, net empty) + start + stop + destroy of a new container `name`. */
export function directLifecycle(name: string, lxcpath: string): LifecycleTimes {
  const t0 = performance.now();
  using c = Container.open(name, lxcpath);
  c.create('busybox');
  c.setConfigItem('lxc.net.0.type', 'empty');
  c.saveConfig();
  const t1 = performance.now();
  c.start();
  const t2 = performance.now();
  c.stop();
  const t3 = performance.now();
  c.destroy();
  const t4 = performance.now();
  return { create: t1 - t0, start: t2 - t1, stop: t3 - t2, destroy: t4 - t3, total: t4 - t0 };
}

/**
 * The same lifecycle with create replaced by an overlayfs copy-on-write clone of the stopped
 * container `base` (what POST /v1/containers/:base/clone {snapshot: true} runs). The `create`
 * time is the clone's.
 */
export function directCloneLifecycle(base: string, name: string, lxcpath: string): LifecycleTimes {
  const t0 = performance.now();
  using b = Container.open(base, lxcpath);
  using c = b.clone(name, { snapshot: true, bdevtype: 'overlayfs' });
  const t1 = performance.now();
  c.start();
  const t2 = performance.now();
  c.stop();
  const t3 = performance.now();
  c.destroy();
  const t4 = performance.now();
  return { create: t1 - t0, start: t2 - t1, stop: t3 - t2, destroy: t4 - t3, total: t4 - t0 };
}

/** Creates the stopped busybox container clones are made from. */
export function directMakeBase(name: string, lxcpath: string): void {
  using c = Container.open(name, lxcpath);
  c.create('busybox');
  c.setConfigItem('lxc.net.0.type', 'empty');
  c.saveConfig();
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

/** Creates and starts `name` (for the freeze/unfreeze baseline). */
export function directMakeRunning(name: string, lxcpath: string): void {
  using c = Container.open(name, lxcpath);
  c.create('busybox');
  c.setConfigItem('lxc.net.0.type', 'empty');
  c.saveConfig();
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
