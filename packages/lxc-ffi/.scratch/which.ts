import { createBusybox, makeLxcpath, cleanupLxcpath } from '../test/helpers.ts';
const lp = makeLxcpath('dbg');
const c = createBusybox(lp, 'd1');
const which = process.argv[2];
try {
  c.start();
  for (let i = 0; i < 20; i++) {
    if (which === 'uid') c.exec({ argv: ['sh', '-c', 'id -u'], uid: 1000, gid: 1001 });
    if (which === 'clear') c.exec({ argv: ['sh', '-c', 'echo'], clearEnv: true, env: { A: '1' } });
    if (which === 'noent') c.exec({ argv: ['/nonexistent'] });
    console.log(i, c.running);
  }
} finally {
  try { c.stop(); } catch {}
  c[Symbol.dispose]();
  cleanupLxcpath(lp);
}
