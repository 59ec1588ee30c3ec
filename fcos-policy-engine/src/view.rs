//! A graph prepared for serving many clients: the response depends on a
//! client only through which in-progress rollouts are hidden from it and
//! what its group's policy removes, so each distinct combination is
//! serialized (and compressed) once and shared.

use commons::fleet_policy::{Group, Policy, Reason};
use commons::graph::{Graph, Node};
use commons::rollout::{self, RolloutParams};
use prometheus::{IntCounter, IntGauge, Registry};
use service_kit::web::GraphBody;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a client's group policy removes from its view.
#[derive(Debug, Clone, Copy)]
pub enum Removal<'a> {
    /// Nothing (no policy, or none that applies to this graph now).
    None,
    /// Every edge: the group is paused, frozen or outside its windows.
    All(Reason),
    /// The edges into the releases the group denies or that are newer
    /// than its maximum version of the graph's stream.
    Targets {
        /// The group's rules.
        group: &'a Group,
        /// The age index of the group's maximum version of the stream
        /// (its place in the stream's release index), when it has one.
        pin: Option<u64>,
        /// The load of the policy they come from.
        generation: u64,
    },
}

impl<'a> Removal<'a> {
    /// The rules of a client of `group` under `policy` (if any apply), and
    /// what they remove from a graph of `stream` at `now`. `release_age`
    /// gives the age index of a release of the stream (its place in the
    /// stream's release index), `None` for a release not published: a
    /// maximum version without one holds the group where it is (every
    /// edge removed), since what is newer than it cannot be told.
    pub fn of(
        policy: Option<&'a Policy>,
        group: Option<&str>,
        stream: &str,
        now: i64,
        release_age: impl FnOnce(&str) -> Option<u64>,
    ) -> (Option<&'a Group>, Removal<'a>) {
        let Some(policy) = policy else {
            return (None, Removal::None);
        };
        let Some(rules) = policy.rules_for(group) else {
            return (None, Removal::None);
        };
        if let Some(reason) = rules.closed_at(now) {
            return (Some(rules), Removal::All(reason));
        }
        let pin = match rules.max_version(stream) {
            None => None,
            Some(version) => match release_age(version) {
                Some(age) => Some(age),
                None => return (Some(rules), Removal::All(Reason::MaxVersion)),
            },
        };
        let removal = if pin.is_some() || rules.has_targets(stream) {
            Removal::Targets {
                group: rules,
                pin,
                generation: policy.generation,
            }
        } else {
            Removal::None
        };
        (Some(rules), removal)
    }
}

/// What identifies a cached view: the hidden rollouts, and what the policy
/// removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ViewKey {
    /// (hidden rollouts, halted releases).
    Plain(u64, u64),
    /// No edges at all (the rollouts do not matter then).
    Closed,
    /// (hidden rollouts, halted releases, policy generation, group index,
    /// age index of the pin): the pin's age comes from the other graphs of
    /// the stream when this one lacks the release, so it is part of the
    /// key.
    Targets(u64, u64, u64, usize, Option<u64>),
}

/// The releases whose rollout a guard halted for a client (see
/// [`crate::rollouts`]), as nodes of its graph: the edges into them are
/// withheld.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Halted {
    /// Sorted.
    nodes: Vec<usize>,
    /// Tells sets apart in the view cache (0: none).
    fingerprint: u64,
}

impl Halted {
    /// No release halted.
    pub const NONE: Halted = Halted {
        nodes: Vec::new(),
        fingerprint: 0,
    };

    /// The releases at `nodes`.
    pub fn new(mut nodes: Vec<usize>) -> Self {
        nodes.sort_unstable();
        nodes.dedup();
        let fingerprint = if nodes.is_empty() {
            0
        } else {
            let mut hasher = siphasher::sip::SipHasher13::new_with_keys(0, 0);
            std::hash::Hash::hash(&nodes, &mut hasher);
            std::hash::Hasher::finish(&hasher) | 1
        };
        Halted { nodes, fingerprint }
    }

    /// Whether the release at `node` is halted.
    pub fn contains(&self, node: usize) -> bool {
        !self.nodes.is_empty() && self.nodes.binary_search(&node).is_ok()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// What the view of a client on a node offers it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// The update Zincati takes from the answer: the target with the
    /// highest age index among the edges out of its node.
    pub offer: Option<usize>,
    /// Why the update it would take without the policy and the halts is
    /// withheld, if it is.
    pub withheld: Option<Reason>,
}

/// An edge out of a client's node, and what the client's view does with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeOut {
    /// The target node.
    pub to: usize,
    /// The target's rollout, when it is one: its progress now, and when it
    /// reaches the client's wariness (`None`: never, at its parameters).
    pub rollout: Option<(f64, Option<i64>)>,
    /// Hidden from the client by the rollout.
    pub hidden: bool,
    /// Removed by the policy or a halt, and why.
    pub removed: Option<Reason>,
}

impl EdgeOut {
    /// Whether the client's view has the edge.
    pub fn offered(&self) -> bool {
        !self.hidden && self.removed.is_none()
    }
}

/// Most rollouts tracked by the per-client cache (one bit each); a graph
/// with more is served by the plain computation.
const MAX_CACHED_ROLLOUTS: usize = 64;

/// Default of `[cache] max_bytes`: 8 MiB, some 150 views of a real
/// stream's graph (about 44 KB, and 10 KB gzip), where the 24 graphs of
/// the three streams need a few each.
pub const DEFAULT_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// What a view is charged in the cache: its JSON, a quarter of that for
/// its gzip form (made on the first request that accepts gzip; 22% of the
/// JSON on the real graphs), and the entry itself.
fn view_weight(body: &GraphBody) -> u64 {
    let json = body.json().len() as u64;
    json + json / 4 + 512
}

#[derive(Clone)]
struct ViewWeight;

impl quick_cache::Weighter<ViewCacheKey, Arc<GraphBody>> for ViewWeight {
    fn weight(&self, _key: &ViewCacheKey, body: &Arc<GraphBody>) -> u64 {
        view_weight(body)
    }
}

/// A view in the cache: its graph, its key, and the node whose payload is
/// replaced by a digest alias, if one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ViewCacheKey {
    graph: u64,
    view: ViewKey,
    alias: Option<usize>,
}

/// The serialized per-client views of every graph, kept within one byte
/// budget (`[cache] max_bytes`). Which views exist depends on what clients
/// send (their wariness, their group), so the budget, not the clients,
/// bounds the memory: over it, the views least used go first (quick_cache's
/// S3-FIFO: a view asked for once leaves before the views every node
/// polls), and a view evicted is rendered again when next asked for.
pub struct ViewCache {
    views: quick_cache::sync::Cache<ViewCacheKey, Arc<GraphBody>, ViewWeight>,
    next_graph: AtomicU64,
    renders: IntCounter,
    bytes: IntGauge,
    entries: IntGauge,
    max_bytes: IntGauge,
}

impl std::fmt::Debug for ViewCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewCache")
            .field("views", &self.views.len())
            .field("bytes", &self.views.weight())
            .field("max_bytes", &self.views.capacity())
            .finish_non_exhaustive()
    }
}

impl ViewCache {
    /// A cache of at most `max_bytes` (see [`view_weight`]); its metrics
    /// exist once [`ViewCache::register`]ed.
    pub fn new(max_bytes: u64) -> Self {
        let options = quick_cache::OptionsBuilder::new()
            // One shard: a view may take up to nearly the whole budget
            // (97%, quick_cache's hot part; a shard holds at most its
            // share of the budget).
            .shards(1)
            .estimated_items_capacity((max_bytes / 50_000).clamp(16, 100_000) as usize)
            .weight_capacity(max_bytes)
            .build()
            .expect("the cache's options are valid");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("a valid gauge");
        let max_bytes_gauge = gauge(
            "fcos_cincinnati_pe_view_cache_max_bytes",
            "Most bytes the cache of per-client views holds (cache.max_bytes).",
        );
        max_bytes_gauge.set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
        ViewCache {
            views: quick_cache::sync::Cache::with_options(
                options,
                ViewWeight,
                Default::default(),
                Default::default(),
            ),
            next_graph: AtomicU64::new(0),
            renders: IntCounter::new(
                "fcos_cincinnati_pe_view_renders_total",
                "Per-client views serialized: not found in the cache.",
            )
            .expect("a valid counter"),
            bytes: gauge(
                "fcos_cincinnati_pe_view_cache_bytes",
                "Bytes held by the cache of per-client views.",
            ),
            entries: gauge(
                "fcos_cincinnati_pe_view_cache_views",
                "Views held by the cache of per-client views.",
            ),
            max_bytes: max_bytes_gauge,
        }
    }

    /// Registers the cache's metrics in `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.renders.clone()))?;
        registry.register(Box::new(self.bytes.clone()))?;
        registry.register(Box::new(self.entries.clone()))?;
        registry.register(Box::new(self.max_bytes.clone()))
    }

    /// Sets the gauges to what the cache holds now.
    pub fn update_gauges(&self) {
        self.bytes
            .set(i64::try_from(self.views.weight()).unwrap_or(i64::MAX));
        self.entries
            .set(i64::try_from(self.views.len()).unwrap_or(i64::MAX));
    }

    /// The view of `key`, rendered by `make` when the cache lacks it.
    fn get_or_render(&self, key: ViewCacheKey, make: impl FnOnce() -> GraphBody) -> Arc<GraphBody> {
        if let Some(body) = self.views.get(&key) {
            return body;
        }
        // Two requests for a view not held may both render it; neither
        // waits for the other (the cache's waiting would block a worker).
        self.renders.inc();
        let body = Arc::new(make());
        self.views.insert(key, Arc::clone(&body));
        body
    }

    /// Drops the views of graph `graph`: a scan of every view, under the
    /// cache's lock, once per graph replaced (on the thread that lets the
    /// graph go, a request's at times); a few hundred views at the
    /// default budget.
    fn forget(&self, graph: u64) {
        self.views.retain(|key, _| key.graph != graph);
    }
}

/// A graph from the graph-builder, ready for per-client views.
#[derive(Debug)]
pub struct PreparedGraph {
    graph: Graph,
    /// Rollout nodes and their parameters, in node order.
    rollouts: Vec<(u64, RolloutParams)>,
    /// Where its serialized views are kept, under `id`.
    cache: Arc<ViewCache>,
    id: u64,
    /// Node → targets of its edges (dead-end edges removed).
    out_edges: Vec<Vec<u32>>,
    /// Node → its age index (position in the whole release index).
    age: Vec<u64>,
    /// Payload → node, and version → node: positions, the strings not
    /// copied.
    by_payload: NodeIndex,
    by_version: NodeIndex,
}

impl PreparedGraph {
    /// Prepares `graph` (edges out of dead-ends are removed here, once),
    /// its views to be kept in `cache`.
    pub fn new(mut graph: Graph, cache: &Arc<ViewCache>) -> Self {
        rollout::filter_deadends(&mut graph);
        let rollouts = graph
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, node)| RolloutParams::of(node).map(|r| (i as u64, r)))
            .collect();
        let by_payload = NodeIndex::new(&graph.nodes, |node| &node.payload);
        let by_version = NodeIndex::new(&graph.nodes, |node| &node.version);
        let mut out_edges = vec![Vec::new(); graph.nodes.len()];
        for &(from, to) in &graph.edges {
            out_edges[from as usize].push(to as u32);
        }
        let age = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                node.metadata
                    .get(commons::metadata::AGE_INDEX)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(i as u64)
            })
            .collect();
        PreparedGraph {
            graph,
            rollouts,
            id: cache.next_graph.fetch_add(1, Ordering::Relaxed),
            cache: Arc::clone(cache),
            out_edges,
            age,
            by_payload,
            by_version,
        }
    }

    /// Why `removal` or `halted` removes the edges into node `to`, if
    /// they do (the policy's reason first).
    fn removes(&self, removal: &Removal<'_>, halted: &Halted, to: usize) -> Option<Reason> {
        let by_policy = match *removal {
            Removal::None => None,
            Removal::All(reason) => Some(reason),
            Removal::Targets { group, pin, .. } => {
                let version = &self.graph.nodes[to].version;
                if group.denies(version) {
                    Some(Reason::Deny)
                } else {
                    pin.filter(|pin| self.age[to] > *pin)
                        .map(|_| Reason::MaxVersion)
                }
            }
        };
        by_policy.or_else(|| halted.contains(to).then_some(Reason::Halted))
    }

    /// The rollout of node `to`, if it is one.
    fn rollout_of(&self, to: usize) -> Option<&RolloutParams> {
        // `rollouts` is in node order: the parameters parsed once.
        self.rollouts
            .binary_search_by_key(&(to as u64), |(node, _)| *node)
            .ok()
            .map(|at| &self.rollouts[at].1)
    }

    /// The edges out of node `node` (dead-end edges removed) and what the
    /// view of a client of `wariness` at `now` does with each: the one
    /// computation behind [`PreparedGraph::decide`] and `/v1/explain`.
    pub fn edges_out<'s>(
        &'s self,
        wariness: f64,
        now: i64,
        removal: &'s Removal<'_>,
        halted: &'s Halted,
        node: usize,
    ) -> impl Iterator<Item = EdgeOut> + 's {
        self.out_edges[node].iter().map(move |&to| {
            let to = to as usize;
            let rollout = self.rollout_of(to);
            EdgeOut {
                to,
                rollout: rollout.map(|r| (r.progress(now), r.reaches(wariness))),
                hidden: rollout.is_some_and(|r| rollout::is_hidden(wariness, r.progress(now))),
                removed: self.removes(removal, halted, to),
            }
        })
    }

    /// What the view of a client of `wariness` at `now` on node `node`
    /// offers it, and why the policy or a halt withholds the update it
    /// would take without them (the highest-aged target of its edges in
    /// the view without them), if they do.
    pub fn decide(
        &self,
        wariness: f64,
        now: i64,
        removal: &Removal<'_>,
        halted: &Halted,
        node: usize,
    ) -> Decision {
        let mut best: Option<EdgeOut> = None;
        let mut offer: Option<usize> = None;
        for edge in self.edges_out(wariness, now, removal, halted, node) {
            if edge.hidden {
                continue;
            }
            if best.is_none_or(|b| self.age[edge.to] > self.age[b.to]) {
                best = Some(edge);
            }
            if edge.removed.is_none() && offer.is_none_or(|o| self.age[edge.to] > self.age[o]) {
                offer = Some(edge.to);
            }
        }
        Decision {
            offer,
            withheld: best.and_then(|b| b.removed),
        }
    }

    fn key(&self, wariness: f64, now: i64, removal: &Removal<'_>, halted: &Halted) -> ViewKey {
        match removal {
            Removal::All(_) => ViewKey::Closed,
            Removal::None => ViewKey::Plain(self.hidden_mask(wariness, now), halted.fingerprint),
            Removal::Targets {
                group,
                pin,
                generation,
            } => ViewKey::Targets(
                self.hidden_mask(wariness, now),
                halted.fingerprint,
                *generation,
                group.index,
                *pin,
            ),
        }
    }

    /// The age index of node `node` (its place in the stream's release
    /// index).
    pub fn age(&self, node: usize) -> u64 {
        self.age[node]
    }

    /// The graph as received, dead-end edges removed.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The node whose payload is `payload`.
    pub fn node_by_payload(&self, payload: &str) -> Option<usize> {
        self.by_payload.get(&self.graph.nodes, payload)
    }

    /// The node of release `version`.
    pub fn node_by_version(&self, version: &str) -> Option<usize> {
        self.by_version.get(&self.graph.nodes, version)
    }

    /// The age index of release `version` (its place in the stream's
    /// release index), when it is a node of this graph.
    pub fn age_of(&self, version: &str) -> Option<u64> {
        self.node_by_version(version).map(|node| self.age[node])
    }

    /// Bitmask of the rollouts hidden from a client of `wariness` at `now`.
    fn hidden_mask(&self, wariness: f64, now: i64) -> u64 {
        self.rollouts
            .iter()
            .enumerate()
            .filter(|(_, (_, params))| rollout::is_hidden(wariness, params.progress(now)))
            .fold(0u64, |mask, (bit, _)| mask | (1 << bit))
    }

    /// The view of a client of `wariness` at `now`, less what `removal`
    /// and `halted` remove.
    pub fn view(
        &self,
        wariness: f64,
        now: i64,
        removal: &Removal<'_>,
        halted: &Halted,
    ) -> Arc<GraphBody> {
        if self.rollouts.len() > MAX_CACHED_ROLLOUTS {
            return Arc::new(self.plain_view(wariness, now, removal, halted, None));
        }
        let view = self.key(wariness, now, removal, halted);
        let key = ViewCacheKey {
            graph: self.id,
            view,
            alias: None,
        };
        self.cache
            .get_or_render(key, || self.render(view, removal, halted, None))
    }

    /// The view computed without the caches: the client view of
    /// [`rollout::client_view`], less the edges `removal` and `halted`
    /// remove.
    fn plain_view(
        &self,
        wariness: f64,
        now: i64,
        removal: &Removal<'_>,
        halted: &Halted,
        replace: Option<(usize, &str)>,
    ) -> GraphBody {
        let mut view = rollout::client_view(self.graph.clone(), wariness, now);
        view.edges
            .retain(|&(_, to)| self.removes(removal, halted, to as usize).is_none());
        if let Some((node, payload)) = replace {
            view.nodes[node].payload = payload.to_string();
        }
        GraphBody::new(view.to_json())
    }

    /// The view of a client of `wariness` at `now` in which node `node`
    /// carries `payload` (the client's own pullspec, a known alias of the
    /// published one); everything else is as in [`PreparedGraph::view`].
    pub fn view_with_payload(
        &self,
        wariness: f64,
        now: i64,
        removal: &Removal<'_>,
        halted: &Halted,
        node: usize,
        payload: &str,
    ) -> Arc<GraphBody> {
        if self.rollouts.len() > MAX_CACHED_ROLLOUTS {
            let replace = Some((node, payload));
            return Arc::new(self.plain_view(wariness, now, removal, halted, replace));
        }
        let view = self.key(wariness, now, removal, halted);
        // A node has one alias per architecture, and a graph one
        // architecture, so (key, node) determines the payload.
        let key = ViewCacheKey {
            graph: self.id,
            view,
            alias: Some(node),
        };
        self.cache.get_or_render(key, || {
            self.render(view, removal, halted, Some((node, payload)))
        })
    }

    /// Serializes the graph with the edges into the rollouts hidden by
    /// `key` and the edges `removal` and `halted` remove taken out, and
    /// optionally one node's payload replaced.
    fn render(
        &self,
        key: ViewKey,
        removal: &Removal<'_>,
        halted: &Halted,
        replace: Option<(usize, &str)>,
    ) -> GraphBody {
        let mask = match key {
            ViewKey::Plain(mask, _) | ViewKey::Targets(mask, ..) => mask,
            ViewKey::Closed => 0,
        };
        let hidden: Vec<u64> = self
            .rollouts
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, (node, _))| *node)
            .collect();
        // The nodes borrowed, not cloned (each holds a map of metadata):
        // serialized as `Graph::to_json` serializes them.
        let nodes: Vec<NodeJson<'_>> = self
            .graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| NodeJson {
                version: &node.version,
                metadata: &node.metadata,
                payload: match replace {
                    Some((replaced, payload)) if replaced == i => payload,
                    _ => &node.payload,
                },
            })
            .collect();
        let edges: Vec<(u64, u64)> = self
            .graph
            .edges
            .iter()
            .copied()
            .filter(|(_, to)| {
                !hidden.contains(to) && self.removes(removal, halted, *to as usize).is_none()
            })
            .collect();
        let mut json = Vec::with_capacity(nodes.len() * 256 + edges.len() * 12 + 32);
        serde_json::to_writer(&mut json, &GraphJson { nodes, edges })
            .expect("a graph of strings and integers always serializes");
        GraphBody::new(json)
    }
}

/// Positions of nodes by one of their strings (`key`: the payload, the
/// version), found without a copy of the strings: a table of positions
/// hashed by the string each names (with a per-process seed: clients
/// choose what is looked up). Of nodes with the same string, the last.
#[derive(Debug)]
struct NodeIndex {
    key: fn(&Node) -> &str,
    hasher: hashbrown::DefaultHashBuilder,
    table: hashbrown::HashTable<usize>,
}

impl NodeIndex {
    fn hash(&self, text: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, text)
    }

    fn new(nodes: &[Node], key: fn(&Node) -> &str) -> Self {
        let hasher = hashbrown::DefaultHashBuilder::default();
        let hash = |text: &str| std::hash::BuildHasher::hash_one(&hasher, text);
        let mut table = hashbrown::HashTable::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            let wanted = key(node);
            match table.entry(
                hash(wanted),
                |&j: &usize| key(&nodes[j]) == wanted,
                |&j: &usize| hash(key(&nodes[j])),
            ) {
                hashbrown::hash_table::Entry::Occupied(mut entry) => *entry.get_mut() = i,
                hashbrown::hash_table::Entry::Vacant(entry) => {
                    entry.insert(i);
                }
            }
        }
        NodeIndex { key, hasher, table }
    }

    /// The position of the node of `nodes` (those it was made from) whose
    /// string is `wanted`.
    fn get(&self, nodes: &[Node], wanted: &str) -> Option<usize> {
        self.table
            .find(self.hash(wanted), |&j| (self.key)(&nodes[j]) == wanted)
            .copied()
    }
}

/// A view as `Graph` serializes: the same fields in the same order.
#[derive(serde::Serialize)]
struct GraphJson<'a> {
    nodes: Vec<NodeJson<'a>>,
    edges: Vec<(u64, u64)>,
}

/// A node as `Node` serializes, borrowed.
#[derive(serde::Serialize)]
struct NodeJson<'a> {
    version: &'a str,
    metadata: &'a commons::graph::Metadata,
    payload: &'a str,
}

impl Drop for PreparedGraph {
    fn drop(&mut self) {
        self.cache.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commons::graph::Scheme;
    use commons::metadata::{Commit, Reason, Release, ReleaseIndex, Rollout, UpdateMetadata};
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// `graph` prepared with a cache of the default size.
    fn prepared(graph: Graph) -> PreparedGraph {
        PreparedGraph::new(graph, &Arc::new(ViewCache::new(DEFAULT_CACHE_BYTES)))
    }

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
            let prepared = prepared(graph.clone());
            for (i, (wariness, now)) in clients.into_iter().enumerate() {
                let fast = prepared.view(wariness, now, &Removal::None, &Halted::NONE);
                let plain = rollout::client_view(graph.clone(), wariness, now);
                let plain_json = plain.to_json();
                prop_assert_eq!(fast.json().as_ref(), plain_json.as_slice());
                // A client with an aliased payload on some node.
                let node = i % graph.nodes.len();
                let aliased = prepared.view_with_payload(wariness, now, &Removal::None, &Halted::NONE, node, "alias");
                let mut expected = plain;
                expected.nodes[node].payload = "alias".to_string();
                let expected_json = expected.to_json();
                prop_assert_eq!(aliased.json().as_ref(), expected_json.as_slice());
            }
        }
    }

    /// A policy file of one group, `g`, from random rules over the
    /// releases `v0`…: deny some, pin at one, pause, windows, a freeze.
    fn policy_text(
        deny: &[usize],
        pin: Option<usize>,
        paused: bool,
        window: Option<(u8, u16, u16)>,
        freeze: Option<(i64, i64)>,
        wariness: (f64, f64),
    ) -> String {
        let mut text = format!(
            "[groups.g]\nwariness_min = {}\nwariness_max = {}\npaused = {paused}\n",
            wariness.0.min(wariness.1),
            wariness.0.max(wariness.1)
        );
        if !deny.is_empty() {
            let list: Vec<String> = deny.iter().map(|i| format!("\"v{i}\"")).collect();
            text += &format!("deny = [{}]\n", list.join(", "));
        }
        if let Some(pin) = pin {
            text += &format!("max_version = {{ stable = \"v{pin}\" }}\n");
        }
        if let Some((day, start, end)) = window {
            let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            let end = if end == start { (end + 1) % 1440 } else { end };
            text += &format!(
                "windows = [ {{ days = [\"{}\"], start = \"{:02}:{:02}\", end = \"{:02}:{:02}\", timezone = \"Europe/Berlin\" }} ]\n",
                days[day as usize % 7], start / 60, start % 60, end / 60, end % 60
            );
        }
        if let Some((from, length)) = freeze {
            let at = |t: i64| jiff::Timestamp::from_second(t).unwrap().to_string();
            text += &format!(
                "freezes = [ {{ from = \"{}\", to = \"{}\" }} ]\n",
                at(from),
                at(from + length)
            );
        }
        text
    }

    proptest! {
        /// A policy and halts only ever remove edges from the view the
        /// client would get without them (with its clamped wariness): never
        /// an edge, a node or a payload more. And the cached view equals
        /// the plain computation.
        #[test]
        fn a_policy_only_removes_edges(
            halted in proptest::collection::vec(0usize..16, 0..3),
            releases in proptest::collection::vec(flags(), 1..16),
            deny in proptest::collection::vec(0usize..16, 0..3),
            pin in proptest::option::of(0usize..18),
            paused in proptest::bool::weighted(0.1),
            window in proptest::option::weighted(0.4, (0u8..7, 0u16..1440, 0u16..1440)),
            freeze in proptest::option::weighted(0.3, (0i64..4_000, 1i64..2_000)),
            wariness in (0.0f64..=1.0, 0.0f64..=1.0),
            clients in proptest::collection::vec(
                (0.0f64..1.0, prop_oneof![-100i64..4_000, 1_700_000_000i64..1_700_700_000]),
                1..12,
            ),
        ) {
            let graph = graph_of(&releases);
            let prepared = prepared(graph.clone());
            let text = policy_text(&deny, pin, paused, window, freeze, wariness);
            let policy = commons::fleet_policy::Policy::parse(&text, std::path::Path::new("p.toml"), 7).unwrap();
            let group = policy.rules_for(Some("g")).unwrap();
            let halted = Halted::new(halted.into_iter().filter(|&n| n < graph.nodes.len()).collect());
            for (client, now) in clients {
                let wariness = group.clamp(client);
                let (_, removal) = Removal::of(Some(&policy), Some("g"), "stable", now, |v| prepared.age_of(v));
                let with: Graph = serde_json::from_slice(prepared.view(wariness, now, &removal, &halted).json()).unwrap();
                let without = rollout::client_view(graph.clone(), wariness, now);
                prop_assert_eq!(&with.nodes, &without.nodes);
                for edge in &with.edges {
                    prop_assert!(without.edges.contains(edge), "{:?} added by {}", edge, text);
                }
                let plain = prepared.plain_view(wariness, now, &removal, &halted, None);
                let cached = prepared.view(wariness, now, &removal, &halted);
                prop_assert_eq!(plain.json(), cached.json());
                // Withheld: only when the best update of the view without
                // the policy is gone from the view with it; the offer is the
                // best update of the view with it.
                for node in 0..graph.nodes.len() {
                    let best = |g: &Graph| g.edges.iter().filter(|(f, _)| *f as usize == node).map(|(_, t)| *t).max();
                    let decision = prepared.decide(wariness, now, &removal, &halted, node);
                    let lost = best(&without).is_some_and(|b| !with.edges.contains(&(node as u64, b)));
                    prop_assert_eq!(decision.withheld.is_some(), lost, "node {}", node);
                    prop_assert_eq!(decision.offer.map(|o| o as u64), best(&with), "node {}", node);
                }
            }
        }
    }

    /// Many views of many graphs: the cache keeps within its budget, what
    /// it serves is right whether it was kept or rendered again, and a
    /// graph dropped takes its views with it.
    #[test]
    fn the_cache_keeps_within_its_budget_and_forgets_dropped_graphs() {
        let releases: Vec<Flags> = (0..200)
            .map(|i| {
                (
                    false,
                    false,
                    (i % 50 == 0).then_some((Some(0), Some(0.0), Some(20))),
                )
            })
            .collect();
        let graph = graph_of(&releases);
        let budget = 1024 * 1024;
        let cache = Arc::new(ViewCache::new(budget));
        let mut graphs: Vec<PreparedGraph> = (0..4)
            .map(|_| PreparedGraph::new(graph.clone(), &cache))
            .collect();
        let one = view_weight(&graphs[0].view(0.5, 0, &Removal::None, &Halted::NONE));
        // Each set of halted releases is a view of its own.
        for round in 0..3 {
            for (g, prepared) in graphs.iter().enumerate() {
                for h in 0..40 {
                    let halted = Halted::new(vec![h]);
                    let now = 60 * (round + g as i64);
                    let view = prepared.view(0.5, now, &Removal::None, &halted);
                    let plain = prepared.plain_view(0.5, now, &Removal::None, &halted, None);
                    assert_eq!(view.json(), plain.json());
                    assert!(cache.views.weight() <= budget);
                }
            }
        }
        assert!(
            cache.views.weight() >= budget / 2,
            "{}",
            cache.views.weight()
        );
        assert!(cache.views.len() as u64 <= budget / one);
        let of = |graph: u64| {
            cache
                .views
                .iter()
                .filter(|(key, _)| key.graph == graph)
                .count()
        };
        assert!(of(graphs[0].id) > 0 && of(graphs[3].id) > 0);
        let first = graphs.remove(0);
        let id = first.id;
        drop(first);
        assert_eq!(of(id), 0);
        assert!(of(graphs[2].id) > 0);
    }

    #[test]
    fn views_are_shared_between_clients_in_the_same_state() {
        let graph = graph_of(&[
            (false, false, None),
            (false, false, Some((Some(0), Some(0.5), None))),
        ]);
        let prepared = prepared(graph);
        let a = prepared.view(0.1, 10, &Removal::None, &Halted::NONE);
        let b = prepared.view(0.2, 10, &Removal::None, &Halted::NONE);
        let hidden = prepared.view(0.9, 10, &Removal::None, &Halted::NONE);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &hidden));
    }
}
