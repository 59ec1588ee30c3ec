#!/usr/bin/env bash
# The policy-engine's memory when anonymous clients take all they can, one
# after the other, and the memory then held, against the budget of
# docs/deploy.md (each part bounded by its key, at the defaults):
#   1. NODES distinct nodes (default 1,000,000) poll from a release of the
#      graph: the rollout tracker fills to rollouts.max_nodes;
#   2. every (stream, basearch, scheme, group, platform) a client can name,
#      with a fleet policy of 40 groups each with a target rule, each
#      request with its own node: views of every group of every graph
#      (cache.max_bytes) and census series of every (stream, group,
#      platform) (census.max_group_series);
#   3. 256 connections each pipelining 200 requests without reading the
#      answers (service.max_connections: a quarter of a memory limit, none
#      here, so 256 are opened).
# Prints VmRSS and VmHWM after each step, and what each part holds.
#
#   bench/memory.sh [CORPUS_DIR]       NODES=1000000 (the default)
# Needs: wrk, python3, curl. Ports 18080-18091 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${1:-../shared/corpus}"
nodes_wanted="${NODES:-1000000}"
policy=$(mktemp)
for g in $(seq 0 39); do printf '[groups.g%s]\ndeny = ["0.%s"]\n' "$g" "$g"; done >"$policy"
POLICY="$policy" source bench/targets.sh
trap 'cleanup; rm -f "$policy"' EXIT
memory() { awk '/VmRSS/ {r=$2} /VmHWM/ {h=$2} END {printf "RSS %.1f MiB, peak %.1f MiB", r/1024, h/1024}' "/proc/$pe/status"; }
metric() { curl -sf http://127.0.0.1:18091/metrics | awk -v m="$1" '$1 == m {print $2}'; }
echo "started, 24 graphs followed: $(memory)"

BENCH_QUERY="${query#*\?}" BENCH_HOST=127.0.0.1:18081 BENCH_FILL="$nodes_wanted" BENCH_THREADS=2 \
  wrk -t2 -c32 -d30s -s bench/zincati.lua http://127.0.0.1:18081 | grep RESULT
sleep 16  # the tracker's count is updated every 15 s
echo "1. $(metric fcos_cincinnati_pe_rollout_tracked_nodes) nodes tracked: $(memory)"

python3 - "$work/paths" <<'PY'
import sys
platforms = ["akamai", "aliyun", "applehv", "aws", "azure", "azurestack", "digitalocean",
    "exoscale", "gcp", "hetzner", "hyperv", "ibmcloud", "kubevirt", "metal", "nutanix",
    "openstack", "oraclecloud", "powervs", "proxmoxve", "qemu", "scaleway", "upcloud",
    "virtualbox", "vmware", "vultr", "elsewhere"]
groups = [f"g{g}" for g in range(40)] + ["not-a-group"]
with open(sys.argv[1], "w") as out:
    n = 0
    for stream in ["stable", "testing", "next"]:
        for basearch in ["x86_64", "aarch64", "s390x", "ppc64le"]:
            for oci in ["false", "true"]:
                for group in groups:
                    for platform in platforms:
                        n += 1
                        out.write(f"/v1/graph?basearch={basearch}&stream={stream}&oci={oci}"
                                  f"&group={group}&platform={platform}&node_uuid={n:032x}\n")
PY
BENCH_PATHS="$work/paths" BENCH_HOST=127.0.0.1:18081 BENCH_THREADS=2 \
  wrk -t2 -c32 -d20s -s bench/zincati.lua http://127.0.0.1:18081 | grep RESULT
curl -sf http://127.0.0.1:18091/metrics >/dev/null  # gauges updated
echo "2. $(wc -l <"$work/paths") (scope, group, platform) asked for: views $(metric fcos_cincinnati_pe_view_cache_bytes) bytes ($(metric fcos_cincinnati_pe_view_cache_views) views, $(metric fcos_cincinnati_pe_view_renders_total) made), census sketches $(metric fcos_cincinnati_pe_fleet_sketch_bytes) bytes, $(metric fcos_cincinnati_pe_active_nodes_by_group_refused_total) polls refused by group: $(memory)"

python3 - "${query}" <<'PY'
import socket, sys, time
request = f"GET {sys.argv[1]}&node_uuid=0 HTTP/1.1\r\nhost: x\r\naccept: application/json\r\n\r\n".encode()
connections = []
for _ in range(256):
    s = socket.create_connection(("127.0.0.1", 18081))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    connections.append(s)
for s in connections:
    try:
        s.send(request * 200)
    except BlockingIOError:
        pass
time.sleep(4)
PY
echo "3. 256 connections not reading their answers: $(memory)"
