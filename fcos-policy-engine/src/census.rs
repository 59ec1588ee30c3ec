//! The fleet census: distinct nodes per scope, per version and per group
//! and platform over the last day (watching the fleet move from OSTree to
//! OCI), nodes whose payload is in no graph, and digest alias
//! substitutions. Memory is fixed per series, and series exist
//! only for scopes the graph-builder serves and versions in its graphs.

use commons::graph::{GraphScope, Scheme};
use commons::sketch::WindowedSketch;
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
use siphasher::sip::SipHasher13;
use std::collections::{HashMap, HashSet};
use std::hash::Hasher;
use std::sync::{Arc, RwLock};

/// Window buckets: four of six hours, so a node is counted for 18 to 24
/// hours after its last poll.
const BUCKETS: usize = 4;
const PERIOD_SECS: i64 = 6 * 3600;
/// Precision of the per-scope sketches: 0.8% standard error, 16 KiB a bucket.
const SCOPE_PRECISION: u8 = 14;
/// Precision of the per-version sketches: 3% standard error, 1 KiB a bucket
/// (there is one per release in the graph).
const VERSION_PRECISION: u8 = 10;

/// A 64-bit hash of a node UUID for the sketches (keys differ from the
/// wariness hash so that sketch registers do not follow wariness).
fn node_hash(node_uuid: &str) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(0x6663_6f73_2d66_6c65, 0x6574_2d73_6b65_7463);
    hasher.write(node_uuid.as_bytes());
    hasher.finish()
}

/// The census key of (stream, group, platform): a hash, so that a poll
/// allocates nothing to find its sketch.
fn census_key(stream: &str, group: &str, platform: &str) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(1, 2);
    for part in [stream, group, platform] {
        hasher.write(part.as_bytes());
        hasher.write_u8(0xff);
    }
    hasher.finish()
}

/// Sketches by key, created on first use.
#[derive(Debug)]
struct Sketches<K> {
    precision: u8,
    map: RwLock<HashMap<K, Arc<WindowedSketch>>>,
}

impl<K: std::hash::Hash + Eq + Clone> Sketches<K> {
    fn new(precision: u8) -> Self {
        Sketches {
            precision,
            map: RwLock::default(),
        }
    }

    fn insert(&self, key: &K, hash: u64, now: i64) {
        if let Some(sketch) = self.map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
            sketch.insert(hash, now);
            return;
        }
        let sketch = Arc::clone(
            self.map
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key.clone())
                .or_insert_with(|| {
                    Arc::new(WindowedSketch::new(self.precision, BUCKETS, PERIOD_SECS))
                }),
        );
        sketch.insert(hash, now);
    }

    fn contains(&self, key: &K) -> bool {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(key)
    }

    fn snapshot(&self) -> Vec<(K, Arc<WindowedSketch>)> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, s)| (k.clone(), Arc::clone(s)))
            .collect()
    }

    fn retain(&self, keep: impl Fn(&K) -> bool) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
    }

    fn bytes(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|s| s.size_bytes())
            .sum()
    }
}

/// What a request said about the node that sent it.
#[derive(Debug)]
pub struct Poll<'a> {
    /// The scope asked for (served by the graph-builder).
    pub scope: &'a GraphScope,
    /// The node's UUID, if sent.
    pub node_uuid: Option<&'a str>,
    /// The node's version, when it is a release of the graph.
    pub known_version: Option<&'a str>,
    /// Whether the node sent a payload that is in no node of the graph.
    pub unknown_payload: bool,
    /// The node's group, as a bounded label (see [`commons::fleet_policy::OTHER`]).
    pub group: &'a str,
    /// The node's platform, as a bounded label.
    pub platform: &'static str,
}

/// The fleet census of the policy-engine: its sketches and metrics.
#[derive(Debug)]
pub struct Census {
    active: Sketches<GraphScope>,
    unknown_nodes: Sketches<(String, Scheme)>,
    by_version: Sketches<(String, String)>,
    /// Hash of (stream, group, platform) → the census sketch, and its labels.
    by_group: Sketches<u64>,
    group_labels: RwLock<HashMap<u64, [String; 3]>>,
    by_group_gauge: GaugeVec,
    unknown_requests: IntCounterVec,
    substitutions: IntCounterVec,
    active_gauge: GaugeVec,
    unknown_nodes_gauge: GaugeVec,
    by_version_gauge: GaugeVec,
    sketch_bytes_gauge: prometheus::IntGauge,
}

impl Census {
    /// Creates the census and registers its metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Census {
            active: Sketches::new(SCOPE_PRECISION),
            unknown_nodes: Sketches::new(SCOPE_PRECISION),
            by_version: Sketches::new(VERSION_PRECISION),
            by_group: Sketches::new(VERSION_PRECISION),
            group_labels: RwLock::default(),
            by_group_gauge: GaugeVec::new(
                Opts::new(
                    "fcos_cincinnati_pe_active_nodes_by_group",
                    "Estimated distinct nodes that polled in the last 24 hours, by stream, fleet policy group (other: a group the fleet policy file does not name) and platform (other: not a Fedora CoreOS platform).",
                ),
                &["stream", "group", "platform"],
            )?,
            unknown_requests: IntCounterVec::new(
                Opts::new(
                    "fcos_cincinnati_pe_unknown_payload_requests_total",
                    "Requests whose os_checksum matches no node of the graph they asked for.",
                ),
                &["stream", "scheme"],
            )?,
            substitutions: IntCounterVec::new(
                Opts::new(
                    "fcos_cincinnati_pe_digest_alias_substitutions_total",
                    "Responses in which a node booted from a known bad digest was shown its own pullspec.",
                ),
                &["stream", "basearch"],
            )?,
            active_gauge: GaugeVec::new(
                Opts::new(
                    "fcos_cincinnati_pe_active_nodes",
                    "Estimated distinct nodes (node_uuid) that polled in the last 24 hours (HyperLogLog, 6-hour buckets).",
                ),
                &["stream", "basearch", "scheme"],
            )?,
            unknown_nodes_gauge: GaugeVec::new(
                Opts::new(
                    "fcos_cincinnati_pe_unknown_payload_nodes",
                    "Estimated distinct nodes whose os_checksum matched no node of their graph in the last 24 hours.",
                ),
                &["stream", "scheme"],
            )?,
            by_version_gauge: GaugeVec::new(
                Opts::new(
                    "fcos_cincinnati_pe_nodes_by_version",
                    "Estimated distinct nodes on each version of the graph that polled in the last 24 hours.",
                ),
                &["stream", "version"],
            )?,
            sketch_bytes_gauge: prometheus::IntGauge::new(
                "fcos_cincinnati_pe_fleet_sketch_bytes",
                "Memory held by the distinct-node sketches, in bytes.",
            )?,
        };
        registry.register(Box::new(metrics.sketch_bytes_gauge.clone()))?;
        registry.register(Box::new(metrics.unknown_requests.clone()))?;
        registry.register(Box::new(metrics.substitutions.clone()))?;
        registry.register(Box::new(metrics.active_gauge.clone()))?;
        registry.register(Box::new(metrics.unknown_nodes_gauge.clone()))?;
        registry.register(Box::new(metrics.by_version_gauge.clone()))?;
        registry.register(Box::new(metrics.by_group_gauge.clone()))?;
        Ok(metrics)
    }

    /// Records one answered request, at `now`.
    pub fn record(&self, poll: &Poll<'_>, now: i64) {
        let scope = poll.scope;
        if poll.unknown_payload {
            self.unknown_requests
                .with_label_values(&[scope.stream.as_str(), scope.scheme.as_str()])
                .inc();
        }
        let Some(uuid) = poll.node_uuid.filter(|u| !u.is_empty()) else {
            return;
        };
        let hash = node_hash(uuid);
        self.active.insert(scope, hash, now);
        let census = census_key(&scope.stream, poll.group, poll.platform);
        if !self.by_group.contains(&census) {
            self.group_labels
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    census,
                    [
                        scope.stream.clone(),
                        poll.group.to_string(),
                        poll.platform.to_string(),
                    ],
                );
        }
        self.by_group.insert(&census, hash, now);
        if poll.unknown_payload {
            self.unknown_nodes
                .insert(&(scope.stream.clone(), scope.scheme), hash, now);
        }
        if let Some(version) = poll.known_version {
            self.by_version
                .insert(&(scope.stream.clone(), version.to_string()), hash, now);
        }
    }

    /// Counts one digest alias substitution.
    pub fn record_substitution(&self, scope: &GraphScope) {
        self.substitutions
            .with_label_values(&[scope.stream.as_str(), scope.basearch.as_str()])
            .inc();
    }

    /// Sets the gauges from the sketches, as of `now`. `versions` are the
    /// versions currently in the graphs of each stream; sketches of other
    /// versions are dropped.
    pub fn update_gauges(&self, now: i64, versions: &HashMap<String, HashSet<String>>) {
        for (scope, sketch) in self.active.snapshot() {
            self.active_gauge
                .with_label_values(&[
                    scope.stream.as_str(),
                    scope.basearch.as_str(),
                    scope.scheme.as_str(),
                ])
                .set(sketch.estimate(now).round());
        }
        for ((stream, scheme), sketch) in self.unknown_nodes.snapshot() {
            self.unknown_nodes_gauge
                .with_label_values(&[stream.as_str(), scheme.as_str()])
                .set(sketch.estimate(now).round());
        }
        self.by_version
            .retain(|(stream, version)| versions.get(stream).is_some_and(|v| v.contains(version)));
        self.by_version_gauge.reset();
        for ((stream, version), sketch) in self.by_version.snapshot() {
            self.by_version_gauge
                .with_label_values(&[stream.as_str(), version.as_str()])
                .set(sketch.estimate(now).round());
        }
        let labels = self.group_labels.read().unwrap_or_else(|e| e.into_inner());
        for (key, sketch) in self.by_group.snapshot() {
            if let Some(labels) = labels.get(&key) {
                self.by_group_gauge
                    .with_label_values(labels)
                    .set(sketch.estimate(now).round());
            }
        }
        drop(labels);
        self.sketch_bytes_gauge.set(self.sketch_bytes() as i64);
    }

    /// Memory held by all sketches, in bytes.
    pub fn sketch_bytes(&self) -> usize {
        self.active.bytes()
            + self.unknown_nodes.bytes()
            + self.by_version.bytes()
            + self.by_group.bytes()
    }
}
