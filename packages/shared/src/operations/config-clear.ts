import Type from 'typebox';
import { defineOperation, object } from './common.ts';
import { ConfigResult } from './config-set.ts';

export const configClear = defineOperation({
  name: 'config.clear',
  summary: 'Clear config keys (each passing the config-key policy); saved to the container config.',
  payload: object({ keys: Type.Array(Type.String({ maxLength: 128 }), { minItems: 1, maxItems: 256 }) }),
  result: ConfigResult,
});
