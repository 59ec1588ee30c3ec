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

/// The constant keys and values of node metadata: a graph read borrows
/// them, as a graph built does, instead of keeping a copy in every node.
const CONSTANTS: &[&str] = &[
    metadata::AGE_INDEX,
    metadata::SCHEME,
    metadata::BARRIER,
    metadata::BARRIER_REASON,
    metadata::DEADEND,
    metadata::DEADEND_REASON,
    metadata::ROLLOUT,
    metadata::START_EPOCH,
    metadata::START_VALUE,
    metadata::DURATION,
    "true",
    "false",
    "checksum",
    "oci",
];

fn borrowed_if_constant(text: String) -> Cow<'static, str> {
    match CONSTANTS.iter().find(|constant| **constant == text) {
        Some(constant) => Cow::Borrowed(constant),
        None => Cow::Owned(text),
    }
}

/// Reads node metadata, its constants borrowed.
fn deserialize_metadata<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Metadata, D::Error> {
    let read = BTreeMap::<String, String>::deserialize(deserializer)?;
    Ok(read
        .into_iter()
        .map(|(key, value)| (borrowed_if_constant(key), borrowed_if_constant(value)))
        .collect())
}

/// One release in the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Release version.
    pub version: String,
    /// Release metadata (see the key constants in [`crate::metadata`]);
    /// sorted so the same graph always serializes to the same bytes.
    #[serde(deserialize_with = "deserialize_metadata")]
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

/// A graph serialized straight from the documents, without building it.
#[derive(Debug)]
pub struct SerializedGraph {
    /// The JSON, byte for byte what [`Graph::to_json`] gives for the graph
    /// [`Graph::build`] builds from the same input.
    pub json: Vec<u8>,
    /// Number of nodes.
    pub nodes: usize,
    /// Number of edges.
    pub edges: usize,
}

/// Builds, checks and serializes the graph of one basearch and scheme in
/// one pass over the release index, borrowing every string from it: the
/// graph-builder's fast path. Versions are unique in a parsed
/// [`ReleaseIndex`]; edges are checked as in [`Graph::validate`].
///
/// Why a second serializer beside [`Graph::build`] + [`Graph::to_json`]
/// (which the policy-engine and the previewer need anyway): measured in a
/// release build, best of five, all eight graphs of one stream, this
/// writer takes 0.15 ms for stable (179 releases) against 0.34 ms, which
/// alone would not pay for it; but for the synthetic 100,000-release
/// stream it takes 219 ms against 856 ms, which is what keeps the
/// graph-builder's start-to-serve at that size under a second
/// (`docs/performance.md`). A property test checks it byte for byte
/// against `build` + `to_json`, and `commons/tests/graph_rules.rs` checks
/// both against a naive reading of `docs/graph-semantics.md`.
pub fn serialize_graph(
    index: &ReleaseIndex,
    updates: &[Option<&UpdateMetadata>],
    basearch: &str,
    scheme: Scheme,
) -> Result<SerializedGraph, InvalidGraph> {
    serialize_graphs(index, updates, &[(basearch, scheme)])
        .map(|mut graphs| graphs.pop().expect("one graph per scope"))
        .map_err(|(_, error)| error)
}

/// [`serialize_graph`] for several scopes at once, in a single pass over
/// the release index (which then stays in cache), in the order of `scopes`.
/// An error comes with the position in `scopes` of the graph that broke a
/// rule.
pub fn serialize_graphs(
    index: &ReleaseIndex,
    updates: &[Option<&UpdateMetadata>],
    scopes: &[(&str, Scheme)],
) -> Result<Vec<SerializedGraph>, (usize, InvalidGraph)> {
    debug_assert_eq!(index.releases.len(), updates.len());
    struct Pending {
        out: Vec<u8>,
        /// Release position of each node.
        selected: Vec<usize>,
        kinds: Vec<NodeKind>,
    }
    // Nodes take about 230 bytes (OSTree) to 290 (OCI): room for 320 a
    // release avoids regrowing; pages never written are never resident.
    let capacity = index.releases.len() * 320 + 64;
    let mut pending: Vec<Pending> = scopes
        .iter()
        .map(|_| {
            let mut out = Vec::with_capacity(capacity);
            out.extend_from_slice(br#"{"nodes":["#);
            Pending {
                out,
                selected: Vec::new(),
                kinds: Vec::new(),
            }
        })
        .collect();
    for ((age_index, release), &update) in index.releases.iter().enumerate().zip(updates) {
        for (graph, &(basearch, scheme)) in pending.iter_mut().zip(scopes) {
            let Some(payload) = payload_of(release, basearch, scheme) else {
                continue;
            };
            let out = &mut graph.out;
            if !graph.selected.is_empty() {
                out.push(b',');
            }
            graph.selected.push(age_index);
            graph.kinds.push(NodeKind::of(update));
            write_node(out, &release.version, age_index, scheme, update, payload);
        }
    }
    let mut graphs = Vec::with_capacity(scopes.len());
    for (position, graph) in pending.into_iter().enumerate() {
        let Pending {
            mut out,
            selected,
            kinds,
        } = graph;
        let edges = compute_edges(&kinds);
        let deadends: Vec<bool> = kinds.iter().map(|k| k.deadend).collect();
        check_edges(&edges, &deadends).map_err(|error| {
            let error = match error {
                InvalidGraph::EdgeFromDeadend(from, to, _) => InvalidGraph::EdgeFromDeadend(
                    from,
                    to,
                    index.releases[selected[from as usize]].version.clone(),
                ),
                other => other,
            };
            (position, error)
        })?;
        out.extend_from_slice(br#"],"edges":["#);
        for (i, &(from, to)) in edges.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            write_u64(&mut out, from);
            out.push(b',');
            write_u64(&mut out, to);
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
        graphs.push(SerializedGraph {
            json: out,
            nodes: selected.len(),
            edges: edges.len(),
        });
    }
    Ok(graphs)
}

/// Writes one node as [`Graph::to_json`] does: metadata keys in sorted
/// order, as a `BTreeMap` serializes them.
fn write_node(
    out: &mut Vec<u8>,
    version: &str,
    age_index: usize,
    scheme: Scheme,
    update: Option<&UpdateMetadata>,
    payload: &str,
) {
    out.extend_from_slice(br#"{"version":"#);
    write_json_str(out, version);
    out.extend_from_slice(br#","metadata":{"org.fedoraproject.coreos.releases.age_index":""#);
    write_u64(out, age_index as u64);
    out.extend_from_slice(br#"","org.fedoraproject.coreos.scheme":"#);
    write_json_str(out, scheme.as_str());
    if let Some(update) = update {
        if let Some(barrier) = &update.barrier {
            write_entry(out, metadata::BARRIER, "true");
            write_entry(out, metadata::BARRIER_REASON, reason_text(&barrier.reason));
        }
        if let Some(deadend) = &update.deadend {
            write_entry(out, metadata::DEADEND, "true");
            write_entry(out, metadata::DEADEND_REASON, reason_text(&deadend.reason));
        }
        if let Some(rollout) = &update.rollout {
            if let Some(minutes) = rollout.duration_minutes {
                write_entry(out, metadata::DURATION, &minutes.to_string());
            }
            write_entry(out, metadata::ROLLOUT, "true");
            if let Some(epoch) = rollout.start_epoch {
                write_entry(out, metadata::START_EPOCH, &epoch.to_string());
            }
            if let Some(value) = rollout.start_percentage {
                write_entry(out, metadata::START_VALUE, &value.to_string());
            }
        }
    }
    out.extend_from_slice(br#"},"payload":"#);
    write_json_str(out, payload);
    out.push(b'}');
}

/// Writes a decimal number.
fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

fn reason_text(reason: &str) -> &str {
    if reason.is_empty() {
        "generic"
    } else {
        reason
    }
}

fn write_entry(out: &mut Vec<u8>, key: &str, value: &str) {
    out.push(b',');
    write_json_str(out, key);
    out.push(b':');
    write_json_str(out, value);
}

/// Writes `text` as a JSON string, escaped exactly as serde_json does.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::UpdatesMetadata;

    fn index(json: &str) -> ReleaseIndex {
        ReleaseIndex::parse(json.as_bytes(), None).unwrap()
    }

    /// A graph read borrows the constant keys and values of its nodes'
    /// metadata and keeps the others, and serializes to the same bytes.
    #[test]
    fn metadata_constants_read_are_borrowed() {
        let json = r#"{"nodes":[{"version":"1","metadata":{"org.fedoraproject.coreos.releases.age_index":"0","org.fedoraproject.coreos.scheme":"oci","org.fedoraproject.coreos.updates.rollout":"true","x.other":"y"},"payload":"p"}],"edges":[]}"#;
        let graph: Graph = serde_json::from_str(json).unwrap();
        let metadata = &graph.nodes[0].metadata;
        let borrowed: Vec<(&str, bool, bool)> = metadata
            .iter()
            .map(|(k, v)| {
                (
                    k.as_ref(),
                    matches!(k, Cow::Borrowed(_)),
                    matches!(v, Cow::Borrowed(_)),
                )
            })
            .collect();
        assert_eq!(
            borrowed,
            [
                (metadata::AGE_INDEX, true, false),
                (metadata::SCHEME, true, true),
                (metadata::ROLLOUT, true, true),
                ("x.other", false, false),
            ]
        );
        assert_eq!(graph.to_json(), json.as_bytes());
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

    mod fast_path {
        use super::super::*;
        use crate::metadata::{Commit, OciImage, Reason, Rollout};
        use proptest::prelude::*;

        /// Strings with what JSON must escape.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof!["[a-z0-9.]{0,6}", "[\\PC\"\\\\\u{0}-\u{1f}é/]{0,6}",]
        }

        fn release() -> impl Strategy<Value = (Release, Option<UpdateMetadata>)> {
            let arch = prop_oneof![Just("x86_64".to_string()), Just("aarch64".to_string())];
            let payload = prop_oneof![Just(String::new()), text()];
            let commits = proptest::option::of(proptest::collection::vec(
                (arch.clone(), payload.clone()).prop_map(|(architecture, checksum)| Commit {
                    architecture,
                    checksum,
                }),
                0..3,
            ));
            let images = proptest::option::of(proptest::collection::vec(
                (arch, payload).prop_map(|(architecture, digest_ref)| OciImage {
                    architecture,
                    digest_ref,
                }),
                0..3,
            ));
            let reason =
                || proptest::option::weighted(0.3, text().prop_map(|reason| Reason { reason }));
            let rollout = proptest::option::weighted(
                0.3,
                (
                    proptest::option::of(-5i64..5_000_000_000),
                    proptest::option::of(prop_oneof![
                        Just(0.0),
                        Just(1.0),
                        Just(1e-7),
                        0.0f64..1.0
                    ]),
                    proptest::option::of(0u64..100_000),
                )
                    .prop_map(
                        |(start_epoch, start_percentage, duration_minutes)| Rollout {
                            start_epoch,
                            start_percentage,
                            duration_minutes,
                        },
                    ),
            );
            let update = proptest::option::of((reason(), reason(), rollout).prop_map(
                |(barrier, deadend, rollout)| UpdateMetadata {
                    barrier,
                    deadend,
                    rollout,
                },
            ));
            (text(), commits, images, update).prop_map(|(version, commits, oci_images, update)| {
                (
                    Release {
                        version,
                        commits,
                        oci_images,
                    },
                    update,
                )
            })
        }

        /// The generated releases with unique versions: each is prefixed
        /// with its position and a `-` (a position has no `-`, so the
        /// first `-` ends it and two positions never make the same text).
        fn numbered(releases: &[(Release, Option<UpdateMetadata>)]) -> ReleaseIndex {
            ReleaseIndex {
                stream: None,
                releases: releases
                    .iter()
                    .enumerate()
                    .map(|(i, (r, _))| Release {
                        version: format!("{i}-{}", r.version),
                        ..r.clone()
                    })
                    .collect(),
            }
        }

        /// The one-pass serializer against the plain build, for every
        /// scope of `releases`.
        fn check_fast_path(
            releases: &[(Release, Option<UpdateMetadata>)],
        ) -> Result<(), TestCaseError> {
            let index = numbered(releases);
            let updates: Vec<Option<&UpdateMetadata>> =
                releases.iter().map(|(_, u)| u.as_ref()).collect();
            for basearch in ["x86_64", "aarch64"] {
                for scheme in Scheme::ALL {
                    let plain = Graph::build(&index, &updates, basearch, scheme);
                    plain.validate().unwrap();
                    let fast = serialize_graph(&index, &updates, basearch, scheme).unwrap();
                    prop_assert_eq!(fast.nodes, plain.nodes.len());
                    prop_assert_eq!(fast.edges, plain.edges.len());
                    prop_assert_eq!(
                        String::from_utf8(fast.json).unwrap(),
                        String::from_utf8(plain.to_json()).unwrap()
                    );
                }
            }
            Ok(())
        }

        proptest! {
            /// The graph-builder's one-pass serializer gives byte for byte
            /// the JSON of the graph built the plain way.
            #[test]
            fn serialize_graph_matches_build_then_to_json(
                releases in proptest::collection::vec(release(), 0..30),
            ) {
                check_fast_path(&releases)?;
            }
        }

        /// Generated versions stay unique whatever the generated text:
        /// position 1 with `1` and position 11 with nothing once both
        /// made `11`.
        #[test]
        fn numbered_versions_do_not_collide() {
            let x86 = |version: &str| Release {
                version: version.to_string(),
                commits: Some(vec![Commit {
                    architecture: "x86_64".into(),
                    checksum: format!("c-{version}"),
                }]),
                oci_images: None,
            };
            let mut releases: Vec<_> = (0..12).map(|i| (x86(&format!("r{i}")), None)).collect();
            releases[1].0 = x86("1");
            releases[11].0 = x86("");
            let index = numbered(&releases);
            let versions: std::collections::HashSet<&str> =
                index.releases.iter().map(|r| r.version.as_str()).collect();
            assert_eq!(versions.len(), releases.len(), "{versions:?}");
            check_fast_path(&releases).unwrap();
        }
    }
}
