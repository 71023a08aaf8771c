import { on, type Handler } from './context.ts';

/**
 * What a command finds in its environment besides the request's `env`. liblxc starts it from an
 * empty one (LXC_ATTACH_CLEAR_ENV): nothing of the worker's own environment reaches a container.
 * Its output goes to files, not a terminal, hence TERM=dumb.
 */
const EXEC_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  TERM: 'dumb',
} as const;

export const exec: Handler<'exec'> = async (ctx, p) =>
  ctx.lxc({
    fn: 'exec',
    ...on(ctx),
    argv: p.argv,
    maxOutputBytes: ctx.maxExecOutputBytes,
    env: { ...EXEC_ENV, HOME: p.uid === undefined || p.uid === 0 ? '/root' : '/', ...p.env },
    ...(p.cwd ? { cwd: p.cwd } : {}),
    ...(p.uid !== undefined ? { uid: p.uid } : {}),
    ...(p.gid !== undefined ? { gid: p.gid } : {}),
    ...(p.timeout !== undefined ? { timeoutMs: Math.round(p.timeout * 1000) } : {}),
  });
