//! A simulated fleet of Zincati nodes polling a real policy-engine over
//! HTTP while a release rolls out, and the true outcome of every node to
//! compare the policy-engine's `/v1/rollouts` with.
//!
//! Time is virtual: the fleet owns the clock the policy-engine reads
//! ([`Fleet::clock`], given to `start_with_clock`) and moves it forward in
//! steps of [`FleetSettings::step_secs`]. At each step every node whose
//! next poll is due sends `GET /v1/graph` as Zincati does (its release,
//! its pullspec, `oci=true`, a node UUID of 32 hexadecimal digits, no
//! `rollout_wariness`, so the policy-engine derives its wariness from the
//! UUID), then the clock moves one second on and the fleet waits for an
//! evaluation of the rollouts at that second (`at` of `/v1/rollouts`): one
//! that began after every poll of the step was answered.
//!
//! A node behaves as Zincati does: it polls every
//! [`FleetSettings::poll_secs`] plus up to 10% of jitter; when an answer
//! offers it the new release (the out-edge target with the highest age
//! index), it stops polling while it stages the update and waits to
//! reboot (Zincati does not ask for updates while one is staged), for a
//! log-normal time ([`FleetSettings::reboot`]), then polls from the new
//! release. What happens to it then is drawn once per node from a
//! [`Profile`]: it stays, it rolls back (polls from the old release again
//! a while after arriving, and never takes the new one again, as Zincati
//! keeps a failed deployment off its targets), it goes silent right after
//! the offer, or it never arrives (keeps polling from the old release).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

/// The release the nodes run at the start.
pub const OLD: &str = "43.20270101.3.0";
/// The release rolled out.
pub const NEW: &str = "43.20270115.3.0";
/// The stream of both.
pub const STREAM: &str = "stable";

/// The pullspec a node booted from `version` reports as `os_checksum`.
pub fn pullspec(version: &str) -> String {
    let digest = if version == NEW { "b2" } else { "a1" }.repeat(32);
    format!("quay.io/fedora/fedora-coreos@sha256:{digest}")
}

/// `(releases.json, updates.json)` of [`STREAM`]: [`OLD`] and [`NEW`] with
/// x86_64 images, [`NEW`] rolling out from 0% at `start` over
/// `duration_minutes`.
pub fn documents(start: i64, duration_minutes: u64) -> (String, String) {
    let release = |version: &str| {
        format!(
            r#"{{"version":"{version}","oci-images":[{{"architecture":"x86_64","image":"quay.io/fedora/fedora-coreos","digest-ref":"{}"}}]}}"#,
            pullspec(version)
        )
    };
    let releases = format!(
        r#"{{"stream":"{STREAM}","releases":[{},{}]}}"#,
        release(OLD),
        release(NEW)
    );
    let updates = format!(
        r#"{{"stream":"{STREAM}","releases":[{{"version":"{NEW}","metadata":{{"rollout":{{"start_epoch":{start},"start_percentage":0.0,"duration_minutes":{duration_minutes}}}}}}}]}}"#
    );
    (releases, updates)
}

/// What becomes of the nodes offered the new release: the fraction of
/// them that roll back, go silent, never arrive (the others stay).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Profile {
    /// Arrive, then come back to the old release.
    pub rolled_back: f64,
    /// Stop polling right after the offer, for good.
    pub silent: f64,
    /// Keep polling from the old release.
    pub never_arrive: f64,
}

impl Profile {
    /// A good release on a real fleet: 1% of the nodes go silent (they
    /// are switched off, lose their network…) after the offer.
    pub const GOOD: Profile = Profile {
        rolled_back: 0.0,
        silent: 0.01,
        never_arrive: 0.0,
    };
}

/// A log-normal time: its median and the standard deviation of its
/// logarithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    /// Median, seconds.
    pub median_secs: f64,
    /// Standard deviation of the natural logarithm.
    pub sigma: f64,
}

impl LogNormal {
    fn draw(&self, rng: &mut Rng) -> i64 {
        (self.median_secs * (self.sigma * rng.normal()).exp()).round() as i64
    }
}

/// The fleet and how its nodes behave.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSettings {
    /// Nodes.
    pub nodes: usize,
    /// Seed of every random draw (node UUIDs included).
    pub seed: u64,
    /// What becomes of the nodes offered the new release.
    pub profile: Profile,
    /// Seconds between two polls of a node, before jitter (Zincati's
    /// `steady_interval_secs`: 300).
    pub poll_secs: i64,
    /// Seconds the clock moves at each step.
    pub step_secs: i64,
    /// From the offer to the first poll from the new release: staging,
    /// waiting for the update strategy to allow the reboot, rebooting.
    pub reboot: LogNormal,
    /// From arriving to rolling back, for the nodes that do.
    pub roll_back: LogNormal,
    /// Windows of the outcomes the truth is counted with (the guard's
    /// `stuck_after` and `lost_after`), seconds.
    pub stuck_after: i64,
    /// See `stuck_after`.
    pub lost_after: i64,
}

impl Default for FleetSettings {
    /// 1,000 nodes of a good release; reboots 15 minutes after the offer
    /// at the median, 6% after more than an hour, 1% after two;
    /// roll-backs 20 minutes after arriving at the median.
    fn default() -> Self {
        FleetSettings {
            nodes: 1_000,
            seed: 1,
            profile: Profile::GOOD,
            poll_secs: 300,
            step_secs: 60,
            reboot: LogNormal {
                median_secs: 900.0,
                sigma: 0.9,
            },
            roll_back: LogNormal {
                median_secs: 1_200.0,
                sigma: 0.5,
            },
            stuck_after: 24 * 3600,
            lost_after: 3600,
        }
    }
}

/// What becomes of a node once offered the new release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Stays,
    RollsBack,
    Silent,
    NeverArrives,
}

/// Where a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Polling from the old release.
    Old,
    /// Offered the new release, staging it and waiting to reboot: silent.
    Rebooting,
    /// Polling from the new release.
    New,
    /// Came back to the old release; polls from it, never takes the new
    /// one again.
    RolledBack,
    /// Silent for good.
    Gone,
}

#[derive(Debug, Clone)]
struct Node {
    uuid: String,
    fate: Fate,
    phase: Phase,
    next_poll: i64,
    last_poll: Option<i64>,
    /// When the new release was first offered to it.
    offered_at: Option<i64>,
    arrived: bool,
    rolled_back: bool,
    /// When it rolls back, once arrived (nodes that do).
    roll_back_at: Option<i64>,
}

/// Counts of nodes, as the tracker's outcomes define them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcomes {
    /// Offered the new release.
    pub offered: u64,
    /// Offered it, then polled from it.
    pub arrived: u64,
    /// Offered it more than `stuck_after` ago, still polling from the old
    /// release.
    pub stuck: u64,
    /// Polled from it, then from the old release.
    pub rolled_back: u64,
    /// Offered it, then silent for more than `lost_after`.
    pub lost: u64,
}

impl Outcomes {
    /// The counts of a `/v1/rollouts` release entry (zeros without one).
    pub fn of_entry(entry: Option<&serde_json::Value>) -> Outcomes {
        let count = |key: &str| entry.and_then(|e| e[key].as_u64()).unwrap_or_default();
        Outcomes {
            offered: count("offered"),
            arrived: count("arrived"),
            stuck: count("stuck"),
            rolled_back: count("rolled_back"),
            lost: count("lost"),
        }
    }

    /// `(name, value)` of each outcome.
    pub fn named(&self) -> [(&'static str, u64); 5] {
        [
            ("offered", self.offered),
            ("arrived", self.arrived),
            ("stuck", self.stuck),
            ("rolled_back", self.rolled_back),
            ("lost", self.lost),
        ]
    }

    /// The largest difference, outcome by outcome, with `other`.
    pub fn max_difference(&self, other: &Outcomes) -> (&'static str, u64) {
        self.named()
            .into_iter()
            .zip(other.named())
            .map(|((name, a), (_, b))| (name, a.abs_diff(b)))
            .max_by_key(|&(_, d)| d)
            .unwrap_or(("offered", 0))
    }
}

/// What one step saw.
#[derive(Debug, Clone)]
pub struct Step {
    /// The time of the evaluation it waited for.
    pub at: i64,
    /// Polls sent.
    pub polls: usize,
    /// Answers that offered the new release to a node polling from the
    /// old one.
    pub offers: usize,
    /// `/v1/rollouts` as evaluated at `at`.
    pub rollouts: serde_json::Value,
}

impl Step {
    /// The `/v1/rollouts` entry of the new release, if it was offered.
    pub fn release(&self) -> Option<&serde_json::Value> {
        self.rollouts["releases"]
            .as_array()?
            .iter()
            .find(|r| r["release"] == NEW && r["stream"] == STREAM && r["scheme"] == "oci")
    }

    /// The counts `/v1/rollouts` gives for the new release.
    pub fn outcomes(&self) -> Outcomes {
        Outcomes::of_entry(self.release())
    }

    /// The halts of the new release in force.
    pub fn halts(&self) -> Vec<&serde_json::Value> {
        self.rollouts["halts"]
            .as_array()
            .map(|h| h.iter().filter(|h| h["release"] == NEW).collect())
            .unwrap_or_default()
    }
}

/// A fleet of simulated Zincati nodes and the clock of the policy-engine
/// they poll.
#[derive(Debug)]
pub struct Fleet {
    settings: FleetSettings,
    nodes: Vec<Node>,
    rng: Rng,
    clock: Arc<AtomicI64>,
    client: reqwest::Client,
    graph_url: String,
    rollouts_url: String,
    /// Polls in flight at once.
    concurrency: usize,
    /// When the last polls were sent.
    polled_at: i64,
}

impl Fleet {
    /// A fleet of `settings.nodes` nodes on [`OLD`], polling the
    /// policy-engine whose service and status ports are given; its clock
    /// reads `start`. Every node's first poll falls in the first poll
    /// interval.
    pub fn new(
        settings: FleetSettings,
        service: std::net::SocketAddr,
        status: std::net::SocketAddr,
        clock: Arc<AtomicI64>,
        start: i64,
    ) -> Fleet {
        let mut rng = Rng(settings.seed);
        let profile = settings.profile;
        let nodes = (0..settings.nodes)
            .map(|_| {
                let uuid = format!("{:016x}{:016x}", rng.next(), rng.next());
                let draw = rng.uniform();
                let fate = if draw < profile.rolled_back {
                    Fate::RollsBack
                } else if draw < profile.rolled_back + profile.silent {
                    Fate::Silent
                } else if draw < profile.rolled_back + profile.silent + profile.never_arrive {
                    Fate::NeverArrives
                } else {
                    Fate::Stays
                };
                Node {
                    uuid,
                    fate,
                    phase: Phase::Old,
                    next_poll: start + (rng.uniform() * settings.poll_secs as f64) as i64,
                    last_poll: None,
                    offered_at: None,
                    arrived: false,
                    rolled_back: false,
                    roll_back_at: None,
                }
            })
            .collect();
        clock.store(start, Ordering::SeqCst);
        Fleet {
            settings,
            nodes,
            rng,
            clock,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            graph_url: format!("http://{service}/v1/graph"),
            rollouts_url: format!("http://{status}/v1/rollouts"),
            concurrency: 16,
            polled_at: start,
        }
    }

    /// The time the policy-engine reads now.
    pub fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Nodes polling from the new release and staying there.
    pub fn on_new(&self) -> usize {
        self.nodes.iter().filter(|n| n.phase == Phase::New).count()
    }

    /// Moves the clock to the next step, sends the polls due, then waits
    /// for an evaluation that follows them (see the module's header).
    pub async fn step(&mut self) -> Step {
        let now = self.now() - 1 + self.settings.step_secs;
        self.clock.store(now, Ordering::SeqCst);
        // Roll-backs due: the node reboots into the old release and polls
        // from it (at this step, as a poll due).
        for node in &mut self.nodes {
            if node.roll_back_at.is_some_and(|at| at <= now) {
                node.roll_back_at = None;
                node.phase = Phase::RolledBack;
                node.rolled_back = true;
                node.next_poll = now;
            }
        }
        let due: Vec<(usize, &'static str)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.next_poll <= now && n.phase != Phase::Gone)
            .map(|(i, n)| {
                let from = match n.phase {
                    Phase::Rebooting | Phase::New => NEW,
                    _ => OLD,
                };
                (i, from)
            })
            .collect();
        let polls = due.len();
        self.polled_at = now;
        let mut answers: Vec<(usize, &'static str, Option<String>)> =
            futures_util::stream::iter(due.into_iter().map(|(i, from)| {
                let url = self.poll_url(&self.nodes[i].uuid, from);
                let client = &self.client;
                async move { (i, from, take_update(client, url, from).await) }
            }))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        // In the nodes' order, whatever the order of the answers: the
        // draws that follow are the same from one run to the next.
        answers.sort_unstable_by_key(|&(i, _, _)| i);
        let mut offers = 0;
        for (i, from, update) in answers {
            let offered_new = update.as_deref() == Some(NEW);
            if offered_new && from == OLD {
                offers += 1;
            }
            let reboot = self.settings.reboot.draw(&mut self.rng);
            let roll_back = self.settings.roll_back.draw(&mut self.rng);
            let jitter = self.jitter();
            let node = &mut self.nodes[i];
            node.last_poll = Some(now);
            node.next_poll = now + jitter;
            if offered_new && node.offered_at.is_none() {
                node.offered_at = Some(now);
            }
            match (node.phase, offered_new) {
                (Phase::Old, true) => match node.fate {
                    Fate::Stays | Fate::RollsBack => {
                        node.phase = Phase::Rebooting;
                        node.next_poll = now + reboot.max(1);
                    }
                    Fate::Silent => node.phase = Phase::Gone,
                    Fate::NeverArrives => {}
                },
                (Phase::Rebooting, _) => {
                    node.phase = Phase::New;
                    node.arrived = true;
                    if node.fate == Fate::RollsBack {
                        node.roll_back_at = Some(now + roll_back.max(1));
                    }
                }
                _ => {}
            }
        }
        let at = now + 1;
        self.clock.store(at, Ordering::SeqCst);
        let rollouts = self.evaluation(at).await;
        Step {
            at,
            polls,
            offers,
            rollouts,
        }
    }

    /// The poll interval with Zincati's jitter (0 to 10% more).
    fn jitter(&mut self) -> i64 {
        let secs = self.settings.poll_secs;
        secs + (secs / 100).max(1) * (self.rng.next() % 11) as i64
    }

    /// Zincati's request from `from`, its parameters percent-encoded.
    fn poll_url(&self, uuid: &str, from: &str) -> reqwest::Url {
        reqwest::Url::parse_with_params(
            &self.graph_url,
            [
                ("basearch", "x86_64"),
                ("stream", STREAM),
                ("oci", "true"),
                ("os_version", from),
                ("os_checksum", &pullspec(from)),
                ("group", "default"),
                ("node_uuid", uuid),
                ("platform", "metal"),
            ],
        )
        .expect("a URL")
    }

    /// Waits for an evaluation of the rollouts at `at` and returns it.
    async fn evaluation(&self, at: i64) -> serde_json::Value {
        let want = commons::fleet_policy::rfc3339(at).expect("a time in range");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = self
                .client
                .get(&self.rollouts_url)
                .send()
                .await
                .expect("/v1/rollouts answers")
                .bytes()
                .await
                .expect("/v1/rollouts is read");
            let page: serde_json::Value =
                serde_json::from_slice(&body).expect("/v1/rollouts is JSON");
            if page["at"].as_str() == Some(want.as_str()) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "no evaluation of the rollouts at {want} within 30 s: {page}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The true outcomes of the new release now, counted from what the
    /// nodes did.
    pub fn truth(&self) -> Outcomes {
        let now = self.now();
        let s = &self.settings;
        let mut truth = Outcomes::default();
        for node in &self.nodes {
            let Some(offered_at) = node.offered_at else {
                continue;
            };
            truth.offered += 1;
            truth.arrived += u64::from(node.arrived);
            truth.rolled_back += u64::from(node.rolled_back);
            // Silent while the others poll: up to their last polls.
            let silent_for = self.polled_at - node.last_poll.unwrap_or(offered_at);
            if node.fate == Fate::Silent && silent_for > s.lost_after {
                truth.lost += 1;
            }
            if node.fate == Fate::NeverArrives && now - offered_at > s.stuck_after {
                truth.stuck += 1;
            }
        }
        truth
    }

    /// Nodes rebooting into the new release (silent since the offer, as
    /// Zincati is while an update is staged) for more than `lost_after`:
    /// the tracker cannot tell them from lost ones until they arrive.
    pub fn rebooting_past_lost_after(&self) -> u64 {
        let now = self.now();
        self.nodes
            .iter()
            .filter(|n| n.phase == Phase::Rebooting)
            .filter(|n| {
                n.last_poll
                    .is_some_and(|t| self.polled_at.min(now) - t > self.settings.lost_after)
            })
            .count() as u64
    }

    /// Nodes that have been offered the new release.
    pub fn offered(&self) -> usize {
        self.nodes.iter().filter(|n| n.offered_at.is_some()).count()
    }
}

/// Sends a poll of a node on `from` and returns the update Zincati takes
/// from the answer: the target with the highest age index among the edges
/// out of its own node (found by its payload), if above its own.
async fn take_update(client: &reqwest::Client, url: reqwest::Url, from: &str) -> Option<String> {
    let payload = pullspec(from);
    let response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .expect("the policy-engine answers");
    assert_eq!(response.status(), 200, "a poll was refused");
    let body = response.bytes().await.expect("a graph is read");
    let graph: serde_json::Value = serde_json::from_slice(&body).expect("a graph");
    let nodes = graph["nodes"].as_array()?;
    let age = |n: &serde_json::Value| -> Option<u64> {
        n["metadata"]["org.fedoraproject.coreos.releases.age_index"]
            .as_str()?
            .parse()
            .ok()
    };
    let own = nodes
        .iter()
        .position(|n| n["payload"] == payload.as_str())?;
    let own_age = age(&nodes[own])?;
    graph["edges"]
        .as_array()?
        .iter()
        .filter(|e| e[0].as_u64() == Some(own as u64))
        .filter_map(|e| nodes.get(e[1].as_u64()? as usize))
        .filter_map(|n| Some((age(n)?, n["version"].as_str()?.to_string())))
        .filter(|&(age, _)| age > own_age)
        .max_by_key(|&(age, _)| age)
        .map(|(_, version)| version)
}

/// SplitMix64: a small generator whose draws a seed fixes.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reboot_times_are_minutes_to_a_couple_of_hours() {
        let mut rng = Rng(7);
        let reboot = FleetSettings::default().reboot;
        let mut draws: Vec<i64> = (0..100_000).map(|_| reboot.draw(&mut rng)).collect();
        draws.sort_unstable();
        let quantile = |q: f64| draws[(q * draws.len() as f64) as usize];
        // Median 15 minutes; 95% within 1 h 10 min; 99% within 2 h 15 min.
        assert!((840..960).contains(&quantile(0.5)), "{}", quantile(0.5));
        assert!(
            (3_600..4_800).contains(&quantile(0.95)),
            "{}",
            quantile(0.95)
        );
        assert!(
            (6_500..8_600).contains(&quantile(0.99)),
            "{}",
            quantile(0.99)
        );
    }

    #[test]
    fn documents_roll_the_new_release_out() {
        let (releases, updates) = documents(1_000, 60);
        let releases: serde_json::Value = serde_json::from_str(&releases).unwrap();
        let updates: serde_json::Value = serde_json::from_str(&updates).unwrap();
        assert_eq!(releases["releases"][1]["version"], NEW);
        assert_eq!(
            updates["releases"][0]["metadata"]["rollout"]["duration_minutes"],
            60
        );
    }
}
