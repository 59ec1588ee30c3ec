//! Rollout safety: the outcomes of each release offered to the nodes that
//! poll (see [`commons::outcomes`]), the guards of the policy file that
//! halt a rollout that hurts, and `GET /v1/rollouts` on the status port.
//!
//! Every poll of a node whose `node_uuid` is well formed and whose release
//! is in its graph is recorded: where it polls from and the update its
//! answer offers. A node is known only by a hash of its UUID keyed with
//! random keys drawn at start (never kept, never exported), in one of
//! several shards, each a bounded [`Tracker`].
//!
//! Every [`Settings::interval`], the shards are swept and summed, the
//! metrics and `/v1/rollouts` are updated, and the guards are applied: a
//! release that crosses a threshold in a scope (or on one platform of it,
//! or in a group with its own guard) is halted there. A halt lasts until
//! the release is listed in the `resume` of the guard that halted it (or
//! that guard is removed from the file), and is kept in the state
//! directory across restarts.

use crate::in_force::PolicyInForce;
use crate::view::{Halted, PreparedGraph};
use crate::Clock;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use commons::fleet_policy::Halt;
use commons::fleet_policy::{Guard, Policy};
use commons::graph::GraphScope;
use commons::outcomes::page::Document;
use commons::outcomes::{Counts, Poll, Summary, Tracker};
use prometheus::{GaugeVec, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Name of the halts file in the state directory.
pub const HALTS_FILE: &str = "halts.json";

/// Limits of the tracking.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Nodes tracked: a fleet of this many is tracked whole (the shards
    /// have room for their uneven split, so that up to 2% more may be
    /// kept before the least recently seen are evicted).
    pub max_nodes: usize,
    /// How often outcomes are summed and the guards applied.
    pub interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_nodes: 1_000_000,
            interval: Duration::from_secs(15),
        }
    }
}

/// The halts file.
#[derive(Debug, Serialize, Deserialize)]
struct HaltsFile {
    halts: Vec<Halt>,
}

/// Outcomes, halts and their metrics.
pub struct Rollouts {
    settings: Settings,
    shards: Box<[Mutex<Tracker>]>,
    /// Keys of the node hash, drawn at start.
    keys: std::collections::hash_map::RandomState,
    halts: RwLock<Arc<Vec<Halt>>>,
    /// `/v1/rollouts`, as last rendered.
    page: RwLock<Bytes>,
    state_dir: Option<PathBuf>,
    nodes: IntGaugeVec,
    arrival: GaugeVec,
    tracked: IntGauge,
    evicted: IntCounter,
    halted: IntGaugeVec,
    state_errors: IntCounter,
    /// Label sets of the per-release series last set.
    series: Mutex<HashSet<[String; 4]>>,
}

/// Its settings and halts (the trackers are large).
impl std::fmt::Debug for Rollouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollouts")
            .field("settings", &self.settings)
            .field("shards", &self.shards.len())
            .field("halts", &self.halts())
            .finish_non_exhaustive()
    }
}

/// Outcomes of one poll are recorded under these labels.
const OUTCOMES: [&str; 5] = ["offered", "arrived", "stuck", "rolled_back", "lost"];

impl Rollouts {
    /// Empty trackers, the halts kept in `state_dir` (if any), and their
    /// metrics.
    pub fn new(
        settings: Settings,
        state_dir: Option<PathBuf>,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let labels = ["stream", "basearch", "scheme", "release"];
        let nodes = IntGaugeVec::new(
            Opts::new(
                "fcos_cincinnati_pe_rollout_nodes",
                "Distinct nodes per release offered as an update in the last 30 days, by outcome: offered, arrived, stuck, rolled_back, lost.",
            ),
            &["stream", "basearch", "scheme", "release", "outcome"],
        )?;
        let arrival = GaugeVec::new(
            Opts::new(
                "fcos_cincinnati_pe_rollout_arrival_seconds",
                "Time from the offer of a release to a node's first poll from it, seconds (quantile 0.5 and 0.9, within 25% above).",
            ),
            &["stream", "basearch", "scheme", "release", "quantile"],
        )?;
        let tracked = IntGauge::new(
            "fcos_cincinnati_pe_rollout_tracked_nodes",
            "Nodes whose outcomes are tracked.",
        )?;
        let evicted = IntCounter::new(
            "fcos_cincinnati_pe_rollout_evicted_total",
            "Tracked nodes forgotten early because the tracker was full (the least recently seen first).",
        )?;
        let halted = IntGaugeVec::new(
            Opts::new(
                "fcos_cincinnati_pe_rollout_halted",
                "1 while a guard halts the rollout of a release (for every node, a platform or a group), else absent.",
            ),
            &labels,
        )?;
        let state_errors = IntCounter::new(
            "fcos_cincinnati_pe_rollout_halts_write_errors_total",
            "Failed writes of the halts file to the state directory (the halts stay in force in memory).",
        )?;
        registry.register(Box::new(nodes.clone()))?;
        registry.register(Box::new(arrival.clone()))?;
        registry.register(Box::new(tracked.clone()))?;
        registry.register(Box::new(evicted.clone()))?;
        registry.register(Box::new(halted.clone()))?;
        registry.register(Box::new(state_errors.clone()))?;
        let (count, per_shard) = shards(settings.max_nodes);
        let shards = (0..count)
            .map(|_| {
                Mutex::new(Tracker::new(commons::outcomes::Settings {
                    max_nodes: per_shard,
                    ..commons::outcomes::Settings::default()
                }))
            })
            .collect();
        let rollouts = Rollouts {
            settings,
            shards,
            keys: std::collections::hash_map::RandomState::new(),
            halts: RwLock::default(),
            page: RwLock::new(Bytes::from_static(b"{\"releases\":[],\"halts\":[]}")),
            state_dir,
            nodes,
            arrival,
            tracked,
            evicted,
            halted,
            state_errors,
            series: Mutex::default(),
        };
        if let Some(dir) = &rollouts.state_dir {
            rollouts.load(dir);
        }
        Ok(rollouts)
    }

    /// The halts in force.
    pub fn halts(&self) -> Arc<Vec<Halt>> {
        Arc::clone(&self.halts.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn set_halts(&self, halts: Vec<Halt>) {
        self.halted.reset();
        for halt in &halts {
            self.halted
                .with_label_values(&[&halt.stream, &halt.basearch, &halt.scheme, &halt.release])
                .set(1);
        }
        *self.halts.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(halts);
    }

    /// Reads the halts file; an unreadable one is logged and ignored.
    fn load(&self, dir: &Path) {
        let path = dir.join(HALTS_FILE);
        let read = std::fs::read(&path);
        let halts = match read {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
            Err(error) => Err(error.to_string()),
            Ok(bytes) => serde_json::from_slice::<HaltsFile>(&bytes).map_err(|e| e.to_string()),
        };
        match halts {
            Ok(file) => {
                for halt in &file.halts {
                    tracing::warn!(
                        "rollout halted (kept from before the restart): {}",
                        halt.describe()
                    );
                }
                self.set_halts(file.halts);
            }
            Err(error) => {
                tracing::error!(file = %path.display(), "cannot read the halts, none is in force: {error}");
            }
        }
    }

    /// Writes the halts file; a failure is logged and counted.
    fn save(&self, halts: &[Halt]) {
        let Some(dir) = &self.state_dir else { return };
        let path = dir.join(HALTS_FILE);
        let bytes = match serde_json::to_vec_pretty(&HaltsFile {
            halts: halts.to_vec(),
        }) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!("cannot write the halts: {error}");
                return;
            }
        };
        if let Err(error) =
            commons::files::write_atomically(&path, ".halts.", |out| out.write_all(&bytes))
        {
            self.state_errors.inc();
            tracing::warn!(file = %path.display(), "cannot save the halts: {error}");
        }
    }

    /// The releases halted for a node of `group` and `platform` (metric
    /// labels) in `scope`, as nodes of its `graph`.
    pub fn halted_for(
        &self,
        scope: &GraphScope,
        group: &str,
        platform: &str,
        graph: &PreparedGraph,
    ) -> Halted {
        let halts = self.halts.read().unwrap_or_else(|e| e.into_inner());
        if halts.is_empty() {
            return Halted::NONE;
        }
        let scope = (
            scope.stream.as_str(),
            scope.basearch.as_str(),
            scope.scheme.as_str(),
        );
        Halted::new(
            halts
                .iter()
                .filter(|h| h.applies(scope, group, platform))
                .filter_map(|h| graph.node_by_version(&h.release))
                .collect(),
        )
    }

    /// The halts that apply to a node of `group` and `platform` in
    /// `scope`.
    pub fn halts_for(&self, scope: &GraphScope, group: &str, platform: &str) -> Vec<Halt> {
        let scope = (
            scope.stream.as_str(),
            scope.basearch.as_str(),
            scope.scheme.as_str(),
        );
        self.halts()
            .iter()
            .filter(|h| h.applies(scope, group, platform))
            .cloned()
            .collect()
    }

    /// Records one poll: `poll.node` is replaced by the node's key.
    pub fn record_poll(&self, node_uuid: &str, mut poll: Poll<'_>) {
        let key = self.keys.hash_one(node_uuid);
        poll.node = key;
        let shard = ((key >> 32) % self.shards.len() as u64) as usize;
        self.shards[shard]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(&poll);
    }

    /// Sweeps and sums the shards at `now`, with the windows of `policy`'s
    /// guards.
    pub fn summary(&self, now: i64, policy: Option<&Policy>) -> Summary {
        let windows = |group: &str| {
            let guard = policy
                .and_then(|p| {
                    p.groups
                        .get(group)
                        .and_then(|g| g.guard.as_ref())
                        .or(p.guard.as_ref())
                })
                .cloned()
                .unwrap_or_default();
            (guard.stuck_after, guard.lost_after)
        };
        // A node is lost when its scope kept polling: in any shard.
        let mut scope_polled: HashMap<(String, String, String), i64> = HashMap::new();
        for shard in &self.shards {
            let mut tracker = shard.lock().unwrap_or_else(|e| e.into_inner());
            tracker.sweep(now);
            for ((stream, basearch, scheme), at) in tracker.scope_last_polls() {
                let last = scope_polled
                    .entry((stream.to_string(), basearch.to_string(), scheme.to_string()))
                    .or_insert(at);
                *last = (*last).max(at);
            }
        }
        let mut summary = Summary::default();
        for shard in &self.shards {
            let tracker = shard.lock().unwrap_or_else(|e| e.into_inner());
            summary.merge(
                tracker.summary_with(now, windows, |(stream, basearch, scheme)| {
                    scope_polled
                        .get(&(stream.to_string(), basearch.to_string(), scheme.to_string()))
                        .copied()
                }),
            );
        }
        summary
    }

    /// Sums the outcomes, applies the guards of `policy` (new halts, and
    /// halts lifted by `resume`), and updates the metrics and
    /// `/v1/rollouts`.
    pub fn evaluate(&self, now: i64, policy: Option<&Policy>) {
        let summary = self.summary(now, policy);
        self.update_metrics(&summary);
        let current = self.halts();
        let mut halts: Vec<Halt> = current
            .iter()
            .filter(|halt| {
                let lifted =
                    policy.is_some_and(|p| halt.guard(p).is_none_or(|g| g.resumes(&halt.release)));
                if lifted {
                    tracing::info!("rollout resumed: {}", halt.describe());
                }
                !lifted
            })
            .cloned()
            .collect();
        if let Some(policy) = policy {
            for halt in crossings(&summary, policy, now) {
                if !halts.iter().any(|h| h.same(&halt)) {
                    tracing::warn!("rollout halted: {}", halt.describe());
                    halts.push(halt);
                }
            }
        }
        if halts != *current {
            self.save(&halts);
            self.set_halts(halts);
        }
        self.render(now, &summary);
    }

    fn update_metrics(&self, summary: &Summary) {
        self.tracked.set(summary.tracked_nodes as i64);
        let evicted = summary.evicted.saturating_sub(self.evicted.get());
        self.evicted.inc_by(evicted);
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut now_set = HashSet::new();
        for r in &summary.releases {
            let labels = [
                r.stream.clone(),
                r.basearch.clone(),
                r.scheme.clone(),
                r.release.clone(),
            ];
            let c = &r.total;
            for (outcome, value) in
                OUTCOMES
                    .iter()
                    .zip([c.offered, c.arrived, c.stuck, c.rolled_back, c.lost])
            {
                self.nodes
                    .with_label_values(&[&*labels[0], &labels[1], &labels[2], &labels[3], outcome])
                    .set(value as i64);
            }
            for (quantile, q) in [("0.5", 0.5), ("0.9", 0.9)] {
                let l = [&*labels[0], &labels[1], &labels[2], &labels[3], quantile];
                match c.arrival.quantile(q) {
                    Some(seconds) => self.arrival.with_label_values(&l).set(seconds),
                    None => {
                        let _ = self.arrival.remove_label_values(&l);
                    }
                }
            }
            now_set.insert(labels);
        }
        for gone in series.difference(&now_set) {
            for outcome in OUTCOMES {
                let _ = self
                    .nodes
                    .remove_label_values(&[&*gone[0], &gone[1], &gone[2], &gone[3], outcome]);
            }
            for quantile in ["0.5", "0.9"] {
                let _ = self
                    .arrival
                    .remove_label_values(&[&*gone[0], &gone[1], &gone[2], &gone[3], quantile]);
            }
        }
        *series = now_set;
    }

    fn render(&self, now: i64, summary: &Summary) {
        let halts = self.halts();
        let page = Document::of(summary, now, self.settings.max_nodes as u64, &halts);
        let bytes = Bytes::from(serde_json::to_vec(&page).unwrap_or_default());
        *self.page.write().unwrap_or_else(|e| e.into_inner()) = bytes;
    }

    /// Evaluates every [`Settings::interval`] until cancelled, with the
    /// policy in force.
    pub async fn watch(self: Arc<Self>, in_force: Arc<PolicyInForce>, clock: Clock) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let rollouts = Arc::clone(&self);
            let policy = in_force.policy();
            let now = clock();
            let evaluated =
                tokio::task::spawn_blocking(move || rollouts.evaluate(now, policy.as_deref()))
                    .await;
            if let Err(error) = evaluated {
                tracing::error!("evaluating the rollouts failed: {error}");
            }
        }
    }
}

/// The number of shards for `max_nodes`, and the nodes each keeps: its
/// share of `max_nodes` and room for four standard deviations more (nodes
/// fall into shards unevenly: without that room, a fleet of `max_nodes`
/// nodes would see the fullest shards evict), between 16 and 64 shards,
/// as many as make the hash tables of full shards the smallest (a table's
/// buckets are a power of two, at most 7/8 full).
fn shards(max_nodes: usize) -> (usize, usize) {
    let buckets = |n: usize| (n.saturating_mul(8) / 7 + 1).next_power_of_two();
    let per_shard = |count: usize| {
        let share = max_nodes.div_ceil(count).max(1);
        share + (4.0 * (share as f64).sqrt()).ceil() as usize
    };
    (16..=64)
        .map(|count| (count, per_shard(count)))
        .min_by_key(|&(count, per_shard)| count * buckets(per_shard))
        .unwrap_or((16, per_shard(16)))
}

/// The halts `summary` calls for under `policy`'s guards at `now`: for
/// `[guard]`, each release over all its nodes, then each platform alone;
/// for a group's guard, the group's nodes. Releases listed in the guard's
/// `resume` are not halted.
fn crossings(summary: &Summary, policy: &Policy, now: i64) -> Vec<Halt> {
    let mut halts = Vec::new();
    for r in &summary.releases {
        let halt = |counts: &Counts, guard: &Guard, group: Option<&str>, platform: Option<&str>| {
            let crossing = guard.crossed(counts)?;
            Some(Halt {
                stream: r.stream.clone(),
                basearch: r.basearch.clone(),
                scheme: r.scheme.clone(),
                release: r.release.clone(),
                group: group.map(str::to_string),
                platform: platform.map(str::to_string),
                key: crossing.key.to_string(),
                value: crossing.value,
                limit: crossing.limit,
                count: crossing.count,
                of: crossing.of,
                since: now,
            })
        };
        if let Some(guard) = policy.guard.as_ref().filter(|g| !g.resumes(&r.release)) {
            match halt(&r.total, guard, None, None) {
                Some(h) => halts.push(h),
                None => halts.extend(
                    r.by_platform
                        .iter()
                        .filter_map(|(platform, counts)| halt(counts, guard, None, Some(platform))),
                ),
            }
        }
        for (name, counts) in &r.by_group {
            let guard = policy.groups.get(name).and_then(|g| g.guard.as_ref());
            if let Some(guard) = guard.filter(|g| !g.resumes(&r.release)) {
                halts.extend(halt(counts, guard, Some(name), None));
            }
        }
    }
    halts
}

/// `GET /v1/rollouts` on the status port: the outcomes of every release
/// offered in the last 30 days, per scope, group and platform, and the
/// halts, as of the last evaluation.
pub async fn serve_rollouts(rollouts: web::Data<Arc<Rollouts>>) -> HttpResponse {
    let body = rollouts
        .page
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_keep_the_tables_of_a_million_nodes_over_three_quarters_full() {
        let (count, per_shard) = shards(1_000_000);
        let buckets = (per_shard * 8 / 7 + 1).next_power_of_two();
        let load = 1_000_000.0 / (count * buckets) as f64;
        assert!(load > 0.75, "{count} shards of {per_shard}: {load}");
        assert_eq!(shards(10), (16, 5));
    }

    #[test]
    fn shards_have_room_for_the_uneven_split_of_a_full_fleet() {
        for max_nodes in [1_000, 100_000, 1_000_000, 10_000_000] {
            let (count, per_shard) = shards(max_nodes);
            let share = max_nodes as f64 / count as f64;
            // Four standard deviations of a binomial share, at least.
            let room = per_shard as f64 - share;
            assert!(
                room >= 4.0 * share.sqrt(),
                "{max_nodes}: {count} × {per_shard}"
            );
        }
    }
}
