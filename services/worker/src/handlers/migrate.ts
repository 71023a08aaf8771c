import { LxcqError } from '@lxcq/shared';
import type { Handler } from './context.ts';

export const migrate: Handler<'migrate'> = () =>
  Promise.reject(
    new LxcqError(
      'LXCQ_NOT_IMPLEMENTED',
      'Migration between hosts is not available in this version of lxcq.',
    ),
  );
