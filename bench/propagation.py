#!/usr/bin/env python3
"""How fast a change reaches nodes, and how fast a restarted policy-engine
serves.

    bench/propagation.py [CORPUS_DIR] [--changes N] [--refresh SECS]

Runs the release binaries (built first) on loopback against the newest
documents of the corpus's three streams (file:// upstream):

1. N times (default 20), a dead-end is added to (or removed from) a recent
   stable release in the upstream updates document. For each change it
   records when the document was written, when the graph-builder published
   (its /v1/scopes listing changed) and when the policy-engine served the
   new graph on every stable scope whose graph changed (each scope polled
   with Zincati's request). The graph-builder refreshes every SECS seconds
   (default 5).
2. 5 times, the graph-builder is stopped and the policy-engine restarted
   with the state directory of the run: the time from its start to a 200 on
   every scope.

Prints median and max of each figure. Needs python3 only. Ports
18280-18291 on 127.0.0.1.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

GB_PORT, GB_STATUS, PE_PORT, PE_STATUS = 18280, 18290, 18281, 18291
ARCHES = ["x86_64", "aarch64", "ppc64le", "s390x"]
STREAMS = ["stable", "testing", "next"]
CONFIGS = {"fcos-graph-builder": "gb.toml", "fcos-policy-engine": "pe.toml"}


def request(port, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {"accept": "application/json"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


class Poller:
    """Keeps one connection per port, as Zincati and the graph page do."""

    def __init__(self):
        self.conns = {}

    def get(self, port, path):
        for _ in range(2):
            conn = self.conns.get(port)
            if conn is None:
                conn = self.conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", path, headers={"accept": "application/json"})
                response = conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.conns.pop(port, None)
        return 0, b""


def graph_path(stream, arch, oci):
    return (
        f"/v1/graph?basearch={arch}&stream={stream}&oci={'true' if oci else 'false'}"
        f"&os_version=0&group=default&node_uuid=0123456789abcdef0123456789abcdef"
        f"&platform=metal&rollout_wariness=0.5"
    )


def wait_until(predicate, timeout, step=0.001):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(step)
    raise SystemExit("timed out")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", nargs="?", default="../shared/corpus")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--refresh", type=int, default=5)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    corpus = os.path.abspath(args.corpus)
    subprocess.run(["cargo", "build", "--release", "--workspace", "--quiet"], cwd=root, check=True)
    bin_dir = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target")), "release")

    work = tempfile.mkdtemp()
    procs = []
    try:
        for stream in STREAMS:
            os.makedirs(f"{work}/up/{stream}")
            shutil.copy(f"{corpus}/{stream}/releases.json", f"{work}/up/{stream}/releases.json")
            newest = sorted(os.listdir(f"{corpus}/{stream}/updates"))[-1]
            shutil.copy(f"{corpus}/{stream}/updates/{newest}", f"{work}/up/{stream}/updates.json")
        os.makedirs(f"{work}/state")
        with open(f"{work}/gb.toml", "w") as f:
            f.write(
                f'[service]\naddress = "127.0.0.1"\nport = {GB_PORT}\n'
                f'[status]\naddress = "127.0.0.1"\nport = {GB_STATUS}\n'
                f'[upstream]\nrelease_index_url = "file://{work}/up/${{stream}}/releases.json"\n'
                f'updates_url = "file://{work}/up/${{stream}}/updates.json"\n'
                f"refresh_secs = {args.refresh}\n"
            )
        with open(f"{work}/pe.toml", "w") as f:
            f.write(
                f'[service]\naddress = "127.0.0.1"\nport = {PE_PORT}\n'
                f'[status]\naddress = "127.0.0.1"\nport = {PE_STATUS}\n'
                f'[upstream]\ngraph_url = "http://127.0.0.1:{GB_PORT}/v1/graph"\n'
                f'state_dir = "{work}/state"\n'
            )
        log = open(f"{work}/log", "w")

        def start(name):
            proc = subprocess.Popen([f"{bin_dir}/{name}", "-c", f"{work}/{CONFIGS[name]}"], stderr=log)
            procs.append(proc)
            return proc

        def stop(proc):
            proc.terminate()
            proc.wait()
            procs.remove(proc)

        def ready(port):
            try:
                return request(port, "/readyz")[0] == 200
            except OSError:
                return False

        gb = start("fcos-graph-builder")
        pe = start("fcos-policy-engine")
        wait_until(lambda: ready(GB_STATUS) and ready(PE_STATUS), 30, 0.01)
        poller = Poller()
        scopes = [(arch, oci) for arch in ARCHES for oci in (False, True)]

        def listing():
            status, _, body = request(GB_PORT, "/v1/scopes")
            return {
                (s["basearch"], s["oci"]): s["etag"]
                for s in json.loads(body)["scopes"]
                if s["stream"] == "stable"
            }

        # Wait until the policy-engine follows the graph-builder.
        time.sleep(1)
        updates_path = f"{work}/up/stable/updates.json"
        releases = json.load(open(f"{work}/up/stable/releases.json"))["releases"]
        target = releases[-3]["version"]
        to_publish, to_serve, end_to_end = [], [], []
        for change in range(args.changes):
            before_listing = listing()
            before = {s: poller.get(PE_PORT, graph_path("stable", *s))[1] for s in scopes}
            doc = json.load(open(updates_path))
            entry = next((r for r in doc["releases"] if r["version"] == target), None)
            if entry is None:
                entry = {"version": target, "metadata": {}}
                doc["releases"].append(entry)
            if "deadend" in entry["metadata"]:
                del entry["metadata"]["deadend"]
            else:
                entry["metadata"]["deadend"] = {"reason": f"benchmark change {change}"}
            # At a random point of the graph-builder's refresh period.
            time.sleep(random.uniform(0, args.refresh))
            tmp = updates_path + ".tmp"
            json.dump(doc, open(tmp, "w"))
            written = time.monotonic()
            os.rename(tmp, updates_path)
            published = wait_until(lambda: listing() != before_listing, args.refresh + 10)
            changed = [s for s, etag in listing().items() if etag != before_listing.get(s)]
            pending = set(changed)

            def all_served():
                for s in list(pending):
                    if poller.get(PE_PORT, graph_path("stable", *s))[1] != before[s]:
                        pending.discard(s)
                return not pending

            served = wait_until(all_served, 10)
            to_publish.append(published - written)
            to_serve.append(served - published)
            end_to_end.append(served - written)
            print(
                f"change {change + 1:2}: {len(changed)} scopes; written -> published {published - written:6.3f} s, "
                f"published -> served {1000 * (served - published):6.1f} ms",
                flush=True,
            )

        def summary(name, values, unit="s", scale=1.0):
            print(
                f"{name}: median {statistics.median(values) * scale:.3f} {unit}, "
                f"max {max(values) * scale:.3f} {unit} (n={len(values)})"
            )

        print()
        summary("written -> graph-builder published", to_publish)
        summary("graph-builder published -> policy-engine serving every changed scope", to_serve, "ms", 1000)
        summary(f"written -> policy-engine serving (graph-builder refresh {args.refresh} s)", end_to_end)

        # Restart from the state directory with the graph-builder down.
        stop(gb)
        restarts = []
        all_scopes = [(stream, arch, oci) for stream in STREAMS for arch in ARCHES for oci in (False, True)]
        for _ in range(5):
            stop(pe)
            started = time.monotonic()
            pe = start("fcos-policy-engine")
            fresh = Poller()
            remaining = set(all_scopes)

            def all_ok():
                for s in list(remaining):
                    if fresh.get(PE_PORT, graph_path(*s))[0] == 200:
                        remaining.discard(s)
                return not remaining

            restarts.append(wait_until(all_ok, 10) - started)
        summary("policy-engine start (graph-builder down) -> 200 on all 24 scopes", restarts, "ms", 1000)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
