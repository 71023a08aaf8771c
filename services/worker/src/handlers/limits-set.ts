import type { PayloadOf } from '@lxcq/shared';
import { on, type Handler } from './context.ts';

/** Limits as cgroup v2 config items (lxc.cgroup2.*), the hierarchy liblxc 5 drives here. */
export function limitItems(p: PayloadOf<'limits.set'>): [string, string][] {
  const items: [string, string][] = [];
  if (p.memory !== undefined) items.push(['lxc.cgroup2.memory.max', String(p.memory)]);
  if (p.memorySwap !== undefined) items.push(['lxc.cgroup2.memory.swap.max', String(p.memorySwap)]);
  if (p.cpus !== undefined) items.push(['lxc.cgroup2.cpu.max', `${Math.round(p.cpus * 100_000)} 100000`]);
  if (p.cpuset !== undefined) items.push(['lxc.cgroup2.cpuset.cpus', p.cpuset]);
  if (p.cpuWeight !== undefined) items.push(['lxc.cgroup2.cpu.weight', String(p.cpuWeight)]);
  if (p.pids !== undefined) items.push(['lxc.cgroup2.pids.max', String(p.pids)]);
  return items;
}

export const limitsSet: Handler<'limits.set'> = async (ctx, p) => {
  const items = limitItems(p);
  await ctx.lxc({ fn: 'cgroup', ...on(ctx), items });
  return { limits: Object.fromEntries(items) };
};
