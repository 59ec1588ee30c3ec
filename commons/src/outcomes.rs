//! Rollout outcomes, from the polls alone: for each release that is an
//! update target, what happens to the nodes that were offered it.
//!
//! Every poll says where a node is (the release it polls from) and, through
//! the answer, what it was offered (the target Zincati takes: the highest
//! age index among the edges out of its node). From the sequence of polls
//! of each node the tracker counts, per scope and release, distinct nodes:
//!
//! - `offered`: the answer offered them this release;
//! - `arrived`: offered it, they later polled from it (with the time from
//!   the offer to the arrival);
//! - `rolled_back`: they polled from this release, then from an older one;
//! - `stuck`: offered it more than [`Settings::stuck_after`] ago, still
//!   polling from an older release;
//! - `lost`: offered it, then silent for more than [`Settings::lost_after`]
//!   while other nodes of their scope kept polling.
//!
//! `offered` ⊇ `arrived` ⊇ `rolled_back`; `stuck` and `lost` are offered
//! nodes that have not arrived, and a silent node is `lost`, not `stuck`.
//! `offered`, `arrived` and `rolled_back` are counted as they happen;
//! `stuck` and `lost` are read from the nodes' current state when a
//! [`Summary`] is taken.
//!
//! Memory is bounded: a node is known only by a key the caller derives from
//! its identity (a keyed hash, never the identity itself), entries are
//! forgotten after [`Settings::forget_after`] unseen, at most
//! [`Settings::max_nodes`] are kept (the least recently seen are evicted
//! first, and counted), and releases last offered more than
//! [`Settings::keep_releases_for`] ago are dropped with their counts.
//!
//! A poll looks up about ten tables; they hash with hashbrown's default
//! (foldhash, seeded at random per process), a few times cheaper than
//! SipHash. Their keys are not a client's to choose: node keys are a keyed
//! hash the client cannot predict, and names are bounded labels and
//! releases of the graph.

use hashbrown::{Equivalent, HashMap};

pub mod page;

/// Limits and thresholds of a [`Tracker`], in seconds where they are times.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Nodes kept at most.
    pub max_nodes: usize,
    /// An entry unseen for this long is forgotten.
    pub forget_after: i64,
    /// An offered node still polling from an older release after this long
    /// is stuck.
    pub stuck_after: i64,
    /// An offered node silent for this long (while its scope polls) is lost.
    pub lost_after: i64,
    /// A release not offered to anyone for this long is dropped.
    pub keep_releases_for: i64,
}

impl Default for Settings {
    fn default() -> Self {
        const DAY: i64 = 24 * 3600;
        Settings {
            max_nodes: 1_000_000,
            forget_after: 7 * DAY,
            stuck_after: DAY,
            lost_after: 3600,
            keep_releases_for: 30 * DAY,
        }
    }
}

/// One poll as the tracker sees it.
#[derive(Debug, Clone, Copy)]
pub struct Poll<'a> {
    /// The node's key: a keyed hash of its identity.
    pub node: u64,
    /// Stream, basearch and scheme of the graph it was answered from.
    pub scope: (&'a str, &'a str, &'a str),
    /// Its group (`""` without one) and platform (`""` without one).
    pub group: &'a str,
    /// Its platform (`""` without one).
    pub platform: &'a str,
    /// The release it polls from, and its age index.
    pub from: (&'a str, u64),
    /// The release it was offered (the update Zincati takes), if any, and
    /// its age index.
    pub offer: Option<(&'a str, u64)>,
    /// When, in seconds since the Unix epoch.
    pub now: i64,
}

/// No offer, or no release: the id no release has.
const NONE: u32 = u32::MAX;

/// What the tracker keeps of a node: 28 bytes, 40 with its key in the map
/// (times are seconds after the tracker's [`Tracker::base`]).
#[derive(Debug, Clone, Copy)]
struct Node {
    last_seen: u32,
    offered_at: u32,
    /// Age index of the newest release it polled from, and that release.
    highest_age: u32,
    highest: u32,
    /// The release it was last offered ([`NONE`] without one).
    offer: u32,
    scope: u16,
    group: u16,
    platform: u16,
    /// Arrived at its offer.
    arrived: bool,
    /// Counted as rolled back from `highest`.
    rolled_back: bool,
    /// Arrived at `highest` through an offer of it (its roll-back from
    /// there counts, whatever it was offered since).
    offered_highest: bool,
}

/// Counts of distinct nodes, and times from offer to arrival.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Offered the release.
    pub offered: u64,
    /// Offered it, then polled from it.
    pub arrived: u64,
    /// Still polling from an older release long after the offer.
    pub stuck: u64,
    /// Polled from it, then from an older release.
    pub rolled_back: u64,
    /// Offered it, then silent.
    pub lost: u64,
    /// Seconds from offer to arrival, by [`ArrivalTimes`] bucket.
    pub arrival: ArrivalTimes,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.offered += other.offered;
        self.arrived += other.arrived;
        self.stuck += other.stuck;
        self.rolled_back += other.rolled_back;
        self.lost += other.lost;
        self.arrival.add(&other.arrival);
    }
}

/// Buckets of arrival times: bucket `i` holds times up to `1.25^i`
/// seconds (about 25% resolution), from 1 s to over 30 days.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrivalTimes([u32; ARRIVAL_BUCKETS]);

const ARRIVAL_BUCKETS: usize = 72;
const ARRIVAL_RATIO: f64 = 1.25;

impl Default for ArrivalTimes {
    fn default() -> Self {
        ArrivalTimes([0; ARRIVAL_BUCKETS])
    }
}

impl ArrivalTimes {
    fn record(&mut self, seconds: i64) {
        let seconds = seconds.max(1) as f64;
        let bucket = (seconds.ln() / ARRIVAL_RATIO.ln()).ceil() as usize;
        self.0[bucket.min(ARRIVAL_BUCKETS - 1)] += 1;
    }

    fn add(&mut self, other: &ArrivalTimes) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Arrivals recorded.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|&n| u64::from(n)).sum()
    }

    /// The `q` quantile (0 to 1) in seconds: the upper bound of its bucket,
    /// within 25% above the true value. `None` without arrivals.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &n) in self.0.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return Some(ARRIVAL_RATIO.powi(bucket as i32).round());
            }
        }
        None
    }
}

/// The outcomes of one release in one scope.
#[derive(Debug, Clone, Default)]
struct Release {
    total: Counts,
    by_group: HashMap<u16, Counts>,
    by_platform: HashMap<u16, Counts>,
    last_offered: i64,
}

impl Release {
    fn each(&mut self, group: u16, platform: u16, mut change: impl FnMut(&mut Counts)) {
        change(&mut self.total);
        change(self.by_group.entry(group).or_default());
        change(self.by_platform.entry(platform).or_default());
    }
}

/// Names given small ids (a name is copied once, at its first use).
#[derive(Debug, Default)]
struct Names {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        id
    }
}

/// A scope's names, borrowed: a poll finds its scope's id without copying
/// them. Hashes as the owned `(String, String, String)` does (a tuple
/// hashes its fields in order, and `&str` hashes as `String`).
#[derive(Hash)]
struct ScopeKey<'a>((&'a str, &'a str, &'a str));

impl Equivalent<(String, String, String)> for ScopeKey<'_> {
    fn equivalent(&self, key: &(String, String, String)) -> bool {
        let (stream, basearch, scheme) = self.0;
        stream == key.0 && basearch == key.1 && scheme == key.2
    }
}

/// The outcomes of the releases offered to the nodes that poll.
#[derive(Debug)]
pub struct Tracker {
    settings: Settings,
    nodes: HashMap<u64, Node>,
    /// Scopes (stream, basearch and scheme) by id, and their ids.
    scopes: HashMap<(String, String, String), u16>,
    scope_names: Vec<(String, String, String)>,
    groups: Names,
    platforms: Names,
    releases: Names,
    /// Per scope and release.
    outcomes: HashMap<(u16, u32), Release>,
    /// The instant node times count from: 2^31 s before the first poll, so
    /// that earlier times (a clock set back) fit too.
    base: Option<i64>,
    /// The last poll of each scope.
    scope_last_poll: HashMap<u16, i64>,
    evicted: u64,
}

/// Ids are bounded by what the caller lets through (scopes, groups and
/// platforms of known values); past this many, new ones share the last.
const MAX_LABELS: u32 = u16::MAX as u32;

impl Tracker {
    /// An empty tracker.
    pub fn new(settings: Settings) -> Self {
        Tracker {
            settings,
            nodes: HashMap::new(),
            scopes: HashMap::new(),
            scope_names: Vec::new(),
            groups: Names::default(),
            platforms: Names::default(),
            releases: Names::default(),
            outcomes: HashMap::new(),
            scope_last_poll: HashMap::new(),
            base: None,
            evicted: 0,
        }
    }

    /// `now` as a node time.
    fn stamp(&mut self, now: i64) -> u32 {
        let base = *self.base.get_or_insert(now - (1 << 31));
        (now - base).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// A node time as seconds since the epoch.
    fn instant(&self, stamp: u32) -> i64 {
        self.base.unwrap_or(0) + i64::from(stamp)
    }

    /// Nodes tracked.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is tracked.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Entries evicted because the tracker was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Records one poll.
    pub fn record(&mut self, poll: &Poll<'_>) {
        let scope = self.scope_id(poll.scope);
        let group = small(self.groups.id(poll.group));
        let platform = small(self.platforms.id(poll.platform));
        let from = self.releases.id(poll.from.0);
        let offer = poll.offer.map(|(version, _)| self.releases.id(version));
        let now = self.stamp(poll.now);
        let from_age = age(poll.from.1);
        self.scope_last_poll.insert(scope, poll.now);
        // One probe of the nodes' table for a node seen before (a large
        // table: each probe is likely a cache miss).
        if self.nodes.len() >= self.settings.max_nodes && !self.nodes.contains_key(&poll.node) {
            self.evict();
        }
        let slot = self.nodes.entry(poll.node).or_insert(Node {
            last_seen: now,
            offered_at: now,
            highest_age: from_age,
            highest: from,
            offer: NONE,
            scope,
            group,
            platform,
            arrived: false,
            rolled_back: false,
            offered_highest: false,
        });
        let mut node = *slot;
        // A node that moves to another scope (rebased to the OCI graph,
        // say) starts again there.
        if node.scope != scope {
            node.offer = NONE;
            node.highest_age = from_age;
            node.highest = from;
            node.rolled_back = false;
            node.offered_highest = false;
        }
        node.scope = scope;
        node.group = group;
        node.platform = platform;
        node.last_seen = now;

        // Where it polls from: arrival at its offer, a step back.
        let arrives = node.offer == from && !node.arrived;
        if arrives {
            node.arrived = true;
            let waited = i64::from(now) - i64::from(node.offered_at);
            if let Some(release) = self.outcomes.get_mut(&(scope, from)) {
                release.each(group, platform, |c| {
                    c.arrived += 1;
                    c.arrival.record(waited);
                });
            }
        }
        if from_age > node.highest_age {
            node.highest_age = from_age;
            node.highest = from;
            node.rolled_back = false;
            node.offered_highest = arrives;
        } else if from_age == node.highest_age && arrives {
            node.offered_highest = true;
        } else if from_age < node.highest_age && !node.rolled_back {
            node.rolled_back = true;
            // Counted for a release it arrived at through an offer.
            if node.offered_highest {
                if let Some(release) = self.outcomes.get_mut(&(scope, node.highest)) {
                    release.each(group, platform, |c| c.rolled_back += 1);
                }
            }
        }
        // What it is offered now.
        if let Some(offer) = offer {
            if offer != node.offer && offer == node.highest && node.offered_highest {
                // Offered again the release it arrived at and came back
                // from: counted offered and arrived once.
                node.offer = offer;
                node.arrived = true;
            } else if offer != node.offer {
                node.offer = offer;
                node.offered_at = now;
                node.arrived = false;
                let release = self.outcomes.entry((scope, offer)).or_default();
                release.last_offered = poll.now;
                release.each(group, platform, |c| c.offered += 1);
            } else if let Some(release) = self.outcomes.get_mut(&(scope, offer)) {
                release.last_offered = poll.now;
            }
        }
        *slot = node;
    }

    fn scope_id(&mut self, scope: (&str, &str, &str)) -> u16 {
        if let Some(&id) = self.scopes.get(&ScopeKey(scope)) {
            return id;
        }
        let (stream, basearch, scheme) = scope;
        let names = (stream.to_owned(), basearch.to_owned(), scheme.to_owned());
        let id = small(self.scope_names.len() as u32);
        self.scopes.insert(names.clone(), id);
        self.scope_names.push(names);
        id
    }

    /// Makes room for a node: the least recently seen 1% go (at least
    /// one), so that evicting costs a scan per 1% of the capacity.
    fn evict(&mut self) {
        let count = (self.settings.max_nodes / 100).max(1).min(self.nodes.len());
        if count == 0 {
            return;
        }
        let mut seen: Vec<u32> = self.nodes.values().map(|n| n.last_seen).collect();
        let (_, &mut cutoff, _) = seen.select_nth_unstable(count - 1);
        let mut left = count;
        self.nodes.retain(|_, node| {
            if left > 0 && node.last_seen <= cutoff {
                left -= 1;
                false
            } else {
                true
            }
        });
        self.evicted += count as u64;
    }

    /// Forgets nodes unseen for [`Settings::forget_after`] and releases not
    /// offered for [`Settings::keep_releases_for`].
    pub fn sweep(&mut self, now: i64) {
        let forget = now - self.settings.forget_after;
        let base = self.base.unwrap_or(0);
        self.nodes
            .retain(|_, node| base + i64::from(node.last_seen) > forget);
        let drop_before = now - self.settings.keep_releases_for;
        self.outcomes
            .retain(|_, release| release.last_offered > drop_before);
    }

    /// The outcomes now, per scope and release (newest offer first within
    /// a scope), with `stuck` and `lost` read from the nodes.
    pub fn summary(&self, now: i64) -> Summary {
        let windows = (self.settings.stuck_after, self.settings.lost_after);
        self.summary_with(now, |_| windows, |_| None)
    }

    /// The last poll of each scope (stream, basearch, scheme) this tracker
    /// saw.
    pub fn scope_last_polls(&self) -> impl Iterator<Item = ((&str, &str, &str), i64)> {
        self.scope_last_poll
            .iter()
            .map(|(&scope, &at)| (self.scope_label(scope), at))
    }

    /// Stream, basearch and scheme of scope `id`.
    fn scope_label(&self, id: u16) -> (&str, &str, &str) {
        let (stream, basearch, scheme) = &self.scope_names[usize::from(id)];
        (stream, basearch, scheme)
    }

    /// [`Tracker::summary`], with the `stuck_after` and `lost_after` of
    /// each group (by name, `""` for nodes that send none) given by
    /// `windows`, and the last poll of a scope given by `scope_polled`
    /// when other trackers share the scope (else this tracker's).
    pub fn summary_with(
        &self,
        now: i64,
        windows: impl Fn(&str) -> (i64, i64),
        scope_polled: impl Fn((&str, &str, &str)) -> Option<i64>,
    ) -> Summary {
        let windows: Vec<(i64, i64)> = self.groups.names.iter().map(|g| windows(g)).collect();
        let scope_polled: HashMap<u16, i64> = self
            .scope_last_poll
            .iter()
            .map(|(&id, &own)| {
                let all = scope_polled(self.scope_label(id));
                (id, all.map_or(own, |all| all.max(own)))
            })
            .collect();
        let mut releases: HashMap<(u16, u32), Release> = self.outcomes.clone();
        for node in self.nodes.values() {
            if node.offer == NONE || node.arrived {
                continue;
            }
            let Some(release) = releases.get_mut(&(node.scope, node.offer)) else {
                continue;
            };
            let scope_polled = scope_polled.get(&node.scope).copied().unwrap_or(now);
            let (stuck_after, lost_after) = windows[usize::from(node.group)];
            let last_seen = self.instant(node.last_seen);
            let silent = now - last_seen > lost_after && scope_polled - last_seen > lost_after;
            if silent {
                release.each(node.group, node.platform, |c| c.lost += 1);
            } else if now - self.instant(node.offered_at) > stuck_after {
                release.each(node.group, node.platform, |c| c.stuck += 1);
            }
        }
        let name = |names: &Names, id: u16| names.names[usize::from(id)].clone();
        let mut out: Vec<ReleaseOutcomes> = releases
            .into_iter()
            .map(|((scope, release), r)| {
                let (stream, basearch, scheme) = self.scope_label(scope);
                let (stream, basearch, scheme) =
                    (stream.to_string(), basearch.to_string(), scheme.to_string());
                let mut by_group: Vec<(String, Counts)> = r
                    .by_group
                    .into_iter()
                    .map(|(g, c)| (name(&self.groups, g), c))
                    .collect();
                by_group.sort_by(|a, b| a.0.cmp(&b.0));
                let mut by_platform: Vec<(String, Counts)> = r
                    .by_platform
                    .into_iter()
                    .map(|(p, c)| (name(&self.platforms, p), c))
                    .collect();
                by_platform.sort_by(|a, b| a.0.cmp(&b.0));
                ReleaseOutcomes {
                    stream,
                    basearch,
                    scheme,
                    release: self.releases.names[release as usize].clone(),
                    last_offered: r.last_offered,
                    total: r.total,
                    by_group,
                    by_platform,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (
                &a.stream,
                &a.basearch,
                &a.scheme,
                std::cmp::Reverse(a.last_offered),
            )
                .cmp(&(
                    &b.stream,
                    &b.basearch,
                    &b.scheme,
                    std::cmp::Reverse(b.last_offered),
                ))
        });
        Summary {
            releases: out,
            tracked_nodes: self.nodes.len(),
            evicted: self.evicted,
        }
    }
}

/// An age index as kept (those past 2^32 share the last).
fn age(age: u64) -> u32 {
    age.min(u64::from(u32::MAX)) as u32
}

fn small(id: u32) -> u16 {
    id.min(MAX_LABELS - 1) as u16
}

/// The outcomes of every tracked release.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Per scope and release.
    pub releases: Vec<ReleaseOutcomes>,
    /// Nodes tracked.
    pub tracked_nodes: usize,
    /// Entries evicted because the tracker was full.
    pub evicted: u64,
}

/// The outcomes of one release in one scope.
#[derive(Debug, Clone)]
pub struct ReleaseOutcomes {
    /// Stream.
    pub stream: String,
    /// Architecture.
    pub basearch: String,
    /// `checksum` or `oci`.
    pub scheme: String,
    /// Release version.
    pub release: String,
    /// When it was last offered.
    pub last_offered: i64,
    /// Over all nodes.
    pub total: Counts,
    /// Per group (`""`: nodes that send none).
    pub by_group: Vec<(String, Counts)>,
    /// Per platform.
    pub by_platform: Vec<(String, Counts)>,
}

impl Summary {
    /// The outcomes of `release` in a scope.
    pub fn get(&self, scope: (&str, &str, &str), release: &str) -> Option<&ReleaseOutcomes> {
        self.releases.iter().find(|r| {
            (r.stream.as_str(), r.basearch.as_str(), r.scheme.as_str()) == scope
                && r.release == release
        })
    }

    /// Adds another tracker's summary (a shard of the same fleet).
    pub fn merge(&mut self, other: Summary) {
        self.tracked_nodes += other.tracked_nodes;
        self.evicted += other.evicted;
        for theirs in other.releases {
            let mine = self.releases.iter_mut().find(|r| {
                (&r.stream, &r.basearch, &r.scheme, &r.release)
                    == (
                        &theirs.stream,
                        &theirs.basearch,
                        &theirs.scheme,
                        &theirs.release,
                    )
            });
            match mine {
                None => self.releases.push(theirs),
                Some(mine) => {
                    mine.last_offered = mine.last_offered.max(theirs.last_offered);
                    mine.total.add(&theirs.total);
                    merge_named(&mut mine.by_group, theirs.by_group);
                    merge_named(&mut mine.by_platform, theirs.by_platform);
                }
            }
        }
    }
}

fn merge_named(into: &mut Vec<(String, Counts)>, from: Vec<(String, Counts)>) {
    for (name, counts) in from {
        match into.iter_mut().find(|(n, _)| *n == name) {
            Some((_, mine)) => mine.add(&counts),
            None => into.push((name, counts)),
        }
    }
    into.sort_by(|a, b| a.0.cmp(&b.0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SCOPE: (&str, &str, &str) = ("stable", "x86_64", "checksum");
    const H: i64 = 3600;

    fn poll(
        node: u64,
        from: (&'static str, u64),
        offer: Option<(&'static str, u64)>,
        now: i64,
    ) -> Poll<'static> {
        Poll {
            node,
            scope: SCOPE,
            group: "",
            platform: "metal",
            from,
            offer,
            now,
        }
    }

    const A: (&str, u64) = ("40.1", 1);
    const B: (&str, u64) = ("40.2", 2);

    fn counts(tracker: &Tracker, now: i64, release: &str) -> Counts {
        tracker
            .summary(now)
            .get(SCOPE, release)
            .map(|r| r.total.clone())
            .unwrap_or_default()
    }

    #[test]
    fn an_offered_node_that_updates_arrives() {
        let mut t = Tracker::new(Settings::default());
        t.record(&poll(1, A, Some(B), 0));
        t.record(&poll(1, A, Some(B), 300));
        t.record(&poll(1, B, None, 900));
        let c = counts(&t, 1000, B.0);
        assert_eq!(
            (c.offered, c.arrived, c.stuck, c.lost, c.rolled_back),
            (1, 1, 0, 0, 0)
        );
        // 900 s from offer to arrival: in the bucket up to 1.25^31 (1,009 s).
        let p50 = c.arrival.quantile(0.5).unwrap();
        assert!((900.0..=900.0 * 1.25).contains(&p50), "{p50}");
    }

    #[test]
    fn a_node_still_on_the_old_release_a_day_later_is_stuck() {
        let mut t = Tracker::new(Settings::default());
        for step in 0..=(25 * 12) {
            t.record(&poll(1, A, Some(B), step * 300));
        }
        let c = counts(&t, 25 * H, B.0);
        assert_eq!((c.offered, c.arrived, c.stuck, c.lost), (1, 0, 1, 0));
        // Before stuck_after, it is only offered.
        let c = counts(&t, 23 * H, B.0);
        assert_eq!(c.stuck, 0);
    }

    #[test]
    fn a_node_silent_after_its_offer_while_others_poll_is_lost() {
        let mut t = Tracker::new(Settings::default());
        t.record(&poll(1, A, Some(B), 0));
        for step in 1..=(3 * 12) {
            t.record(&poll(2, A, None, step * 300));
        }
        let c = counts(&t, 3 * H, B.0);
        assert_eq!((c.offered, c.lost, c.stuck), (1, 1, 0));
        // When the whole scope is silent (the policy-engine itself was
        // away), nobody is lost.
        let mut t = Tracker::new(Settings::default());
        t.record(&poll(1, A, Some(B), 0));
        assert_eq!(counts(&t, 3 * H, B.0).lost, 0);
        // Silent past stuck_after too: lost, not stuck.
        let mut t = Tracker::new(Settings::default());
        t.record(&poll(1, A, Some(B), 0));
        t.record(&poll(2, A, None, 30 * H));
        let c = counts(&t, 30 * H, B.0);
        assert_eq!((c.lost, c.stuck), (1, 0));
    }

    #[test]
    fn a_roll_back_counts_after_a_newer_offer_too() {
        // On B, the node is offered C (a newer rollout), then comes back to
        // A: B is what it rolled back from.
        const C: (&str, u64) = ("C", 3);
        let mut t = Tracker::new(Settings::default());
        t.record(&poll(1, A, Some(B), 0));
        t.record(&poll(1, B, Some(C), 600));
        t.record(&poll(1, A, Some(B), 1200));
        let b = counts(&t, 1300, B.0);
        // Offered B again, it is still one node offered B.
        assert_eq!((b.offered, b.arrived, b.rolled_back), (1, 1, 1));
        assert_eq!((b.stuck, b.lost), (0, 0));
        t.record(&poll(1, B, Some(C), 1800));
        t.record(&poll(1, A, Some(B), 2400));
        let b = counts(&t, 2500, B.0);
        assert_eq!((b.offered, b.arrived, b.rolled_back), (1, 1, 1));
        // A node that reached B without being offered it (a rebase by
        // hand) and comes back is not B's.
        t.record(&poll(2, B, Some(C), 0));
        t.record(&poll(2, A, Some(B), 600));
        let b = counts(&t, 2500, B.0);
        assert_eq!((b.offered, b.rolled_back), (2, 1));
    }

    #[test]
    fn a_node_that_comes_back_to_an_older_release_rolled_back() {
        let mut t = Tracker::new(Settings::default());
        t.record(&poll(1, A, Some(B), 0));
        t.record(&poll(1, B, None, 600));
        t.record(&poll(1, A, Some(B), 1200));
        t.record(&poll(1, A, Some(B), 1500));
        let c = counts(&t, 1600, B.0);
        assert_eq!((c.offered, c.arrived, c.rolled_back), (1, 1, 1));
    }

    #[test]
    fn groups_and_platforms_are_counted_apart() {
        let mut t = Tracker::new(Settings::default());
        for (node, group, platform) in
            [(1, "canary", "aws"), (2, "canary", "metal"), (3, "", "aws")]
        {
            t.record(&Poll {
                group,
                platform,
                ..poll(node, A, Some(B), 0)
            });
        }
        let summary = t.summary(10);
        let r = summary.get(SCOPE, B.0).unwrap();
        assert_eq!(r.total.offered, 3);
        let offered = |list: &[(String, Counts)]| -> Vec<(String, u64)> {
            list.iter().map(|(n, c)| (n.clone(), c.offered)).collect()
        };
        assert_eq!(offered(&r.by_group), [("".into(), 1), ("canary".into(), 2)]);
        assert_eq!(
            offered(&r.by_platform),
            [("aws".into(), 2), ("metal".into(), 1)]
        );
    }

    #[test]
    fn memory_is_bounded_by_evicting_the_least_recently_seen() {
        let mut t = Tracker::new(Settings {
            max_nodes: 1000,
            ..Settings::default()
        });
        for node in 0..5000u64 {
            t.record(&poll(node, A, Some(B), node as i64));
        }
        assert!(t.len() <= 1000);
        assert_eq!(t.evicted() as usize + t.len(), 5000);
        // The newest are kept.
        assert!(t.nodes.contains_key(&4999));
        assert!(!t.nodes.contains_key(&0));
    }

    #[test]
    fn an_entry_is_forty_bytes() {
        assert_eq!(std::mem::size_of::<(u64, Node)>(), 40);
    }

    #[test]
    fn old_nodes_and_releases_are_forgotten() {
        let mut t = Tracker::new(Settings::default());
        t.record(&poll(1, A, Some(B), 0));
        t.sweep(8 * 24 * H);
        assert!(t.is_empty());
        assert!(t.summary(8 * 24 * H).get(SCOPE, B.0).is_some());
        t.sweep(31 * 24 * H);
        assert!(t.summary(31 * 24 * H).releases.is_empty());
    }

    #[test]
    fn shards_merge_into_one_summary() {
        let mut one = Tracker::new(Settings::default());
        let mut two = Tracker::new(Settings::default());
        one.record(&poll(1, A, Some(B), 0));
        two.record(&poll(2, A, Some(B), 0));
        two.record(&poll(2, B, None, 60));
        let mut summary = one.summary(100);
        summary.merge(two.summary(100));
        let r = summary.get(SCOPE, B.0).unwrap();
        assert_eq!((r.total.offered, r.total.arrived), (2, 1));
        assert_eq!(summary.tracked_nodes, 2);
    }

    #[test]
    fn a_node_is_lost_when_its_scope_polls_in_another_shard() {
        let mut one = Tracker::new(Settings::default());
        let mut two = Tracker::new(Settings::default());
        one.record(&poll(1, A, Some(B), 0));
        two.record(&poll(2, A, None, 3 * H));
        // Alone, the first shard cannot tell its node from a silent scope.
        assert_eq!(one.summary(3 * H).get(SCOPE, B.0).unwrap().total.lost, 0);
        let polled: Vec<_> = two.scope_last_polls().collect();
        assert_eq!(polled, [(SCOPE, 3 * H)]);
        let windows = |_: &str| (24 * H, H);
        let summary = one.summary_with(3 * H, windows, |scope| {
            polled.iter().find(|(s, _)| *s == scope).map(|&(_, at)| at)
        });
        let c = &summary.get(SCOPE, B.0).unwrap().total;
        assert_eq!((c.offered, c.lost, c.stuck), (1, 1, 0));
    }

    /// What one node does between two polls.
    #[derive(Debug, Clone)]
    enum Step {
        Poll,
        Update,
        RollBack,
        Silent(i64),
    }

    fn steps() -> impl Strategy<Value = Vec<(u64, Step)>> {
        let step = prop_oneof![
            Just(Step::Poll),
            Just(Step::Update),
            Just(Step::RollBack),
            (1..48i64).prop_map(|h| Step::Silent(h * H)),
        ];
        prop::collection::vec((0..20u64, step), 1..300)
    }

    proptest! {
        /// offered ⊇ arrived ⊇ rolled_back; stuck and lost are offered
        /// nodes that have not arrived; nothing counts past the nodes.
        #[test]
        fn counts_nest(steps in steps()) {
            let releases = [("1", 1u64), ("2", 2), ("3", 3), ("4", 4)];
            let mut t = Tracker::new(Settings::default());
            let mut on: HashMap<u64, usize> = HashMap::new();
            let mut now = 0;
            for (node, step) in steps {
                now += 60;
                let at = *on.entry(node).or_insert(0);
                let at = match step {
                    Step::Poll => at,
                    Step::Update => (at + 1).min(releases.len() - 1),
                    Step::RollBack => at.saturating_sub(1),
                    Step::Silent(seconds) => {
                        now += seconds;
                        at
                    }
                };
                on.insert(node, at);
                let offer = releases.get(at + 1).copied();
                t.record(&Poll { node, scope: SCOPE, group: "", platform: "", from: releases[at], offer, now });
            }
            let summary = t.summary(now + 2 * H);
            for r in &summary.releases {
                let c = &r.total;
                prop_assert!(c.arrived <= c.offered, "{c:?}");
                prop_assert!(c.rolled_back <= c.arrived, "{c:?}");
                prop_assert!(c.stuck + c.lost + c.arrived <= c.offered, "{c:?}");
                prop_assert!(c.offered <= 20 * 4, "{c:?}");
                prop_assert_eq!(c.arrival.count(), c.arrived);
            }
        }
    }
}
