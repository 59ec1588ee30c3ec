//! End to end: rollout safety. Nodes poll as Zincati does; the
//! policy-engine counts what happens to each release it offers
//! (`/v1/rollouts`, metrics), says why a node is offered what it is
//! (`/v1/explain`), and halts a release whose guard is crossed, until the
//! operator resumes it, across restarts.
//!
//! The in-process services run on a clock the test moves, and evaluate the
//! outcomes every 50 ms; the real binary runs on the wall clock.

mod support;

use serde_json::Value;
use service_kit::server::Running;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const STREAMS: &str = "stable = [\"x86_64\"]";

/// After the end of the rollout of 32.2.0 (it starts at 1,800,000,000 and
/// lasts 100 minutes): every node of 31.2.0 or 32.1.0 is offered 32.2.0.
const ROLLED_OUT: i64 = 1_800_000_000 + 200 * 60;

/// A graph-builder and a policy-engine on a clock the test moves.
struct Engine {
    graph_builder: Running,
    policy_engine: Running,
    clock: Arc<AtomicI64>,
    /// Payload of each release, by scheme (`true`: OCI) and version.
    payloads: HashMap<(bool, String), String>,
}

impl Engine {
    /// Starts both at `now`; `extra` is appended to the policy-engine's
    /// `[upstream]` lines (then other sections).
    async fn start(upstream: &Upstream, now: i64, extra: &str) -> Engine {
        let graph_builder =
            fcos_graph_builder::start(graph_builder_settings(upstream, STREAMS)).unwrap();
        Engine::with_graph_builder(graph_builder, Arc::new(AtomicI64::new(now)), extra).await
    }

    async fn with_graph_builder(
        graph_builder: Running,
        clock: Arc<AtomicI64>,
        extra: &str,
    ) -> Engine {
        let graph_url = format!("http://{}/v1/graph", graph_builder.service_addr);
        let mut settings = policy_engine_settings_with(&graph_url, extra);
        settings.rollouts.interval = Duration::from_millis(50);
        let read = Arc::clone(&clock);
        let policy_engine = fcos_policy_engine::start_with_clock(
            settings,
            Arc::new(move || read.load(Ordering::SeqCst)),
        )
        .unwrap();
        wait_ready(&graph_builder).await;
        wait_following(&policy_engine, &graph_builder).await;
        let mut payloads = HashMap::new();
        for oci in [false, true] {
            let raw = get_graph(&format!(
                "http://{}/v1/graph?basearch=x86_64&stream=stable&oci={oci}",
                graph_builder.service_addr
            ))
            .await;
            for node in raw["nodes"].as_array().unwrap() {
                payloads.insert(
                    (oci, node["version"].as_str().unwrap().to_string()),
                    node["payload"].as_str().unwrap().to_string(),
                );
            }
        }
        Engine {
            graph_builder,
            policy_engine,
            clock,
            payloads,
        }
    }

    fn status(&self) -> SocketAddr {
        self.policy_engine.status_addr
    }

    /// Zincati's request from `node` on `version`.
    fn query(&self, node: &Node, version: &str) -> String {
        let payload = self
            .payloads
            .get(&(node.oci, version.to_string()))
            .map_or(String::new(), |p| urlencode(p));
        let mut query = format!(
            "basearch=x86_64&stream=stable&oci={}&os_version={version}&os_checksum={payload}&node_uuid={}&platform={}",
            node.oci,
            node.uuid,
            node.platform,
        );
        if let Some(group) = node.group {
            query += &format!("&group={group}");
        }
        if let Some(wariness) = node.wariness {
            query += &format!("&rollout_wariness={wariness:.6}");
        }
        query
    }

    /// `node` polls from `version`; returns the targets of the edges out of
    /// its release.
    async fn poll(&self, node: &Node, version: &str) -> Vec<String> {
        let url = format!(
            "http://{}/v1/graph?{}",
            self.policy_engine.service_addr,
            self.query(node, version)
        );
        let graph = get_graph(&url).await;
        edges(&graph)
            .into_iter()
            .filter(|(from, _)| from == version)
            .map(|(_, to)| to)
            .collect()
    }

    /// `/v1/explain` for `node` on `version`.
    async fn explain(&self, node: &Node, version: &str) -> Value {
        let (status, body) = get(&format!(
            "http://{}/v1/explain?{}",
            self.status(),
            self.query(node, version)
        ))
        .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Moves the clock by `seconds`, and waits for an evaluation at the
    /// new time (so it counts every poll made before); returns
    /// `/v1/rollouts` as it then is.
    async fn advance(&self, seconds: i64) -> Value {
        let now = self.clock.fetch_add(seconds, Ordering::SeqCst) + seconds;
        let at = commons::fleet_policy::rfc3339(now).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let rollouts = self.rollouts().await;
            if rollouts["at"] == at.as_str() {
                return rollouts;
            }
            assert!(
                Instant::now() < deadline,
                "no evaluation at {at}: {rollouts}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn rollouts(&self) -> Value {
        let (status, body) = get(&format!("http://{}/v1/rollouts", self.status())).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn stop(self) {
        self.policy_engine.stop().await.unwrap();
        self.graph_builder.stop().await.unwrap();
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A virtual Zincati node.
struct Node {
    uuid: String,
    platform: &'static str,
    group: Option<&'static str>,
    wariness: Option<f64>,
    /// Whether it follows the OCI graph.
    oci: bool,
}

/// `count` nodes numbered from `first`, on `platform`.
fn nodes(first: u32, count: u32, platform: &'static str) -> Vec<Node> {
    (first..first + count)
        .map(|i| Node {
            uuid: format!("{:032x}", 0x5a2c_3ef4_0000_u64 + u64::from(i)),
            platform,
            group: None,
            wariness: None,
            oci: true,
        })
        .collect()
}

/// The outcomes of `release` in the OCI graph of stable/x86_64.
fn release<'a>(rollouts: &'a Value, version: &str) -> &'a Value {
    rollouts["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["release"] == version
                && r["stream"] == "stable"
                && r["basearch"] == "x86_64"
                && r["scheme"] == "oci"
        })
        .unwrap_or_else(|| panic!("no outcomes of {version}: {rollouts}"))
}

fn counts(outcomes: &Value) -> [u64; 5] {
    ["offered", "arrived", "stuck", "rolled_back", "lost"].map(|outcome| {
        outcomes[outcome]
            .as_u64()
            .unwrap_or_else(|| panic!("{outcome}: {outcomes}"))
    })
}

fn series(release: &str, outcome: &str) -> String {
    format!(
        "fcos_cincinnati_pe_rollout_nodes{{basearch=\"x86_64\",outcome=\"{outcome}\",release=\"{release}\",scheme=\"oci\",stream=\"stable\"}}"
    )
}

fn write_policy(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[actix_web::test]
async fn each_outcome_is_counted_from_the_polls() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let dir = tempfile::tempdir().unwrap();
    // Guards that never halt, with short windows.
    let policy = write_policy(
        &dir,
        "[guard]\nmin_nodes = 1000\nstuck_after = \"2h\"\nlost_after = \"1h\"\n[groups.canary]\nwariness_max = 1.0\n",
    );
    let engine = Engine::start(
        &upstream,
        ROLLED_OUT,
        &format!("[policy]\npath = \"{}\"\n", policy.display()),
    )
    .await;
    let arrive = nodes(0, 5, "aws");
    let roll_back = nodes(10, 4, "metal");
    let mut stuck = nodes(20, 3, "metal");
    for node in &mut stuck {
        node.group = Some("canary");
    }
    let lose = nodes(30, 2, "metal");
    let everyone = || arrive.iter().chain(&roll_back).chain(&stuck).chain(&lose);

    for node in everyone() {
        assert_eq!(engine.poll(node, "32.1.0").await, ["32.2.0"]);
    }
    engine.advance(60).await;
    for node in arrive.iter().chain(&roll_back) {
        // A node on the newest release is offered nothing more.
        assert!(engine.poll(node, "32.2.0").await.is_empty());
    }
    engine.advance(60).await;
    for node in &roll_back {
        engine.poll(node, "32.1.0").await;
    }
    // Before the windows pass, nothing is stuck or lost yet.
    let early = engine.advance(60).await;
    assert_eq!(counts(release(&early, "32.2.0")), [14, 9, 0, 4, 0]);
    // Three hours of polls every ten minutes, except from the lost nodes.
    for _ in 0..18 {
        engine.advance(600).await;
        for node in &arrive {
            engine.poll(node, "32.2.0").await;
        }
        for node in roll_back.iter().chain(&stuck) {
            engine.poll(node, "32.1.0").await;
        }
    }
    let rollouts = engine.advance(1).await;
    let outcomes = release(&rollouts, "32.2.0");
    // Rolled back nodes arrived first: not stuck, though they poll from
    // 32.1.0 for hours.
    assert_eq!(counts(outcomes), [14, 9, 3, 4, 2], "{outcomes}");
    let p50 = outcomes["arrival_seconds"]["p50"].as_f64().unwrap();
    assert!((60.0..=75.0).contains(&p50), "{outcomes}");
    assert_eq!(counts(&outcomes["by_platform"]["aws"]), [5, 5, 0, 0, 0]);
    assert_eq!(counts(&outcomes["by_platform"]["metal"]), [9, 4, 3, 4, 2]);
    assert_eq!(counts(&outcomes["by_group"]["canary"]), [3, 0, 3, 0, 0]);
    assert_eq!(rollouts["tracked_nodes"], 14);
    assert_eq!(rollouts["halts"], serde_json::json!([]));
    assert!(outcomes["halted"].as_array().unwrap().is_empty());

    let status = engine.status();
    for (outcome, value) in [
        ("offered", 14.0),
        ("arrived", 9.0),
        ("stuck", 3.0),
        ("rolled_back", 4.0),
        ("lost", 2.0),
    ] {
        assert_eq!(
            metric(status, &series("32.2.0", outcome)).await,
            Some(value),
            "{outcome}"
        );
    }
    assert_eq!(
        metric(status, "fcos_cincinnati_pe_rollout_tracked_nodes").await,
        Some(14.0)
    );
    assert_eq!(
        metric(status, "fcos_cincinnati_pe_rollout_evicted_total").await,
        Some(0.0)
    );
    let p50 = r#"fcos_cincinnati_pe_rollout_arrival_seconds{basearch="x86_64",quantile="0.5",release="32.2.0",scheme="oci",stream="stable"}"#;
    assert!(metric(status, p50)
        .await
        .is_some_and(|v| (60.0..=75.0).contains(&v)));
    // Node identities are nowhere to be seen.
    let (_, text) = get(&format!("http://{status}/metrics")).await;
    let page = engine.rollouts().await.to_string();
    for node in everyone() {
        assert!(!text.contains(&node.uuid) && !page.contains(&node.uuid));
    }
    engine.stop().await;
}

/// Fleet control of these tests, at `MIDWAY` (Friday 2027-01-15 08:50
/// UTC), when the rollout of 32.2.0 is at 60%.
const POLICY: &str = r#"
[fleet]
deny = ["30.2.0"]

[groups.pinned]
max_version = { stable = "32.1.0" }

[groups.denied]
deny = ["32.2.0"]

[groups.paused]
paused = true

[groups.weekend]
windows = [ { days = ["sat", "sun"], start = "02:00", end = "06:00", timezone = "Europe/Berlin" } ]

[groups.frozen]
freezes = [ { from = "2027-01-01T00:00:00Z", to = "2027-02-01T00:00:00Z", reason = "January freeze" } ]

[groups.careful]
wariness_min = 0.9
"#;

/// The edge of `explained` into `to`.
fn edge<'a>(explained: &'a Value, to: &str) -> &'a Value {
    explained["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == to)
        .unwrap_or_else(|| panic!("no edge into {to}: {explained}"))
}

#[actix_web::test]
async fn explain_says_why_for_every_reason() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(&dir, POLICY);
    let engine = Engine::start(
        &upstream,
        MIDWAY,
        &format!("[policy]\npath = \"{}\"\n", policy.display()),
    )
    .await;
    let node = |group: Option<&'static str>, wariness: Option<f64>| Node {
        uuid: "5a2c3ef4a2c54b95a2cd4a1f5e7b8f10".to_string(),
        platform: "metal",
        group,
        wariness,
        oci: true,
    };

    // Rollout: 32.2.0 is at 60%, a node of wariness 0.9 waits for it.
    let explained = engine.explain(&node(None, Some(0.9)), "31.2.0").await;
    assert_eq!(explained["node"]["found"], true);
    assert_eq!(explained["wariness"]["source"], "given");
    let rollout = edge(&explained, "32.2.0");
    assert_eq!(rollout["offered"], false);
    assert_eq!(rollout["reason"], "rollout");
    assert!((rollout["rollout"]["progress"].as_f64().unwrap() - 0.6).abs() < 1e-9);
    // 20% at the start, 100% 100 minutes later: 0.9 is reached at 87.5
    // minutes.
    assert_eq!(rollout["rollout"]["reached_at"], "2027-01-15T09:27:30Z");
    assert_eq!(edge(&explained, "32.1.0")["offered"], true);
    assert_eq!(explained["update"]["version"], "32.1.0");
    assert!(explained["why_none"].is_null());

    // On 32.1.0, the node has only 32.2.0 ahead: no update until then.
    let waiting = engine.explain(&node(None, Some(0.9)), "32.1.0").await;
    assert!(waiting["update"].is_null());
    assert_eq!(
        waiting["why_none"],
        "the rollouts of its updates have not reached its wariness yet: the first does at 2027-01-15T09:27:30Z"
    );

    // The same node without a wariness: derived from its UUID.
    let derived = engine.explain(&node(None, None), "31.2.0").await;
    assert_eq!(derived["wariness"]["source"], "node_uuid");
    let wariness = derived["wariness"]["value"].as_f64().unwrap();
    assert_eq!(
        wariness,
        commons::rollout::wariness_from_uuid("5a2c3ef4a2c54b95a2cd4a1f5e7b8f10")
    );

    // Clamped by its group.
    let clamped = engine
        .explain(&node(Some("careful"), Some(0.1)), "31.2.0")
        .await;
    assert_eq!(clamped["wariness"]["value"], 0.9);
    assert_eq!(clamped["wariness"]["clamped_by"]["group"], "careful");
    assert_eq!(edge(&clamped, "32.2.0")["reason"], "rollout");

    // Dead-end.
    let deadend = engine.explain(&node(None, Some(0.1)), "31.1.0").await;
    assert_eq!(deadend["deadend"]["reason"], "https://example.org/deadend");
    assert!(deadend["update"].is_null());
    assert!(deadend["why_none"].as_str().unwrap().contains("dead-end"));

    // A barrier ahead, and [fleet]'s deny on it (in the OSTree graph: the
    // OCI one starts at 31.1.0).
    let ostree = Node {
        oci: false,
        ..node(None, Some(0.1))
    };
    let barrier = engine.explain(&ostree, "30.1.0").await;
    assert_eq!(barrier["barrier"]["version"], "30.2.0");
    let denied = edge(&barrier, "30.2.0");
    assert_eq!(denied["reason"], "deny");
    assert_eq!(denied["detail"]["rule"], "fleet.deny");
    assert_eq!(
        barrier["why_none"],
        "every update out of its release is withheld (deny)"
    );

    // A group's deny, pin, pause, window and freeze.
    let cases = [
        ("denied", "32.2.0", "deny", "groups.denied.deny"),
        (
            "pinned",
            "32.2.0",
            "max_version",
            "groups.pinned.max_version.stable",
        ),
        ("paused", "32.1.0", "paused", "groups.paused.paused"),
        ("weekend", "32.1.0", "window", "groups.weekend.windows"),
        ("frozen", "32.1.0", "freeze", "groups.frozen.freezes"),
    ];
    for (group, to, reason, rule) in cases {
        let explained = engine
            .explain(&node(Some(group), Some(0.1)), "31.2.0")
            .await;
        assert_eq!(explained["group"]["rules"], group, "{explained}");
        let withheld = edge(&explained, to);
        assert_eq!(withheld["offered"], false, "{group}: {explained}");
        assert_eq!(withheld["reason"], reason, "{group}: {explained}");
        assert_eq!(withheld["detail"]["rule"], rule, "{group}: {explained}");
    }
    let pinned = engine
        .explain(&node(Some("pinned"), Some(0.1)), "31.2.0")
        .await;
    assert_eq!(edge(&pinned, "32.2.0")["detail"]["max_version"], "32.1.0");
    assert_eq!(pinned["update"]["version"], "32.1.0");
    let weekend = engine
        .explain(&node(Some("weekend"), Some(0.1)), "31.2.0")
        .await;
    // Saturday 02:00 in Berlin.
    assert_eq!(
        edge(&weekend, "32.1.0")["detail"]["next_window"],
        "2027-01-16T01:00:00Z"
    );
    let frozen = engine
        .explain(&node(Some("frozen"), Some(0.1)), "31.2.0")
        .await;
    assert_eq!(edge(&frozen, "32.1.0")["detail"]["why"], "January freeze");

    // What /v1/graph serves is what /v1/explain says.
    for group in [None, Some("denied"), Some("pinned"), Some("paused")] {
        let node = node(group, Some(0.1));
        let offered: Vec<String> = engine.poll(&node, "31.2.0").await;
        let explained = engine.explain(&node, "31.2.0").await;
        let mut said: Vec<String> = explained["edges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["offered"] == true)
            .map(|e| e["to"].as_str().unwrap().to_string())
            .collect();
        said.sort();
        let mut offered = offered;
        offered.sort();
        assert_eq!(offered, said, "{group:?}");
    }

    // `fcos-cincinnati graph --explain` says the same from the files.
    for (group, wariness, version) in [
        (None, Some(0.9), "31.2.0"),
        (None, None, "31.2.0"),
        (Some("careful"), Some(0.1), "31.2.0"),
        (Some("pinned"), Some(0.1), "31.2.0"),
        (Some("weekend"), Some(0.1), "31.2.0"),
        (Some("frozen"), None, "32.1.0"),
        (None, Some(0.1), "31.1.0"),
        (None, None, "29.0.0"),
    ] {
        let node = node(group, wariness);
        let mut served = engine.explain(&node, version).await;
        // The files give no payload to match, and no platform.
        if served["node"]["found"] == true {
            served["node"]["payload_matches"] = Value::Null;
        }
        served["platform"] = "other".into();
        let mut command = Command::new(env!("CARGO_BIN_EXE_fcos-cincinnati"));
        command
            .args([
                "graph",
                "--basearch",
                "x86_64",
                "--oci",
                "--explain",
                version,
            ])
            .arg("--releases")
            .arg(fixture("stable", "releases.json"))
            .arg("--updates")
            .arg(fixture("stable", "updates.json"))
            .arg("--policy")
            .arg(&policy)
            .args(["--at", &MIDWAY.to_string()]);
        if let Some(group) = group {
            command.args(["--group", group]);
        }
        match wariness {
            Some(wariness) => command.args(["--rollout-wariness", &wariness.to_string()]),
            None => command.args(["--node-uuid", &node.uuid]),
        };
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(printed, served, "{group:?} {wariness:?} {version}");
    }

    // A release the graph does not have.
    let unknown = engine.explain(&node(None, None), "29.0.0").await;
    assert_eq!(unknown["node"]["found"], false);
    assert_eq!(unknown["why_none"], "its release was not found");
    // A bad request is refused as /v1/graph refuses it.
    let (status, body) = get(&format!(
        "http://{}/v1/explain?basearch=x86_64",
        engine.status()
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"kind\""), "{body}");
    engine.stop().await;
}

/// A guard that halts 32.2.0 once one node in five comes back.
const GUARD: &str = "[guard]\nmin_nodes = 5\nmax_rolled_back = 0.02\n";

/// Five nodes go from 32.1.0 to 32.2.0 and the first comes back.
async fn roll_back_one_in_five(engine: &Engine) {
    let fleet = nodes(100, 5, "metal");
    for node in &fleet {
        assert_eq!(engine.poll(node, "32.1.0").await, ["32.2.0"]);
    }
    engine.advance(60).await;
    for node in &fleet {
        engine.poll(node, "32.2.0").await;
    }
    engine.advance(60).await;
    engine.poll(&fleet[0], "32.1.0").await;
}

#[actix_web::test]
async fn a_crossed_guard_halts_the_release_until_it_is_resumed() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        &dir,
        &format!("{GUARD}[groups.canary]\nwariness_max = 1.0\n"),
    );
    let extra = format!(
        "state_dir = \"{}\"\n[policy]\npath = \"{}\"\n",
        dir.path().display(),
        policy.display()
    );
    let engine = Engine::start(&upstream, ROLLED_OUT, &extra).await;
    roll_back_one_in_five(&engine).await;
    let rollouts = engine.advance(1).await;
    let halts = rollouts["halts"].as_array().unwrap();
    assert_eq!(halts.len(), 1, "{rollouts}");
    let halt = &halts[0];
    assert_eq!(halt["release"], "32.2.0");
    assert_eq!(halt["key"], "max_rolled_back");
    assert_eq!(
        (halt["count"].as_u64(), halt["of"].as_u64()),
        (Some(1), Some(5))
    );
    assert_eq!(halt["value"], 0.2);
    assert!(halt["group"].is_null() && halt["platform"].is_null());
    assert_eq!(
        release(&rollouts, "32.2.0")["halted"][0]["key"],
        "max_rolled_back"
    );

    // A new node of 32.1.0, of any group, is offered nothing; a node on
    // 32.2.0 keeps its node.
    let newcomer = &nodes(200, 1, "aws")[0];
    assert!(engine.poll(newcomer, "32.1.0").await.is_empty());
    let mut canary = nodes(201, 1, "metal").pop().unwrap();
    canary.group = Some("canary");
    assert!(engine.poll(&canary, "32.1.0").await.is_empty());
    let explained = engine.explain(newcomer, "32.1.0").await;
    let withheld = edge(&explained, "32.2.0");
    assert_eq!(withheld["reason"], "halted");
    assert_eq!(withheld["detail"]["rule"], "guard.max_rolled_back");
    assert_eq!(withheld["detail"]["halt"]["count"], 1);
    let status = engine.status();
    let halted = "fcos_cincinnati_pe_rollout_halted{basearch=\"x86_64\",release=\"32.2.0\",scheme=\"oci\",stream=\"stable\"}";
    assert_eq!(metric(status, halted).await, Some(1.0));
    let withheld_total =
        "fcos_cincinnati_pe_policy_withheld_total{group=\"canary\",reason=\"halted\"}";
    assert!(metric(status, withheld_total)
        .await
        .is_some_and(|v| v >= 1.0));
    let (_, page) = get(&format!("http://{status}/v1/policy")).await;
    let page: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["halts"][0]["key"], "max_rolled_back", "{page}");
    // Kept in the state directory.
    let kept = std::fs::read_to_string(dir.path().join("halts.json")).unwrap();
    assert!(kept.contains("max_rolled_back"), "{kept}");

    // The operator resumes it: the next evaluation lifts the halt.
    let loads = "fcos_cincinnati_pe_policy_reloads_total{result=\"success\"}";
    let before = metric(status, loads).await.unwrap_or(0.0);
    std::fs::write(
        &policy,
        format!("{GUARD}resume = [\"32.2.0\"]\n[groups.canary]\nwariness_max = 1.0\n"),
    )
    .unwrap();
    wait_metric(status, loads, |v| v > before).await;
    let rollouts = engine.advance(1).await;
    assert_eq!(rollouts["halts"], serde_json::json!([]), "{rollouts}");
    assert_eq!(engine.poll(newcomer, "32.1.0").await, ["32.2.0"]);
    assert_eq!(metric(status, halted).await, None);
    let kept = std::fs::read_to_string(dir.path().join("halts.json")).unwrap();
    assert!(!kept.contains("max_rolled_back"), "{kept}");
    // Resumed, it is not halted again by the same outcomes.
    engine.advance(1).await;
    assert_eq!(engine.rollouts().await["halts"], serde_json::json!([]));
    engine.stop().await;
}

#[actix_web::test]
async fn a_platform_or_a_group_alone_is_halted_where_it_crossed() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let dir = tempfile::tempdir().unwrap();
    // Fleet-wide, 1 in 10 rolled back is under 0.15; on aws alone, 1 in 5
    // is over. The canary group's own guard is stricter.
    let policy = write_policy(
        &dir,
        "[guard]\nmin_nodes = 5\nmax_rolled_back = 0.15\nmax_lost = 1.0\nmax_stuck = 1.0\n[groups.canary.guard]\nmin_nodes = 2\nmax_lost = 0.3\nlost_after = \"10m\"\n",
    );
    let extra = format!("[policy]\npath = \"{}\"\n", policy.display());
    let engine = Engine::start(&upstream, ROLLED_OUT, &extra).await;
    let aws = nodes(300, 5, "aws");
    let metal = nodes(310, 5, "metal");
    let mut canaries = nodes(320, 2, "gcp");
    for node in &mut canaries {
        node.group = Some("canary");
    }
    for node in aws.iter().chain(&metal).chain(&canaries) {
        engine.poll(node, "32.1.0").await;
    }
    engine.advance(60).await;
    for node in aws.iter().chain(&metal) {
        engine.poll(node, "32.2.0").await;
    }
    engine.advance(60).await;
    engine.poll(&aws[0], "32.1.0").await;
    // The canaries go silent while the others poll.
    for _ in 0..3 {
        engine.advance(300).await;
        for node in aws.iter().skip(1).chain(&metal) {
            engine.poll(node, "32.2.0").await;
        }
    }
    let rollouts = engine.advance(1).await;
    let mut halts: Vec<(Value, Value, Value)> = rollouts["halts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["platform"].clone(), h["group"].clone(), h["key"].clone()))
        .collect();
    halts.sort_by_key(|h| h.0.to_string());
    assert_eq!(
        halts,
        [
            ("aws".into(), Value::Null, "max_rolled_back".into()),
            (Value::Null, "canary".into(), "max_lost".into()),
        ],
        "{rollouts}"
    );
    // An aws node and a canary are held back; a metal node is not.
    let fresh = |first, platform, group| {
        let mut node = nodes(first, 1, platform).pop().unwrap();
        node.group = group;
        node
    };
    assert!(engine
        .poll(&fresh(400, "aws", None), "32.1.0")
        .await
        .is_empty());
    assert!(engine
        .poll(&fresh(401, "metal", Some("canary")), "32.1.0")
        .await
        .is_empty());
    assert_eq!(
        engine.poll(&fresh(402, "metal", None), "32.1.0").await,
        ["32.2.0"]
    );
    let explained = engine
        .explain(&fresh(403, "metal", Some("canary")), "32.1.0")
        .await;
    assert_eq!(
        edge(&explained, "32.2.0")["detail"]["rule"],
        "groups.canary.guard.max_lost"
    );
    engine.stop().await;
}

/// The real binary: a halt is logged, survives a restart (kept in the
/// state directory), and is lifted by `resume` on a hot reload.
#[actix_web::test]
async fn a_halt_survives_a_restart_of_the_binary() {
    const BIN: &str = env!("CARGO_BIN_EXE_fcos-cincinnati");
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // 32.1.0 is rolled out in full; 32.2.0 starts in 2027 (20% at once):
    // a node of wariness 0.9 on 31.2.0 is offered 32.1.0.
    let guard = "[guard]\nmin_nodes = 5\nmax_rolled_back = 0.02\n";
    let policy = write_policy(&dir, guard);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[graph-builder.service]\naddress = \"127.0.0.1\"\nport = 0\n[graph-builder.status]\naddress = \"127.0.0.1\"\nport = 0\n[graph-builder.upstream]\n{}refresh_secs = 1\n[graph-builder.streams]\n{STREAMS}\n[policy-engine.service]\naddress = \"127.0.0.1\"\nport = 0\n[policy-engine.status]\naddress = \"127.0.0.1\"\nport = 0\n[policy-engine.upstream]\nstate_dir = \"{}\"\n[policy-engine.policy]\npath = \"{}\"\n[policy-engine.rollouts]\ninterval_secs = 1\n",
            upstream.upstream_toml(),
            state.display(),
            policy.display(),
        ),
    )
    .unwrap();
    let start = || async {
        let mut process =
            Process::spawn(Command::new(BIN).args(["-v", "serve", "-c"]).arg(&config));
        let pe = process.line_with("policy-engine listening").await;
        let service = logged_addr(&pe, "service_addr");
        let status = logged_addr(&pe, "status_addr");
        (process, service, status)
    };
    let (mut process, service, status) = start().await;
    let query = |uuid: u32, version: &str| {
        format!(
            "http://{service}/v1/graph?basearch=x86_64&stream=stable&oci=true&os_version={version}&node_uuid={uuid:032x}&platform=metal&rollout_wariness=0.9"
        )
    };
    let offered = |graph: &Value, version: &str| -> Vec<String> {
        edges(graph)
            .into_iter()
            .filter(|(from, _)| from == version)
            .map(|(_, to)| to)
            .collect()
    };
    wait_for_status(&query(1, "31.2.0"), 200).await;
    for uuid in 1..=5 {
        let graph = get_graph(&query(uuid, "31.2.0")).await;
        assert_eq!(offered(&graph, "31.2.0"), ["32.1.0"]);
    }
    for uuid in 1..=5 {
        get_graph(&query(uuid, "32.1.0")).await;
    }
    get_graph(&query(1, "31.2.0")).await;
    let line = process.line_with("rollout halted").await;
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("stable/x86_64/oci") && line.contains("max_rolled_back"),
        "{line}"
    );
    assert!(offered(&get_graph(&query(9, "31.2.0")).await, "31.2.0").is_empty());

    let stop = |mut process: Process| async move {
        let killed = Command::new("kill")
            .args(["-TERM", &process.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        process.line_with("stopped").await;
        process.child.wait().unwrap();
    };
    stop(process).await;

    // Restarted: the halt is in force before any poll.
    let (mut process, service, status_after) = start().await;
    let line = process.line_with("kept from before the restart").await;
    assert!(line.contains("max_rolled_back"), "{line}");
    let query = |uuid: u32, version: &str| {
        format!(
            "http://{service}/v1/graph?basearch=x86_64&stream=stable&oci=true&os_version={version}&node_uuid={uuid:032x}&platform=metal&rollout_wariness=0.9"
        )
    };
    wait_for_status(&query(9, "31.2.0"), 200).await;
    assert!(offered(&get_graph(&query(9, "31.2.0")).await, "31.2.0").is_empty());
    let (_, page) = get(&format!("http://{status_after}/v1/policy")).await;
    assert!(page.contains("max_rolled_back"), "{page}");
    assert_ne!(status, status_after);

    // Resumed by a hot reload of the policy.
    std::fs::write(&policy, format!("{guard}resume = [\"32.1.0\"]\n")).unwrap();
    process.line_with("rollout resumed").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while offered(&get_graph(&query(9, "31.2.0")).await, "31.2.0") != ["32.1.0"] {
        assert!(Instant::now() < deadline, "the halt was not lifted");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    stop(process).await;
}
