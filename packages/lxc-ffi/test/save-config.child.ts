// Child of save-config.test.ts: opens a container and saves its config in a loop until it is
// killed, as a worker killed mid-job would be. It says "ready" once the loop is about to begin.
import { Container } from '../src/index.ts';

const [, , name, lxcpath] = process.argv;
if (!name || !lxcpath) throw new Error('usage: save-config.child.ts NAME LXCPATH');
const c = Container.open(name, lxcpath);
process.stdout.write('ready\n');
for (;;) c.saveConfig();
