#!/usr/bin/env bash
# Load benchmark: the policy-engine and the graph-builder against nginx
# serving the same bytes from a file, with the same load tool, requests and
# connection count: keep-alive and Connection: close, identity and gzip.
#
#   bench/load.sh [CORPUS_DIR] [DURATION]        e.g. bench/load.sh ../shared/corpus 5s
#   ROUNDS=5 MODES=keep-alive,close,keep-alive+gzip,close+gzip (the defaults)
#
# CORPUS_DIR holds <stream>/releases.json and <stream>/updates/*.json (the
# newest updates document of each stream is served); default ../shared/corpus.
# The stable updates document gets a rollout in progress on its newest
# release (started an hour ago, over two days), so clients differ.
#
# wrk (bench/zincati.lua) sends Zincati's requests (its query parameters and
# headers, a different node_uuid each), prepared once per thread. The rounds
# are interleaved (bench/rounds.py): the ratio to nginx is taken within each
# round, and the medians over the rounds are printed, with the CPU time per
# request of wrk and of each target, and a warning for every run that wrk
# itself, other processes or anything but the CPU may have limited.
# Run it on a quiet machine (no compilation going on).
# Needs: wrk, nginx, python3, curl. Ports 18080-18091 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${1:-../shared/corpus}"
duration="${2:-5s}"
connections=32
threads=2
source bench/targets.sh

echo "graph: stable/x86_64 checksum, $nodes nodes, $size bytes ($gzip_size gzip); rollout in progress on the newest release"
echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); rustc processes running: $(pgrep -c rustc || true)"
# A short warm-up of every target, every mode (views and gzip bodies built).
python3 bench/rounds.py --rounds 1 --duration 1s --query "${query#*\?}" \
  --target "nginx=18088:^$nginx_pid" --target "policy-engine=18081:$pe" \
  --target "graph-builder=18080:$gb" >/dev/null
python3 bench/rounds.py --rounds "${ROUNDS:-5}" --duration "$duration" \
  --threads "$threads" --connections "$connections" --query "${query#*\?}" \
  ${MODES:+--modes "$MODES"} \
  --target "nginx=18088:^$nginx_pid" --target "policy-engine=18081:$pe" \
  --target "graph-builder=18080:$gb"
for name in graph-builder:$gb policy-engine:$pe; do
  echo "${name%:*} after the load: $(awk '/VmRSS/ {print "RSS " $2 " " $3} /VmHWM/ {print "peak " $2 " " $3}' /proc/${name#*:}/status | paste -sd' ')"
done
