//! Synthetic streams for benchmarks: a release index and updates metadata
//! of any size, shaped like the real ones (four architectures, both payload
//! schemes, a barrier every 20 releases, a dead-end every 1,000, a rollout
//! in progress on the newest release).

use std::fmt::Write;

/// Architectures of a synthetic stream.
pub const ARCHES: [&str; 4] = ["x86_64", "aarch64", "ppc64le", "s390x"];

/// A deterministic 64-hex-digit string for a release and architecture.
fn digest(seed: u64) -> String {
    // SplitMix64, four rounds: 256 bits that look like a SHA-256.
    let mut state = seed;
    let mut out = String::with_capacity(64);
    for _ in 0..4 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let _ = write!(out, "{:016x}", z ^ (z >> 31));
    }
    out
}

/// The version of the `i`-th release.
pub fn version(i: usize) -> String {
    format!("{}.{}.3.0", 30 + i / 10_000, 20_000_000 + i)
}

/// `(releases.json, updates.json)` of a synthetic `stream` of `n`
/// releases; the rollout on the newest release starts at `rollout_start`
/// and lasts two days, from 10%.
pub fn stream(stream: &str, n: usize, rollout_start: i64) -> (String, String) {
    let mut releases = String::with_capacity(n * 1_300);
    let _ = write!(releases, r#"{{"stream":"{stream}","releases":["#);
    for i in 0..n {
        if i > 0 {
            releases.push(',');
        }
        let v = version(i);
        let _ = write!(
            releases,
            r#"{{"version":"{v}","metadata":"https://example.org/{stream}/{v}/release.json","commits":["#
        );
        for (a, arch) in ARCHES.iter().enumerate() {
            let sep = if a > 0 { "," } else { "" };
            let sum = digest((i * 8 + a) as u64);
            let _ = write!(
                releases,
                r#"{sep}{{"architecture":"{arch}","checksum":"{sum}"}}"#
            );
        }
        releases.push_str(r#"],"oci-images":["#);
        for (a, arch) in ARCHES.iter().enumerate() {
            let sep = if a > 0 { "," } else { "" };
            let sum = digest((i * 8 + 4 + a) as u64);
            let _ = write!(
                releases,
                r#"{sep}{{"architecture":"{arch}","image":"quay.io/fedora/fedora-coreos","digest-ref":"quay.io/fedora/fedora-coreos@sha256:{sum}"}}"#
            );
        }
        releases.push_str("]}");
    }
    releases.push_str("]}");

    let mut updates = String::with_capacity(n * 8);
    let _ = write!(updates, r#"{{"stream":"{stream}","releases":["#);
    let mut first = true;
    let mut entry = |updates: &mut String, i: usize, metadata: &str| {
        if !first {
            updates.push(',');
        }
        first = false;
        let _ = write!(
            updates,
            r#"{{"version":"{}","metadata":{metadata}}}"#,
            version(i)
        );
    };
    for i in 0..n {
        if i > 0 && i % 20 == 0 {
            entry(
                &mut updates,
                i,
                r#"{"barrier":{"reason":"https://example.org/barrier"}}"#,
            );
        }
        if i % 1_000 == 999 {
            entry(
                &mut updates,
                i,
                r#"{"deadend":{"reason":"https://example.org/deadend"}}"#,
            );
        }
    }
    if n > 0 {
        let rollout = format!(
            r#"{{"rollout":{{"start_epoch":{rollout_start},"start_percentage":0.1,"duration_minutes":2880}}}}"#
        );
        entry(&mut updates, n - 1, &rollout);
    }
    updates.push_str("]}");
    (releases, updates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use commons::graph::{Graph, Scheme};
    use commons::metadata::{ReleaseIndex, UpdatesMetadata};

    #[test]
    fn synthetic_stream_has_the_promised_shape() {
        let (releases, updates) = stream("s", 2_000, 100);
        let index = ReleaseIndex::parse(releases.as_bytes(), Some("s")).unwrap();
        let updates = UpdatesMetadata::parse(updates.as_bytes(), Some("s")).unwrap();
        assert_eq!(index.releases.len(), 2_000);
        let graph = Graph::from_documents(&index, &updates, "s390x", Scheme::Oci);
        graph.validate().unwrap();
        assert_eq!(graph.nodes.len(), 2_000);
        assert_eq!(graph.nodes.iter().filter(|n| n.is_barrier()).count(), 99);
        assert_eq!(graph.nodes.iter().filter(|n| n.is_deadend()).count(), 2);
        assert!(graph.nodes[1_999].is_rollout());
    }
}
