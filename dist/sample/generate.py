#!/usr/bin/env python3
"""Writes the embedded sample data set: a small synthetic release index and
updates metadata for stable, testing and next, with OSTree and OCI payloads,
barriers, a dead-end and a rollout in progress (a long one, so it stays in
progress for years: 2025-12-01 to 2030-12-01).

Payloads are derived from the version by hashing, so they look real and are
reproducible. Run from anywhere: python3 dist/sample/generate.py
"""
import hashlib
import json
import os

ARCHES = ["x86_64", "aarch64", "ppc64le", "s390x"]
HERE = os.path.dirname(os.path.abspath(__file__))
ROLLOUT_START = 1764547200  # 2025-12-01T00:00:00Z
ROLLOUT_MINUTES = 5 * 365 * 24 * 60 + 24 * 60  # five years


def digest(*parts):
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def release(stream, version, arches, ostree=True, oci=True):
    entry = {"version": version,
             "metadata": f"https://builds.example.org/prod/streams/{stream}/builds/{version}/release.json"}
    if ostree:
        entry["commits"] = [{"architecture": a, "checksum": digest("ostree", stream, version, a)}
                            for a in arches]
    if oci:
        entry["oci-images"] = [{"architecture": a, "image": "quay.io/fedora/fedora-coreos",
                                "digest-ref": "quay.io/fedora/fedora-coreos@sha256:" + digest("oci", stream, version, a)}
                               for a in arches]
    return entry


def write(stream, releases, updates):
    os.makedirs(os.path.join(HERE, stream), exist_ok=True)
    index = {"note": "Synthetic sample data of fcos-cincinnati.", "stream": stream,
             "metadata": {"last-modified": "2026-11-01T00:00:00Z"}, "releases": releases}
    meta = {"stream": stream, "metadata": {"last-modified": "2026-11-01T00:00:00Z"}, "releases": updates}
    with open(os.path.join(HERE, stream, "releases.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    with open(os.path.join(HERE, stream, "updates.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


def barrier(version, reason):
    return {"version": version, "metadata": {"barrier": {"reason": reason}}}


def deadend(version, reason):
    return {"version": version, "metadata": {"deadend": {"reason": reason}}}


def rollout(version, start_percentage, start=ROLLOUT_START, minutes=ROLLOUT_MINUTES):
    return {"version": version, "metadata": {"rollout": {
        "start_epoch": start, "start_percentage": start_percentage,
        "duration_minutes": minutes}}}


def stream_releases(stream, suffix):
    two = ["x86_64", "aarch64"]
    return [
        release(stream, f"40.20240301.{suffix}.0", two, oci=False),
        release(stream, f"40.20240315.{suffix}.0", ARCHES, oci=False),
        release(stream, f"40.20240401.{suffix}.0", ARCHES, oci=False),
        release(stream, f"41.20241109.{suffix}.0", ARCHES),
        release(stream, f"41.20241201.{suffix}.0", ARCHES),
        release(stream, f"42.20250415.{suffix}.0", ARCHES),
        release(stream, f"42.20250601.{suffix}.0", ARCHES),
        release(stream, f"43.20251115.{suffix}.0", ARCHES),
    ]


def main():
    tracker = "https://github.com/coreos/fedora-coreos-tracker/issues/"
    for stream, suffix in [("stable", 3), ("testing", 2), ("next", 1)]:
        releases = stream_releases(stream, suffix)
        v = [r["version"] for r in releases]
        updates = [
            barrier(v[1], tracker + "480"),
            deadend(v[2], tracker + "1001"),
            barrier(v[3], ""),
            # Finished two-day rollouts.
            rollout(v[4], 0.0, 1733097600, 2880),
            rollout(v[5], 0.0, 1744934400, 2880),
            rollout(v[6], 0.0, 1748995200, 2880),
            # In progress.
            rollout(v[7], 0.1),
        ]
        if stream == "next":
            # OCI-only releases at the head of next.
            releases.append(release(stream, f"44.20260301.{suffix}.0", ARCHES, ostree=False))
            releases.append(release(stream, f"44.20260401.{suffix}.0", ARCHES, ostree=False))
            updates.append(barrier(releases[-2]["version"], tracker + "1700"))
            updates.append(rollout(releases[-1]["version"], 0.5))
        write(stream, releases, updates)


if __name__ == "__main__":
    main()
