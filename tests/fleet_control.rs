//! End to end: fleet control. A policy file gives each Zincati group its
//! rules; every rule is checked on the graph a node gets, as Zincati asks
//! for it, against the graph it gets without the rule. The node is always
//! in its graph; only edges go.

mod support;

use std::time::{Duration, Instant};
use support::*;

const STREAMS: &str = "stable = [\"x86_64\", \"aarch64\"]";

/// The policy of these tests. At `MIDWAY` (Friday 2027-01-15 08:50 UTC,
/// 09:50 in Berlin) the rollout of 32.2.0 is at 60%.
const POLICY: &str = r#"
[groups.pinned]
max_version = { stable = "32.1.0" }

[groups.denied]
deny = ["32.1.0"]

[groups.paused]
paused = true

[groups.weekend]
windows = [ { days = ["sat", "sun"], start = "02:00", end = "06:00", timezone = "Europe/Berlin" } ]

[groups.friday-morning]
windows = [ { days = ["fri"], start = "09:00", end = "10:00", timezone = "Europe/Berlin" } ]

[groups.frozen]
freezes = [ { from = "2027-01-01T00:00:00Z", to = "2027-02-01T00:00:00Z", reason = "January freeze" } ]

[groups.canary]
wariness_max = 0.0

[groups.production]
wariness_min = 0.8

[groups.default]
deny = ["32.2.0"]
"#;

/// Zincati's request for the OCI graph from a node on 31.2.0.
fn zincati(group: &str, wariness: f64) -> String {
    format!(
        "basearch=x86_64&stream=stable&oci=true&os_version=31.2.0&os_checksum=quay.io%2Ffedora%2Ffedora-coreos%40sha256%3Ao31-2-x86&group={group}&node_uuid=5a2c3ef4a2c54b95a2cd4a1f5e7b8f10&platform=metal&rollout_wariness={wariness:.6}"
    )
}

struct Fleet {
    stack: Stack,
    /// The policy file in force.
    policy: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _upstream: Upstream,
}

async fn fleet() -> Fleet {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, POLICY).unwrap();
    let extra = format!("[policy]\npath = \"{}\"\n", path.display());
    let stack = Stack::start_with(&upstream, STREAMS, MIDWAY, &extra);
    stack.wait_ready().await;
    Fleet {
        stack,
        policy: path,
        _dir: dir,
        _upstream: upstream,
    }
}

/// The node of 31.2.0 is in the graph, and the edges are `expected`.
async fn expect_edges(fleet: &Fleet, group: &str, wariness: f64, expected: &[(&str, &str)]) {
    let graph = get_graph(&fleet.stack.pe(&zincati(group, wariness))).await;
    assert!(
        versions(&graph).contains(&"31.2.0".to_string()),
        "{group}: the node is gone"
    );
    assert_eq!(
        versions(&graph),
        ["31.1.0", "31.2.0", "32.1.0", "32.2.0"],
        "{group}"
    );
    assert_eq!(edges(&graph), pairs(expected), "{group}");
}

const EVERYTHING: [(&str, &str); 3] = [
    ("31.2.0", "32.1.0"),
    ("31.2.0", "32.2.0"),
    ("32.1.0", "32.2.0"),
];

#[actix_web::test]
async fn each_rule_removes_exactly_its_edges() {
    let fleet = fleet().await;
    // A group with a table of its own and no rule about this: everything.
    expect_edges(&fleet, "friday-morning", 0.1, &EVERYTHING).await;
    // Pinned at 32.1.0: no edge into 32.2.0.
    expect_edges(&fleet, "pinned", 0.1, &[("31.2.0", "32.1.0")]).await;
    // 32.1.0 denied: no edge into it (the edge out of it stays).
    expect_edges(
        &fleet,
        "denied",
        0.1,
        &[("31.2.0", "32.2.0"), ("32.1.0", "32.2.0")],
    )
    .await;
    // No updates at all: paused, outside the windows, inside a freeze.
    expect_edges(&fleet, "paused", 0.1, &[]).await;
    expect_edges(&fleet, "weekend", 0.1, &[]).await;
    expect_edges(&fleet, "frozen", 0.1, &[]).await;
    // Wariness clamped: canaries see the rollout whatever they send,
    // production never before 80%.
    expect_edges(&fleet, "canary", 0.9, &EVERYTHING).await;
    expect_edges(&fleet, "production", 0.1, &[("31.2.0", "32.1.0")]).await;
    // Without the clamp, wariness 0.9 hides the rollout at 60%.
    expect_edges(&fleet, "friday-morning", 0.9, &[("31.2.0", "32.1.0")]).await;
    // A group without a table gets [groups.default]: 32.2.0 denied.
    expect_edges(&fleet, "somebody-else", 0.1, &[("31.2.0", "32.1.0")]).await;
    // The unknown-payload counter saw only known payloads.
    let unknown =
        r#"fcos_cincinnati_pe_unknown_payload_requests_total{scheme="oci",stream="stable"}"#;
    assert_eq!(
        metric(fleet.stack.policy_engine.status_addr, unknown)
            .await
            .unwrap_or(0.0),
        0.0
    );

    // Every withheld update is counted by group and reason.
    let status = fleet.stack.policy_engine.status_addr;
    for (group, reason) in [
        ("pinned", "max_version"),
        ("paused", "paused"),
        ("weekend", "window"),
        ("frozen", "freeze"),
        ("other", "deny"),
    ] {
        let series = format!(
            r#"fcos_cincinnati_pe_policy_withheld_total{{group="{group}",reason="{reason}"}}"#
        );
        assert_eq!(metric(status, &series).await, Some(1.0), "{series}");
    }
    // Nothing withheld where the update Zincati takes stays (32.1.0 is
    // denied, but 32.2.0 is the one it takes).
    let series = r#"fcos_cincinnati_pe_policy_withheld_total{group="denied",reason="deny"}"#;
    assert_eq!(metric(status, series).await, Some(0.0));

    // The policy in force, with why each group is closed now.
    let (code, body) = get(&format!("http://{status}/v1/policy")).await;
    assert_eq!(code, 200);
    let policy: serde_json::Value = serde_json::from_str(&body).unwrap();
    let groups = &policy["policy"]["groups"];
    assert_eq!(groups["weekend"]["closed"], "window");
    assert_eq!(groups["weekend"]["next_window"], "2027-01-16T01:00:00Z");
    assert_eq!(groups["frozen"]["closed"], "freeze");
    assert_eq!(groups["frozen"]["freeze_reason"], "January freeze");
    assert_eq!(groups["friday-morning"]["closed"], serde_json::Value::Null);
    let hash = policy["policy"]["hash"].as_str().unwrap();
    let info = format!(r#"fcos_cincinnati_pe_policy_info{{hash="{hash}"}}"#);
    assert_eq!(metric(status, &info).await, Some(1.0));
    fleet.stack.stop().await;
}

/// A release pulled in a hurry: a `[fleet]` table added to the file in
/// force withholds it from every group, with a table of its own or
/// without, as soon as the policy-engine notices the change.
#[actix_web::test]
async fn a_release_denied_to_the_fleet_is_withheld_from_every_group() {
    let fleet = fleet().await;
    expect_edges(&fleet, "canary", 0.9, &EVERYTHING).await;
    let status = fleet.stack.policy_engine.status_addr;
    let policy = || async {
        let (code, body) = get(&format!("http://{status}/v1/policy")).await;
        assert_eq!(code, 200);
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["policy"].clone()
    };
    let before = policy().await["hash"].clone();
    std::fs::write(
        &fleet.policy,
        format!("[fleet]\ndeny = [\"32.2.0\"]\n{POLICY}"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pulled = loop {
        let now = policy().await;
        if now["hash"] != before {
            break now;
        }
        assert!(Instant::now() < deadline, "the change was not noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(pulled["fleet"]["deny"], serde_json::json!(["32.2.0"]));
    assert_eq!(
        pulled["groups"]["canary"]["deny"],
        serde_json::json!(["32.2.0"])
    );
    // Groups with a table (each offered an edge into 32.2.0 before): none
    // any more; the rest of each group's rules still apply.
    expect_edges(&fleet, "canary", 0.9, &[("31.2.0", "32.1.0")]).await;
    expect_edges(&fleet, "friday-morning", 0.1, &[("31.2.0", "32.1.0")]).await;
    expect_edges(&fleet, "denied", 0.1, &[]).await;
    let series = r#"fcos_cincinnati_pe_policy_withheld_total{group="canary",reason="deny"}"#;
    assert_eq!(metric(status, series).await, Some(1.0));

    // Without [groups.default], a group without a table gets [fleet]'s
    // rules alone.
    std::fs::write(
        &fleet.policy,
        "[fleet]\ndeny = [\"32.2.0\"]\n[groups.canary]\nwariness_max = 0.0\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while policy().await["groups"].get("default").is_some() {
        assert!(Instant::now() < deadline, "the change was not noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    expect_edges(&fleet, "somebody-else", 0.1, &[("31.2.0", "32.1.0")]).await;
    let series = r#"fcos_cincinnati_pe_policy_withheld_total{group="other",reason="deny"}"#;
    assert_eq!(metric(status, series).await, Some(1.0));
    fleet.stack.stop().await;
}

#[actix_web::test]
async fn metric_labels_stay_bounded() {
    let fleet = fleet().await;
    for i in 0..300 {
        let query = zincati(&format!("made-up-{i}"), 0.5)
            .replace("platform=metal", &format!("platform=cloud{i}"));
        let uuid = format!("{i:032x}");
        let query = query.replace("5a2c3ef4a2c54b95a2cd4a1f5e7b8f10", &uuid);
        assert_eq!(get(&fleet.stack.pe(&query)).await.0, 200);
    }
    for (group, platform) in [("canary", "aws"), ("pinned", "metal")] {
        let query = zincati(group, 0.5).replace("platform=metal", &format!("platform={platform}"));
        assert_eq!(get(&fleet.stack.pe(&query)).await.0, 200);
    }
    let (_, text) = get(&format!(
        "http://{}/metrics",
        fleet.stack.policy_engine.status_addr
    ))
    .await;
    let census: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("fcos_cincinnati_pe_active_nodes_by_group{"))
        .collect();
    assert_eq!(census.len(), 3, "{census:#?}");
    let other = census
        .iter()
        .find(|l| l.contains(r#"group="other""#) && l.contains(r#"platform="other""#))
        .unwrap();
    let estimate: f64 = other.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((290.0..=310.0).contains(&estimate), "{other}");
    for line in text.lines().filter(|l| l.contains("group=\"")) {
        assert!(!line.contains("made-up"), "{line}");
    }
    fleet.stack.stop().await;
}

#[actix_web::test]
async fn a_mirror_replaces_the_repository_and_keeps_the_digest() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let mut settings = graph_builder_settings(&upstream, STREAMS);
    for stream in &mut settings.streams {
        stream.oci_repository = Some("registry.example.com/fedora-coreos".to_string());
    }
    let gb = fcos_graph_builder::start(settings).unwrap();
    wait_ready(&gb).await;
    let graph_url = format!("http://{}/v1/graph", gb.service_addr);
    let pe = fcos_policy_engine::start_with_clock(
        policy_engine_settings(&graph_url),
        std::sync::Arc::new(|| MIDWAY),
    )
    .unwrap();
    wait_following(&pe, &gb).await;
    let raw = get_graph(&format!(
        "{graph_url}?basearch=x86_64&stream=stable&oci=true"
    ))
    .await;
    for node in raw["nodes"].as_array().unwrap() {
        let payload = node["payload"].as_str().unwrap();
        assert!(
            payload.starts_with("registry.example.com/fedora-coreos@sha256:"),
            "{payload}"
        );
    }
    // A node booted from the mirror finds itself by its pullspec.
    let query = zincati("default", 0.1).replace(
        "quay.io%2Ffedora%2Ffedora-coreos",
        "registry.example.com%2Ffedora-coreos",
    );
    let graph = get_graph(&format!("http://{}/v1/graph?{query}", pe.service_addr)).await;
    assert!(edges(&graph).contains(&("31.2.0".to_string(), "32.2.0".to_string())));
    let unknown =
        r#"fcos_cincinnati_pe_unknown_payload_requests_total{scheme="oci",stream="stable"}"#;
    assert_eq!(metric(pe.status_addr, unknown).await.unwrap_or(0.0), 0.0);
    // The OSTree graph is untouched.
    let ostree = get_graph(&format!("{graph_url}?basearch=x86_64&stream=stable")).await;
    assert!(!ostree.to_string().contains("registry.example.com"));
    // The preview with the same mirror gives the graph-builder's bytes.
    let (_, served) = get(&format!(
        "{graph_url}?basearch=x86_64&stream=stable&oci=true"
    ))
    .await;
    let preview = |repository: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fcos-cincinnati"))
            .arg("graph")
            .arg("--releases")
            .arg(fixture("stable", "releases.json"))
            .arg("--updates")
            .arg(fixture("stable", "updates.json"))
            .args([
                "--basearch",
                "x86_64",
                "--oci",
                "--oci-repository",
                repository,
            ])
            .output()
            .unwrap()
    };
    let output = preview("registry.example.com/fedora-coreos");
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap().trim_end(), served);
    let output = preview("https://registry.example.com/fedora-coreos");
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("--oci-repository") && stderr.contains("no scheme"),
        "{stderr}"
    );
    pe.stop().await.unwrap();
    gb.stop().await.unwrap();
}

#[actix_web::test]
async fn the_graph_builder_shows_the_policy_to_the_viewer() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, POLICY).unwrap();
    let mut settings = graph_builder_settings(&upstream, STREAMS);
    settings.policy_path = Some(path.clone());
    let gb = fcos_graph_builder::start(settings).unwrap();
    let url = format!("http://{}/v1/policy", gb.service_addr);
    let (status, body) = get(&url).await;
    assert_eq!(status, 200, "{body}");
    let policy: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        policy["policy"]["groups"]["pinned"]["max_version"]["stable"],
        "32.1.0"
    );
    assert_eq!(policy["policy"]["groups"]["paused"]["closed"], "paused");
    assert_eq!(policy["refused_since"], serde_json::Value::Null);
    // A broken file is refused: the last good policy stays, with since
    // when and why (the key and line) the file is refused, but not its
    // path on this public port.
    std::fs::write(&path, "[groups.x]\nwariness_max = 7\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = get(&url).await;
        assert_eq!(status, 200, "{body}");
        if !body.contains("\"refused_since\":null") {
            break body;
        }
        assert!(Instant::now() < deadline, "never refused");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(shown["refused_since"].is_string(), "{body}");
    assert_eq!(shown["policy"]["groups"]["paused"]["closed"], "paused");
    let reason = shown["refused_reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("line 2: groups.x.wariness_max:"),
        "{body}"
    );
    let dir_name = dir.path().to_str().unwrap();
    for hidden in ["policy.toml", dir_name] {
        assert!(!body.contains(hidden), "{hidden} in {body}");
    }
    gb.stop().await.unwrap();
    // A file never loaded: a 503 that says since when and why, without the
    // path.
    let mut settings = graph_builder_settings(&upstream, STREAMS);
    settings.policy_path = Some(path.clone());
    let gb = fcos_graph_builder::start(settings).unwrap();
    let (status, body) = get(&format!("http://{}/v1/policy", gb.service_addr)).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("policy_unavailable")
            && body.contains("the policy file was refused at ")
            && body.contains("line 2: groups.x.wariness_max"),
        "{body}"
    );
    for hidden in ["policy.toml", dir_name] {
        assert!(!body.contains(hidden), "{hidden} in {body}");
    }
    gb.stop().await.unwrap();
}

/// The real binary: reloads on a file change and on SIGHUP, refuses an
/// invalid file keeping the last good policy, and its preview equals what
/// it serves.
#[actix_web::test]
async fn the_policy_reloads_and_the_preview_equals_the_served_graph() {
    const BIN: &str = env!("CARGO_BIN_EXE_fcos-cincinnati");
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let ServedWithPolicy {
        process,
        pe: service,
        pe_status: status,
        policy,
        dir: _dir,
        ..
    } = serve_with_policy(
        &upstream,
        "stable = [\"x86_64\"]",
        "[groups.g]\npaused = true\n",
        "",
    )
    .await;
    let url = |group: &str| format!("http://{service}/v1/graph?{}", zincati(group, 0.1));
    wait_for_status(&url("g"), 200).await;
    let edges_of = |group: &'static str| {
        let url = url(group);
        async move { edges(&get_graph(&url).await) }
    };
    assert!(edges_of("g").await.is_empty());

    // The file changes: followed within a few seconds.
    std::fs::write(&policy, "[groups.g]\ndeny = [\"32.2.0\"]\n").unwrap();
    let reloads = r#"fcos_cincinnati_pe_policy_reloads_total{result="success"}"#;
    wait_metric(status, reloads, |v| v == 1.0).await;
    assert_eq!(edges_of("g").await, pairs(&[("31.2.0", "32.1.0")]));
    let rejected = "fcos_cincinnati_pe_policy_file_rejected";
    assert_eq!(metric(status, rejected).await, Some(0.0));

    // The preview of that group, at the time of the request, equals the
    // served bytes.
    let at = commons::unix_now().to_string();
    let preview = std::process::Command::new(BIN)
        .arg("graph")
        .arg("--releases")
        .arg(fixture("stable", "releases.json"))
        .arg("--updates")
        .arg(fixture("stable", "updates.json"))
        .args(["--basearch", "x86_64", "--oci", "--rollout-wariness", "0.1"])
        .arg("--policy")
        .arg(&policy)
        .args(["--group", "g", "--at", &at])
        .output()
        .unwrap();
    assert!(
        preview.status.success(),
        "{}",
        String::from_utf8_lossy(&preview.stderr)
    );
    let served = get(&url("g")).await.1;
    assert_eq!(String::from_utf8_lossy(&preview.stdout).trim_end(), served);

    // An invalid file is refused; the last good policy stays.
    std::fs::write(
        &policy,
        "[groups.g]\nwariness_min = 0.9\nwariness_max = 0.1\n",
    )
    .unwrap();
    let failures = r#"fcos_cincinnati_pe_policy_reloads_total{result="failure"}"#;
    wait_metric(status, failures, |v| v == 1.0).await;
    assert_eq!(edges_of("g").await, pairs(&[("31.2.0", "32.1.0")]));
    // The refusal is a state for alerts, not only a count.
    assert_eq!(metric(status, rejected).await, Some(1.0));

    // SIGHUP reloads at once (the new file is written with the same size
    // and mtime resolution cannot be relied on; SIGHUP does not need it).
    std::fs::write(&policy, "[groups.g]\npaused = true\n").unwrap();
    let status_code = std::process::Command::new("kill")
        .args(["-HUP", &process.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status_code.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !edges_of("g").await.is_empty() {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(status, reloads).await.unwrap() >= 2.0);
    assert_eq!(metric(status, rejected).await, Some(0.0));
}

/// Pins of the max_version test, on the `pins` fixture: 40.2.0 is not
/// built for aarch64, 40.3.0 has no OCI image, 40.9.9 is published
/// nowhere.
const PINS: &str = r#"
[groups.before-arm-gap]
max_version = { stable = "40.2.0" }

[groups.before-oci-gap]
max_version = { stable = "40.3.0" }

[groups.unpublished]
max_version = { stable = "40.9.9" }

[groups.newest]
max_version = { stable = "40.4.0" }
"#;

/// Zincati's query from a node on 40.1.0 of `basearch`, OSTree or OCI.
fn zincati_on_40_1(basearch: &str, oci: bool, group: &str) -> String {
    let arch = if basearch == "x86_64" { "x86" } else { "arm" };
    let scheme = if oci {
        format!("oci=true&os_checksum=quay.io%2Ffedora%2Ffedora-coreos%40sha256%3Ao40-1-{arch}")
    } else {
        format!("os_checksum=c40-1-{arch}")
    };
    format!(
        "basearch={basearch}&stream=stable&{scheme}&os_version=40.1.0&group={group}&node_uuid=5a2c3ef4a2c54b95a2cd4a1f5e7b8f10&platform=metal"
    )
}

/// What Zincati on `from` takes: the target of its edges with the highest
/// age index.
fn offered(graph: &serde_json::Value, from: &str) -> Option<String> {
    let age = |node: &serde_json::Value| -> u64 {
        node["metadata"]["org.fedoraproject.coreos.releases.age_index"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let nodes = graph["nodes"].as_array().unwrap();
    let own = nodes.iter().position(|n| n["version"] == from)?;
    graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[0].as_u64() == Some(own as u64))
        .map(|e| &nodes[e[1].as_u64().unwrap() as usize])
        .max_by_key(|n| age(n))
        .map(|n| n["version"].as_str().unwrap().to_string())
}

/// A pin fails closed, with the real binary: `max_version` compares
/// releases by their place in the stream's release index even when the
/// pinned release is not in the node's graph (not built for its
/// architecture, or without an OCI image), and a pin to a release
/// published nowhere holds the group where it is. The preview gives the
/// same bytes.
#[actix_web::test]
async fn a_pin_missing_from_the_nodes_graph_still_holds() {
    const BIN: &str = env!("CARGO_BIN_EXE_fcos-cincinnati");
    let upstream = Upstream::start();
    upstream.serve_fixture_as("pins", "stable");
    let ServedWithPolicy {
        process: _process,
        pe: service,
        pe_status: status,
        policy,
        dir: _dir,
        ..
    } = serve_with_policy(&upstream, STREAMS, PINS, "").await;
    let url = |basearch: &str, oci: bool, group: &str| {
        format!(
            "http://{service}/v1/graph?{}",
            zincati_on_40_1(basearch, oci, group)
        )
    };
    // Every scope is served before the checks (a pin is looked up in all
    // of them).
    for (basearch, oci) in [
        ("x86_64", false),
        ("x86_64", true),
        ("aarch64", false),
        ("aarch64", true),
    ] {
        wait_for_status(&url(basearch, oci, "newest"), 200).await;
    }
    for (basearch, oci, group, expected) in [
        // In the node's own graph, as before.
        ("x86_64", false, "newest", Some("40.4.0")),
        ("x86_64", false, "before-arm-gap", Some("40.2.0")),
        ("x86_64", false, "before-oci-gap", Some("40.3.0")),
        // 40.2.0 is not built for aarch64: 40.3.0 and 40.4.0 are newer.
        ("aarch64", false, "before-arm-gap", None),
        ("aarch64", true, "before-arm-gap", None),
        // 40.3.0 has no OCI image: 40.2.0 is older, 40.4.0 newer.
        ("x86_64", true, "before-oci-gap", Some("40.2.0")),
        ("aarch64", true, "before-oci-gap", None),
        ("aarch64", false, "before-oci-gap", Some("40.3.0")),
        // Published nowhere: held where it is.
        ("x86_64", false, "unpublished", None),
        ("x86_64", true, "unpublished", None),
        ("aarch64", false, "unpublished", None),
    ] {
        let graph = get_graph(&url(basearch, oci, group)).await;
        assert!(versions(&graph).contains(&"40.1.0".to_string()));
        assert_eq!(
            offered(&graph, "40.1.0").as_deref(),
            expected,
            "{group} on {basearch}, oci {oci}: {:?}",
            edges(&graph)
        );
        if expected.is_none() {
            assert_eq!(
                edges(&graph),
                Vec::new(),
                "{group} on {basearch}, oci {oci}"
            );
        }
    }
    for group in ["before-arm-gap", "unpublished"] {
        let series = format!(
            r#"fcos_cincinnati_pe_policy_withheld_total{{group="{group}",reason="max_version"}}"#
        );
        assert!(metric(status, &series).await.unwrap() >= 2.0, "{series}");
    }
    // The warning says the unpublished pin holds the group (the page is
    // rendered again, within the policy check's 2 s, once the replica's
    // versions are known).
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    let warnings = loop {
        let (_, body) = get(&format!("http://{status}/v1/policy")).await;
        let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
        let warnings = shown["policy"]["warnings"].to_string();
        if !warnings.contains("before-") || std::time::Instant::now() > deadline {
            break warnings;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        warnings.contains("groups.unpublished.max_version.stable: '40.9.9'")
            && warnings.contains("held where they are"),
        "{warnings}"
    );
    assert!(!warnings.contains("before-"), "{warnings}");

    // The preview of each case equals the served bytes.
    for (basearch, oci, group) in [
        ("aarch64", false, "before-arm-gap"),
        ("x86_64", true, "before-oci-gap"),
        ("x86_64", false, "unpublished"),
    ] {
        let mut command = std::process::Command::new(BIN);
        command
            .arg("graph")
            .arg("--releases")
            .arg(fixture("pins", "releases.json"))
            .arg("--updates")
            .arg(fixture("pins", "updates.json"))
            .args(["--basearch", basearch])
            .arg("--policy")
            .arg(&policy)
            .args(["--group", group]);
        if oci {
            command.arg("--oci");
        }
        let preview = command.output().unwrap();
        assert!(
            preview.status.success(),
            "{}",
            String::from_utf8_lossy(&preview.stderr)
        );
        let served = get(&url(basearch, oci, group)).await.1;
        assert_eq!(
            String::from_utf8_lossy(&preview.stdout).trim_end(),
            served,
            "{group} on {basearch}, oci {oci}"
        );
    }
}
