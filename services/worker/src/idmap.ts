/**
 * What makes a container unprivileged: a user namespace mapping its ids onto root's subordinate
 * range (scripts/setup-host.sh writes root:1000000:1000000000 to /etc/subuid and /etc/subgid), and
 * LXC's own common.conf + userns.conf (seccomp, capability and device rules). lxcq writes these
 * keys itself when it makes a container; they are not client config and the client policy does
 * not apply to them.
 */
import { chmodSync, readFileSync, statSync } from 'node:fs';
import { LxcqError } from '@lxcq/shared';

/** One container's map: the first 65536 ids of root's range, as LXD's default map. Every
 * container shares it, so clones, snapshots and migrations keep their ownership as copied. */
export const IDS_PER_CONTAINER = 65536;

export const COMMON_CONF = '/usr/share/lxc/config/common.conf';
export const USERNS_CONF = '/usr/share/lxc/config/userns.conf';
/** userns.conf empties lxc.cap.drop; these are dropped again for every container (common.conf's
 * list): in a user namespace they grant nothing on the host, and a privileged container needs
 * them gone. */
export const CAP_DROP = 'mac_admin mac_override sys_time sys_module sys_rawio';

export interface IdRange {
  uid: number;
  gid: number;
}

/** The first range of at least `need` ids that `file`'s text gives root (by name or as 0). */
export function rootRange(text: string, need = IDS_PER_CONTAINER): number | null {
  for (const line of text.split('\n')) {
    const m = /^(root|0):(\d+):(\d+)\s*$/.exec(line.trim());
    if (m && Number(m[3]) >= need) return Number(m[2]);
  }
  return null;
}

/** Root's subordinate uid and gid starts, read from the host's files; null where either is missing. */
export function hostIdRange(files = { subuid: '/etc/subuid', subgid: '/etc/subgid' }): IdRange | null {
  const read = (f: string): string => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  const uid = rootRange(read(files.subuid));
  const gid = rootRange(read(files.subgid));
  return uid === null || gid === null ? null : { uid, gid };
}

/**
 * The config lxcq sets on a container before its template runs, so that liblxc runs the template
 * in the user namespace (the rootfs comes out owned by the mapped ids) and the keys lead the
 * saved config, where the template's and the client's lines can still add to them.
 */
export function securityConfig(privileged: boolean, range: IdRange | null, host: string): [string, string][] {
  const out: [string, string][] = [['lxc.include', COMMON_CONF]];
  if (!privileged) {
    if (!range)
      throw new LxcqError(
        'LXCQ_NO_ID_RANGE',
        `Host ${host} has no subordinate id range of ${IDS_PER_CONTAINER} ids for root in /etc/subuid and /etc/subgid, so it cannot make an unprivileged container. Run scripts/setup-host.sh there (it adds root:1000000:1000000000).`,
      );
    out.push(
      ['lxc.include', USERNS_CONF],
      ['lxc.idmap', `u 0 ${range.uid} ${IDS_PER_CONTAINER}`],
      ['lxc.idmap', `g 0 ${range.gid} ${IDS_PER_CONTAINER}`],
    );
  }
  out.push(['lxc.cap.drop', CAP_DROP]);
  return out;
}

/** Whether a container's config makes it privileged: no user namespace, i.e. no lxc.idmap. */
export function isPrivilegedConfig(idmap: string): boolean {
  return idmap.trim() === '';
}

/**
 * Lets the containers' mapped root search `dir` (adds o+x; nothing else): liblxc opens an
 * unprivileged container's rootfs from inside its user namespace, through the lxcpath ("Could not
 * access ... Please grant it x access"). Listing stays refused.
 */
export function letContainerRootsThrough(dir: string): void {
  const mode = statSync(dir).mode & 0o7777;
  if ((mode & 0o001) === 0) chmodSync(dir, mode | 0o001);
}
