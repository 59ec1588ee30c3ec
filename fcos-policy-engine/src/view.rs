//! A graph prepared for serving many clients: the response depends on a
//! client only through which in-progress rollouts are hidden from it, so
//! each distinct set of hidden rollouts is serialized (and compressed) once
//! and shared.

use commons::graph::Graph;
use commons::policy::{self, RolloutParams};
use commons::web::GraphBody;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Most rollouts tracked by the per-client cache (one bit each); a graph
/// with more is served by the plain computation.
const MAX_CACHED_ROLLOUTS: usize = 64;
/// Most cached views of one graph before the cache starts over: more than
/// the `MAX_CACHED_ROLLOUTS + 1` sets of hidden rollouts that can be in use
/// at one time (they are prefixes in progress order).
const MAX_CACHED_VIEWS: usize = 128;

/// A graph from the graph-builder, ready for per-client views.
pub struct PreparedGraph {
    graph: Graph,
    /// Rollout nodes and their parameters.
    rollouts: Vec<(u64, RolloutParams)>,
    /// Hidden-rollouts bitmask → serialized view.
    views: RwLock<HashMap<u64, Arc<GraphBody>>>,
    /// (bitmask, node) → view with that node's payload replaced by a digest
    /// alias (see [`crate::aliases`]).
    alias_views: RwLock<HashMap<(u64, usize), Arc<GraphBody>>>,
    /// Payload → node.
    by_payload: HashMap<String, usize>,
    /// Version → node.
    by_version: HashMap<String, usize>,
}

impl PreparedGraph {
    /// Prepares `graph` (edges out of dead-ends are removed here, once).
    pub fn new(mut graph: Graph) -> Self {
        policy::filter_deadends(&mut graph);
        let rollouts = graph
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, node)| RolloutParams::of(node).map(|r| (i as u64, r)))
            .collect();
        let by_payload = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.payload.clone(), i))
            .collect();
        let by_version = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.version.clone(), i))
            .collect();
        PreparedGraph {
            graph,
            rollouts,
            views: RwLock::default(),
            alias_views: RwLock::default(),
            by_payload,
            by_version,
        }
    }

    /// The graph as received, dead-end edges removed.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The node whose payload is `payload`.
    pub fn node_by_payload(&self, payload: &str) -> Option<usize> {
        self.by_payload.get(payload).copied()
    }

    /// The node of release `version`.
    pub fn node_by_version(&self, version: &str) -> Option<usize> {
        self.by_version.get(version).copied()
    }

    /// Bitmask of the rollouts hidden from a client of `wariness` at `now`.
    fn hidden_mask(&self, wariness: f64, now: i64) -> u64 {
        self.rollouts
            .iter()
            .enumerate()
            .filter(|(_, (_, params))| policy::is_hidden(wariness, params.progress(now)))
            .fold(0u64, |mask, (bit, _)| mask | (1 << bit))
    }

    /// The view of a client of `wariness` at `now`.
    pub fn view(&self, wariness: f64, now: i64) -> Arc<GraphBody> {
        if self.rollouts.len() > MAX_CACHED_ROLLOUTS {
            let view = policy::client_view(self.graph.clone(), wariness, now);
            return Arc::new(GraphBody::new(view.to_json()));
        }
        let mask = self.hidden_mask(wariness, now);
        cached(&self.views, mask, || self.render(mask, None))
    }

    /// The view of a client of `wariness` at `now` in which node `node`
    /// carries `payload` (the client's own pullspec, a known alias of the
    /// published one); everything else is as in [`PreparedGraph::view`].
    pub fn view_with_payload(
        &self,
        wariness: f64,
        now: i64,
        node: usize,
        payload: &str,
    ) -> Arc<GraphBody> {
        if self.rollouts.len() > MAX_CACHED_ROLLOUTS {
            let mut view = policy::client_view(self.graph.clone(), wariness, now);
            view.nodes[node].payload = payload.to_string();
            return Arc::new(GraphBody::new(view.to_json()));
        }
        let mask = self.hidden_mask(wariness, now);
        // A node has one alias per architecture, and a graph one
        // architecture, so (mask, node) determines the payload.
        cached(&self.alias_views, (mask, node), || {
            self.render(mask, Some((node, payload)))
        })
    }

    /// Serializes the graph with the edges into the rollouts of `mask`
    /// removed, and optionally one node's payload replaced.
    fn render(&self, mask: u64, replace: Option<(usize, &str)>) -> GraphBody {
        let hidden: Vec<u64> = self
            .rollouts
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, (node, _))| *node)
            .collect();
        let mut nodes = self.graph.nodes.clone();
        if let Some((node, payload)) = replace {
            nodes[node].payload = payload.to_string();
        }
        let view = Graph {
            nodes,
            edges: self
                .graph
                .edges
                .iter()
                .copied()
                .filter(|(_, to)| !hidden.contains(to))
                .collect(),
        };
        GraphBody::new(view.to_json())
    }
}

/// The entry of `key` in `cache`, made by `make` when absent; the cache
/// starts over when full.
fn cached<K: std::hash::Hash + Eq + Copy>(
    cache: &RwLock<HashMap<K, Arc<GraphBody>>>,
    key: K,
    make: impl FnOnce() -> GraphBody,
) -> Arc<GraphBody> {
    if let Some(body) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Arc::clone(body);
    }
    let body = Arc::new(make());
    let mut entries = cache.write().unwrap_or_else(|e| e.into_inner());
    if entries.len() >= MAX_CACHED_VIEWS {
        entries.clear();
    }
    Arc::clone(entries.entry(key).or_insert(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use commons::graph::Scheme;
    use commons::metadata::{Commit, Reason, Release, ReleaseIndex, Rollout, UpdateMetadata};
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// One release's update metadata: barrier, dead-end, and rollout
    /// (start epoch, start value, duration), each optional.
    type Flags = (bool, bool, Option<(Option<i64>, Option<f64>, Option<u64>)>);

    fn flags() -> impl Strategy<Value = Flags> {
        let rollout = (
            proptest::option::of(0i64..2_000),
            proptest::option::of(prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0]),
            proptest::option::of(0u64..30),
        );
        (
            proptest::bool::weighted(0.2),
            proptest::bool::weighted(0.1),
            proptest::option::weighted(0.4, rollout),
        )
    }

    fn graph_of(releases: &[Flags]) -> Graph {
        let index = ReleaseIndex {
            stream: None,
            releases: (0..releases.len())
                .map(|i| Release {
                    version: format!("v{i}"),
                    commits: Some(vec![Commit {
                        architecture: "x86_64".into(),
                        checksum: format!("c{i}"),
                    }]),
                    oci_images: None,
                })
                .collect(),
        };
        let versions: Vec<String> = (0..releases.len()).map(|i| format!("v{i}")).collect();
        let updates: HashMap<&str, UpdateMetadata> = releases
            .iter()
            .enumerate()
            .map(|(i, (barrier, deadend, rollout))| {
                let metadata = UpdateMetadata {
                    barrier: barrier.then(Reason::default),
                    deadend: deadend.then(Reason::default),
                    rollout: rollout.map(|(start_epoch, start_percentage, duration_minutes)| {
                        Rollout {
                            start_epoch,
                            start_percentage,
                            duration_minutes,
                        }
                    }),
                };
                (versions[i].as_str(), metadata)
            })
            .collect();
        let aligned: Vec<Option<&UpdateMetadata>> =
            versions.iter().map(|v| updates.get(v.as_str())).collect();
        Graph::build(&index, &aligned, "x86_64", Scheme::Checksum)
    }

    proptest! {
        /// The cached per-client views are byte for byte the plain
        /// computation, for any graph, wariness and time, in any order of
        /// requests (cache hits included).
        #[test]
        fn fast_path_matches_plain_computation(
            releases in proptest::collection::vec(flags(), 1..24),
            clients in proptest::collection::vec(
                (prop_oneof![Just(0.0), Just(1.0), Just(0.000_001), 0.0f64..1.0], -100i64..4_000),
                1..40,
            ),
        ) {
            let graph = graph_of(&releases);
            let prepared = PreparedGraph::new(graph.clone());
            for (i, (wariness, now)) in clients.into_iter().enumerate() {
                let fast = prepared.view(wariness, now);
                let plain = policy::client_view(graph.clone(), wariness, now);
                let plain_json = plain.to_json();
                prop_assert_eq!(fast.json().as_ref(), plain_json.as_slice());
                // A client with an aliased payload on some node.
                let node = i % graph.nodes.len();
                let aliased = prepared.view_with_payload(wariness, now, node, "alias");
                let mut expected = plain;
                expected.nodes[node].payload = "alias".to_string();
                let expected_json = expected.to_json();
                prop_assert_eq!(aliased.json().as_ref(), expected_json.as_slice());
            }
        }
    }

    #[test]
    fn views_are_shared_between_clients_in_the_same_state() {
        let graph = graph_of(&[
            (false, false, None),
            (false, false, Some((Some(0), Some(0.5), None))),
        ]);
        let prepared = PreparedGraph::new(graph);
        let a = prepared.view(0.1, 10);
        let b = prepared.view(0.2, 10);
        let hidden = prepared.view(0.9, 10);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &hidden));
    }
}
