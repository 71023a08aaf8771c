import { mkdtempSync } from 'node:fs';
import { createBusybox, makeLxcpath, cleanupLxcpath } from '../test/helpers.ts';
const lp = makeLxcpath('dbg');
const c = createBusybox(lp, 'd1');
try {
  c.start();
  for (const [s, d] of [['/dev/zero', '/dev/lxcqzero'], ['/dev/loop-control', undefined], ['/dev/zero', '/lxcqzero']] as const) {
    try { c.addDeviceNode(s, d); console.log('ok', s, d, c.exec({ argv: ['ls', '-l', d ?? s] }).stdout); } catch (e) { console.log(String(e)); }
  }
  const dir = mkdtempSync('/tmp/lxcq-dbg-m');
  for (const t of ['/mnt', '/tmp']) {
    try { c.mount(dir, t, { flags: 4096 }); console.log('mount ok', t); } catch (e) { console.log(String(e), c.lastError); }
  }
} finally {
  try { c.stop(); } catch {}
  c[Symbol.dispose]();
  cleanupLxcpath(lp);
}
