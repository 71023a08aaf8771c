/**
 * lxcq's fault suite, in full (`pnpm fault`): the worker SIGKILLed mid-operation, Redis and the API
 * restarted under load, a load run, and a fuzz run of the REST API and the WebSocket, each against
 * real Redis, real containers and real processes. Prints one table: case, runs, jobs submitted,
 * jobs ended definite, jobs lost, orphans found, result and notes. Exits non-zero when any case
 * found a problem (each is listed under the table). Needs root, like the tests.
 *
 *   pnpm fault                            # the full profile, every case
 *   pnpm fault --profile fast             # the bounded profile the vitest run uses
 *   pnpm fault --case fuzz --seed 42      # one case (name prefix), a given seed
 *
 * See docs/fault-suite.md.
 */
import { parseArgs } from 'node:util';
import { CASES } from '../services/api/test/fault/cases/index.ts';
import { table, type CaseResult, type Profile } from '../services/api/test/fault/report.ts';

const { values } = parseArgs({
  options: {
    profile: { type: 'string', default: 'full' },
    case: { type: 'string', multiple: true },
    seed: { type: 'string' },
  },
});
const profile = values.profile as Profile;
if (profile !== 'full' && profile !== 'fast') {
  console.error(`--profile must be full or fast, not ${values.profile}`);
  process.exit(2);
}
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
if (!Number.isInteger(seed)) {
  console.error(`--seed must be a whole number, not ${values.seed}`);
  process.exit(2);
}
const picked = CASES.filter((c) =>
  values.case ? values.case.some((x) => c.key.startsWith(x)) : profile === 'full' || !c.fullOnly,
);
if (picked.length === 0) {
  console.error(`no case matches ${values.case?.join(', ')}; cases: ${CASES.map((c) => c.key).join(', ')}`);
  process.exit(2);
}

const t0 = Date.now();
console.log(`lxcq fault suite: profile ${profile}, seed ${seed} (replay with --seed ${seed})`);
const results: CaseResult[] = [];
for (const c of picked) {
  const started = Date.now();
  console.log(`\n== ${c.key}`);
  const r = await c.run({
    profile,
    seed,
    log: (line) => console.log(`  [${Math.round((Date.now() - started) / 1000)} s] ${line}`),
  });
  results.push(r);
  console.log(
    `   ${r.problems.length === 0 ? 'pass' : `FAIL: ${r.problems.length} problem(s)`} in ${Math.round(r.seconds)} s`,
  );
}
console.log(`\n${table(results)}\n`);
let failed = 0;
for (const r of results) {
  if (r.problems.length === 0) continue;
  failed++;
  console.log(`problems in "${r.name}":`);
  for (const p of r.problems.slice(0, 50)) console.log(`  - ${p}`);
  if (r.problems.length > 50) console.log(`  ... and ${r.problems.length - 50} more`);
}
console.log(
  `fault suite: ${results.length - failed} passed, ${failed} failed (${Math.round((Date.now() - t0) / 1000)} s, seed ${seed})`,
);
process.exit(failed === 0 ? 0 : 1);
