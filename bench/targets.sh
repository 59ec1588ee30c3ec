# Sourced by bench/load.sh and bench/profile.sh: builds the release
# binaries (or takes them from $BIN_DIR), serves the newest updates document
# of each stream of $corpus through file:// URLs (stable with a rollout in
# progress on its newest release: started an hour ago, over two days, so
# clients differ), starts the graph-builder (port 18080), the policy-engine
# (18081) and nginx (18088) serving the policy-engine's answer as a file
# (and its gzip form, precompressed), and sets:
#   $work, $query (Zincati's path and query, without node_uuid),
#   $gb, $pe, $nginx_pid (process ids), $size, $gzip_size, $nodes.
# Everything is stopped and removed on exit.
corpus="$(realpath "${corpus:-../shared/corpus}")"
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers run as another user
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${BIN_DIR:-}" ]; then
  cargo build --release --workspace --quiet
fi
bin="${BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}"

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
# POLICY=FILE: the policy-engine runs with that fleet policy in force.
if [ -n "${POLICY:-}" ]; then
  printf '[policy]\npath = "%s"\n' "$(realpath "$POLICY")" >>"$work/pe.toml"
fi
"$bin"/fcos-graph-builder -c "$work/gb.toml" 2>"$work/gb.log" & pids+=($!)
"$bin"/fcos-policy-engine -c "$work/pe.toml" 2>"$work/pe.log" & pids+=($!)
for port in 18090 18091; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done

# A node on an older release that has an x86_64 commit, asking as Zincati
# does (node_uuid is added per request).
read -r os_version os_checksum < <(python3 -c "import json;r=json.load(open('$work/up/stable/releases.json'))['releases'];print(*[(x['version'], c['checksum']) for x in r[-3::-1] for c in (x.get('commits') or []) if c['architecture']=='x86_64'][0])")
query="/v1/graph?basearch=x86_64&stream=stable&os_version=$os_version&os_checksum=$os_checksum&group=default&platform=metal"
curl -sf "http://127.0.0.1:18081$query&node_uuid=0" -o "$work/graph.json"
size=$(stat -c %s "$work/graph.json")
nodes=$(python3 -c "import json;print(len(json.load(open('$work/graph.json'))['nodes']))")

# nginx serves /v1/graph as a file with the very bytes the policy-engine
# answers, and its gzip form precompressed (as the services keep theirs).
mkdir -p "$work/www" "$work/tmp"
cp "$work/graph.json" "$work/www/graph.json"
curl -sf -H 'accept-encoding: gzip' "http://127.0.0.1:18081$query&node_uuid=0" -o "$work/www/graph.json.gz"
gzip_size=$(stat -c %s "$work/www/graph.json.gz")
cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $work/tmp;
  proxy_temp_path $work/tmp;
  fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp;
  scgi_temp_path $work/tmp;
  server {
    listen 127.0.0.1:18088;
    keepalive_requests 1000000;
    location = /v1/graph {
      default_type application/json;
      gzip_static on;
      gzip_vary on;
      alias $work/www/graph.json;
    }
  }
}
NGINX
nginx -c "$work/nginx.conf"
sleep 0.5
cmp <(curl -sf "http://127.0.0.1:18088$query&node_uuid=0") "$work/graph.json"
cmp <(curl -sf -H 'accept-encoding: gzip' "http://127.0.0.1:18088$query&node_uuid=0") "$work/www/graph.json.gz"
gb=${pids[0]}
pe=${pids[1]}
nginx_pid=$(cat "$work/nginx.pid")

# second_policy_engine BIN_DIR NAME: starts BIN_DIR's policy-engine with the
# same configuration on ports 18082 (service) and 18092 (status), logging
# to $work/pe-NAME.log, and waits until it is ready; sets $second (its pid).
second_policy_engine() {
  sed -e 's/^port = 18081$/port = 18082/' -e 's/^port = 18091$/port = 18092/' \
    "$work/pe.toml" >"$work/pe-$2.toml"
  "$1"/fcos-policy-engine -c "$work/pe-$2.toml" 2>"$work/pe-$2.log" & pids+=($!)
  second=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18092/readyz >/dev/null && break; sleep 0.1; done
}
