export * from './tracing.ts';
export * from './metrics-server.ts';
export * from './request-id.ts';
export * from './redis-log.ts';
