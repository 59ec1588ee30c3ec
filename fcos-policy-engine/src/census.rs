//! The fleet census: distinct nodes per scope, per version and per group
//! and platform over the last day (watching the fleet move from OSTree to
//! OCI), nodes whose payload is in no graph, and digest alias
//! substitutions. Memory is fixed per series. Series by scope and version
//! exist only for scopes the graph-builder serves and versions in its
//! graphs; series by group and platform, which clients name, are capped
//! (`census.max_group_series`), and leave a day after their last poll.

use commons::graph::{GraphScope, Scheme};
use commons::sketch::WindowedSketch;
use hashbrown::Equivalent;
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
use siphasher::sip::SipHasher13;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// Window buckets: four of six hours, so a node is counted for 18 to 24
/// hours after its last poll.
pub const BUCKETS: usize = 4;
const PERIOD_SECS: i64 = 6 * 3600;
/// Precision of the per-scope sketches: 0.8% standard error, 16 KiB a bucket.
pub const SCOPE_PRECISION: u8 = 14;
/// Precision of the per-version sketches: 3% standard error, 1 KiB a bucket
/// (there is one per release in the graph).
pub const VERSION_PRECISION: u8 = 10;
/// Precision of the census by (stream, group, platform): like the per-scope
/// sketches, within 2% from a thousand nodes on (docs/metrics.md has the
/// measured errors), 16 KiB a bucket.
pub const GROUP_PRECISION: u8 = 14;

/// Default of `census.max_group_series`: 256 series of 64 KiB, 16 MiB;
/// every platform label of three streams for two groups and `other`.
pub const DEFAULT_MAX_GROUP_SERIES: usize = 256;

/// Seconds between two warnings that the census by group is full.
const FULL_WARNING_SECS: i64 = 60;

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
    map: RwLock<hashbrown::HashMap<K, Arc<WindowedSketch>>>,
}

/// A key of a stream's sketches, `(stream, T)`, borrowed: a poll finds
/// its sketch (of a release, `T` the version; of unknown payloads, the
/// scheme) without copying the names. Hashes as the owned key
/// `(String, U)` does (a tuple hashes its fields in order, and `&str`
/// hashes as `String`).
#[derive(Hash)]
struct StreamKey<'a, T>(&'a str, T);

impl<T: PartialEq<U>, U> Equivalent<(String, U)> for StreamKey<'_, T> {
    fn equivalent(&self, key: &(String, U)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl<K: Hash + Eq + Clone> Sketches<K> {
    fn new(precision: u8) -> Self {
        Sketches {
            precision,
            map: RwLock::default(),
        }
    }

    /// Records `hash` in the sketch of `key` (a borrowed form of the key:
    /// `owned` makes the key, only when the sketch is new).
    fn insert<Q>(&self, key: &Q, owned: impl FnOnce() -> K, hash: u64, now: i64)
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        if let Some(sketch) = self.map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
            sketch.insert(hash, now);
            return;
        }
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(owned())
            .or_insert_with(|| Arc::new(WindowedSketch::new(self.precision, BUCKETS, PERIOD_SECS)))
            .insert(hash, now);
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

/// The census by (stream, group, platform): at most `max` series, each a
/// sketch and its labels. Clients name their group and platform, so the
/// cap, not the labels' bounds, bounds the memory.
#[derive(Debug)]
struct GroupSeries {
    max: usize,
    /// Hash of (stream, group, platform) → the series.
    map: RwLock<hashbrown::HashMap<u64, Series>>,
    /// Held by whoever removes idle series and sets the gauges (a sweep,
    /// a scrape), one at a time.
    sweeping: Mutex<()>,
}

#[derive(Debug, Clone)]
struct Series {
    sketch: Arc<WindowedSketch>,
    /// stream, group, platform.
    labels: Arc<[String; 3]>,
}

/// What [`GroupSeries::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    /// Into the series.
    Counted,
    /// Nothing: the series did not exist, and `max` were held.
    Full,
}

impl GroupSeries {
    /// Records `hash` in the series of `key`, made with `labels` when new
    /// and there is room. Polls of series held take the read lock only,
    /// and so do polls refused.
    fn insert(
        &self,
        key: u64,
        labels: impl FnOnce() -> [String; 3],
        hash: u64,
        now: i64,
    ) -> Recorded {
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            if let Some(series) = map.get(&key) {
                series.sketch.insert(hash, now);
                return Recorded::Counted;
            }
            if map.len() >= self.max {
                return Recorded::Full;
            }
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let full = map.len() >= self.max;
        match map.entry(key) {
            hashbrown::hash_map::Entry::Occupied(entry) => {
                entry.get().sketch.insert(hash, now);
                Recorded::Counted
            }
            hashbrown::hash_map::Entry::Vacant(_) if full => Recorded::Full,
            hashbrown::hash_map::Entry::Vacant(entry) => {
                // Counted before the lock is let go: a sweep never finds a
                // new series idle.
                let sketch = Arc::new(WindowedSketch::new(GROUP_PRECISION, BUCKETS, PERIOD_SECS));
                sketch.insert(hash, now);
                entry.insert(Series {
                    sketch,
                    labels: Arc::new(labels()),
                });
                Recorded::Counted
            }
        }
    }

    /// Removes the series none of whose nodes polled in the window ending
    /// at `now`, with their gauges; with `estimates`, sets the gauges of
    /// the others.
    fn sweep(&self, now: i64, gauge: &GaugeVec, estimates: bool) {
        let _sweeping = self.sweeping.lock().unwrap_or_else(PoisonError::into_inner);
        let series: Vec<(u64, Series)> = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(key, series)| (*key, series.clone()))
            .collect();
        let mut idle = Vec::new();
        for (key, series) in &series {
            if series.sketch.is_idle(now) {
                idle.push(*key);
            } else if estimates {
                gauge
                    .with_label_values(&series.labels[..])
                    .set(series.sketch.estimate(now).round());
            }
        }
        if idle.is_empty() {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for key in idle {
            // Checked again under the lock: a poll since makes it stay.
            if map
                .get(&key)
                .is_some_and(|series| series.sketch.is_idle(now))
            {
                if let Some(series) = map.remove(&key) {
                    let _ = gauge.remove_label_values(&series.labels[..]);
                }
            }
        }
    }

    fn bytes(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|series| series.sketch.size_bytes())
            .sum()
    }

    #[cfg(test)]
    fn sketch(&self, key: u64) -> Option<Arc<WindowedSketch>> {
        let map = self.map.read().unwrap();
        map.get(&key).map(|series| Arc::clone(&series.sketch))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.read().unwrap().len()
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
    by_group: GroupSeries,
    by_group_gauge: GaugeVec,
    /// Polls not counted by group because `by_group` was full.
    by_group_refused: prometheus::IntCounter,
    /// When that was last logged (seconds since the epoch).
    by_group_warned: AtomicI64,
    unknown_requests: IntCounterVec,
    substitutions: IntCounterVec,
    scope_requests: IntCounterVec,
    /// The scopes served, whose counters exist.
    known: Mutex<HashSet<GraphScope>>,
    active_gauge: GaugeVec,
    unknown_nodes_gauge: GaugeVec,
    by_version_gauge: GaugeVec,
    sketch_bytes_gauge: prometheus::IntGauge,
}

impl Census {
    /// Creates the census, of at most `max_group_series` series by
    /// (stream, group, platform), and registers its metrics.
    pub fn register(registry: &Registry, max_group_series: usize) -> prometheus::Result<Self> {
        let metrics = Census {
            active: Sketches::new(SCOPE_PRECISION),
            unknown_nodes: Sketches::new(SCOPE_PRECISION),
            by_version: Sketches::new(VERSION_PRECISION),
            by_group: GroupSeries {
                max: max_group_series,
                map: RwLock::default(),
                sweeping: Mutex::default(),
            },
            by_group_refused: prometheus::IntCounter::new(
                "fcos_cincinnati_pe_active_nodes_by_group_refused_total",
                "Polls not counted in active_nodes_by_group: their (stream, group, platform) had no series, and census.max_group_series were held.",
            )?,
            by_group_warned: AtomicI64::new(i64::MIN),
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
            scope_requests: IntCounterVec::new(
                Opts::new(
                    "fcos_cincinnati_pe_scope_requests_total",
                    "Requests answered with a graph (200 or 304), by scope.",
                ),
                &["stream", "basearch", "scheme"],
            )?,
            known: Mutex::default(),
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
        registry.register(Box::new(metrics.scope_requests.clone()))?;
        registry.register(Box::new(metrics.active_gauge.clone()))?;
        registry.register(Box::new(metrics.unknown_nodes_gauge.clone()))?;
        registry.register(Box::new(metrics.by_version_gauge.clone()))?;
        registry.register(Box::new(metrics.by_group_gauge.clone()))?;
        registry.register(Box::new(metrics.by_group_refused.clone()))?;
        Ok(metrics)
    }

    /// Creates the counters of `scopes`, the scopes now served, at 0 (so
    /// that `rate()` and `increase()` see their first increment), and
    /// removes those of scopes no longer served: the series follow the
    /// graph-builder's scopes, however many come and go.
    pub fn know_scopes(&self, scopes: &[&GraphScope]) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let now: HashSet<&GraphScope> = scopes.iter().copied().collect();
        let streams_schemes: HashSet<(&str, &str)> = now
            .iter()
            .map(|s| (s.stream.as_str(), s.scheme.as_str()))
            .collect();
        let streams_basearches: HashSet<(&str, &str)> = now
            .iter()
            .map(|s| (s.stream.as_str(), s.basearch.as_str()))
            .collect();
        for gone in known.iter().filter(|s| !now.contains(s)) {
            let (stream, basearch, scheme) = (
                gone.stream.as_str(),
                gone.basearch.as_str(),
                gone.scheme.as_str(),
            );
            let _ = self
                .scope_requests
                .remove_label_values(&[stream, basearch, scheme]);
            if !streams_schemes.contains(&(stream, scheme)) {
                let _ = self.unknown_requests.remove_label_values(&[stream, scheme]);
            }
            if !streams_basearches.contains(&(stream, basearch)) {
                let _ = self.substitutions.remove_label_values(&[stream, basearch]);
            }
        }
        for scope in now.iter().filter(|s| !known.contains(**s)) {
            let (stream, basearch, scheme) = (
                scope.stream.as_str(),
                scope.basearch.as_str(),
                scope.scheme.as_str(),
            );
            self.scope_requests
                .with_label_values(&[stream, basearch, scheme]);
            self.unknown_requests.with_label_values(&[stream, scheme]);
            self.substitutions.with_label_values(&[stream, basearch]);
        }
        *known = now.into_iter().cloned().collect();
    }

    /// Records one answered request, at `now`.
    pub fn record(&self, poll: &Poll<'_>, now: i64) {
        let scope = poll.scope;
        self.scope_requests
            .with_label_values(&[
                scope.stream.as_str(),
                scope.basearch.as_str(),
                scope.scheme.as_str(),
            ])
            .inc();
        if poll.unknown_payload {
            self.unknown_requests
                .with_label_values(&[scope.stream.as_str(), scope.scheme.as_str()])
                .inc();
        }
        let Some(uuid) = poll.node_uuid.filter(|u| !u.is_empty()) else {
            return;
        };
        let hash = node_hash(uuid);
        self.active.insert(scope, || scope.clone(), hash, now);
        let census = census_key(&scope.stream, poll.group, poll.platform);
        let labels = || {
            [
                scope.stream.clone(),
                poll.group.to_string(),
                poll.platform.to_string(),
            ]
        };
        if self.by_group.insert(census, labels, hash, now) == Recorded::Full {
            self.refuse_group_series(&scope.stream, poll, now);
        }
        if poll.unknown_payload {
            self.unknown_nodes.insert(
                &StreamKey(&scope.stream, scope.scheme),
                || (scope.stream.clone(), scope.scheme),
                hash,
                now,
            );
        }
        if let Some(version) = poll.known_version {
            self.by_version.insert(
                &StreamKey(&scope.stream, version),
                || (scope.stream.clone(), version.to_owned()),
                hash,
                now,
            );
        }
    }

    /// Counts a poll of a new (stream, group, platform) series left out,
    /// and says so at most once a minute.
    fn refuse_group_series(&self, stream: &str, poll: &Poll<'_>, now: i64) {
        self.by_group_refused.inc();
        let last = self.by_group_warned.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= FULL_WARNING_SECS
            && self
                .by_group_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                max_group_series = self.by_group.max,
                refused_total = self.by_group_refused.get(),
                stream,
                group = poll.group,
                platform = poll.platform,
                "the census by group is full (census.max_group_series): nodes of a new (stream, group, platform), as this one, are not counted by group, only everywhere else; a series none of whose nodes polled for a day is dropped"
            );
        }
    }

    /// Removes the series by group none of whose nodes polled in the last
    /// day (the window), making room for others; scrapes do it too.
    pub fn forget_idle(&self, now: i64) {
        self.by_group.sweep(now, &self.by_group_gauge, false);
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
        self.by_group.sweep(now, &self.by_group_gauge, true);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64 from a fixed seed: the same UUIDs on every run.
    fn uuids(seed: u64, count: usize) -> Vec<String> {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        (0..count)
            .map(|_| format!("{:016x}{:016x}", next(), next()))
            .collect()
    }

    #[test]
    fn per_scope_series_follow_the_scopes_served() {
        let registry = Registry::new();
        let census = Census::register(&registry, DEFAULT_MAX_GROUP_SERIES).unwrap();
        let scope = |stream: &str, basearch: &str, scheme| GraphScope {
            stream: stream.into(),
            basearch: basearch.into(),
            scheme,
        };
        let series = || {
            registry
                .gather()
                .iter()
                .filter(|family| family.name().ends_with("_total"))
                .flat_map(|family| family.get_metric())
                .count()
        };
        let kept = [
            scope("stable", "x86_64", Scheme::Checksum),
            scope("stable", "x86_64", Scheme::Oci),
        ];
        census.know_scopes(&kept.iter().collect::<Vec<_>>());
        let base = series();
        assert_eq!(
            base,
            2 + 2 + 1 + 1,
            "scope requests, unknown payloads, substitutions, polls refused by group"
        );
        // A thousand scopes come and go, in ten listings.
        for round in 0..10 {
            let passing: Vec<GraphScope> = (0..100)
                .map(|i| scope(&format!("s{round}x{i}"), "aarch64", Scheme::Oci))
                .collect();
            let listed: Vec<&GraphScope> = kept.iter().chain(&passing).collect();
            census.know_scopes(&listed);
            assert_eq!(series(), base + 300);
        }
        census.know_scopes(&kept.iter().collect::<Vec<_>>());
        assert_eq!(series(), base);
        // A basearch of a stream that stays keeps the stream's series.
        census.know_scopes(&[&kept[0], &kept[1], &scope("stable", "s390x", Scheme::Oci)]);
        census.know_scopes(&kept.iter().collect::<Vec<_>>());
        assert_eq!(series(), base);
    }

    /// The scope of the census-by-group tests.
    fn stable_oci() -> GraphScope {
        GraphScope {
            stream: "stable".into(),
            basearch: "x86_64".into(),
            scheme: Scheme::Oci,
        }
    }

    /// A poll of node `uuid` of `group` on `platform`, counted by group
    /// only (no release, no unknown payload).
    fn group_poll<'a>(
        scope: &'a GraphScope,
        uuid: &'a str,
        group: &'a str,
        platform: &'static str,
    ) -> Poll<'a> {
        Poll {
            scope,
            node_uuid: Some(uuid),
            known_version: None,
            unknown_payload: false,
            group,
            platform,
        }
    }

    /// The census by group holds at most its series: polls of a new one
    /// past the cap are counted as refused (and everywhere else as usual);
    /// a series idle for a day leaves, with its gauge, and makes room.
    #[test]
    fn series_by_group_are_capped_and_idle_ones_leave() {
        let registry = Registry::new();
        let census = Census::register(&registry, 4).unwrap();
        let scope = stable_oci();
        let poll = |uuid: &str, group, platform, now| {
            census.record(&group_poll(&scope, uuid, group, platform), now)
        };
        let gauges = || {
            let mut labels: Vec<String> = registry
                .gather()
                .iter()
                .filter(|f| f.name() == "fcos_cincinnati_pe_active_nodes_by_group")
                .flat_map(|f| f.get_metric())
                .map(|m| {
                    let l: Vec<&str> = m.get_label().iter().map(|l| l.value()).collect();
                    // Sorted by name: group, platform, stream.
                    format!("{}/{}/{}={}", l[0], l[1], l[2], m.get_gauge().get_value())
                })
                .collect();
            labels.sort();
            labels
        };
        let now = 1_800_000_000;
        let platforms = ["aws", "gcp", "metal", "qemu", "azure", "vmware"];
        for (i, platform) in platforms.iter().enumerate() {
            poll(&format!("{i:032x}"), "default", *platform, now);
        }
        // The first four; the two others refused, three times in all.
        poll(&format!("{:032x}", 9), "default", "vmware", now);
        assert_eq!(census.by_group_refused.get(), 3);
        census.update_gauges(now, &HashMap::new());
        assert_eq!(
            gauges(),
            [
                "default/aws/stable=1",
                "default/gcp/stable=1",
                "default/metal/stable=1",
                "default/qemu/stable=1"
            ]
        );
        // The series of every scope are not capped.
        assert_eq!(census.active.snapshot()[0].1.estimate(now).round(), 7.0);
        // A day later, only the series polled since are kept.
        let later = now + 25 * 3600;
        poll(&format!("{:032x}", 1), "default", "gcp", later);
        census.update_gauges(later, &HashMap::new());
        assert_eq!(gauges(), ["default/gcp/stable=1"]);
        assert_eq!(census.by_group.len(), 1);
        poll(&format!("{:032x}", 5), "default", "vmware", later);
        census.update_gauges(later, &HashMap::new());
        assert_eq!(
            gauges(),
            ["default/gcp/stable=1", "default/vmware/stable=1"]
        );
        assert_eq!(census.by_group_refused.get(), 3);
    }

    /// Polls of new and held series, and two scrapes, all at once, around
    /// the end of a series' window: every series held has its gauge once
    /// swept, and no gauge is left without a series.
    #[test]
    fn polls_and_sweeps_at_once_keep_series_and_gauges_together() {
        let registry = Registry::new();
        let census = Census::register(&registry, 64).unwrap();
        let scope = stable_oci();
        let platforms = commons::fleet_policy::PLATFORMS;
        let start = 1_800_000_000;
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|threads| {
            for t in 0..2u64 {
                let (census, scope, stop) = (&census, &scope, &stop);
                threads.spawn(move || {
                    let mut i = t;
                    // Each poll a little later, past the window of the
                    // first ones, so that series leave while others come.
                    while !stop.load(Ordering::Relaxed) {
                        let uuid = format!("{i:032x}");
                        let group = ["a", "b", "c", "d"][(i % 4) as usize];
                        let platform = platforms[(i / 4) as usize % platforms.len()];
                        census.record(
                            &group_poll(scope, &uuid, group, platform),
                            start + (i as i64) * 30,
                        );
                        i += 2;
                    }
                });
            }
            for _ in 0..2 {
                let census = &census;
                threads.spawn(move || {
                    for step in 0..200 {
                        census.update_gauges(start + step * 400, &HashMap::new());
                    }
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            stop.store(true, Ordering::Relaxed);
        });
        let now = start + 10_000_000;
        census.update_gauges(now, &HashMap::new());
        assert_eq!(census.by_group.len(), 0, "every series idle by now");
        let gauges = registry
            .gather()
            .iter()
            .filter(|f| f.name() == "fcos_cincinnati_pe_active_nodes_by_group")
            .map(|f| f.get_metric().len())
            .sum::<usize>();
        assert_eq!(gauges, 0);
    }

    /// Series of 1,000 nodes and more, as Zincati's UUIDs: every census
    /// estimate (by scope, by group and platform, of unknown payloads)
    /// within 2% of the truth; by version (1 KiB a bucket) within 10%.
    #[test]
    fn estimates_of_a_thousand_nodes_and_more_are_within_two_percent() {
        let registry = Registry::new();
        let census = Census::register(&registry, DEFAULT_MAX_GROUP_SERIES).unwrap();
        let now = 1_800_000_000;
        let sizes = [1_000, 1_500, 2_500, 4_586, 7_000, 10_000, 30_000];
        let mut worst = [0.0f64; 4];
        for (n, size) in sizes.into_iter().enumerate() {
            let scope = GraphScope {
                stream: format!("stream{n}"),
                basearch: "x86_64".into(),
                scheme: Scheme::Checksum,
            };
            let version = format!("{n}.0");
            for uuid in uuids(n as u64, size) {
                census.record(
                    &Poll {
                        scope: &scope,
                        node_uuid: Some(&uuid),
                        known_version: Some(&version),
                        unknown_payload: true,
                        group: "default",
                        platform: "metal",
                    },
                    now,
                );
            }
            let stream = scope.stream.clone();
            let estimates = [
                census.active.snapshot()[..]
                    .iter()
                    .find(|(s, _)| *s == scope)
                    .map(|(_, s)| s.estimate(now)),
                census
                    .by_group
                    .sketch(census_key(&stream, "default", "metal"))
                    .map(|s| s.estimate(now)),
                census
                    .unknown_nodes
                    .snapshot()
                    .iter()
                    .find(|((s, _), _)| *s == stream)
                    .map(|(_, s)| s.estimate(now)),
                census
                    .by_version
                    .snapshot()
                    .iter()
                    .find(|((s, _), _)| *s == stream)
                    .map(|(_, s)| s.estimate(now)),
            ];
            let errors = estimates.map(|e| e.unwrap() / size as f64 - 1.0);
            println!(
                "{size} nodes: by scope {:+.2}%, by group {:+.2}%, unknown payload {:+.2}%, by version {:+.2}%",
                errors[0] * 100.0,
                errors[1] * 100.0,
                errors[2] * 100.0,
                errors[3] * 100.0
            );
            for (error, worst) in errors.iter().zip(worst.iter_mut()) {
                if error.abs() > worst.abs() {
                    *worst = *error;
                }
            }
        }
        let [scope, group, unknown, version] = worst.map(|e| e * 100.0);
        println!(
            "worst errors: scope {scope:+.2}%, group {group:+.2}%, unknown {unknown:+.2}%, version {version:+.2}%"
        );
        assert!(scope.abs() < 2.0, "by scope: {scope:+.2}%");
        assert!(group.abs() < 2.0, "by group: {group:+.2}%");
        assert!(unknown.abs() < 2.0, "unknown payloads: {unknown:+.2}%");
        assert!(version.abs() < 10.0, "by version: {version:+.2}%");
        // Memory: 4 buckets of 2^precision one-byte registers per series.
        let series = sizes.len();
        assert_eq!(
            census.sketch_bytes(),
            series * BUCKETS * ((3 << SCOPE_PRECISION) + (1 << VERSION_PRECISION))
        );
    }
}
