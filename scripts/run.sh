#!/usr/bin/env bash
# lxcq's run command (README): set up this host, then run lxcq on it in the foreground:
#
#   sudo bash scripts/run.sh
#
# 1. scripts/setup-host.sh (packages, CRIU, bridge, Node/pnpm, pnpm install; LXCQ_RUN_SKIP_SETUP=1 skips it)
# 2. scripts/local.ts: a Redis of its own (unless LXCQ_REDIS_URL is set), the API and one worker;
#    prints the URL and the admin token once GET /v1/health answers. Ctrl-C stops it all.
# Configuration: the LXCQ_* environment variables in the README (sudo -E, or `sudo LXCQ_PORT=8080 bash ...`).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
[[ $EUID -eq 0 ]] || {
  echo "run as root (sudo bash scripts/run.sh): the worker drives liblxc, which needs root" >&2
  exit 1
}
if [[ "${LXCQ_RUN_SKIP_SETUP:-0}" != 1 ]]; then
  bash scripts/setup-host.sh
fi
printf '\n==> starting lxcq (scripts/local.ts)\n'
# `node --import tsx` rather than `pnpm exec tsx`: one process that gets the signals itself and
# stays in the foreground until everything has stopped (pnpm exec returns at once on Ctrl-C).
exec node --import tsx scripts/local.ts
