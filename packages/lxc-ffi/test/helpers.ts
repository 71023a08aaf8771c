// Fixtures: a private lxcpath per test file, busybox containers that start without a bridge,
// and a cleanup that fails the test when something is left running.
import {
  chmodSync,
  mkdtempSync,
  rmSync,
  existsSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Container, listContainers } from '../src/index.ts';
import type { ContainerOptions } from '../src/index.ts';

export function makeLxcpath(tag: string): string {
  return mkdtempSync(join(tmpdir(), `lxcq-${tag}-`));
}

/** Config every test container gets: no network device (no lxcbr0 on CI), no AppArmor lines
 * (the kernel here has none and CRIU refuses them), no host ttys (CRIU fails on them). */
export const TEST_CONFIG: readonly [string, string][] = [
  ['lxc.net.0.type', 'empty'],
  ['lxc.tty.max', '0'],
];

export function createBusybox(
  lxcpath: string,
  name: string,
  options: ContainerOptions = {},
  extra: readonly [string, string][] = [],
): Container {
  const c = Container.open(name, lxcpath, options);
  for (const [k, v] of TEST_CONFIG) c.setConfigItem(k, v);
  c.create('busybox');
  // The template appends its own lines; re-apply ours so they win, then persist.
  for (const [k, v] of [...TEST_CONFIG, ...extra]) c.setConfigItem(k, v);
  c.saveConfig();
  return c;
}

/** root's first subordinate uid and gid (scripts/setup-host.sh adds root:1000000:1000000000). */
export function subordinateRoot(): { uid: number; gid: number } {
  const first = (f: string): number => {
    const m = /^(?:root|0):(\d+):(\d+)$/m.exec(readFileSync(f, 'utf8'));
    if (!m || Number(m[2]) < 65536)
      throw new Error(`no range of 65536 ids for root in ${f}: run scripts/setup-host.sh`);
    return Number(m[1]);
  };
  return { uid: first('/etc/subuid'), gid: first('/etc/subgid') };
}

/**
 * An unprivileged busybox container as lxcq's worker makes one: lxc.idmap from root's range and
 * LXC's common.conf + userns.conf set before the template runs (so it runs in the user namespace
 * and the rootfs comes out owned by the mapped ids), and without the template's binds of the
 * host's library directories (busybox is static; CRIU cannot restore those binds unprivileged).
 * The lxcpath must let the mapped root through (o+x).
 */
export function createUnprivilegedBusybox(
  lxcpath: string,
  name: string,
  extra: readonly [string, string][] = [],
): Container {
  const root = subordinateRoot();
  chmodSync(lxcpath, 0o711);
  {
    using c = Container.open(name, lxcpath);
    for (const [k, v] of [
      ['lxc.include', '/usr/share/lxc/config/common.conf'],
      ['lxc.include', '/usr/share/lxc/config/userns.conf'],
      ['lxc.idmap', `u 0 ${root.uid} 65536`],
      ['lxc.idmap', `g 0 ${root.gid} 65536`],
      ...TEST_CONFIG,
    ] as const)
      c.setConfigItem(k, v);
    c.create('busybox');
    const file = c.configFileName();
    writeFileSync(
      file,
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => !/^lxc\.mount\.entry = \/(usr\/)?lib(64)? /.test(l))
        .join('\n'),
    );
  }
  const c = Container.open(name, lxcpath);
  for (const [k, v] of [...TEST_CONFIG, ...extra]) c.setConfigItem(k, v);
  c.saveConfig();
  return c;
}

/** PIDs of processes whose cmdline mentions lxcpath (monitors, inits started from it). */
export function processesUnder(lxcpath: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'latin1');
      if (cmd.includes(lxcpath)) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** Stops and destroys every container under lxcpath (clones before their origins), removes the
 * directory, and returns what had to be cleaned (tests assert it is empty where they can). */
export function cleanupLxcpath(lxcpath: string): { leftovers: string[] } {
  const leftovers: string[] = [];
  if (!existsSync(lxcpath)) return { leftovers };
  for (let pass = 0; pass < 4; pass++) {
    const names = listContainers(lxcpath, 'all');
    if (names.length === 0) break;
    for (const name of names) {
      using c = Container.open(name, lxcpath);
      try {
        if (c.running || c.state === 'FROZEN') {
          leftovers.push(name);
          if (c.state === 'FROZEN') c.unfreeze();
          c.stop();
          c.wait('STOPPED', 10);
        }
        if (c.defined) c.destroy({ withSnapshots: c.snapshots().length > 0 });
      } catch {
        // an overlay origin: retried after its clones are gone
      }
    }
  }
  rmSync(lxcpath, { recursive: true, force: true });
  return { leftovers };
}

export function writeTempFile(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
