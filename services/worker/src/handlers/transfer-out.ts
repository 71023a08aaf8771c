import { LxcqError, type HostInfo } from '@lxcq/shared';
import { resolveDir, sendContainer, type ReceiveReply, type TransferMode } from '../transfer.ts';
import type { HandlerContext } from './context.ts';

/** The target host of a move or cross-host clone, checked: registered, online, not draining, reachable. */
export async function targetHost(
  ctx: HandlerContext,
  id: string,
  opts: { criu?: boolean },
): Promise<TransferTarget> {
  if (id === ctx.host)
    throw new LxcqError('LXCQ_VALIDATION', `The container is on host ${id} already; pick another host.`);
  const h = await ctx.store.getHost(id, ctx.hostOfflineMs);
  if (!h) throw new LxcqError('LXCQ_HOST_NOT_FOUND', `No host ${id} has registered.`);
  if (h.status === 'offline')
    throw new LxcqError('LXCQ_HOST_OFFLINE', `Host ${id} is offline (last seen ${h.lastSeen}).`);
  if (h.status === 'draining')
    throw new LxcqError('LXCQ_HOST_DRAINING', `Host ${id} is draining and takes no new containers.`);
  if (!h.transfer || !h.transferCert || !h.transferFingerprint)
    throw new LxcqError(
      'LXCQ_NOT_IMPLEMENTED',
      `Host ${id} runs a worker without a TLS transfer server; upgrade it to move containers there.`,
    );
  if (opts.criu) {
    const here = await ctx.lxc({ fn: 'hostInfo', lxcpath: ctx.lxcpath });
    if (!here.criu)
      throw new LxcqError(
        'LXCQ_CRIU_UNAVAILABLE',
        `Host ${ctx.host} cannot dump for a live migration: ${here.criuMessage}. Run scripts/setup-host.sh to install CRIU 4.`,
      );
    if (!h.capabilities.criu)
      throw new LxcqError(
        'LXCQ_CRIU_UNAVAILABLE',
        `Host ${id} cannot restore a live migration: ${h.capabilities.criuMessage ?? 'no CRIU'}.`,
      );
  }
  return {
    ...h,
    transfer: h.transfer,
    transferCert: h.transferCert,
    transferFingerprint: h.transferFingerprint,
  };
}

/** A host that can take a container: its transfer address and the certificate it must show. */
export type TransferTarget = HostInfo & {
  transfer: string;
  transferCert: string;
  transferFingerprint: string;
};

/**
 * Streams a container's directory to `to` and has it registered there. On failure, tells what
 * happened: `owned` true when the target took the container after all (its answer was lost).
 */
export async function transferTo(
  ctx: HandlerContext,
  to: TransferTarget,
  o: { id?: string; name: string; newName: string; mode: TransferMode; checkpoint?: string },
): Promise<
  | { ok: true; reply: ReceiveReply; bytes: number }
  | { ok: false; owned: boolean; unsure: boolean; error: LxcqError }
> {
  let last = 0;
  const r = await sendContainer({
    redis: ctx.redis,
    keys: ctx.keys,
    address: to.transfer,
    identity: ctx.transferIdentity,
    peer: { cert: to.transferCert, fingerprint: to.transferFingerprint },
    idleMs: ctx.transferIdleMs,
    ...(o.id ? { id: o.id } : {}),
    grant: {
      job: ctx.job.id,
      mode: o.mode,
      from: ctx.host,
      to: to.id,
      name: o.name,
      srcDir: resolveDir(ctx.lxcpath, o.name),
      newName: o.newName,
      ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}),
      ...(ctx.who.admin ? { admin: true } : {}),
    },
    onProgress: (sent, total) => {
      const now = Date.now();
      if (now - last < 250) return;
      last = now;
      const pct = total > 0 ? Math.min(1, sent / total) : 1;
      void ctx.progress(20 + pct * 60, `sent ${sent} of ~${total} bytes to ${to.id}`).catch(() => undefined);
    },
  });
  if (r.ok) return r;
  const error = new LxcqError(
    r.error.code,
    r.error.message,
    r.error.details ? { details: r.error.details } : {},
  );
  return { ok: false, owned: r.outcome === 'done', unsure: r.outcome === 'restoring', error };
}
