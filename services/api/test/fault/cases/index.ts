import type { CaseOptions, CaseResult } from '../report.ts';
import { apiRestartCase } from './api-restart.ts';
import { fuzzCase } from './fuzz.ts';
import { loadCase } from './load.ts';
import { redisRestartCase } from './redis-restart.ts';
import { workerKillCase } from './worker-kill.ts';

export interface FaultCase {
  key: string;
  run: (o: CaseOptions) => Promise<CaseResult>;
  /** Left out of the fast profile (a variant the full run adds). */
  fullOnly?: boolean;
}

/** Every fault case, in the order the suite runs them. */
export const CASES: FaultCase[] = [
  { key: 'worker-kill', run: workerKillCase },
  // everysec is Redis' default and what scripts/run.sh and docker-compose.yml run
  { key: 'redis-restart', run: (o) => redisRestartCase(o, 'everysec') },
  { key: 'redis-restart-always', run: (o) => redisRestartCase(o, 'always'), fullOnly: true },
  { key: 'api-restart', run: apiRestartCase },
  { key: 'load', run: loadCase },
  { key: 'fuzz', run: fuzzCase },
];
