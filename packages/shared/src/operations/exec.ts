import Type from 'typebox';
import { defineOperation, object } from './common.ts';

export const exec = defineOperation({
  name: 'exec',
  summary: 'Run a command in a running container and return its exit code and output.',
  payload: object({
    argv: Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 256 }),
    env: Type.Optional(
      Type.Record(
        Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }),
        Type.String({ maxLength: 4096 }),
      ),
    ),
    cwd: Type.Optional(Type.String({ pattern: '^/', maxLength: 1024 })),
    uid: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967294 })),
    gid: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967294 })),
    timeout: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 86400 })),
  }),
  result: object({
    exitCode: Type.Integer(),
    signal: Type.Union([Type.String(), Type.Null()]),
    stdout: Type.String(),
    stderr: Type.String(),
    timedOut: Type.Boolean(),
    truncated: Type.Optional(Type.Boolean()),
  }),
  rerunnable: false,
  confidential: { payload: ['argv', 'env'], result: ['stdout', 'stderr'] },
});
