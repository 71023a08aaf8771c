import { Container } from '../src/index.ts';
import { createBusybox, makeLxcpath, cleanupLxcpath } from '../test/helpers.ts';
const lp = makeLxcpath('dbg');
const c = createBusybox(lp, 'd1');
try {
  c.start();
  console.log('exec', c.exec({ argv: ['sh', '-c', 'exit 3'] }));
  console.log('arw', c.attachRunWait(['sh', '-c', 'exit 3']));
} finally {
  try { c.stop(); } catch {}
  c[Symbol.dispose]();
  cleanupLxcpath(lp);
}
