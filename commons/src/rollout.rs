//! Rollouts: a client's rollout wariness, the progress of each rollout
//! Fedora has in progress at a given time, and the graph a client sees
//! (rollouts it is not offered yet hidden, dead-ends cut).

use crate::graph::{Graph, Node};
use crate::metadata;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;

/// Lowest wariness derived from a node UUID (a derived wariness is never 0,
/// so a client without `rollout_wariness` never sees a rollout at 0%).
pub const MIN_DERIVED_WARINESS: f64 = 0.000_001;

/// The rollout wariness of a node, derived from its UUID.
///
/// SipHash-1-3 with both keys zero over the UUID's bytes followed by one
/// `0xff` byte (how `str` is hashed), divided by `u64::MAX`, clamped into
/// [`MIN_DERIVED_WARINESS`, 1]. The same node gets the same value on every
/// replica and every version of the server.
pub fn wariness_from_uuid(node_uuid: &str) -> f64 {
    let mut hasher = SipHasher13::new_with_keys(0, 0);
    hasher.write(node_uuid.as_bytes());
    hasher.write_u8(0xff);
    let digest = hasher.finish();
    let scaled = (digest as f64) / (u64::MAX as f64);
    scaled.clamp(MIN_DERIVED_WARINESS, 1.0)
}

/// The wariness of a client: `rollout_wariness` when it sent one (clamped
/// into [0, 1]), else derived from its `node_uuid` (empty when absent).
pub fn client_wariness(rollout_wariness: Option<f64>, node_uuid: Option<&str>) -> f64 {
    match rollout_wariness {
        Some(w) => w.clamp(0.0, 1.0),
        None => wariness_from_uuid(node_uuid.unwrap_or_default()),
    }
}

/// Rollout parameters of one node, read back from its metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutParams {
    /// Start, seconds since the Unix epoch (default 0).
    pub start_epoch: i64,
    /// Share offered at the start (default 0).
    pub start_value: f64,
    /// Duration in minutes, at least 1; `None` means the rollout stays at
    /// its start value.
    pub duration_minutes: Option<u64>,
}

impl RolloutParams {
    /// The rollout parameters of `node`, or `None` when it is not being
    /// rolled out.
    pub fn of(node: &Node) -> Option<Self> {
        if !node.is_rollout() {
            return None;
        }
        let get = |key: &str| node.metadata.get(key).map(|v| v.as_ref());
        Some(RolloutParams {
            start_epoch: get(metadata::START_EPOCH)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            start_value: get(metadata::START_VALUE)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
            duration_minutes: get(metadata::DURATION)
                .and_then(|v| v.parse::<u64>().ok())
                .map(|m| m.max(1)),
        })
    }

    /// Share of the fleet offered the release at `now` (seconds since the
    /// Unix epoch).
    pub fn progress(&self, now: i64) -> f64 {
        if now < self.start_epoch {
            return 0.0;
        }
        let Some(minutes) = self.duration_minutes else {
            return self.start_value;
        };
        let seconds = minutes.saturating_mul(60);
        let end = self
            .start_epoch
            .saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX));
        if now > end {
            return 1.0;
        }
        let rate = (1.0 - self.start_value) / (seconds as f64);
        self.start_value + rate * ((now - self.start_epoch) as f64)
    }
}

impl RolloutParams {
    /// When the rollout reaches a client of `wariness` (its progress is at
    /// least the wariness from then on), seconds since the Unix epoch;
    /// `None` when it never does (it stays below at its start value).
    pub fn reaches(&self, wariness: f64) -> Option<i64> {
        if !is_hidden(wariness, self.start_value) {
            return Some(self.start_epoch);
        }
        let seconds = self.duration_minutes?.saturating_mul(60) as f64;
        let share = (wariness - self.start_value) / (1.0 - self.start_value);
        let mut at = self
            .start_epoch
            .saturating_add((share * seconds).ceil() as i64);
        // Rounding: the first second at which the progress has reached it.
        while is_hidden(wariness, self.progress(at)) {
            at += 1;
        }
        Some(at)
    }
}

/// Whether a client of wariness `wariness` is kept from a rollout at
/// `progress`.
pub fn is_hidden(wariness: f64, progress: f64) -> bool {
    wariness > progress
}

/// Removes the edges into rollouts a client of `wariness` is not offered
/// yet at `now`.
pub fn throttle_rollouts(graph: &mut Graph, wariness: f64, now: i64) {
    let hidden: Vec<bool> = graph
        .nodes
        .iter()
        .map(|node| RolloutParams::of(node).is_some_and(|r| is_hidden(wariness, r.progress(now))))
        .collect();
    graph.edges.retain(|&(_, to)| !hidden[to as usize]);
}

/// Removes every edge leaving a dead-end.
pub fn filter_deadends(graph: &mut Graph) {
    let deadends: Vec<bool> = graph.nodes.iter().map(Node::is_deadend).collect();
    graph.edges.retain(|&(from, _)| !deadends[from as usize]);
}

/// The graph a client of `wariness` sees at `now`: the plain computation
/// that every faster path must match.
pub fn client_view(mut graph: Graph, wariness: f64, now: i64) -> Graph {
    throttle_rollouts(&mut graph, wariness, now);
    filter_deadends(&mut graph);
    graph
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known node UUID → wariness pairs (computed independently of this
    /// crate, from the SipHash-1-3 reference algorithm). These values decide the rollout
    /// order of the whole fleet; a change here reorders every node.
    #[test]
    fn wariness_of_known_uuids_is_pinned() {
        let known: [(&str, u64); 6] = [
            ("", 0x3fc820375291e29f),
            ("e0f3745b108f471cbd4883c6fbed8cdd", 0x3fe4e806799fb9d9),
            ("00000000000000000000000000000000", 0x3fd42d045e4c1044),
            ("ffffffffffffffffffffffffffffffff", 0x3fe02bbca6b15369),
            ("0123456789abcdef0123456789abcdef", 0x3fe6ff896f95f97a),
            ("c3b2f0fc5e5a4c0a8d2e0d6b3f27c1a9", 0x3feea8121390ac98),
        ];
        for (uuid, bits) in known {
            let w = wariness_from_uuid(uuid);
            assert_eq!(w.to_bits(), bits, "{uuid}: {w} ({:#x})", w.to_bits());
        }
    }

    #[test]
    fn wariness_matches_std_str_hashing() {
        // `str`'s `Hash` writes the bytes then 0xff; the production server
        // hashed the UUID that way with SipHash-1-3 and zero keys.
        use std::hash::Hash;
        for uuid in ["", "a", "e0f3745b108f471cbd4883c6fbed8cdd"] {
            let mut hasher = SipHasher13::new_with_keys(0, 0);
            uuid.hash(&mut hasher);
            let expected = ((hasher.finish() as f64) / (u64::MAX as f64)).clamp(0.000_001, 1.0);
            assert_eq!(wariness_from_uuid(uuid).to_bits(), expected.to_bits());
        }
    }

    #[test]
    fn explicit_wariness_is_clamped() {
        assert_eq!(client_wariness(Some(-3.0), Some("x")), 0.0);
        assert_eq!(client_wariness(Some(7.0), None), 1.0);
        assert_eq!(client_wariness(Some(0.5), None), 0.5);
        assert_eq!(client_wariness(None, None), wariness_from_uuid(""));
    }

    fn rollout(start: Option<i64>, value: Option<&str>, minutes: Option<&str>) -> Node {
        let mut metadata = crate::graph::Metadata::new();
        metadata.insert(metadata::ROLLOUT.into(), "true".to_string().into());
        if let Some(s) = start {
            metadata.insert(metadata::START_EPOCH.into(), s.to_string().into());
        }
        if let Some(v) = value {
            metadata.insert(metadata::START_VALUE.into(), v.to_string().into());
        }
        if let Some(m) = minutes {
            metadata.insert(metadata::DURATION.into(), m.to_string().into());
        }
        Node {
            version: "v".into(),
            metadata,
            payload: "p".into(),
        }
    }

    #[test]
    fn progress_with_duration_is_linear_between_start_and_end() {
        let params = RolloutParams::of(&rollout(Some(1000), Some("0.2"), Some("10"))).unwrap();
        assert_eq!(params.progress(999), 0.0);
        assert_eq!(params.progress(1000), 0.2);
        assert!((params.progress(1300) - 0.6).abs() < 1e-12);
        assert_eq!(params.progress(1601), 1.0);
    }

    #[test]
    fn progress_without_duration_stays_at_start_value() {
        let params = RolloutParams::of(&rollout(Some(1000), Some("0.3"), None)).unwrap();
        assert_eq!(params.progress(999), 0.0);
        assert_eq!(params.progress(1_000_000_000), 0.3);
        let defaults = RolloutParams::of(&rollout(None, None, None)).unwrap();
        assert_eq!(defaults.progress(5), 0.0);
    }

    #[test]
    fn zero_duration_counts_as_one_minute() {
        let params = RolloutParams::of(&rollout(Some(0), None, Some("0"))).unwrap();
        assert_eq!(params.duration_minutes, Some(1));
        assert_eq!(params.progress(30), 0.5);
    }

    #[test]
    fn throttling_hides_edges_into_unoffered_rollouts() {
        let mut plain = rollout(None, None, None);
        plain.metadata.clear();
        let graph = Graph {
            nodes: vec![plain, rollout(Some(0), Some("0.5"), None)],
            edges: vec![(0, 1)],
        };
        assert_eq!(client_view(graph.clone(), 0.4, 10).edges, vec![(0, 1)]);
        assert_eq!(client_view(graph.clone(), 0.5, 10).edges, vec![(0, 1)]);
        assert!(client_view(graph, 0.6, 10).edges.is_empty());
    }

    #[test]
    fn a_rollout_reaches_a_wariness_at_the_first_second_its_progress_does() {
        let params = RolloutParams {
            start_epoch: 1000,
            start_value: 0.2,
            duration_minutes: Some(100),
        };
        for wariness in [0.0, 0.1, 0.2, 0.2001, 0.5, 0.77, 1.0] {
            let at = params.reaches(wariness).unwrap();
            assert!(!is_hidden(wariness, params.progress(at)), "{wariness}");
            assert!(
                at == params.start_epoch || is_hidden(wariness, params.progress(at - 1)),
                "{wariness}"
            );
        }
        let stays = RolloutParams {
            duration_minutes: None,
            ..params
        };
        assert_eq!(stays.reaches(0.5), None);
        assert_eq!(stays.reaches(0.1), Some(1000));
    }
}
