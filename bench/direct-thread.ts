/**
 * A worker_threads body for the direct baseline at concurrency > 1. It loads liblxc, says
 * 'ready', and on 'go' runs `count` lifecycles of its own containers (made as `make` says) and
 * posts their times, so thread start-up is not counted.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { lxcVersion } from '@lxcq/lxc-ffi';
import { directLifecycle, type LifecycleTimes, type Make } from './direct.ts';

export interface DirectThreadInput {
  lxcpath: string;
  prefix: string;
  count: number;
  /** How each container is made: busybox template, local image, or clone of a stopped base. */
  make: Make;
}
export type DirectThreadOutput =
  { kind: 'ready' } | { kind: 'done'; times: LifecycleTimes[] } | { kind: 'failed'; error: string };

const input = workerData as DirectThreadInput;
const port = parentPort;
if (!port) throw new Error('direct-thread.ts runs only as a worker thread');
const send = (m: DirectThreadOutput) => port.postMessage(m);

function run(): DirectThreadOutput {
  try {
    const times: LifecycleTimes[] = [];
    for (let i = 0; i < input.count; i++) {
      const name = `${input.prefix}${i}`;
      times.push(directLifecycle(name, input.lxcpath, input.make));
    }
    return { kind: 'done', times };
  } catch (err) {
    return { kind: 'failed', error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
}

try {
  lxcVersion();
  port.once('message', () => {
    send(run());
    port.close();
  });
  send({ kind: 'ready' });
} catch (err) {
  send({ kind: 'failed', error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  port.close();
}
