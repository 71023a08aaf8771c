/**
 * What makes a container checkpointable and live-migratable with CRIU, in one place: the defaults
 * every create path gives a new container, and the pre-flight that names what still stands in
 * the way (a config an admin chose, a device, a host bind mount), so a live move or a checkpoint
 * is refused before anything stops instead of failing after the dump.
 */
import { readFileSync } from 'node:fs';
import type { Container } from '@lxcq/lxc-ffi';

/** Whether this kernel runs AppArmor (liblxc reads the same file before it confines). */
export function hostHasAppArmor(): boolean {
  try {
    return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim().startsWith('Y');
  } catch {
    return false;
  }
}

const APPARMOR_KEYS = [
  'lxc.apparmor.profile',
  'lxc.apparmor.allow_nesting',
  'lxc.apparmor.allow_incomplete',
  'lxc.apparmor.raw',
] as const;

/**
 * Gives a freshly made container (template, image, before the request's own config) what CRIU
 * needs, and saves it:
 * - `lxc.tty.max = 0`: criu cannot dump the host ptys liblxc bind-mounts as container ttys ("tty:
 *   Unable to find a master"); the busybox template asks for 5. The console stays: liblxc hands
 *   it to criu as an external tty and gives the restored container a new one.
 * - no `lxc.apparmor.*` keys where the kernel has no AppArmor: liblxc passes `--lsm-profile
 *   apparmor:...` to criu as soon as the profile is set, and the restore fails ("apparmor LSM
 *   specified but apparmor not supported by kernel"). Where AppArmor runs, the template's profile
 *   handling stays as it is (liblxc loads the generated profile before it restores).
 * Clear-then-set keeps one line per key (liblxc's set appends a second one).
 */
export function applyMigratableDefaults(c: Container): void {
  c.clearConfigItem('lxc.tty.max');
  c.setConfigItem('lxc.tty.max', '0');
  if (!hostHasAppArmor()) {
    const keys = configFileKeysOf(c);
    for (const k of APPARMOR_KEYS) if (keys.has(k)) c.clearConfigItem(k);
  }
  c.saveConfig();
}

function configFileKeysOf(c: Container): Set<string> {
  return new Set(configLines(c).map(([k]) => k));
}

function configLines(c: Container): [string, string][] {
  let text = '';
  try {
    text = readFileSync(c.configFileName(), 'utf8');
  } catch {
    return [];
  }
  const out: [string, string][] = [];
  for (const line of text.split('\n')) {
    const kv = configLine(line);
    if (kv) out.push(kv);
  }
  return out;
}

/** One line of a container config file as [key, value]; undefined for a comment or blank line. */
export function configLine(line: string): [string, string] | undefined {
  const m = /^\s*(lxc\.[^\s=]+)\s*=\s*(.*?)\s*$/.exec(line);
  return m?.[1] ? [m[1], m[2] ?? ''] : undefined;
}

export interface MigrationBlocker {
  /** tty | apparmor | device | bind-mount */
  reason: 'tty' | 'apparmor' | 'device' | 'bind-mount' | 'network';
  /** criu: no checkpoint works either; move: only a move to another host cannot work. */
  scope: 'criu' | 'move';
  message: string;
}

/**
 * Host directories the busybox template binds read-only into every container it makes. CRIU
 * 4.2 dumps and restores them for a privileged container (the restore on another host binds the
 * same system directories there); an unprivileged container cannot be restored with them ("mnt:
 * Can't bind-mount ... Invalid argument").
 */
const SYSTEM_BINDS = new Set(['/lib', '/lib64', '/usr/lib', '/usr/lib64', '/sys/kernel/security']);

/** What stands in the way of a checkpoint or a live move of this container, read from its config. */
export function migrationBlockers(c: Container): MigrationBlocker[] {
  const lines = configLines(c);
  const last = (key: string): string | undefined => lines.filter(([k]) => k === key).pop()?.[1];
  const out: MigrationBlocker[] = [];
  const ttys = Number(last('lxc.tty.max') ?? '0');
  if (ttys > 0)
    out.push({
      reason: 'tty',
      scope: 'criu',
      message: `lxc.tty.max = ${ttys}: criu cannot dump the host ptys liblxc gives the container as ttys (set lxc.tty.max = 0)`,
    });
  const apparmor = lines.filter(([k]) => k.startsWith('lxc.apparmor.')).map(([k]) => k);
  if (apparmor.length > 0 && !hostHasAppArmor())
    out.push({
      reason: 'apparmor',
      scope: 'criu',
      message: `${[...new Set(apparmor)].join(', ')} set but this host's kernel has no AppArmor: criu's restore would refuse the profile (clear the keys)`,
    });
  const unprivileged = lines.some(([k]) => k === 'lxc.idmap');
  // A key set twice takes its last value (a request's `lxc.net.0.type = empty` after the default's veth).
  const netTypes = new Map(lines.filter(([k]) => /^lxc\.net\.\d+\.type$/.test(k)));
  const veth = [...netTypes].find(([, v]) => v === 'veth');
  if (unprivileged && veth)
    // Measured here (CRIU 4.2.1, kernel 6.18): the dump works, every restore fails with "net:
    // couldn't restore veth interface eth0 via usernsd: Operation not supported".
    out.push({
      reason: 'network',
      scope: 'criu',
      message: `${veth[0]} = veth in an unprivileged container: CRIU cannot restore a veth inside a user namespace on this host (couldn't restore veth interface via usernsd: Operation not supported); use lxc.net.0.type = empty, or a privileged container (admin)`,
    });
  lines.forEach(([k, v], i) => {
    if (/^lxc\.net\.\d+\.type$/.test(k) && v === 'phys')
      out.push({
        reason: 'device',
        scope: 'move',
        message: `${k} = phys: a host network device (config line ${i + 1}) cannot move to another host`,
      });
    if (k !== 'lxc.mount.entry') return;
    const [source = '', , , options = ''] = v.split(/\s+/);
    if (!source.startsWith('/') || !options.split(',').some((o) => o === 'bind' || o === 'rbind')) return;
    // A kernel pseudo-filesystem (the template's optional /sys/kernel/security) is no host data:
    // the same on every host. Checkpoint and restore of unprivileged default containers carrying
    // it work (checkpoint.test.ts, criu.test.ts).
    if (/^\/(sys|proc)\//.test(source)) return;
    if (source.startsWith('/dev/'))
      out.push({
        reason: 'device',
        scope: 'move',
        message: `lxc.mount.entry = ${v}: the host device ${source} cannot move with the container`,
      });
    else if (unprivileged)
      out.push({
        reason: 'bind-mount',
        scope: 'criu',
        message: `lxc.mount.entry = ${v}: criu cannot restore a host bind mount (${source}) into an unprivileged container`,
      });
    else if (!SYSTEM_BINDS.has(source.replace(/\/+$/, '')))
      out.push({
        reason: 'bind-mount',
        scope: 'move',
        message: `lxc.mount.entry = ${v}: the host directory ${source} is bound into the container, and another host's ${source} is not the same data`,
      });
  });
  return out;
}
