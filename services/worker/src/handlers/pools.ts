import type { Handler } from './context.ts';

/** Pool jobs run on the pool's host; the pool manager does the work and publishes the result. */
export const poolCreate: Handler<'pool.create'> = async (ctx, p) => {
  await ctx.progress(10, p.size !== undefined ? 'making and mounting the loop file' : 'checking the path');
  try {
    return await ctx.pools.create(p, ctx.attempt > 1);
  } finally {
    await ctx.publishPools();
  }
};

export const poolDelete: Handler<'pool.delete'> = async (ctx, p) => {
  try {
    return await ctx.pools.delete(p.name);
  } finally {
    await ctx.publishPools();
  }
};
