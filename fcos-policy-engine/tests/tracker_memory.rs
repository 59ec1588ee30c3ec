//! The rollout tracker's memory at a million nodes, counted by the
//! allocator: every byte the heap holds for the trackers of
//! [`Rollouts`] once a million distinct nodes have polled (one process,
//! one test, so that nothing else allocates meanwhile).
//!
//! `cargo test -p fcos-policy-engine --test tracker_memory -- --nocapture`
//! prints the figures of `docs/rollout-simulation.md`.

use commons::outcomes::Poll;
use fcos_policy_engine::rollouts::{Rollouts, Settings};
use std::fmt::Write;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const MIB: f64 = 1024.0 * 1024.0;

#[test]
fn a_million_nodes_are_tracked_in_at_most_64_mib() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let registry = prometheus::Registry::new();
    let rollouts = Rollouts::new(Settings::default(), None, &registry).unwrap();
    let before = dhat::HeapStats::get();
    let now = 1_800_000_000;
    let mut uuid = String::with_capacity(32);
    for i in 0..1_000_000u64 {
        uuid.clear();
        let _ = write!(
            uuid,
            "{:016x}{:016x}",
            i,
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        // A third on the old release and offered the new one, a third
        // arrived, a third not offered it yet.
        let (from, offer) = match i % 3 {
            0 => (("43.20270101.3.0", 10), Some(("43.20270115.3.0", 11))),
            1 => (("43.20270115.3.0", 11), None),
            _ => (("43.20270101.3.0", 10), None),
        };
        rollouts.record_poll(
            &uuid,
            Poll {
                node: 0,
                scope: ("stable", "x86_64", "oci"),
                group: "other",
                platform: "metal",
                from,
                offer,
                now: now + (i / 1_000) as i64,
            },
        );
    }
    let filled = dhat::HeapStats::get();
    rollouts.evaluate(now + 1_000, None);
    let summary = rollouts.summary(now + 1_000, None);
    let tracked = summary.tracked_nodes;
    let held = (filled.curr_bytes - before.curr_bytes) as f64;
    eprintln!(
        "{tracked} nodes tracked ({} evicted): {:.1} MiB held, {:.1} bytes a node; heap peak {:.1} MiB",
        summary.evicted,
        held / MIB,
        held / tracked as f64,
        filled.max_bytes as f64 / MIB,
    );
    // A fleet of max_nodes is tracked whole.
    assert_eq!((tracked, summary.evicted), (1_000_000, 0));
    dhat::assert!(held <= 64.0 * MIB, "{:.1} MiB", held / MIB);
}
