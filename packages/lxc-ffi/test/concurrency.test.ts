// Several containers created/started/stopped/destroyed at once from several worker threads.
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { listContainers } from '../src/index.ts';
import { cleanupLxcpath, makeLxcpath, processesUnder } from './helpers.ts';

const lxcpath = makeLxcpath('conc');
afterAll(() => {
  const { leftovers } = cleanupLxcpath(lxcpath);
  expect(leftovers).toEqual([]);
  expect(processesUnder(lxcpath)).toEqual([]);
});

function runWorker(name: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./concurrency-worker.mjs', import.meta.url), {
      workerData: { name, lxcpath },
    });
    w.once('message', (m) => {
      void w.terminate();
      resolve(m);
    });
    w.once('error', reject);
  });
}

describe('concurrency', () => {
  it('4 worker threads run create/start/exec/stop/destroy at once', async () => {
    let maxLag = 0;
    let last = Date.now();
    const timer = setInterval(() => {
      const now = Date.now();
      maxLag = Math.max(maxLag, now - last - 10);
      last = now;
    }, 10);
    const names = ['w1', 'w2', 'w3', 'w4'];
    const results = await Promise.all(names.map(runWorker));
    clearInterval(timer);
    for (const [i, r] of results.entries()) {
      expect(r).toMatchObject({ ok: true, hostname: names[i], defined: false });
    }
    expect(listContainers(lxcpath, 'all')).toEqual([]);
    expect(maxLag).toBeLessThan(1000);
  });
});
