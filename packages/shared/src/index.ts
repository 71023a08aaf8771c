export * from './errors.ts';
export * from './names.ts';
export * from './policy.ts';
export * from './operations/index.ts';
export * from './job.ts';
export * from './events.ts';
export * from './keys.ts';
export * from './auth.ts';
