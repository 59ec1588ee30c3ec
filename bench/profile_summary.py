#!/usr/bin/env python3
"""Summary of a bench/profile.sh run: CPU by process, the target's share in
user space and in the kernel, its top functions, its system calls per
response; writes TARGET.folded (the target's stacks, for a flamegraph).

  profile_summary.py OUT_DIR TARGET PIDS(comma-separated) REQUESTS_PER_S SECONDS

Reads OUT_DIR/perf.script (perf script -F comm,pid,tid,time,event,ip,sym,dso)
and OUT_DIR/syscalls.csv (perf stat -x,).
"""
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
        # The command name may hold spaces ("actix-server ac…").
        head = re.match(r"\s*(.*?)\s+(\d+)/(\d+)\s", sample[0])
        comm, pid = (head.group(1), head.group(2)) if head else ("?", "?")
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
        elif not line.startswith("\t"):
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

# Where the target's samples go, by what the stack is doing: the system
# call it is in (if any), else the user-space code it is in.
SYSCALLS = {
    "send (kernel)": ["sendto", "sendmsg", "write", "writev", "sendfile64"],
    "receive (kernel)": ["recvfrom", "recvmsg", "read"],
    "connections: accept, epoll_ctl, shutdown, close, open (kernel)": [
        "accept4", "accept", "epoll_ctl", "shutdown", "close", "openat", "newfstat",
        "newfstatat", "setsockopt", "getpeername", "getsockname"],
    "waiting for events (epoll_wait, futex)": ["epoll_wait", "epoll_pwait", "futex", "sched_yield"],
}
COPY_LEAVES = ("_copy_from_iter", "copy_user", "rep_movs", "memcpy_orig", "_copy_to_iter")
USER = [
    ("body copied into the write buffer (memmove)", ["__memmove", "__memcpy"], True),
    ("allocation (malloc, free)", ["malloc", "cfree", "_int_free", "_int_malloc", "realloc",
                                   "unlink_chunk", "malloc_consolidate", "tcache"], True),
    ("request head check (LimitedStream)", ["LimitedStream"], False),
    ("query parsing", ["GraphQuery::parse", "web::decode", "form_urlencoded", "percent_encoding"], False),
    ("fleet census and node counting", ["record_node", "Census", "Population", "WindowedSketch"], False),
    ("HTTP metrics and counters (prometheus)", ["HttpMetrics", "prometheus::"], False),
    ("response headers (GraphBody::respond, HeaderMap)", ["GraphBody::respond", "HeaderMap", "HttpResponseBuilder"], False),
    ("CORS middleware", ["actix_cors"], False),
    ("HTTP parsing and encoding (actix-http codec, http::Uri)", ["h1::codec", "h1::decoder", "h1::encoder", "httparse", "PathAndQuery", "http::uri"], False),
    ("nginx (user space)", ["ngx_"], False),
]


def category(frames):
    for i, frame in enumerate(frames[:-1]):
        if frame == "do_syscall_64":
            call = frames[i + 1]
            for prefix in ("__x64_sys_", "__do_sys_", "do_"):
                call = call.removeprefix(prefix)
            for name, calls in SYSCALLS.items():
                if call in calls:
                    if name.startswith("send") and frames[-1].startswith(COPY_LEAVES):
                        return "send: copying the body into the socket (kernel)"
                    if name.startswith("send"):
                        return "send: TCP and loopback delivery (kernel)"
                    return name
            return "other system calls (kernel)"
    if any(f.startswith(("asm_exc_page_fault", "asm_sysvec", "asm_common_interrupt")) for f in frames):
        return "page faults and interrupts (kernel)"
    for name, needles, leaf_only in USER:
        where = frames[-1:] if leaf_only else frames
        if any(n in f for f in where for n in needles):
            return name
    return "other user space (actix, tokio, handler, libc)"


by_category = collections.Counter()
for stack, n in folded.items():
    by_category[category(stack.split(";"))] += n
with open(f"{out}/summary.txt", "a") as s:
    title = f"{name}: samples by activity (the system call a sample is in, else its code)"
    print(title, file=s)
    print(title)
    for cat, n in sorted(by_category.items(), key=lambda kv: -kv[1]):
        line = f"  {n / max(target_samples, 1):6.1%}  {cat}"
        print(line, file=s)
        print(line)
