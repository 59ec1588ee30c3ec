//! End to end: the graph-builder shows the viewer the policy-engine's
//! rollout outcomes and halts (`[rollouts] url`, the policy-engine's
//! status-port `/v1/rollouts`) on its service port, keeps the last good
//! answer when the policy-engine goes away, and never shows where it
//! reads them from.
//!
//! A real graph-builder and policy-engine ([`Stack`]) on the stable
//! fixture, with a guard that halts a release when more than 2% of the
//! nodes that arrived on it roll back, judged from 3 nodes; a second
//! graph-builder on the same upstream reads the policy-engine's rollouts
//! (the policy-engine reads the first one: each needs the other's address
//! at start).

mod support;

use std::time::{Duration, Instant};
use support::*;

const STREAM: &str = "stable = [\"x86_64\"]";

/// A graph-builder on `upstream` reading the rollouts at `url` every
/// 100 ms.
fn reading(upstream: &Upstream, url: &str) -> service_kit::server::Running {
    let mut settings = graph_builder_settings(upstream, STREAM);
    settings.rollouts = Some(fcos_graph_builder::config::RolloutsSettings {
        url: url.parse().unwrap(),
        refresh: Duration::from_millis(100),
    });
    fcos_graph_builder::start(settings).unwrap()
}

/// The graph-builder's `/v1/rollouts`: status, body as text and as JSON.
async fn shown(graph_builder: &service_kit::server::Running) -> (u16, String, serde_json::Value) {
    let (status, body) = get(&format!(
        "http://{}/v1/rollouts",
        graph_builder.service_addr
    ))
    .await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, body, json)
}

/// Polls the graph-builder's `/v1/rollouts` until `accept` holds, for at
/// most 15 seconds.
async fn wait_shown(
    graph_builder: &service_kit::server::Running,
    what: &str,
    accept: impl Fn(u16, &serde_json::Value) -> bool,
) -> (String, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body, json) = shown(graph_builder).await;
        if accept(status, &json) {
            return (body, json);
        }
        assert!(Instant::now() < deadline, "never {what}: {status} {body}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn the_graph_builder_shows_the_policy_engines_rollouts() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[guard]\nmin_nodes = 3\nmax_rolled_back = 0.02\n").unwrap();
    let stack = Stack::start_with(
        &upstream,
        STREAM,
        MIDWAY,
        &format!(
            "[policy]\npath = \"{}\"\n[rollouts]\ninterval_secs = 1\n",
            policy.display()
        ),
    );
    stack.wait_ready().await;
    let pe_status = stack.policy_engine.status_addr;
    let url = format!("http://{pe_status}/v1/rollouts");
    let viewer = reading(&upstream, &url);
    wait_ready(&viewer).await;

    // Without [rollouts]: nothing to show.
    let (status, _, json) = shown(&stack.graph_builder).await;
    assert_eq!((status, json), (200, serde_json::json!({"rollouts": null})));

    // Three nodes on 30.2.0 are offered 31.2.0 and arrive (at a wariness
    // that hides the rollout of 32.2.0 from them); one comes back.
    let (_, before) = get(&stack.pe("basearch=x86_64&stream=stable&os_version=30.2.0")).await;
    assert!(before.contains("c31-2-x86"), "{before}");
    roll_back(
        stack.policy_engine.service_addr,
        "stable",
        false,
        ("30.2.0", "31.2.0"),
        ("", "aws", 0.9),
        (1, 3),
        1,
    )
    .await;

    // The graph-builder shows what the policy-engine serves: the outcomes
    // of 31.2.0 and its halt, for every node.
    let (body, json) = wait_shown(&viewer, "the halt", |status, json| {
        status == 200
            && json["rollouts"]["halts"]
                .as_array()
                .is_some_and(|h| !h.is_empty())
    })
    .await;
    let halt = &json["rollouts"]["halts"][0];
    assert_eq!(
        (
            &halt["release"],
            &halt["group"],
            &halt["platform"],
            &halt["key"]
        ),
        (
            &serde_json::json!("31.2.0"),
            &serde_json::Value::Null,
            &serde_json::Value::Null,
            &serde_json::json!("max_rolled_back")
        ),
        "{body}"
    );
    assert_eq!(
        (halt["count"].as_u64(), halt["of"].as_u64()),
        (Some(1), Some(3))
    );
    let release = json["rollouts"]["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["release"] == "31.2.0")
        .unwrap_or_else(|| panic!("{body}"));
    let counts =
        ["offered", "arrived", "rolled_back", "stuck", "lost"].map(|k| release[k].as_u64());
    assert_eq!(counts, [3, 3, 1, 0, 0].map(Some), "{body}");
    assert_eq!(release["by_platform"]["aws"]["offered"], 3);
    // The policy-engine withholds the update into it.
    let (_, after) = get(&stack.pe("basearch=x86_64&stream=stable&os_version=30.2.0")).await;
    assert!(!edges(&serde_json::from_str(&after).unwrap())
        .contains(&("30.2.0".to_string(), "31.2.0".to_string())));
    // The same document as the policy-engine's (its clock is pinned: it
    // does not change between evaluations any more).
    let (status, served) = get(&url).await;
    assert_eq!(status, 200);
    let served: serde_json::Value = serde_json::from_str(&served).unwrap();
    let (_, json) = wait_shown(&viewer, "the policy-engine's document", |_, json| {
        json["rollouts"] == served
    })
    .await;
    assert_eq!(json["failing_since"], serde_json::Value::Null);
    assert!(json["read_at"].is_string(), "{json}");
    assert!(
        json["age_seconds"].as_i64().is_some_and(|age| age <= 2),
        "{json}"
    );

    // The policy-engine goes away: the last good answer stays, with its
    // age and since when the reads fail.
    let Stack {
        graph_builder,
        policy_engine,
    } = stack;
    policy_engine.stop().await.unwrap();
    let (body, json) = wait_shown(&viewer, "failing", |status, json| {
        status == 200 && json["failing_since"].is_string()
    })
    .await;
    assert_eq!(json["rollouts"], served);
    assert_eq!(json["failing_kind"], "connect");
    assert!(
        json["read_at"].is_string() && json["age_seconds"].is_i64(),
        "{body}"
    );
    for secret in [
        pe_status.to_string(),
        pe_status.port().to_string(),
        "refused".into(),
    ] {
        assert!(!body.contains(&secret), "{secret} in {body}");
    }
    let errors = wait_metric(
        viewer.status_addr,
        r#"fcos_cincinnati_gb_rollouts_read_errors_total{kind="connect"}"#,
        |v| v >= 1.0,
    )
    .await;
    assert!(errors >= 1.0);
    let read = metric(
        viewer.status_addr,
        "fcos_cincinnati_gb_rollouts_last_read_timestamp_seconds",
    )
    .await
    .unwrap();
    assert!(read > 0.0);

    // One that never read it: a 503 with a kind, without the address.
    let never = reading(&upstream, &url);
    wait_ready(&never).await;
    let (body, _) = wait_shown(&never, "a failed read", |status, json| {
        status == 503 && json["value"].as_str().is_some_and(|v| v.contains("since"))
    })
    .await;
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["kind"], "rollouts_unavailable");
    for secret in [pe_status.to_string(), pe_status.port().to_string()] {
        assert!(!body.contains(&secret), "{secret} in {body}");
    }

    // An answer that is not the promised document is not shown, and is
    // counted.
    upstream.set(
        "/bad/v1/rollouts",
        Canned::Body(br#"{"releases": [], "halts": [{"stream": "<b>x</b>"}]}"#.to_vec()),
    );
    let invalid = reading(
        &upstream,
        &format!("http://{}/bad/v1/rollouts", upstream.addr),
    );
    wait_ready(&invalid).await;
    wait_metric(
        invalid.status_addr,
        r#"fcos_cincinnati_gb_rollouts_read_errors_total{kind="invalid_document"}"#,
        |v| v >= 1.0,
    )
    .await;
    let (status, body, _) = shown(&invalid).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains("<b>") && !body.contains("/bad/"), "{body}");

    for running in [graph_builder, viewer, never, invalid] {
        running.stop().await.unwrap();
    }
    upstream.stop().await;
}
