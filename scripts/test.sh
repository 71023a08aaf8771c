#!/usr/bin/env bash
# lxcq's test command (README; CI's .ci/run execs it). Run as root:
#
#   sudo bash scripts/test.sh                 # everything
#   sudo bash scripts/test.sh services/api    # same, vitest limited to matching test files
#
# 1. scripts/setup-host.sh (packages, CRIU, bridge, Node/pnpm, pnpm install); a failure stops here
# 2. pnpm typecheck, pnpm lint, pnpm format:check, pnpm test (vitest from the repo root; the tests
#    start their own redis-server processes and containers, nothing else needs starting)
# Every step of 2 runs even when an earlier one failed, so one run shows every problem; the exit
# status is non-zero when any step failed. The last line is vitest's count, "vitest: N passed, N failed".
#
# Knobs: LXCQ_TEST_SKIP_SETUP=1 skips step 1 (quick re-runs on a machine already set up);
#        LXCQ_TEST_TIMEOUT (seconds, default 3000) bounds the vitest run.
set -Euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT" || exit 1
exec </dev/null

if [[ -t 1 ]]; then
  C_B=$'\e[1m' C_G=$'\e[32m' C_R=$'\e[31m' C_0=$'\e[0m'
else
  C_B='' C_G='' C_R='' C_0=''
  # CI=true makes vitest, pnpm and prettier colour their output even into a file: keep logs plain
  [[ -n ${FORCE_COLOR:-} ]] || export NO_COLOR=1
fi
T0=$SECONDS
WORK="$(mktemp -d /tmp/lxcq-test.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
RESULTS=()
FAILED=()

banner() { printf '\n%s======== %s%s\n' "$C_B" "$*" "$C_0"; }
# run_step NAME TIMEOUT_SECONDS COMMAND...: runs it, records status and duration
run_step() {
  local name="$1" limit="$2" t rc=0
  shift 2
  banner "$name: $*"
  t=$SECONDS
  timeout --kill-after=30 "$limit" "$@" || rc=$?
  t=$((SECONDS - t))
  if [[ $rc -eq 0 ]]; then
    RESULTS+=("$(printf '%-10s %sok%s     %5d s' "$name" "$C_G" "$C_0" "$t")")
    printf '%s-------- %s: ok (%d s)%s\n' "$C_G" "$name" "$t" "$C_0"
  else
    local why="exit $rc"
    [[ $rc -eq 124 || $rc -eq 137 ]] && why="timed out after $limit s"
    RESULTS+=("$(printf '%-10s %sFAILED%s %5d s  (%s)' "$name" "$C_R" "$C_0" "$t" "$why")")
    FAILED+=("$name")
    printf '%s-------- %s: FAILED (%s, %d s)%s\n' "$C_R" "$name" "$why" "$t" "$C_0"
  fi
  return "$rc"
}
summary() {
  banner "lxcq test summary ($(git rev-parse --short HEAD 2>/dev/null || echo '?'), $((SECONDS - T0)) s)"
  local line
  for line in "${RESULTS[@]}"; do printf '  %s\n' "$line"; done
  if [[ ${#FAILED[@]} -eq 0 ]]; then
    printf '%sRESULT: all steps passed%s\n' "$C_G" "$C_0"
  else
    printf '%sRESULT: FAILED: %s%s\n' "$C_R" "${FAILED[*]}" "$C_0"
  fi
}

printf '%slxcq tests%s  %s  commit %s  CI=%s  node %s  kernel %s\n' "$C_B" "$C_0" "$(date -u +%FT%TZ)" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" "${CI:-}" "$(node --version 2>/dev/null || echo none)" "$(uname -r)"
[[ $EUID -eq 0 ]] || printf 'warning: not root: set-up and the container tests need root (sudo bash scripts/test.sh)\n' >&2

# 1. host set-up
if [[ "${LXCQ_TEST_SKIP_SETUP:-0}" == 1 ]]; then
  RESULTS+=("$(printf '%-10s skipped (LXCQ_TEST_SKIP_SETUP=1)' setup)")
elif ! run_step setup 1800 bash scripts/setup-host.sh; then
  summary
  printf 'vitest: 0 passed, 0 failed (not run: host set-up failed)\n'
  exit 1
fi

# 2. checks and tests
run_step typecheck 900 pnpm typecheck
run_step lint 1200 pnpm lint
run_step format 300 pnpm format:check
# vitest's own output for people, plus a JSON report for the count on the last line
VITEST_JSON="$WORK/vitest.json"
run_step test "${LXCQ_TEST_TIMEOUT:-3000}" pnpm test --reporter=default --reporter=json \
  --outputFile.json="$VITEST_JSON" "$@"

summary
# shellcheck disable=SC2016 # JavaScript, not shell
COUNT="$(node -e '
  const fs = require("node:fs");
  try {
    const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    console.log(`${r.numPassedTests ?? 0} passed, ${r.numFailedTests ?? 0} failed, ${skipped} skipped`);
  } catch {
    console.log("0 passed, 0 failed (vitest wrote no report)");
  }
' "$VITEST_JSON" 2>/dev/null || echo '0 passed, 0 failed (no report)')"
printf 'vitest: %s\n' "$COUNT"
[[ ${#FAILED[@]} -eq 0 ]]
