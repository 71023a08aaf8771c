import Type from 'typebox';
import { defineOperation, object } from './common.ts';

export const ConfigResult = object({ config: Type.Record(Type.String(), Type.String()) });

export const configSet = defineOperation({
  name: 'config.set',
  summary: 'Set (and clear) config keys, each passing the config-key policy; saved to the container config.',
  payload: object({
    set: Type.Optional(Type.Record(Type.String({ maxLength: 128 }), Type.String({ maxLength: 4096 }))),
    clear: Type.Optional(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 256 })),
  }),
  result: ConfigResult,
});
