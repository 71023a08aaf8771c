// worker_threads entry: loads the TS sources through tsx and runs one container's lifecycle.
import { parentPort, workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

const { Container } = await tsImport('../src/index.ts', import.meta.url);
const { name, lxcpath } = workerData;
const timings = {};
try {
  const c = Container.open(name, lxcpath);
  c.setConfigItem('lxc.net.0.type', 'empty');
  c.setConfigItem('lxc.tty.max', '0');
  let t = Date.now();
  c.create('busybox');
  timings.create = Date.now() - t;
  t = Date.now();
  c.start();
  timings.start = Date.now() - t;
  const r = c.exec({ argv: ['hostname'] });
  t = Date.now();
  c.stop();
  timings.stop = Date.now() - t;
  c.destroy();
  const defined = c.defined;
  c[Symbol.dispose]();
  parentPort.postMessage({ ok: true, hostname: r.stdout.trim(), defined, timings });
} catch (e) {
  parentPort.postMessage({ ok: false, error: typeof e?.toJSON === 'function' ? e.toJSON() : String(e) });
}
