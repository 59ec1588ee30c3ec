#!/usr/bin/env bash
# Where the cycles go: one target under the load of bench/load.sh (same
# requests, same wrk), sampled with perf on every CPU (wrk, the target, the
# kernel and softirq), and its system calls counted per response.
#
#   bench/profile.sh TARGET [MODE] [CORPUS_DIR] [OUT_DIR]
#     TARGET: nginx, policy-engine or graph-builder
#     MODE: keep-alive (default), close, keep-alive+gzip or close+gzip
#
# Writes to OUT_DIR (default bench-profile/TARGET-MODE): summary.txt (CPU
# by process and by layer, top symbols, system calls per response),
# TARGET.folded and TARGET.svg (a flamegraph of the target's threads),
# all.folded and all.svg (the whole machine). Symbols need a build with
# frame pointers for full stacks:
#   RUSTFLAGS="-C force-frame-pointers=yes" CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
#     CARGO_TARGET_DIR=target/profiling bench/profile.sh policy-engine
# Needs: perf (linux-perf), inferno (cargo install inferno), wrk, nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
target_name="${1:?TARGET: nginx, policy-engine or graph-builder}"
mode="${2:-keep-alive}"
corpus="${3:-../shared/corpus}"
out="$(realpath -m "${4:-bench-profile/$target_name-$mode}")"
seconds="${SECONDS_SAMPLED:-5}"
source bench/targets.sh
mkdir -p "$out"

case "$target_name" in
  nginx) port=18088; target_pids="$nginx_pid,$(pgrep -d, -P "$nginx_pid")" ;;
  policy-engine) port=18081; target_pids=$pe ;;
  graph-builder) port=18080; target_pids=$gb ;;
  *) echo "unknown target $target_name" >&2; exit 2 ;;
esac
export BENCH_QUERY="${query#*\?}" BENCH_HOST="127.0.0.1:$port" BENCH_POOL=4096
export BENCH_GZIP=$([[ $mode == *gzip ]] && echo 1 || echo 0)
export BENCH_CLOSE=$([[ $mode == close* ]] && echo 1 || echo 0)
load() { wrk -t2 -c32 -d"$1" -s bench/zincati.lua "http://127.0.0.1:$port" | grep RESULT; }

load 2s >/dev/null  # warm-up
# 1. Samples of every CPU, with call stacks, in the middle of a run.
load $((seconds + 2))s > "$out/wrk-perf.txt" &
wrk_job=$!
sleep 1
perf record -q -e cpu-clock -F 1999 -a -g -o "$out/perf.data" -- sleep "$seconds" 2>/dev/null
wait $wrk_job
# 2. System calls of the target, counted over a run of its own.
syscalls="read,write,writev,sendto,recvfrom,sendfile64,epoll_wait,epoll_pwait,epoll_ctl,accept4,close,shutdown,openat,newfstat,setsockopt,getsockopt,getpeername,getsockname,futex,sched_yield,ioctl"
events=$(tr , '\n' <<<"$syscalls" | sed 's/^/syscalls:sys_enter_/' | paste -sd,)
load $((seconds + 2))s > "$out/wrk-stat.txt" &
wrk_job=$!
sleep 1
perf stat -x, -e "$events" -p "$target_pids" -o "$out/syscalls.csv" -- sleep "$seconds"
wait $wrk_job

requests_per_s=$(sed -n 's/.*rps=\([0-9]*\).*/\1/p' "$out/wrk-stat.txt")
perf script -F comm,pid,tid,time,event,ip,sym,dso -i "$out/perf.data" 2>/dev/null > "$out/perf.script"
inferno-collapse-perf --all < "$out/perf.script" > "$out/all.folded"
python3 bench/profile_summary.py "$out" "$target_name" "$target_pids" "$requests_per_s" "$seconds"
inferno-flamegraph --title "$target_name, $mode" < "$out/$target_name.folded" > "$out/$target_name.svg"
inferno-flamegraph --title "whole machine: $target_name, $mode" < "$out/all.folded" > "$out/all.svg"
rm -f "$out/perf.script"
echo "written to $out"
