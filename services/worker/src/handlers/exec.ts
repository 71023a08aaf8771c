import { on, type Handler } from './context.ts';

export const exec: Handler<'exec'> = async (ctx, p) =>
  ctx.lxc({
    fn: 'exec',
    ...on(ctx),
    argv: p.argv,
    maxOutputBytes: ctx.maxExecOutputBytes,
    ...(p.env ? { env: p.env } : {}),
    ...(p.cwd ? { cwd: p.cwd } : {}),
    ...(p.uid !== undefined ? { uid: p.uid } : {}),
    ...(p.gid !== undefined ? { gid: p.gid } : {}),
    ...(p.timeout !== undefined ? { timeoutMs: Math.round(p.timeout * 1000) } : {}),
  });
