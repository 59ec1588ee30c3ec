#!/usr/bin/env bash
# Start-to-serve at scale: the graph-builder serving a synthetic stream of N
# releases (four basearches, both schemes: eight graphs) through file://
# URLs, timed from the process start to the moment all eight graphs are
# served, against the time --example build_stream takes to build them in
# one process from documents already in memory.
#
#   bench/startup.sh [RELEASES] [RUNS]      (default 100000 releases, 5 runs)
#
# Needs: python3, curl. Ports 18280 and 18290 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
releases="${1:-100000}"
runs="${2:-5}"
work=$(mktemp -d)
gb_pid=
cleanup() {
  [ -n "$gb_pid" ] && kill "$gb_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -p fcos-graph-builder --bin fcos-graph-builder --example build_stream --quiet
bin="${CARGO_TARGET_DIR:-target}/release"
echo "build_stream (one build, documents in memory), then the documents written to $work:"
"$bin/examples/build_stream" "$releases" --write "$work/up"
ls -l "$work/up" | awk 'NR > 1 {printf "  %s %.1f MiB\n", $NF, $5 / 1048576}'

cat > "$work/gb.toml" <<TOML
[service]
address = "127.0.0.1"
port = 18280
[status]
address = "127.0.0.1"
port = 18290
[upstream]
release_index_url = "file://$work/up/releases.json"
updates_url = "file://$work/up/updates.json"
max_body_bytes = 1073741824
refresh_secs = 3600
[streams]
bench = ["x86_64", "aarch64", "ppc64le", "s390x"]
TOML

echo "graph-builder, process start to all eight graphs served ($runs runs):"
for run in $(seq "$runs"); do
  python3 - "$bin/fcos-graph-builder" "$work/gb.toml" <<'PY'
import json, subprocess, sys, time, urllib.request
start = time.monotonic()
gb = subprocess.Popen([sys.argv[1], "-c", sys.argv[2]], stderr=subprocess.DEVNULL)
try:
    served = set()
    scopes = [(arch, oci) for arch in ("x86_64", "aarch64", "ppc64le", "s390x") for oci in ("false", "true")]
    first = None
    while len(served) < len(scopes):
        if gb.poll() is not None:
            sys.exit(f"the graph-builder exited with {gb.returncode}")
        for arch, oci in scopes:
            if (arch, oci) in served:
                continue
            url = f"http://127.0.0.1:18280/v1/graph?stream=bench&basearch={arch}&oci={oci}"
            try:
                with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5) as r:
                    if r.status == 200:
                        served.add((arch, oci))
                        first = first or time.monotonic() - start
            except Exception:
                break
        time.sleep(0.005)
    elapsed = time.monotonic() - start
    rss = next(l.split()[1] for l in open(f"/proc/{gb.pid}/status") if l.startswith("VmHWM"))
    print(f"  start to serving: {elapsed:.3f} s (first graph at {first:.3f} s), peak RSS {int(rss) / 1024:.0f} MiB")
finally:
    gb.terminate()
    gb.wait()
PY
done
