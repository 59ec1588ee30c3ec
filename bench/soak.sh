#!/usr/bin/env bash
# Soak run: several minutes of load on the policy-engine (and some on the
# graph-builder) while the upstream updates metadata switches between two
# versions every second and both services refresh every second. Reports
# errors, responses mixing the two versions (there must be none), and the
# memory of both services every 30 seconds.
#
#   bench/soak.sh [DURATION_SECONDS]     (default 300)
#
# Uses the sample data set of dist/sample; needs wrk. Ports 18180-18191.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cargo build --release --workspace --quiet
bin="${CARGO_TARGET_DIR:-target}/release"

# Two versions of the stable updates metadata, differing only in the
# barrier and dead-end reasons: each response must be all A or all B.
mkdir -p "$work/up/stable"
cp dist/sample/stable/releases.json "$work/up/stable/releases.json"
for v in A B; do
  sed -e "s|https://github.com/coreos/fedora-coreos-tracker/issues/480|soak-$v|" \
      -e "s|https://github.com/coreos/fedora-coreos-tracker/issues/1001|soak-$v|" \
      dist/sample/stable/updates.json > "$work/updates-$v.json"
done
cp "$work/updates-A.json" "$work/up/stable/updates.json"

cat > "$work/gb.toml" <<TOML
[service]
address = "127.0.0.1"
port = 18180
[status]
address = "127.0.0.1"
port = 18190
[upstream]
release_index_url = "file://$work/up/\${stream}/releases.json"
updates_url = "file://$work/up/\${stream}/updates.json"
refresh_secs = 1
[streams]
stable = ["x86_64", "aarch64"]
TOML
cat > "$work/pe.toml" <<TOML
[service]
address = "127.0.0.1"
port = 18181
[status]
address = "127.0.0.1"
port = 18191
[upstream]
graph_url = "http://127.0.0.1:18180/v1/graph"
refresh_secs = 1
TOML
"$bin"/fcos-graph-builder -v -c "$work/gb.toml" 2>"$work/gb.log" & pids+=($!); gb=$!
"$bin"/fcos-policy-engine -c "$work/pe.toml" 2>"$work/pe.log" & pids+=($!); pe=$!
# Both ready: the policy-engine answers 503 until it holds the graphs.
for port in 18190 18191; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done

# Switch versions every second (an atomic rename, as a publisher would).
(
  v=A
  while true; do
    v=$([ "$v" = A ] && echo B || echo A)
    cp "$work/updates-$v.json" "$work/up/stable/updates.tmp"
    mv "$work/up/stable/updates.tmp" "$work/up/stable/updates.json"
    sleep 1
  done
) & pids+=($!)

# Memory every 30 seconds.
(
  while true; do
    printf 'rss_kib t=%ss graph-builder=%s policy-engine=%s\n' "$SECONDS" \
      "$(awk '/VmRSS/ {print $2}' /proc/$gb/status)" "$(awk '/VmRSS/ {print $2}' /proc/$pe/status)"
    sleep 30
  done
) & pids+=($!)

query="/v1/graph?basearch=x86_64&stream=stable&os_version=x&os_checksum=y&group=default&platform=metal"
BENCH_PATH="$query" wrk -t2 -c32 -d"${seconds}s" -s bench/soak.lua "http://127.0.0.1:18181" | grep RESULT | sed 's/^RESULT/policy-engine:/' &
wrk_pe=$!
BENCH_PATH="/v1/graph?basearch=x86_64&stream=stable" wrk -t1 -c4 -d"${seconds}s" -s bench/soak.lua "http://127.0.0.1:18180" | grep RESULT | sed 's/^RESULT/graph-builder:/' &
wrk_gb=$!
wait "$wrk_pe" "$wrk_gb"
printf 'rss_kib end graph-builder=%s policy-engine=%s\n' \
  "$(awk '/VmRSS/ {print $2}' /proc/$gb/status)" "$(awk '/VmRSS/ {print $2}' /proc/$pe/status)"
echo "graph-builder refreshes published: $(grep -c 'published new graphs' "$work/gb.log" || true); scrapes: $(curl -s http://127.0.0.1:18190/metrics | awk '/^fcos_cincinnati_gb_scraper_upstream_scrapes_total/ {print $2}')"
