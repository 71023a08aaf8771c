import { LxcqError } from './errors.ts';

/**
 * The config-key policy. Every config item a client sends (create's config, config.set) passes
 * through here, in the API before it is queued and again in the worker before liblxc sees it.
 * Keys that would let a client act as root on the host are refused unless the operator's admin
 * policy names them in `allow`: a hook runs a command as root on the host, a host mount or an
 * idmap change exposes host files, unconfined AppArmor or kept capabilities escape confinement.
 */
export interface ConfigPolicy {
  /** Key patterns an operator allows despite the rules below; `*` matches any run of characters. */
  allow: readonly string[];
}

export const DEFAULT_POLICY: ConfigPolicy = { allow: [] };

interface Rule {
  key: RegExp;
  /** When set, the key is refused only for values this returns true for. */
  value?: (value: string) => boolean;
  reason: string;
}

const HOST_PATH = /^\s*\//;
const RULES: readonly Rule[] = [
  { key: /^lxc\.hook\./, reason: 'hooks run commands as root on the host' },
  { key: /^lxc\.net\.\d+\.script\./, reason: 'network scripts run as root on the host' },
  {
    key: /^lxc\.net\.\d+\.type$/,
    value: (v) => v.trim() === 'phys',
    reason: 'a phys network moves a host interface into the container',
  },
  {
    key: /^lxc\.mount\.entry$/,
    value: (v) => HOST_PATH.test(v),
    reason: 'a mount entry with an absolute source exposes host paths',
  },
  { key: /^lxc\.mount\.fstab$/, reason: 'an fstab names host paths' },
  {
    key: /^lxc\.mount\.auto$/,
    value: (v) => /:rw\b|cgroup-full|\bsys:mixed/.test(v),
    reason: 'writable proc/sys/cgroup mounts let the container change the host',
  },
  {
    key: /^lxc\.apparmor\./,
    value: (v) => /unconfined/.test(v),
    reason: 'unconfined AppArmor disables confinement',
  },
  {
    key: /^lxc\.apparmor\.(raw|allow_incomplete)$/,
    reason: 'raw or incomplete AppArmor profiles weaken confinement',
  },
  { key: /^lxc\.seccomp\./, reason: 'seccomp changes can remove the syscall filter' },
  { key: /^lxc\.selinux\./, reason: 'SELinux context changes can remove confinement' },
  { key: /^lxc\.cap\./, reason: 'capability changes can grant host-level privileges' },
  { key: /^lxc\.idmap$/, reason: 'idmap changes remap container users onto host users' },
  { key: /^lxc\.rootfs\./, reason: 'the rootfs path is a host path managed by lxcq' },
  { key: /^lxc\.include$/, reason: 'includes read arbitrary host files' },
  { key: /^lxc\.namespace\./, reason: 'sharing or keeping namespaces joins the host namespaces' },
  { key: /^lxc\.cgroup2?\.devices\./, reason: 'device access rules can expose host devices' },
  {
    key: /^lxc\.(log\.file|console\.logfile|console\.path|console\.buffer\.logfile)$/,
    reason: 'these write to host paths',
  },
  { key: /^lxc\.sysctl\./, reason: 'some sysctls are global to the host' },
  { key: /^lxc\.keyring\./, reason: 'keyring settings touch the host kernel keyring' },
  {
    key: /^lxc\.(cgroup\.dir|cgroup\.relative|cgroup\.dir\.container|cgroup\.dir\.monitor)/,
    reason: 'cgroup placement escapes lxcq-managed limits',
  },
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

export function checkConfigItem(
  key: string,
  value: string,
  policy: ConfigPolicy = DEFAULT_POLICY,
): PolicyDecision {
  if (!KEY_RE.test(key) || key.length > 128)
    return { allowed: false, reason: 'not a well-formed lxc config key' };
  // A newline would let one value smuggle more config lines into the file liblxc writes.
  if (/[\n\r\0]/.test(value)) return { allowed: false, reason: 'values may not contain newlines or NUL' };
  if (value.length > 4096) return { allowed: false, reason: 'value longer than 4096 characters' };
  const rule = RULES.find((r) => r.key.test(key) && (r.value === undefined || r.value(value)));
  if (!rule) return { allowed: true };
  if (policy.allow.some((p) => globToRegExp(p).test(key))) return { allowed: true };
  return { allowed: false, reason: rule.reason };
}

/** Throws LXCQ_CONFIG_KEY_FORBIDDEN naming every refused key, so a client fixes all at once. */
export function assertConfigAllowed(
  items: Readonly<Record<string, string>> | readonly (readonly [string, string])[],
  policy: ConfigPolicy = DEFAULT_POLICY,
): void {
  const entries = Array.isArray(items) ? items : Object.entries(items);
  const refused: { key: string; reason: string }[] = [];
  for (const [key, value] of entries as (readonly [string, string])[]) {
    const d = checkConfigItem(key, value, policy);
    if (!d.allowed) refused.push({ key, reason: d.reason ?? 'refused' });
  }
  if (refused.length > 0) {
    throw new LxcqError(
      'LXCQ_CONFIG_KEY_FORBIDDEN',
      `Config refused by policy: ${refused.map((r) => `${r.key} (${r.reason})`).join('; ')}.`,
      { details: { refused } },
    );
  }
}

/** Keys that may be cleared: clearing a hook is harmless, but the key must still be well-formed. */
export function assertClearableKeys(keys: readonly string[], policy: ConfigPolicy = DEFAULT_POLICY): void {
  // Clearing lxc.rootfs.*, lxc.idmap or the seccomp/apparmor profile changes confinement too.
  assertConfigAllowed(
    keys.map((k) => [k, ''] as const),
    policy,
  );
}

/**
 * Reads an operator's policy from LXCQ_CONFIG_POLICY: inline JSON (`{"allow": [...]}`) or the path
 * of a file holding it. Throws a plain Error naming what is wrong (a startup error, not a 4xx).
 */
export function loadPolicy(raw: string | undefined, readFile: (path: string) => string): ConfigPolicy {
  if (!raw) return DEFAULT_POLICY;
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
  return { allow: allow };
}
