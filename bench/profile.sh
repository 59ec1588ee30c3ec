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
python3 - "$out" "$target_name" "$target_pids" "$requests_per_s" "$seconds" <<'PY'
import collections, re, sys
out, name, pids, rps, seconds = sys.argv[1], sys.argv[2], set(sys.argv[3].split(",")), float(sys.argv[4]), float(sys.argv[5])
# perf script: a header line "comm pid/tid? ..." then stack lines, blank line between samples.
by_comm = collections.Counter()
leaf_target = collections.Counter()
layer = collections.Counter()
total = 0
target_samples = 0
folded = collections.Counter()
with open(f"{out}/perf.script") as f:
    sample = []
    def flush(sample):
        global total, target_samples
        if not sample:
            return
        head = sample[0].split()
        comm, pid = head[0], head[1].split("/")[0]
        frames = [re.sub(r"\+0x[0-9a-f]+$", "", l.split(None, 1)[1].rsplit(" (", 1)[0]) if len(l.split(None, 1)) > 1 else "?" for l in sample[1:]]
        total += 1
        who = name if pid in pids else ("wrk" if comm == "wrk" else ("idle" if comm == "swapper" else comm))
        by_comm[who] += 1
        if pid in pids:
            target_samples += 1
            leaf_target[frames[0] if frames else "?"] += 1
            folded[";".join(reversed(frames))] += 1
            kernel = any("[kernel" in l for l in sample[1:2])
            layer["kernel" if kernel else "user"] += 1
    for line in f:
        if not line.strip():
            flush(sample); sample = []
        elif not line.startswith((" ", "\t")):
            flush(sample); sample = [line]
        else:
            sample.append(line)
    flush(sample)
with open(f"{out}/{name}.folded", "w") as f:
    for stack, n in folded.items():
        f.write(f"{stack} {n}\n")
with open(f"{out}/summary.txt", "w") as s:
    def p(*a):
        print(*a, file=s); print(*a)
    p(f"{name}: samples of all CPUs over {seconds:.0f} s ({total} samples)")
    for who, n in by_comm.most_common(8):
        p(f"  {who:20} {n / total:6.1%}")
    p(f"{name}: {layer['user'] / max(target_samples,1):.1%} of its samples in user space, {layer['kernel'] / max(target_samples,1):.1%} in the kernel")
    p(f"top leaf functions of {name}:")
    for fn, n in leaf_target.most_common(25):
        p(f"  {n / max(target_samples,1):6.1%}  {fn[:110]}")
    p(f"system calls of {name} per response (perf stat, {rps:.0f} req/s):")
    for line in open(f"{out}/syscalls.csv"):
        parts = line.strip().split(",")
        if len(parts) > 2 and parts[0].isdigit() and int(parts[0]) > 0:
            p(f"  {parts[2].replace('syscalls:sys_enter_', ''):14} {int(parts[0]) / (rps * seconds):6.2f}")
PY
inferno-flamegraph --title "$target_name, $mode" < "$out/$target_name.folded" > "$out/$target_name.svg"
inferno-flamegraph --title "whole machine: $target_name, $mode" < "$out/all.folded" > "$out/all.svg"
rm -f "$out/perf.script"
echo "written to $out"
