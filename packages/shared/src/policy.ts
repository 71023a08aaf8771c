import { LxcqError } from './errors.ts';

/**
 * The container config policy: an allow-list. Every config item that reaches a container from
 * outside lxcq (create's config, config set and clear, a template's arguments, the config an image
 * or a received transfer carries) passes through here: in the API before a job is queued, and
 * again in the worker before liblxc sees it.
 *
 * - A request made with an `operate` token may set only the keys in ALLOWED below, each with the
 *   values its check accepts: everyday keys (environment, init, signals, autostart, hostname,
 *   tty/pty counts, the cgroup limits of the limits operation), networks of the types and on the
 *   links the host lists (LXCQ_NETWORK_TYPES, LXCQ_NETWORK_LINKS), mounts that reach no host path.
 * - Everything else liblxc knows (hooks, includes, rootfs, idmap, capabilities, seccomp, AppArmor,
 *   SELinux, namespaces, devices, sysctls, keyring, logs, cgroup placement, console files, prlimits,
 *   proc files, ...) is a raw key: refused to everyone unless the host's LXCQ_CONFIG_POLICY names
 *   it in `allow`, and then only to requests made with an `admin` token (like LXD's `raw.lxc`,
 *   which restricted projects refuse). The same `allow` also lets an admin set a value the
 *   allow-list refuses for a listed key (a host bind mount: `lxc.mount.entry`).
 * - Config lxcq finds on disk (what a template or an image wrote, a received transfer) is checked
 *   with checkStoredConfig: the same rules, plus the items lxcq, its templates and LXC's own
 *   default config write themselves (MANAGED).
 *
 * Every refusal is LXCQ_CONFIG_FORBIDDEN naming each refused key and why.
 */
export interface ConfigPolicy {
  /** Raw key patterns an admin token may set (`*` matches any run of characters). */
  allow: readonly string[];
  /** Network types a container may use (lxc.net.N.type). */
  networkTypes: readonly string[];
  /** Bridges (veth) or host interfaces (other types) a container's network may attach to. */
  networkLinks: readonly string[];
  /** The directory of OCI layouts `oci:` URLs may name; none: registries (`docker://`) only. */
  ociLayoutDir?: string | undefined;
}

export const DEFAULT_NETWORK_TYPES: readonly string[] = ['veth', 'empty'];
export const DEFAULT_NETWORK_LINKS: readonly string[] = ['lxcbr0'];
/** Every network type liblxc knows (confile.c, set_config_net_type). */
export const NETWORK_TYPES: readonly string[] = [
  'veth',
  'empty',
  'macvlan',
  'ipvlan',
  'vlan',
  'phys',
  'none',
];

export const DEFAULT_POLICY: ConfigPolicy = {
  allow: [],
  networkTypes: DEFAULT_NETWORK_TYPES,
  networkLinks: DEFAULT_NETWORK_LINKS,
};

/** Who asks: an admin token's request may use the raw keys the host allows. */
export interface Requester {
  admin: boolean;
}
const OPERATE: Requester = { admin: false };

/** A value check: null when the value is fine, else why it is refused. */
type ValueCheck = (value: string, policy: ConfigPolicy) => string | null;

interface Allowed {
  /** The key family, as docs/config-policy.md lists it. */
  family: string;
  key: RegExp;
  value: ValueCheck;
}

const re =
  (pattern: RegExp, what: string): ValueCheck =>
  (v) =>
    pattern.test(v) ? null : `the value must be ${what}`;
const anyValue: ValueCheck = () => null;
const bool = re(/^[01]$/, '0 or 1');
const count = (max: number): ValueCheck => {
  return (v) =>
    /^\d{1,7}$/.test(v) && Number(v) <= max ? null : `the value must be a number from 0 to ${max}`;
};
const oneOf =
  (values: readonly string[]): ValueCheck =>
  (v) =>
    values.includes(v) ? null : `the value must be one of ${values.join(', ')}`;

/** An interface name as the kernel takes it (IFNAMSIZ 16, no `/`, no whitespace). */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const IPV4 = '(?:\\d{1,3}\\.){3}\\d{1,3}';
const IPV6 = '[0-9A-Fa-f:.]{2,45}';

/** lxc.mount.auto tokens that reach no host path and leave proc, sys and cgroup read-only where it matters. */
const SAFE_AUTO_MOUNTS: readonly string[] = [
  'proc',
  'proc:mixed',
  'sys',
  'sys:ro',
  'sys:mixed',
  'cgroup:mixed',
  'cgroup:ro',
  'cgroup:mixed:force',
  'cgroup:ro:force',
  'cgroup2:ro',
  'cgroup2:ro:force',
];

function autoMounts(value: string): string | null {
  for (const token of value.split(/\s+/).filter(Boolean)) {
    if (token.startsWith('shmounts:'))
      return `${token}: shmounts bind-mounts a host directory into the container`;
    if (!SAFE_AUTO_MOUNTS.includes(token))
      return `${token}: only ${SAFE_AUTO_MOUNTS.join(', ')} may be mounted (writable proc, sys or cgroup, or the host's whole cgroup tree, reach the host)`;
  }
  return null;
}

/** Filesystems a mount entry may make: memory-backed, so they reach no host path or device. */
const MOUNT_FSTYPES: readonly string[] = ['tmpfs', 'mqueue'];
const MOUNT_OPTION =
  /^(defaults|ro|rw|nosuid|nodev|noexec|relatime|noatime|nodiratime|strictatime|optional|create=dir|create=file|size=\d{1,12}[kmgKMG%]?|nr_inodes=\d{1,12}[kmgKMG]?|mode=[0-7]{3,4}|uid=\d{1,10}|gid=\d{1,10})$/;
const PATH_SEGMENT = /^[A-Za-z0-9_+@-][A-Za-z0-9_.+@-]*$/;

/**
 * An fstab line (`source target type options [dump [pass]]`) that reaches no host path: a tmpfs
 * or mqueue, no absolute path and no `..` in any field or option, no bind (liblxc mounts before
 * pivoting into the rootfs, so even a relative source or option path would name a host path).
 */
function mountEntry(value: string): string | null {
  if (/(^|[\s,=:/])\//.test(value) || value.includes('/..') || /(^|[\s,=:])\.\.(\/|\s|,|:|$)/.test(value))
    return 'an absolute path or `..` in a mount entry (in any field or option) names a host path';
  if (/[\\"'`$]/.test(value)) return 'quotes, backslashes and `$` are not allowed in a mount entry';
  const fields = value.trim().split(/\s+/);
  if (fields.length < 4 || fields.length > 6)
    return 'a mount entry is `source target type options [dump [pass]]`';
  const [source, target, fstype, options, ...rest] = fields as [string, string, string, string, ...string[]];
  if (!MOUNT_FSTYPES.includes(fstype))
    return `filesystem ${fstype}: only ${MOUNT_FSTYPES.join(', ')} mounts may be made (a bind, overlay, proc, sysfs, cgroup or device mount can reach the host)`;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(source)) return `source ${source}: a ${fstype} source is a plain label`;
  if (!target.split('/').every((s) => PATH_SEGMENT.test(s)))
    return `target ${target}: a path relative to the rootfs, without . or .. segments`;
  for (const o of options.split(',')) {
    if (!MOUNT_OPTION.test(o))
      return `option ${o}: allowed options are ro, rw, nosuid, nodev, noexec, the atime ones, optional, create=dir|file, size=, nr_inodes=, mode=, uid=, gid=`;
  }
  if (!rest.every((n) => /^\d$/.test(n))) return 'dump and pass are single digits';
  return null;
}

function networkType(value: string, policy: ConfigPolicy): string | null {
  if (policy.networkTypes.includes(value)) return null;
  const why =
    value === 'none'
      ? ' (none shares the host network namespace)'
      : value === 'phys'
        ? ' (phys moves a host interface into the container)'
        : value === 'macvlan' || value === 'ipvlan' || value === 'vlan'
          ? ` (${value} attaches the container to a host interface directly)`
          : '';
  return `network type ${value} is not allowed on this host${why}; allowed: ${policy.networkTypes.join(', ')} (LXCQ_NETWORK_TYPES)`;
}

function networkLink(value: string, policy: ConfigPolicy): string | null {
  if (policy.networkLinks.includes(value)) return null;
  return `link ${value} is not a bridge or interface this host lets containers attach to; allowed: ${policy.networkLinks.join(', ') || '(none)'} (LXCQ_NETWORK_LINKS)`;
}

/** cgroup files the limits operation writes (v1 and v2), and a few more of the same kind. */
const CGROUP_LIMIT =
  /^lxc\.cgroup2?\.(memory\.(max|high|low|min|swap\.max|limit_in_bytes|soft_limit_in_bytes|memsw\.limit_in_bytes)|cpu\.(max|weight|shares|cfs_period_us|cfs_quota_us)|cpuset\.(cpus|mems)|pids\.max|io\.weight|blkio\.weight)$/;

const NET = (sub: string) => new RegExp(`^lxc\\.net\\.\\d{1,4}\\.${sub.replace(/\./g, '\\.')}$`);

/** The allow-list: what an operate token may set. */
export const ALLOWED: readonly Allowed[] = [
  { family: 'lxc.arch', key: /^lxc\.arch$/, value: re(/^[a-z0-9_]{1,16}$/, 'an architecture name') },
  { family: 'lxc.autodev', key: /^lxc\.autodev$/, value: bool },
  { family: 'lxc.autodev.tmpfs.size', key: /^lxc\.autodev\.tmpfs\.size$/, value: count(1_000_000_000) },
  {
    family: 'lxc.cgroup.<limit>, lxc.cgroup2.<limit>',
    key: CGROUP_LIMIT,
    value: re(
      /^([0-9]{1,20}[KMGkmg]?|max|[0-9]{1,10} [0-9]{1,10}|max [0-9]{1,10}|[0-9]{1,4}([-,][0-9]{1,4}){0,63})$/,
      'a size, a number, "max", "<quota> <period>" or a CPU list',
    ),
  },
  {
    family: 'lxc.console.path',
    key: /^lxc\.console\.path$/,
    value: re(/^none$/, '"none" (no console; other console paths are host paths)'),
  },
  {
    family: 'lxc.environment',
    key: /^lxc\.environment$/,
    // Without "=", liblxc copies the variable from the environment of the process that starts the
    // container: the worker's, which holds lxcq's own settings.
    value: re(
      /^[A-Za-z_][A-Za-z0-9_]{0,127}=/,
      'NAME=value (a bare NAME would copy the variable from the host)',
    ),
  },
  { family: 'lxc.ephemeral', key: /^lxc\.ephemeral$/, value: bool },
  { family: 'lxc.execute.cmd', key: /^lxc\.execute\.cmd$/, value: anyValue },
  {
    family: 'lxc.group',
    key: /^lxc\.group$/,
    value: re(/^[A-Za-z0-9_.-]{1,64}(,[A-Za-z0-9_.-]{1,64}){0,15}$/, 'group names'),
  },
  { family: 'lxc.init.cmd', key: /^lxc\.init\.cmd$/, value: anyValue },
  {
    family: 'lxc.init.cwd',
    key: /^lxc\.init\.cwd$/,
    value: re(/^\/[^\s]{0,4095}$/, 'an absolute path inside the container'),
  },
  {
    family: 'lxc.init.uid, lxc.init.gid',
    key: /^lxc\.init\.(uid|gid)$/,
    value: re(/^\d{1,10}$/, 'a number'),
  },
  {
    family: 'lxc.init.groups',
    key: /^lxc\.init\.groups$/,
    value: re(/^\d{1,10}(,\d{1,10}){0,63}$/, 'numbers separated by commas'),
  },
  { family: 'lxc.mount.auto', key: /^lxc\.mount\.auto$/, value: autoMounts },
  { family: 'lxc.mount.entry', key: /^lxc\.mount\.entry$/, value: mountEntry },
  { family: 'lxc.net (clear all)', key: /^lxc\.net$/, value: re(/^$/, 'empty (it clears every network)') },
  { family: 'lxc.net.N.type', key: NET('type'), value: networkType },
  { family: 'lxc.net.N.link', key: NET('link'), value: networkLink },
  { family: 'lxc.net.N.flags', key: NET('flags'), value: oneOf(['up']) },
  {
    family: 'lxc.net.N.hwaddr',
    key: NET('hwaddr'),
    value: re(/^[0-9a-fA-Fx]{2}(:[0-9a-fA-Fx]{2}){5}$/, 'a MAC address (x for a random digit)'),
  },
  { family: 'lxc.net.N.name', key: NET('name'), value: re(IFNAME, 'an interface name') },
  { family: 'lxc.net.N.mtu', key: NET('mtu'), value: re(/^\d{3,5}$/, 'a number') },
  {
    family: 'lxc.net.N.ipv4.address',
    key: NET('ipv4.address'),
    value: re(new RegExp(`^${IPV4}(/\\d{1,2})?( ${IPV4})?$`), 'an IPv4 address[/prefix] [broadcast]'),
  },
  {
    family: 'lxc.net.N.ipv4.gateway',
    key: NET('ipv4.gateway'),
    value: re(new RegExp(`^(${IPV4}|auto|dev)$`), 'an IPv4 address, auto or dev'),
  },
  {
    family: 'lxc.net.N.ipv6.address',
    key: NET('ipv6.address'),
    value: re(new RegExp(`^${IPV6}(/\\d{1,3})?$`), 'an IPv6 address[/prefix]'),
  },
  {
    family: 'lxc.net.N.ipv6.gateway',
    key: NET('ipv6.gateway'),
    value: re(new RegExp(`^(${IPV6}|auto|dev)$`), 'an IPv6 address, auto or dev'),
  },
  {
    family: 'lxc.net.N.macvlan.mode',
    key: NET('macvlan.mode'),
    value: oneOf(['private', 'vepa', 'bridge', 'passthru']),
  },
  { family: 'lxc.net.N.ipvlan.mode', key: NET('ipvlan.mode'), value: oneOf(['l2', 'l3', 'l3s']) },
  {
    family: 'lxc.net.N.ipvlan.isolation',
    key: NET('ipvlan.isolation'),
    value: oneOf(['bridge', 'private', 'vepa']),
  },
  { family: 'lxc.no_new_privs', key: /^lxc\.no_new_privs$/, value: bool },
  { family: 'lxc.pty.max', key: /^lxc\.pty\.max$/, value: count(1024) },
  { family: 'lxc.tty.max', key: /^lxc\.tty\.max$/, value: count(64) },
  {
    family: 'lxc.tty.dir',
    key: /^lxc\.tty\.dir$/,
    value: re(/^[A-Za-z0-9_-]{1,32}$/, 'a directory name under /dev'),
  },
  {
    family: 'lxc.signal.halt, .reboot, .stop',
    key: /^lxc\.signal\.(halt|reboot|stop)$/,
    value: re(/^(SIG)?[A-Z0-9+-]{2,12}$|^\d{1,2}$/, 'a signal name or number'),
  },
  { family: 'lxc.start.auto', key: /^lxc\.start\.auto$/, value: bool },
  {
    family: 'lxc.start.delay, lxc.start.order',
    key: /^lxc\.start\.(delay|order)$/,
    value: re(/^-?\d{1,6}$/, 'a number'),
  },
  {
    family: 'lxc.uts.name',
    key: /^lxc\.uts\.name$/,
    value: re(/^"?[A-Za-z0-9][A-Za-z0-9.-]{0,63}"?$/, 'a host name'),
  },
];

/** Keys that are not on the allow-list but whose clearing only returns to LXC's confined default. */
const CLEARABLE: readonly { key: RegExp; why: string }[] = [
  // Unset, liblxc confines the container with lxc-container-default(-cgns); never unconfined.
  { key: /^lxc\.apparmor\.(profile|allow_nesting)$/, why: "back to LXC's default AppArmor profile" },
];

/** Why a raw key is admin-only (the first match), for the message. */
const RAW_REASONS: readonly { key: RegExp; reason: string }[] = [
  { key: /^lxc\.hook(\.|$)/, reason: 'hooks run commands as root on the host' },
  { key: /^lxc\.net\.\d+\.script\./, reason: 'network scripts run as root on the host' },
  {
    key: /^lxc\.net\.\d+\.(veth\.|l2proxy$|vlan\.id$)/,
    reason: "this changes the host's side of the network (routes, host interface names, VLANs, proxy ARP)",
  },
  { key: /^lxc\.include$/, reason: 'includes read arbitrary host files' },
  { key: /^lxc\.rootfs\./, reason: 'the rootfs is a host path lxcq manages' },
  { key: /^lxc\.idmap$/, reason: 'the id map decides which host users container users are (lxcq sets it)' },
  { key: /^lxc\.cap\./, reason: 'capabilities decide what container root may do to the host' },
  { key: /^lxc\.seccomp\./, reason: 'seccomp changes can remove the syscall filter' },
  { key: /^lxc\.apparmor\./, reason: 'AppArmor changes can remove confinement' },
  { key: /^lxc\.selinux\./, reason: 'SELinux changes can remove confinement' },
  { key: /^lxc\.namespace\./, reason: "sharing, keeping or not cloning a namespace joins the host's" },
  { key: /^lxc\.cgroup2?\.devices\./, reason: 'device rules can expose host devices' },
  {
    key: /^lxc\.cgroup\.(dir|relative)/,
    reason: 'cgroup placement escapes the limits lxcq manages',
  },
  {
    key: /^lxc\.cgroup2?\./,
    reason: 'only the limits lxcq manages (memory, cpu, cpuset, pids, io weight) may be set',
  },
  { key: /^lxc\.sysctl\./, reason: 'some sysctls are global to the host' },
  { key: /^lxc\.keyring\./, reason: 'keyring settings touch the host kernel keyring' },
  { key: /^lxc\.log\./, reason: 'log settings write host files' },
  { key: /^lxc\.console\./, reason: 'console log files and devices are host paths' },
  { key: /^lxc\.mount\.fstab$/, reason: 'an fstab is a host file of mounts' },
  {
    key: /^lxc\.prlimit\./,
    reason: "resource limits above the host's defaults let one container starve the host",
  },
  {
    key: /^lxc\.proc\./,
    reason: "proc settings (oom_score_adj...) change how the host treats the container's init",
  },
  { key: /^lxc\.monitor\./, reason: "this changes LXC's monitor process on the host" },
  { key: /^lxc\.time\./, reason: 'time namespace offsets are admin-only' },
];

const KEY_RE = /^lxc\.[a-z0-9_]+(\.[a-z0-9_-]+)*$/;

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

export interface PolicyDecision {
  allowed: boolean;
  reason?: string;
}

function rawAllowed(key: string, policy: ConfigPolicy, who: Requester): boolean {
  return who.admin && policy.allow.some((p) => globToRegExp(p).test(key));
}

function rawReason(key: string, policy: ConfigPolicy, who: Requester): string {
  const why = RAW_REASONS.find((r) => r.key.test(key))?.reason ?? 'not a key lxcq lets containers set';
  const tail =
    policy.allow.some((p) => globToRegExp(p).test(key)) && !who.admin
      ? ' (this host allows it to admin tokens only)'
      : ' (admin-only, and only where LXCQ_CONFIG_POLICY allows it)';
  return why + tail;
}

/** Limits every value shares: one line (a newline would smuggle more config lines), bounded. */
function malformed(key: string, value: string): string | null {
  if (!KEY_RE.test(key) || key.length > 128) return 'not a well-formed lxc config key';
  if (/[\n\r\0]/.test(value)) return 'values may not contain newlines or NUL';
  if (value.length > 4096) return 'value longer than 4096 characters';
  return null;
}

/** Whether `who` may set `key` to `value`; an empty value clears the key (as liblxc does). */
export function checkConfigItem(
  key: string,
  value: string,
  policy: ConfigPolicy = DEFAULT_POLICY,
  who: Requester = OPERATE,
): PolicyDecision {
  const bad = malformed(key, value);
  if (bad) return { allowed: false, reason: bad };
  const v = value.trim();
  if (v === '') return checkClearKey(key, policy, who);
  const rule = ALLOWED.find((r) => r.key.test(key));
  if (rule) {
    const why = rule.value(v, policy);
    if (why === null || rawAllowed(key, policy, who)) return { allowed: true };
    return { allowed: false, reason: why };
  }
  if (rawAllowed(key, policy, who)) return { allowed: true };
  return { allowed: false, reason: rawReason(key, policy, who) };
}

/**
 * Whether `who` may clear `key`. Clearing is refused where it would loosen confinement: an
 * unprivileged container without its lxc.idmap or lxc.include would run privileged.
 */
export function checkClearKey(
  key: string,
  policy: ConfigPolicy = DEFAULT_POLICY,
  who: Requester = OPERATE,
): PolicyDecision {
  const bad = malformed(key, '');
  if (bad) return { allowed: false, reason: bad };
  if (ALLOWED.some((r) => r.key.test(key)) || CLEARABLE.some((c) => c.key.test(key)))
    return { allowed: true };
  if (rawAllowed(key, policy, who)) return { allowed: true };
  return { allowed: false, reason: `clearing it is refused: ${rawReason(key, policy, who)}` };
}

export interface Refusal {
  key: string;
  reason: string;
}

function refuse(refused: readonly Refusal[], what = 'Config'): never {
  throw new LxcqError(
    'LXCQ_CONFIG_FORBIDDEN',
    `${what} refused by policy: ${refused.map((r) => `${r.key} (${r.reason})`).join('; ')}.`,
    { details: { refused } },
  );
}

/** Throws LXCQ_CONFIG_FORBIDDEN naming every refused key, so a client fixes all at once. */
export function assertConfigAllowed(
  items: Readonly<Record<string, string>> | readonly (readonly [string, string])[],
  policy: ConfigPolicy = DEFAULT_POLICY,
  who: Requester = OPERATE,
): void {
  const entries = Array.isArray(items) ? items : Object.entries(items);
  const refused: Refusal[] = [];
  for (const [key, value] of entries as (readonly [string, string])[]) {
    const d = checkConfigItem(key, value, policy, who);
    if (!d.allowed) refused.push({ key, reason: d.reason ?? 'refused' });
  }
  if (refused.length > 0) refuse(refused);
}

/** Throws LXCQ_CONFIG_FORBIDDEN naming every key that may not be cleared. */
export function assertClearableKeys(
  keys: readonly string[],
  policy: ConfigPolicy = DEFAULT_POLICY,
  who: Requester = OPERATE,
): void {
  const refused: Refusal[] = [];
  for (const key of keys) {
    const d = checkClearKey(key, policy, who);
    if (!d.allowed) refused.push({ key, reason: d.reason ?? 'refused' });
  }
  if (refused.length > 0) refuse(refused);
}

// ---------------------------------------------------------------------------------------------
// config found on disk: what a template, an image or a transfer brought

/** LXC's own shipped config files: a template or lxcq includes them for confinement. */
const LXC_SHIPPED_INCLUDE = /^\/usr\/share\/lxc\/config\/([a-z0-9-]{1,32}\.)?(common|userns)\.conf$/;
/** The busybox template's read-only binds of the host's library directories. */
const BUSYBOX_BINDS: readonly string[] = [
  ...['lib', 'usr/lib', 'lib64', 'usr/lib64'].map((d) => `/${d} ${d} none ro,bind 0 0`),
  '/sys/kernel/security sys/kernel/security none ro,bind,optional 0 0',
];

/**
 * Items a config on disk may hold that no client may set: what lxcq, its templates and LXC's
 * default config (/etc/lxc/default.conf) write. `rootfsDirs` are the rootfs paths the container
 * may have (its own directory's `rootfs`).
 */
function managedItem(key: string, value: string, rootfsDirs: readonly string[]): boolean {
  switch (key) {
    case 'lxc.rootfs.path':
      // btrfs: a rootfs subvolume on a btrfs pool (docs/storage.md)
      return rootfsDirs.includes(value.replace(/^(dir|btrfs):/, ''));
    case 'lxc.include':
      return LXC_SHIPPED_INCLUDE.test(value);
    case 'lxc.idmap': {
      // Container ids mapped onto unprivileged host ids: never onto host root.
      const m = /^[ug] (\d{1,10}) (\d{1,10}) (\d{1,10})$/.exec(value);
      return m !== null && Number(m[2]) > 0 && Number(m[3]) > 0;
    }
    case 'lxc.cap.drop':
      // Only ever removes capabilities (an empty value, which would reset the list, is not here).
      return /^[a-z_]+( [a-z_]+)*$/.test(value);
    case 'lxc.apparmor.profile':
      return /^(generated|lxc-container-default|lxc-container-default-cgns)$/.test(value);
    case 'lxc.apparmor.allow_nesting':
      return value === '0' || value === '1';
    case 'lxc.mount.entry':
      return BUSYBOX_BINDS.includes(value.replace(/\s+/g, ' '));
    default:
      return false;
  }
}

/** The `key = value` items of an LXC config file, values unquoted as liblxc reads them. */
export function parseConfigText(text: string): [string, string][] {
  const items: [string, string][] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) {
      items.push([line, '']);
      continue;
    }
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0]))
      value = value.slice(1, -1);
    items.push([line.slice(0, eq).trim(), value]);
  }
  return items;
}

/**
 * Checks a whole config file found on disk (written by a template from an image, or received
 * from another host) as if each item had been asked for by `who` at create, allowing besides
 * what lxcq and LXC themselves write. Throws LXCQ_CONFIG_FORBIDDEN naming each refused item.
 */
export function assertStoredConfig(
  text: string,
  opts: { policy: ConfigPolicy; who: Requester; rootfsDirs: readonly string[]; what: string },
): void {
  const refused: Refusal[] = [];
  for (const [key, value] of parseConfigText(text)) {
    if (value !== '' && managedItem(key, value, opts.rootfsDirs)) continue;
    const d = checkConfigItem(key, value, opts.policy, opts.who);
    if (!d.allowed)
      refused.push({ key, reason: `${value === '' ? '' : `${value}: `}${d.reason ?? 'refused'}` });
  }
  if (refused.length > 0) refuse(refused, opts.what);
}

// ---------------------------------------------------------------------------------------------
// template arguments

/**
 * A download template field (dist, release, arch, variant): lxc-download builds its cache path
 * from them, so `.`, `..` or a `/` would point it at another directory (and append the config
 * found there, hooks included).
 */
const IMAGE_FIELD = /^[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*$/;

export function assertTemplateArgs(
  p: {
    template: string;
    download?: Readonly<Record<string, string | undefined>> | undefined;
    oci?: { url: string } | undefined;
  },
  policy: ConfigPolicy = DEFAULT_POLICY,
): void {
  const refused: Refusal[] = [];
  if (p.download) {
    for (const [field, v] of Object.entries(p.download)) {
      if (v !== undefined && (!IMAGE_FIELD.test(v) || v.length > 32))
        refused.push({
          key: `download.${field}`,
          reason: `${JSON.stringify(v)} is not an image name part (letters, digits, _ and -, dots only between them)`,
        });
    }
  }
  if (p.oci) {
    const why = ociUrlProblem(p.oci.url, policy);
    if (why) refused.push({ key: 'oci.url', reason: why });
  }
  if (refused.length > 0) refuse(refused, 'Template arguments');
}

/** `docker://` registries always; `oci:<dir>/<layout>[:tag]` only inside the host's layout directory. */
function ociUrlProblem(url: string, policy: ConfigPolicy): string | null {
  if (/^docker:\/\/[A-Za-z0-9][A-Za-z0-9._:@/-]{0,511}$/.test(url) && !url.includes('..')) return null;
  if (!url.startsWith('oci:'))
    return 'only docker:// registry URLs (or oci: layouts in the host layout directory) are accepted';
  const dir = policy.ociLayoutDir?.replace(/\/+$/, '');
  if (!dir)
    return 'oci: URLs name host directories; this host accepts registry URLs (docker://) only (LXCQ_OCI_LAYOUT_DIR)';
  const m = /^oci:(.*?)(?::([A-Za-z0-9_.-]{1,128}))?$/.exec(url);
  const path = m?.[1] ?? '';
  const rel = path.startsWith(`${dir}/`) ? path.slice(dir.length + 1) : null;
  if (rel === null || !/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/.test(rel) || rel.includes('..'))
    return `an oci: layout must be a directory directly in ${dir} (LXCQ_OCI_LAYOUT_DIR), named without .. or /`;
  return null;
}

/**
 * Reads an operator's raw-key policy from LXCQ_CONFIG_POLICY: inline JSON (`{"allow": [...]}`) or
 * the path of a file holding it. Throws a plain Error naming what is wrong (a startup error).
 */
export function loadPolicy(
  raw: string | undefined,
  readFile: (path: string) => string,
  host: Partial<Omit<ConfigPolicy, 'allow'>> = {},
): ConfigPolicy {
  const base: ConfigPolicy = {
    allow: [],
    networkTypes: host.networkTypes ?? DEFAULT_NETWORK_TYPES,
    networkLinks: host.networkLinks ?? DEFAULT_NETWORK_LINKS,
    ...(host.ociLayoutDir ? { ociLayoutDir: host.ociLayoutDir } : {}),
  };
  if (!raw) return base;
  const text = raw.trim().startsWith('{') ? raw : readFile(raw);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(
      `LXCQ_CONFIG_POLICY is not valid JSON (${(e as Error).message}); expected {"allow": ["lxc.hook.*", ...]}.`,
    );
  }
  const allow = (parsed as { allow?: unknown } | null)?.allow;
  if (!Array.isArray(allow) || !allow.every((a) => typeof a === 'string')) {
    throw new Error('LXCQ_CONFIG_POLICY must be {"allow": [<key patterns>]}.');
  }
  return { ...base, allow };
}
