#!/usr/bin/env bash
# A/B of two builds of the policy-engine: this checkout's release build and
# the one in OTHER_BIN_DIR follow the same graph-builder and answer the same
# requests (Zincati's, bench/zincati.lua) in the same interleaved rounds
# (bench/rounds.py), the other build as the baseline: the ratios printed
# are this build's to the other's, taken within each round, so a change of
# a few percent shows through the machine's drift that separate runs of
# bench/load.sh cannot tell from it.
#
#   bench/ab.sh OTHER_BIN_DIR [CORPUS_DIR] [DURATION]
#   ROUNDS=5 MODES=keep-alive,close (the defaults: rounds.py's)
#
# OTHER_BIN_DIR holds a fcos-policy-engine binary (a release build of
# another commit: `git worktree add /tmp/other COMMIT`, then
# `CARGO_TARGET_DIR=/tmp/other-target cargo build --release` there).
# Needs what bench/load.sh needs; ports 18080-18092.
set -euo pipefail
cd "$(dirname "$0")/.."
other="$(realpath "$1")"
corpus="${2:-../shared/corpus}"
duration="${3:-5s}"
source bench/targets.sh

second_policy_engine "$other" other
other_pid=$second
cmp <(curl -sf "http://127.0.0.1:18081$query&node_uuid=0") <(curl -sf "http://127.0.0.1:18082$query&node_uuid=0") ||
  echo "warning: the two builds answer different bytes" >&2
echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); rustc processes running: $(pgrep -c rustc || true)"
python3 bench/rounds.py --rounds "${ROUNDS:-5}" --duration "$duration" \
  --threads 2 --connections 32 --query "${query#*\?}" ${MODES:+--modes "$MODES"} \
  --target "other=18082:$other_pid" --target "this=18081:$pe"
