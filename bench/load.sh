#!/usr/bin/env bash
# Load benchmark: the policy-engine and the graph-builder against nginx
# serving a file of the same size, with the same load tool (wrk), the same
# connection count, keep-alive and Connection: close.
#
#   bench/load.sh [CORPUS_DIR] [DURATION]
#
# CORPUS_DIR holds <stream>/releases.json and <stream>/updates/*.json (the
# newest updates document of each stream is served); default ../shared/corpus.
# The stable updates document gets a rollout in progress on its newest
# release (started an hour ago, over two days), so clients differ.
# Needs: wrk, nginx, python3. Ports 18080-18091 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="$(realpath "${1:-../shared/corpus}")"
duration="${2:-15s}"
connections=32
threads=2
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers run as another user
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --workspace --quiet
bin="${CARGO_TARGET_DIR:-target}/release"

# Upstream documents: the newest of each stream, stable with a live rollout.
for stream in stable testing next; do
  mkdir -p "$work/up/$stream"
  ln -s "$corpus/$stream/releases.json" "$work/up/$stream/releases.json"
  latest=$(ls "$corpus/$stream/updates/" | sort | tail -1)
  python3 - "$corpus/$stream/updates/$latest" "$work/up/$stream/updates.json" "$stream" <<'PY'
import json, sys, time
doc = json.load(open(sys.argv[1]))
if sys.argv[3] == "stable":
    releases = json.load(open(sys.argv[1].rsplit("/updates/", 1)[0] + "/releases.json"))["releases"]
    newest = releases[-1]["version"]
    doc["releases"] = [r for r in doc["releases"] if r["version"] != newest]
    doc["releases"].append({"version": newest, "metadata": {"rollout": {
        "start_epoch": int(time.time()) - 3600, "start_percentage": 0.0, "duration_minutes": 2880}}})
json.dump(doc, open(sys.argv[2], "w"))
PY
done

cat > "$work/gb.toml" <<TOML
[service]
address = "127.0.0.1"
port = 18080
[status]
address = "127.0.0.1"
port = 18090
[upstream]
release_index_url = "file://$work/up/\${stream}/releases.json"
updates_url = "file://$work/up/\${stream}/updates.json"
TOML
cat > "$work/pe.toml" <<TOML
[service]
address = "127.0.0.1"
port = 18081
[status]
address = "127.0.0.1"
port = 18091
[upstream]
graph_url = "http://127.0.0.1:18080/v1/graph"
TOML
"$bin"/fcos-graph-builder -c "$work/gb.toml" 2>"$work/gb.log" & pids+=($!)
"$bin"/fcos-policy-engine -c "$work/pe.toml" 2>"$work/pe.log" & pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:18090/readyz >/dev/null && break; sleep 0.1; done

# A node on an older release that has an x86_64 commit.
os_checksum=$(python3 -c "import json;r=json.load(open('$work/up/stable/releases.json'))['releases'];print([c['checksum'] for x in r[-3::-1] for c in (x.get('commits') or []) if c['architecture']=='x86_64'][0])")
query="/v1/graph?basearch=x86_64&stream=stable&os_version=x&os_checksum=$os_checksum&group=default&platform=metal"
curl -sf "http://127.0.0.1:18081$query&node_uuid=0" -o "$work/graph.json"
size=$(stat -c %s "$work/graph.json")
nodes=$(python3 -c "import json;print(len(json.load(open('$work/graph.json'))['nodes']))")

mkdir -p "$work/www"
cp "$work/graph.json" "$work/www/graph.json"
cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  default_type application/json;
  client_body_temp_path $work/tmp;
  proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp;
  scgi_temp_path $work/tmp;
  server { listen 127.0.0.1:18088; root $work/www; keepalive_requests 1000000; }
}
NGINX
mkdir -p "$work/tmp"
nginx -c "$work/nginx.conf"
sleep 0.5

rounds="${ROUNDS:-3}"
echo "graph: stable/x86_64 checksum, $nodes nodes, $size bytes; wrk -t$threads -c$connections -d$duration, $rounds rounds"
run() { # name port path connection-header
  local out
  out=$(BENCH_PATH="$3" wrk -t$threads -c$connections -d"$duration" -s bench/zincati.lua ${4:+-H "Connection: close"} "http://127.0.0.1:$2" | grep RESULT)
  printf '%-28s %s\n' "$1" "${out#RESULT }" | tee -a "$work/results"
}
for round in $(seq "$rounds"); do
  for mode in "" close; do
    label=${mode:-keep-alive}
    run "nginx ($label)" 18088 "" "$mode"
    run "policy-engine ($label)" 18081 "$query" "$mode"
    run "graph-builder ($label)" 18080 "/v1/graph?basearch=x86_64&stream=stable" "$mode"
  done
done
python3 - "$work/results" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rest = line[:28].strip(), line[28:]
    fields = dict(kv.split("=") for kv in rest.split())
    rows.setdefault(name, []).append(fields)
print("\nmedians over rounds:")
print(f"{'target':28} {'req/s':>8} {'p99 ms':>7} {'errors':>6}  vs nginx")
for mode in ["keep-alive", "close"]:
    base = rows[f"nginx ({mode})"]
    base_rps = statistics.median(float(r["rps"]) for r in base)
    base_p99 = statistics.median(float(r["p99_ms"]) for r in base)
    for target in ["nginx", "policy-engine", "graph-builder"]:
        rs = rows[f"{target} ({mode})"]
        rps = statistics.median(float(r["rps"]) for r in rs)
        p99 = statistics.median(float(r["p99_ms"]) for r in rs)
        errors = sum(int(r["errors"]) + int(r["non2xx"]) for r in rs)
        print(f"{target + ' (' + mode + ')':28} {rps:8.0f} {p99:7.2f} {errors:6d}  {rps / base_rps:.2f}x req/s, {p99 / base_p99:.2f}x p99")
PY
for name in graph-builder policy-engine; do
  pid=$(pgrep -f "fcos-$name -c $work" | head -1)
  echo "$name RSS after load: $(awk '/VmRSS/ {print $2 " " $3}' /proc/$pid/status)"
done
