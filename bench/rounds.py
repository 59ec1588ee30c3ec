#!/usr/bin/env python3
"""Interleaved load rounds against several targets with wrk (bench/zincati.lua),
the ratio of each target to the first (nginx) taken within each round, and
the medians of those ratios over the rounds.

Besides throughput and latency, every run records the CPU time that wrk,
the target and everything else on the machine used, so that a result can
be trusted: when wrk's own work per request (its user-space time) comes
near the target's, it caps every target near the same figure (the ratios
then say more about wrk than about the servers); CPU used by other
processes means the machine was not quiet; idle CPU means something else
than the CPU limited the run.

  rounds.py --target NAME=PORT:PID[,PID...] ... --query Q [options]

Prints one line per run as it goes, then a table of medians.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def process_cpu(pids):
    """CPU seconds (user + system) used so far by these processes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # utime and stime are fields 14 and 15 (1-based, pid first).
            total += int(fields[11]) + int(fields[12])
        except FileNotFoundError:
            pass
    return total / TICKS


def machine_cpu():
    """(process, interrupt, total) CPU seconds of the whole machine so far:
    time in processes (user and system), time in interrupts (softirq is
    most of loopback TCP, charged to no process), and all time."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is in user)
    return (v[0] + v[1] + v[2]) / TICKS, (v[5] + v[6]) / TICKS, sum(v[:8]) / TICKS


def run_wrk(args, target, mode):
    """One wrk run; returns its RESULT fields and the CPU accounting."""
    env = dict(os.environ)
    env.update(
        BENCH_QUERY=args.query,
        BENCH_HOST=f"127.0.0.1:{target['port']}",
        BENCH_GZIP="1" if mode["gzip"] else "0",
        BENCH_CLOSE="1" if mode["close"] else "0",
        BENCH_POOL=str(args.pool),
    )
    command = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}",
        "--latency", "-s", args.script, f"http://127.0.0.1:{target['port']}",
    ]
    target_before = process_cpu(target["pids"]())
    proc_before, irq_before, total_before = machine_cpu()
    started = time.monotonic()
    wrk = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    out = wrk.stdout.read()
    _, status, usage = os.wait4(wrk.pid, 0)
    wall = time.monotonic() - started
    proc_after, irq_after, total_after = machine_cpu()
    target_cpu = process_cpu(target["pids"]()) - target_before
    if status != 0:
        sys.exit(f"wrk failed ({status}):\n{out}")
    line = next((l for l in out.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"wrk printed no RESULT line:\n{out}")
    fields = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    requests = max(fields["requests"], 1)
    wrk_cpu = usage.ru_utime + usage.ru_stime
    wrk_user = usage.ru_utime
    in_processes = proc_after - proc_before
    interrupts = irq_after - irq_before
    capacity = max(total_after - total_before, 1e-9)
    fields.update(
        wrk_us=wrk_cpu / requests * 1e6,
        wrk_user_us=wrk_user / requests * 1e6,
        target_us=target_cpu / requests * 1e6,
        irq_us=interrupts / requests * 1e6,
        other=max(in_processes - wrk_cpu - target_cpu, 0) / capacity,
        idle=1 - (in_processes + interrupts) / capacity,
        bytes_per=fields["bytes"] / requests,
        wall=wall,
    )
    return fields


def warnings_of(r):
    """Why a run cannot be trusted, if it cannot."""
    found = []
    # wrk's own work (user space: its script, HTTP parsing) against the
    # target's whole CPU time per request. Its kernel time is the cost of
    # receiving the responses and opening connections, the same for any
    # server, but its own work is what the requests built per request used
    # to cost: past half the target's, it caps every target near one figure.
    if r["wrk_user_us"] > 0.5 * r["target_us"]:
        found.append(
            f"load tool saturated: wrk's own work {r['wrk_user_us']:.1f} us CPU/request "
            f"> half the target's {r['target_us']:.1f}")
    if r["other"] > 0.05:
        found.append(f"machine not quiet: {r['other']:.0%} of the CPU used by other processes")
    if r["idle"] > 0.10:
        found.append(f"CPU {r['idle']:.0%} idle: something other than CPU limits this run")
    if r["errors"] or r["non2xx"]:
        found.append(f"{int(r['errors'])} socket errors, {int(r['non2xx'])} non-2xx")
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", action="append", required=True,
                        help="NAME=PORT:PID[,PID...]; the first is the baseline; "
                             "a PID of the form ^N means N and its children")
    parser.add_argument("--query", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pool", type=int, default=4096)
    parser.add_argument("--modes", default="keep-alive,close,keep-alive+gzip,close+gzip")
    parser.add_argument("--script", default=os.path.join(os.path.dirname(__file__), "zincati.lua"))
    args = parser.parse_args()

    targets = []
    for spec in args.target:
        name, rest = spec.split("=", 1)
        port, pids = rest.split(":", 1)

        def resolve(pids=pids):
            found = []
            for pid in pids.split(","):
                if pid.startswith("^"):
                    parent = pid[1:]
                    found.append(parent)
                    children = subprocess.run(["pgrep", "-P", parent], capture_output=True, text=True)
                    found.extend(children.stdout.split())
                else:
                    found.append(pid)
            return found

        targets.append({"name": name, "port": int(port), "pids": resolve})
    modes = []
    for name in args.modes.split(","):
        modes.append({"name": name, "close": name.startswith("close"), "gzip": name.endswith("+gzip")})

    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}, {args.rounds} rounds, "
          f"{args.pool} prepared requests per thread; {CORES} cores; load average at start: "
          f"{open('/proc/loadavg').read().split()[0]}")
    print(f"{'round':>5} {'mode':16} {'target':14} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'B/resp':>7} {'wrk us':>7} {'usr us':>7} {'tgt us':>7} {'irq us':>7} {'other':>6} {'idle':>5}")
    results = {}  # (mode, target) -> [fields per round]
    flagged = 0
    for round_no in range(args.rounds):
        for mode in modes:
            # The order of targets turns every round, so that none always
            # runs first (or last) after a change of mode.
            shift = round_no % len(targets)
            order = targets[shift:] + targets[:shift]
            for target in order:
                r = run_wrk(args, target, mode)
                results.setdefault((mode["name"], target["name"]), []).append(r)
                print(f"{round_no + 1:>5} {mode['name']:16} {target['name']:14} {r['rps']:8.0f} "
                      f"{r['p50_ms']:7.3f} {r['p99_ms']:7.3f} {r['bytes_per']:7.0f} "
                      f"{r['wrk_us']:7.1f} {r['wrk_user_us']:7.1f} {r['target_us']:7.1f} {r['irq_us']:7.1f} {r['other']:6.1%} {r['idle']:5.0%}",
                      flush=True)
                for warning in warnings_of(r):
                    flagged += 1
                    print(f"      WARNING: {warning}", flush=True)

    base = targets[0]["name"]
    print(f"\nmedians over {args.rounds} rounds (ratios to {base} taken within each round):")
    print(f"{'mode':16} {'target':14} {'req/s':>8} {'p99 ms':>7} {'x req/s':>8} {'x p99':>6} "
          f"{'cpu us/req':>10} {'wrk us/req':>10} {'errors':>6}")
    for mode in modes:
        base_runs = results[(mode["name"], base)]
        for target in targets:
            runs = results[(mode["name"], target["name"])]
            rps = statistics.median(r["rps"] for r in runs)
            p99 = statistics.median(r["p99_ms"] for r in runs)
            rps_ratio = statistics.median(r["rps"] / b["rps"] for r, b in zip(runs, base_runs))
            p99_ratio = statistics.median(r["p99_ms"] / b["p99_ms"] for r, b in zip(runs, base_runs))
            cpu = statistics.median(r["target_us"] for r in runs)
            wrk_cpu = statistics.median(r["wrk_us"] for r in runs)
            errors = sum(int(r["errors"] + r["non2xx"]) for r in runs)
            print(f"{mode['name']:16} {target['name']:14} {rps:8.0f} {p99:7.3f} {rps_ratio:7.2f}x "
                  f"{p99_ratio:5.2f}x {cpu:10.1f} {wrk_cpu:10.1f} {errors:6d}")
    print(f"\nratios to {base} by round (req/s):")
    for mode in modes:
        base_runs = results[(mode["name"], base)]
        for target in targets[1:]:
            runs = results[(mode["name"], target["name"])]
            ratios = " ".join(f"{r['rps'] / b['rps']:.3f}" for r, b in zip(runs, base_runs))
            print(f"{mode['name']:16} {target['name']:14} {ratios}")
    if flagged:
        print(f"\nWARNING: {flagged} run(s) above were flagged; their figures measure "
              "more than the targets (see each warning).")


if __name__ == "__main__":
    main()
