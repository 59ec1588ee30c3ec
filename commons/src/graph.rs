//! The Cincinnati update graph and how it is built from a stream's release
//! index and updates metadata, for one architecture and payload scheme.

use crate::metadata::{self, Release, ReleaseIndex, UpdateMetadata, UpdatesMetadata};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Payload scheme of a graph: which kind of payload its nodes carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// OSTree commit checksums (the default).
    Checksum,
    /// Container image pullspecs by digest (requested with `oci=true`).
    Oci,
}

impl Scheme {
    /// Both schemes, in the order graphs are built.
    pub const ALL: [Scheme; 2] = [Scheme::Checksum, Scheme::Oci];

    /// The scheme's name, as in node metadata and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Checksum => "checksum",
            Scheme::Oci => "oci",
        }
    }

    /// The scheme selected by the `oci` query flag.
    pub fn from_oci_flag(oci: bool) -> Self {
        if oci {
            Scheme::Oci
        } else {
            Scheme::Checksum
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest stream or basearch name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` can be a stream or basearch name: non-empty, at most
/// 64 bytes, made of letters, digits, `.`, `_` and `-`.
pub fn is_well_formed_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What one graph is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GraphScope {
    /// Update stream, e.g. `stable`.
    pub stream: String,
    /// Base architecture, e.g. `x86_64`.
    pub basearch: String,
    /// Payload scheme.
    pub scheme: Scheme,
}

impl fmt::Display for GraphScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.stream, self.basearch, self.scheme)
    }
}

/// Node metadata: key → value, both strings. Keys and most values are
/// constants, borrowed rather than allocated for each node.
pub type Metadata = BTreeMap<Cow<'static, str>, Cow<'static, str>>;

/// One release in the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Release version.
    pub version: String,
    /// Release metadata (see the key constants in [`crate::metadata`]);
    /// sorted so the same graph always serializes to the same bytes.
    pub metadata: Metadata,
    /// OSTree checksum or container pullspec, according to the scheme.
    pub payload: String,
}

impl Node {
    fn flag(&self, key: &str) -> bool {
        self.metadata.get(key).map(|v| v.as_ref()) == Some("true")
    }

    /// Whether the release is a dead-end.
    pub fn is_deadend(&self) -> bool {
        self.flag(metadata::DEADEND)
    }

    /// Whether the release is a barrier.
    pub fn is_barrier(&self) -> bool {
        self.flag(metadata::BARRIER)
    }

    /// Whether the release is being rolled out.
    pub fn is_rollout(&self) -> bool {
        self.flag(metadata::ROLLOUT)
    }
}

/// A Cincinnati update graph: releases and the updates between them, as
/// pairs of positions in `nodes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Releases, in release-index order.
    pub nodes: Vec<Node>,
    /// Updates `(from, to)`, positions in `nodes`.
    pub edges: Vec<(u64, u64)>,
}

/// A graph that breaks the rules every published graph must follow.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidGraph {
    /// An edge points outside the node list.
    #[error("edge ({0}, {1}) points outside the {2} nodes")]
    EdgeOutOfRange(u64, u64, usize),
    /// An edge does not point to a newer release.
    #[error("edge ({0}, {1}) does not point forward")]
    EdgeBackward(u64, u64),
    /// An edge leaves a dead-end.
    #[error("edge ({0}, {1}) leaves dead-end {2}")]
    EdgeFromDeadend(u64, u64, String),
    /// The same edge twice.
    #[error("edge ({0}, {1}) is listed twice")]
    DuplicateEdge(u64, u64),
    /// The same version twice.
    #[error("version '{0}' is listed twice")]
    DuplicateVersion(String),
}

impl Graph {
    /// Builds the graph of one architecture and scheme from a stream's
    /// documents.
    ///
    /// `updates` holds the update metadata of each release of `index`, in
    /// the same order (see [`align_updates`]), computed once per stream so
    /// that building every graph of the stream is linear in its size.
    pub fn build(
        index: &ReleaseIndex,
        updates: &[Option<&UpdateMetadata>],
        basearch: &str,
        scheme: Scheme,
    ) -> Graph {
        debug_assert_eq!(index.releases.len(), updates.len());
        let mut nodes = Vec::new();
        let mut kinds = Vec::new();
        for ((age_index, release), &update) in index.releases.iter().enumerate().zip(updates) {
            let Some(payload) = payload_of(release, basearch, scheme) else {
                continue;
            };
            let mut meta = BTreeMap::new();
            meta.insert(metadata::AGE_INDEX.into(), age_index.to_string().into());
            meta.insert(metadata::SCHEME.into(), scheme.as_str().into());
            if let Some(update) = update {
                insert_update_metadata(&mut meta, update);
            }
            kinds.push(NodeKind::of(update));
            nodes.push(Node {
                version: release.version.clone(),
                metadata: meta,
                payload: payload.to_string(),
            });
        }
        let edges = compute_edges(&kinds);
        Graph { nodes, edges }
    }

    /// Convenience for one-off builds: merges `updates` and builds.
    pub fn from_documents(
        index: &ReleaseIndex,
        updates: &UpdatesMetadata,
        basearch: &str,
        scheme: Scheme,
    ) -> Graph {
        let merged = updates.by_version();
        Graph::build(index, &align_updates(index, &merged), basearch, scheme)
    }

    /// Checks the rules every published graph follows: edges in range,
    /// pointing forward, unique, none leaving a dead-end; versions unique.
    pub fn validate(&self) -> Result<(), InvalidGraph> {
        let mut versions = HashSet::with_capacity(self.nodes.len());
        for node in &self.nodes {
            if !versions.insert(node.version.as_str()) {
                return Err(InvalidGraph::DuplicateVersion(node.version.clone()));
            }
        }
        let deadends: Vec<bool> = self.nodes.iter().map(Node::is_deadend).collect();
        check_edges(&self.edges, &deadends).map_err(|error| match error {
            InvalidGraph::EdgeFromDeadend(from, to, _) => {
                InvalidGraph::EdgeFromDeadend(from, to, self.nodes[from as usize].version.clone())
            }
            other => other,
        })?;
        Ok(())
    }

    /// Serializes the graph as compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // About 250 bytes a node and 12 an edge: one allocation, no regrowth.
        let mut out = Vec::with_capacity(self.nodes.len() * 256 + self.edges.len() * 12 + 32);
        serde_json::to_writer(&mut out, self)
            .expect("a graph of strings and integers always serializes");
        out
    }
}

/// The update metadata of each release of `index`, in index order, from the
/// merged per-version view of [`UpdatesMetadata::by_version`]; entries for
/// versions not in the index are left out.
pub fn align_updates<'a>(
    index: &ReleaseIndex,
    merged: &'a HashMap<&str, UpdateMetadata>,
) -> Vec<Option<&'a UpdateMetadata>> {
    index
        .releases
        .iter()
        .map(|release| merged.get(release.version.as_str()))
        .collect()
}

/// Adds the barrier, dead-end and rollout keys of one release.
fn insert_update_metadata(meta: &mut Metadata, update: &UpdateMetadata) {
    fn reason_or_generic(reason: &str) -> Cow<'static, str> {
        if reason.is_empty() {
            "generic".into()
        } else {
            reason.to_string().into()
        }
    }
    if let Some(deadend) = &update.deadend {
        meta.insert(metadata::DEADEND.into(), "true".into());
        meta.insert(
            metadata::DEADEND_REASON.into(),
            reason_or_generic(&deadend.reason),
        );
    }
    if let Some(barrier) = &update.barrier {
        meta.insert(metadata::BARRIER.into(), "true".into());
        meta.insert(
            metadata::BARRIER_REASON.into(),
            reason_or_generic(&barrier.reason),
        );
    }
    if let Some(rollout) = &update.rollout {
        meta.insert(metadata::ROLLOUT.into(), "true".into());
        if let Some(epoch) = rollout.start_epoch {
            meta.insert(metadata::START_EPOCH.into(), epoch.to_string().into());
        }
        if let Some(value) = rollout.start_percentage {
            // `Display` for f64 prints the shortest string that round-trips,
            // never in exponent form, and integers without a dot.
            meta.insert(metadata::START_VALUE.into(), value.to_string().into());
        }
        if let Some(minutes) = rollout.duration_minutes {
            meta.insert(metadata::DURATION.into(), minutes.to_string().into());
        }
    }
}

/// Edges of a node list: into every rollout from every node since the
/// closest barrier before it; into every other barrier from every node since
/// the previous barrier; none out of a dead-end. Sorted by target, then
/// source.
fn compute_edges(nodes: &[NodeKind]) -> Vec<(u64, u64)> {
    let mut edges = Vec::new();
    let mut previous_barrier = 0usize;
    for (target, node) in nodes.iter().enumerate() {
        if node.barrier || node.rollout {
            edges.extend(
                (previous_barrier..target)
                    .filter(|&source| !nodes[source].deadend)
                    .map(|source| (source as u64, target as u64)),
            );
        }
        if node.barrier {
            previous_barrier = target;
        }
    }
    edges
}

/// What decides a node's edges, read once from the updates metadata.
#[derive(Clone, Copy)]
struct NodeKind {
    barrier: bool,
    deadend: bool,
    rollout: bool,
}

impl NodeKind {
    fn of(update: Option<&UpdateMetadata>) -> Self {
        NodeKind {
            barrier: update.is_some_and(|u| u.barrier.is_some()),
            deadend: update.is_some_and(|u| u.deadend.is_some()),
            rollout: update.is_some_and(|u| u.rollout.is_some()),
        }
    }
}

/// The payload of `release` for `basearch` under `scheme`: the last
/// non-empty entry for the basearch.
fn payload_of<'r>(release: &'r Release, basearch: &str, scheme: Scheme) -> Option<&'r str> {
    match scheme {
        Scheme::Checksum => release
            .commits
            .iter()
            .flatten()
            .filter(|c| c.architecture == basearch && !c.checksum.is_empty())
            .map(|c| c.checksum.as_str())
            .next_back(),
        Scheme::Oci => release
            .oci_images
            .iter()
            .flatten()
            .filter(|i| i.architecture == basearch && !i.digest_ref.is_empty())
            .map(|i| i.digest_ref.as_str())
            .next_back(),
    }
}

/// Checks edges against the graph rules: in range, forward, none leaving a
/// dead-end (`deadends[i]` says whether node `i` is one), no duplicates.
/// A dead-end violation carries an empty version; callers fill it in.
fn check_edges(edges: &[(u64, u64)], deadends: &[bool]) -> Result<(), InvalidGraph> {
    let len = deadends.len();
    for &(from, to) in edges {
        if from as usize >= len || to as usize >= len {
            return Err(InvalidGraph::EdgeOutOfRange(from, to, len));
        }
        if from >= to {
            return Err(InvalidGraph::EdgeBackward(from, to));
        }
        if deadends[from as usize] {
            return Err(InvalidGraph::EdgeFromDeadend(from, to, String::new()));
        }
    }
    // Duplicates are neighbours once sorted by (target, source), the order
    // graphs are built in; sort a copy only when needed.
    let key = |&(from, to): &(u64, u64)| (to, from);
    let sorted_copy;
    let sorted: &[(u64, u64)] = if edges.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        edges
    } else {
        let mut copy = edges.to_vec();
        copy.sort_unstable_by_key(key);
        sorted_copy = copy;
        &sorted_copy
    };
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(InvalidGraph::DuplicateEdge(w[0].0, w[0].1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::UpdatesMetadata;

    fn index(json: &str) -> ReleaseIndex {
        ReleaseIndex::parse(json.as_bytes(), None).unwrap()
    }

    fn updates(json: &str) -> UpdatesMetadata {
        UpdatesMetadata::parse(json.as_bytes(), None).unwrap()
    }

    /// A release index of `n` releases `v0..`, each with an x86_64 commit.
    fn linear_index(n: usize) -> ReleaseIndex {
        let releases: Vec<String> = (0..n)
            .map(|i| {
                format!(r#"{{"version":"v{i}","commits":[{{"architecture":"x86_64","checksum":"c{i}"}}]}}"#)
            })
            .collect();
        index(&format!(r#"{{"releases":[{}]}}"#, releases.join(",")))
    }

    #[test]
    fn barriers_and_rollouts_get_edges_back_to_previous_barrier() {
        let idx = linear_index(6);
        let upd = updates(
            r#"{"stream":"s","releases":[
                {"version":"v2","metadata":{"barrier":{"reason":""}}},
                {"version":"v4","metadata":{"rollout":{}}},
                {"version":"v5","metadata":{"barrier":{"reason":"r"}}}]}"#,
        );
        let graph = Graph::from_documents(&idx, &upd, "x86_64", Scheme::Checksum);
        assert_eq!(
            graph.edges,
            vec![(0, 2), (1, 2), (2, 4), (3, 4), (2, 5), (3, 5), (4, 5)]
        );
        let barrier = &graph.nodes[2].metadata;
        assert_eq!(barrier[metadata::BARRIER_REASON], "generic");
        assert_eq!(barrier[metadata::AGE_INDEX], "2");
        assert_eq!(barrier[metadata::SCHEME], "checksum");
        graph.validate().unwrap();
    }

    #[test]
    fn rollout_that_is_a_barrier_gets_rollout_edges_once() {
        let idx = linear_index(4);
        let upd = updates(
            r#"{"stream":"s","releases":[
                {"version":"v1","metadata":{"barrier":{}}},
                {"version":"v3","metadata":{"barrier":{},"rollout":{"start_percentage":0.25}}}]}"#,
        );
        let graph = Graph::from_documents(&idx, &upd, "x86_64", Scheme::Checksum);
        assert_eq!(graph.edges, vec![(0, 1), (1, 3), (2, 3)]);
        assert_eq!(graph.nodes[3].metadata[metadata::START_VALUE], "0.25");
        graph.validate().unwrap();
    }

    #[test]
    fn deadends_have_no_outgoing_edges() {
        let idx = linear_index(3);
        let upd = updates(
            r#"{"stream":"s","releases":[
                {"version":"v0","metadata":{"deadend":{"reason":"bad"}}},
                {"version":"v2","metadata":{"barrier":{}}}]}"#,
        );
        let graph = Graph::from_documents(&idx, &upd, "x86_64", Scheme::Checksum);
        assert_eq!(graph.edges, vec![(1, 2)]);
        assert_eq!(graph.nodes[0].metadata[metadata::DEADEND_REASON], "bad");
    }

    #[test]
    fn age_index_counts_the_whole_index_and_schemes_select_nodes() {
        let idx = index(
            r#"{"releases":[
              {"version":"a","commits":[{"architecture":"x86_64","checksum":"ca"}]},
              {"version":"b","commits":[{"architecture":"aarch64","checksum":"cb"}],
               "oci-images":[{"architecture":"x86_64","digest-ref":"q@sha256:b"}]},
              {"version":"c","commits":[{"architecture":"x86_64","checksum":""}],
               "oci-images":[{"architecture":"x86_64","digest-ref":"q@sha256:c1"},
                             {"architecture":"x86_64","digest-ref":"q@sha256:c2"}]},
              {"version":"d","commits":[],"oci-images":[]}]}"#,
        );
        let upd =
            updates(r#"{"stream":"s","releases":[{"version":"zz","metadata":{"barrier":{}}}]}"#);
        let checksum = Graph::from_documents(&idx, &upd, "x86_64", Scheme::Checksum);
        assert_eq!(checksum.nodes.len(), 1);
        assert_eq!(checksum.nodes[0].payload, "ca");
        let oci = Graph::from_documents(&idx, &upd, "x86_64", Scheme::Oci);
        let found: Vec<(&str, &str, &str)> = oci
            .nodes
            .iter()
            .map(|n| {
                (
                    n.version.as_str(),
                    n.payload.as_str(),
                    n.metadata[metadata::AGE_INDEX].as_ref(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![("b", "q@sha256:b", "1"), ("c", "q@sha256:c2", "2")]
        );
        assert_eq!(oci.nodes[0].metadata[metadata::SCHEME], "oci");
    }

    #[test]
    fn a_repeated_arch_takes_the_last_non_empty_payload() {
        let idx = index(
            r#"{"releases":[{"version":"a","commits":[
                {"architecture":"x86_64","checksum":"first"},
                {"architecture":"x86_64","checksum":"second"},
                {"architecture":"x86_64","checksum":""}]}]}"#,
        );
        let upd = updates(r#"{"stream":"s","releases":[]}"#);
        let graph = Graph::from_documents(&idx, &upd, "x86_64", Scheme::Checksum);
        assert_eq!(graph.nodes[0].payload, "second");
    }

    #[test]
    fn start_value_formatting() {
        for (input, expected) in [
            ("0.0", "0"),
            ("1.0", "1"),
            ("0.25", "0.25"),
            ("1e-7", "0.0000001"),
            ("0", "0"),
        ] {
            let idx = linear_index(1);
            let upd = updates(&format!(
                r#"{{"stream":"s","releases":[{{"version":"v0","metadata":{{"rollout":{{"start_percentage":{input},"start_epoch":17,"duration_minutes":5}}}}}}]}}"#
            ));
            let graph = Graph::from_documents(&idx, &upd, "x86_64", Scheme::Checksum);
            let meta = &graph.nodes[0].metadata;
            assert_eq!(meta[metadata::START_VALUE], expected, "{input}");
            assert_eq!(meta[metadata::START_EPOCH], "17");
            assert_eq!(meta[metadata::DURATION], "5");
        }
    }

    #[test]
    fn validate_catches_broken_graphs() {
        let mut graph = Graph::from_documents(
            &linear_index(3),
            &updates(r#"{"stream":"s","releases":[{"version":"v2","metadata":{"barrier":{}}}]}"#),
            "x86_64",
            Scheme::Checksum,
        );
        graph.validate().unwrap();
        let mut backward = graph.clone();
        backward.edges.push((2, 1));
        assert_eq!(backward.validate(), Err(InvalidGraph::EdgeBackward(2, 1)));
        let mut out_of_range = graph.clone();
        out_of_range.edges.push((1, 7));
        assert!(matches!(
            out_of_range.validate(),
            Err(InvalidGraph::EdgeOutOfRange(1, 7, 3))
        ));
        let mut duplicate = graph.clone();
        duplicate.edges.push((0, 2));
        assert_eq!(duplicate.validate(), Err(InvalidGraph::DuplicateEdge(0, 2)));
        graph.nodes[0]
            .metadata
            .insert(metadata::DEADEND.into(), "true".into());
        assert!(matches!(
            graph.validate(),
            Err(InvalidGraph::EdgeFromDeadend(0, 2, _))
        ));
    }
}
