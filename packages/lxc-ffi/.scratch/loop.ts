import { createBusybox, makeLxcpath, cleanupLxcpath } from '../test/helpers.ts';
const lp = makeLxcpath('dbg');
const c = createBusybox(lp, 'd1');
const junk: unknown[] = [];
try {
  c.start();
  for (let i = 0; i < 150; i++) {
    for (let j = 0; j < 2000; j++) junk.push({ a: j, b: 'x'.repeat(50) });
    if (junk.length > 50000) junk.length = 0;
    c.exec({ argv: ['sh', '-c', 'echo hi'] });
    c.attachRunWait(['sh', '-c', 'exit 3']);
    if (i % 10 === 0) c.exec({ argv: ['sh', '-c', 'sleep 5'], timeoutMs: 20 });
    if (i % 25 === 0) console.log(i);
  }
} finally {
  try { c.stop(); } catch {}
  c[Symbol.dispose]();
  cleanupLxcpath(lp);
}
