import Type from 'typebox';
import { defineOperation, object } from './common.ts';

export const checkpoint = defineOperation({
  name: 'checkpoint',
  summary:
    "Dump a running container's processes with CRIU (refused with LXCQ_CRIU_UNAVAILABLE on hosts without a working CRIU).",
  payload: object({ stop: Type.Optional(Type.Boolean()) }),
  result: object({ checkpoint: Type.String(), stopped: Type.Boolean() }),
});
