#!/usr/bin/env bash
# Throughput of the policy-engine with a million nodes tracked against the
# same binary with its tracker (nearly) empty: two policy-engines reading
# one graph-builder, one of them filled first with NODES distinct nodes,
# then interleaved wrk rounds of Zincati's requests against both (the
# empty one is the baseline of bench/rounds.py: its per-round ratios are
# printed). The requests' node_uuids are drawn among the filled nodes, so
# the filled tracker stays at NODES (no node is added, none evicted); the
# empty one tracks only the 2 × 4,096 nodes of wrk's request pools.
#
#   bench/tracked.sh [CORPUS_DIR] [DURATION]        e.g. bench/tracked.sh ../shared/corpus 5s
#   ROUNDS=5 NODES=1000000 MODES=keep-alive (the defaults)
#
# Also prints the resident memory of both processes once filled. Run it on
# a quiet machine. Needs what bench/load.sh needs; ports 18080-18092.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${1:-../shared/corpus}"
duration="${2:-5s}"
nodes_wanted="${NODES:-1000000}"
source bench/targets.sh

second_policy_engine "$bin" full
full=$second

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
tracked() {
  curl -sf "http://127.0.0.1:$1/v1/rollouts" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tracked_nodes"])'
}
echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); rustc processes running: $(pgrep -c rustc || true)"
echo "before the fill: RSS empty $(rss "$pe") kB, to be filled $(rss "$full") kB"

# The fill: every node once (and again from the start if time is left),
# until an evaluation (every 15 s) counts them all.
fill_start=$(date +%s)
for attempt in 1 2 3 4 5; do
  BENCH_QUERY="${query#*\?}" BENCH_HOST=127.0.0.1:18082 BENCH_FILL="$nodes_wanted" BENCH_THREADS=2 \
    wrk -t2 -c32 -d30s -s bench/zincati.lua http://127.0.0.1:18082 | grep RESULT
  sleep 16
  now_tracked=$(tracked 18092)
  echo "fill $attempt: $now_tracked nodes tracked"
  [ "$now_tracked" -ge "$nodes_wanted" ] && break
done
echo "filled in $(( $(date +%s) - fill_start )) s: RSS empty $(rss "$pe") kB, filled $(rss "$full") kB"
echo "evicted: $(curl -sf http://127.0.0.1:18092/metrics | grep '^fcos_cincinnati_pe_rollout_evicted_total' || true)"

BENCH_NODES="$nodes_wanted" python3 bench/rounds.py --rounds "${ROUNDS:-5}" --duration "$duration" \
  --threads 2 --connections 32 --query "${query#*\?}" --modes "${MODES:-keep-alive}" \
  --target "empty=18081:$pe" --target "tracked-${nodes_wanted}=18082:$full"
echo "after the rounds: tracked $(tracked 18091) and $(tracked 18092); RSS empty $(rss "$pe") kB, filled $(rss "$full") kB"
