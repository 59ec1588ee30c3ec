//! End to end: the policy-engine's replica of the graph-builder through
//! faults. It holds every scope the graph-builder serves (asked for or
//! not), keeps serving them while the graph-builder is down or broken,
//! serves from its state directory after a restart, refuses a damaged state
//! file, and follows a change when the graph-builder publishes it, not when
//! its held poll would end.

mod support;

use commons::graph::{Graph, Scheme};
use commons::metadata::{ReleaseIndex, UpdatesMetadata};
use service_kit::web::GraphBody;
use std::time::{Duration, Instant};
use support::*;

const STREAMS: &str = "stable = [\"x86_64\", \"aarch64\"]";

/// Every scope of [`STREAMS`], as `/v1/graph` queries.
const SCOPES: [&str; 4] = [
    "basearch=x86_64&stream=stable",
    "basearch=x86_64&stream=stable&oci=true",
    "basearch=aarch64&stream=stable",
    "basearch=aarch64&stream=stable&oci=true",
];

fn pe_url(pe: &service_kit::server::Running, query: &str) -> String {
    format!("http://{}/v1/graph?{query}", pe.service_addr)
}

/// The bodies the policy-engine serves for every scope.
async fn served(pe: &service_kit::server::Running) -> Vec<String> {
    let mut bodies = Vec::new();
    for query in SCOPES {
        let (status, body) = get(&pe_url(pe, query)).await;
        assert_eq!(status, 200, "{query}: {body}");
        bodies.push(body);
    }
    bodies
}

/// Waits until the state directory holds a snapshot of the graph-builder
/// listing `etag` (it is written once the snapshot is served).
async fn wait_saved(state_dir: &std::path::Path, etag: &str) {
    let path = state_dir.join("snapshot.json");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let saved = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
        if saved
            .as_ref()
            .is_some_and(|saved| saved["listing_etag"].as_str() == Some(etag))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot of listing {etag} saved: {saved:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn every_scope_is_served_after_the_graph_builder_stops() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;
    // Only one scope is ever asked for before the outage.
    let (status, _) = get(&stack.pe(SCOPES[0])).await;
    assert_eq!(status, 200);
    let pe_status = stack.policy_engine.status_addr;
    stack.graph_builder.stop().await.unwrap();

    let connect = r#"fcos_cincinnati_pe_upstream_errors_total{kind="connect"}"#;
    wait_metric(pe_status, connect, |v| v >= 1.0).await;
    let bodies = served(&stack.policy_engine).await;
    for body in &bodies {
        let graph: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(!versions(&graph).is_empty());
    }
    let (status, ready) = readyz(&stack.policy_engine).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["details"]["source"], "graph_builder");
    // The age of what it serves grows while nobody asks.
    let age =
        r#"fcos_cincinnati_pe_graph_age_seconds{basearch="aarch64",stream="stable",type="oci"}"#;
    wait_metric(pe_status, age, |v| v >= 2.0).await;
    stack.policy_engine.stop().await.unwrap();
}

#[actix_web::test]
async fn a_restarted_policy_engine_serves_from_its_state_directory() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let state = tempfile::tempdir().unwrap();
    let state_line = format!("state_dir = \"{}\"\n", state.path().display());
    let gb = fcos_graph_builder::start(graph_builder_settings(&upstream, STREAMS)).unwrap();
    wait_ready(&gb).await;
    let graph_url = format!("http://{}/v1/graph", gb.service_addr);
    let pe =
        fcos_policy_engine::start(policy_engine_settings_with(&graph_url, &state_line)).unwrap();
    wait_following(&pe, &gb).await;
    let before = served(&pe).await;
    // The snapshot is written after it is served.
    wait_saved(state.path(), &listing_etag(&gb).await).await;
    pe.stop().await.unwrap();
    gb.stop().await.unwrap();

    // The graph-builder is down: the new policy-engine serves from disk at
    // once, every scope, the same bytes.
    let started = Instant::now();
    let pe =
        fcos_policy_engine::start(policy_engine_settings_with(&graph_url, &state_line)).unwrap();
    let (status, ready) = readyz(&pe).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["details"]["source"], "disk");
    assert!(ready["details"]["age_seconds"].as_i64().unwrap() >= 0);
    assert_eq!(served(&pe).await, before);
    assert!(started.elapsed() < Duration::from_secs(5));
    // A scope the graph-builder does not serve is still unknown.
    let (status, body) = get(&pe_url(&pe, "basearch=s390x&stream=stable")).await;
    assert_eq!(status, 404, "{body}");
    pe.stop().await.unwrap();
}

#[actix_web::test]
async fn a_damaged_state_file_is_refused_and_the_graph_builder_followed_once_back() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        state.path().join("snapshot.json"),
        b"{\"format\":1,\"written\":1,\"listing_etag\":null,\"scopes\":[{\"stream\":\"stable\"",
    )
    .unwrap();
    let state_line = format!("state_dir = \"{}\"\n", state.path().display());
    // A graph-builder address with nothing listening yet.
    let mut gb_settings = graph_builder_settings(&upstream, STREAMS);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    gb_settings.service_addr = free.local_addr().unwrap();
    drop(free);
    let graph_url = format!("http://{}/v1/graph", gb_settings.service_addr);
    let pe =
        fcos_policy_engine::start(policy_engine_settings_with(&graph_url, &state_line)).unwrap();
    let read_errors = r#"fcos_cincinnati_pe_state_errors_total{operation="read"}"#;
    assert_eq!(metric(pe.status_addr, read_errors).await, Some(1.0));
    let (status, body) = get(&pe_url(&pe, SCOPES[0])).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("upstream_unavailable"), "{body}");
    assert_eq!(readyz(&pe).await.0, 503);

    let gb = fcos_graph_builder::start(gb_settings).unwrap();
    wait_ready(&gb).await;
    wait_following(&pe, &gb).await;
    served(&pe).await;
    // The snapshot saved now replaces the damaged file.
    wait_saved(state.path(), &listing_etag(&gb).await).await;
    pe.stop().await.unwrap();
    gb.stop().await.unwrap();
}

#[actix_web::test]
async fn a_published_change_is_followed_before_the_held_poll_ends() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let graph_builder =
        fcos_graph_builder::start(graph_builder_settings(&upstream, STREAMS)).unwrap();
    let graph_url = format!("http://{}/v1/graph", graph_builder.service_addr);
    let mut settings = policy_engine_settings(&graph_url);
    // Polls held a minute, longer than this test may wait: a change
    // followed sooner came with the answer to the held poll.
    settings.wait = Duration::from_secs(60);
    let policy_engine =
        fcos_policy_engine::start_with_clock(settings, std::sync::Arc::new(|| MIDWAY)).unwrap();
    let stack = Stack {
        graph_builder,
        policy_engine,
    };
    stack.wait_ready().await;
    let (releases, updates) = fixture_with_new_release("stable");
    upstream.set("/stable/releases.json", Canned::Body(releases));
    upstream.set("/stable/updates.json", Canned::Body(updates));
    let newest = |graph: &serde_json::Value| versions(graph).last().cloned();
    // When the graph-builder serves the change...
    let deadline = Instant::now() + Duration::from_secs(15);
    while newest(&get_graph(&stack.gb(SCOPES[0])).await).as_deref() != Some("33.1.0") {
        assert!(
            Instant::now() < deadline,
            "the graph-builder never published"
        );
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    // ... the policy-engine serves it, well before its poll would end.
    while newest(&get_graph(&stack.pe(SCOPES[0])).await).as_deref() != Some("33.1.0") {
        assert!(
            Instant::now() < deadline,
            "not followed while the poll was held"
        );
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    stack.stop().await;
}

/// The fixture's x86_64 OSTree graph, as the graph-builder would serve it.
fn fixture_graph(releases: &[u8], updates: &[u8]) -> Vec<u8> {
    let index = ReleaseIndex::parse(releases, Some("stable")).unwrap();
    let updates = UpdatesMetadata::parse(updates, Some("stable")).unwrap();
    Graph::from_documents(&index, &updates, "x86_64", Scheme::Checksum).to_json()
}

/// A listing of stable/x86_64 (both schemes, as the graph-builder lists
/// them) whose graph has `etag`.
fn listing(etag: &str) -> Vec<u8> {
    serde_json::json!({"scopes": [
        {"stream": "stable", "basearch": "x86_64", "oci": false, "etag": etag},
        {"stream": "stable", "basearch": "x86_64", "oci": true, "etag": etag},
    ]})
    .to_string()
    .into_bytes()
}

#[actix_web::test]
async fn last_good_graph_is_served_through_graph_builder_faults() {
    let read = |doc| std::fs::read(fixture("stable", doc)).unwrap();
    let good = fixture_graph(&read("releases.json"), &read("updates.json"));
    let good_etag = GraphBody::new(good.clone()).etag().to_string();
    // A stand-in graph-builder whose answers the test sets.
    let fake_gb = Upstream::start();
    fake_gb.set("/v1/scopes", Canned::Body(listing(&good_etag)));
    fake_gb.set("/v1/graph", Canned::Body(good));
    let pe = fcos_policy_engine::start(policy_engine_settings(&format!(
        "http://{}/v1/graph",
        fake_gb.addr
    )))
    .unwrap();
    let url = pe_url(&pe, "basearch=x86_64&stream=stable&rollout_wariness=0.5");
    wait_for_status(&url, 200).await;
    let served = get_graph(&url).await;
    assert_eq!(versions(&served).len(), 5);
    let errors =
        |kind: &str| format!(r#"fcos_cincinnati_pe_upstream_errors_total{{kind="{kind}"}}"#);

    let backward = br#"{"nodes":[{"version":"a","metadata":{},"payload":"p"},{"version":"b","metadata":{},"payload":"q"}],"edges":[[1,0]]}"#;
    let faults: [(&str, &str, Canned); 7] = [
        ("http_status", "/v1/scopes", Canned::Status(500)),
        ("http_status", "/v1/scopes", Canned::Status(502)),
        (
            "invalid_listing",
            "/v1/scopes",
            Canned::Body(b"{\"scopes\": [".to_vec()),
        ),
        ("timeout", "/v1/scopes", Canned::Hang),
        // A new graph announced, but what comes is not one.
        (
            "invalid_graph",
            "/v1/graph",
            Canned::Body(b"{\"nodes\": [".to_vec()),
        ),
        (
            "invalid_graph",
            "/v1/graph",
            Canned::Body(backward.to_vec()),
        ),
        ("http_status", "/v1/graph", Canned::Status(500)),
    ];
    for (kind, path, canned) in faults {
        let before = metric(pe.status_addr, &errors(kind)).await.unwrap_or(0.0);
        if path == "/v1/graph" {
            // Announced with the ETag of what comes, so that it is refused
            // for what it is, not for not matching.
            let announced = match &canned {
                Canned::Body(body) => GraphBody::new(body.clone()).etag().to_string(),
                _ => GraphBody::new(b"{}".to_vec()).etag().to_string(),
            };
            fake_gb.set("/v1/scopes", Canned::Body(listing(&announced)));
        }
        fake_gb.set(path, canned);
        // Clients keep being answered from the last good graph until the
        // failure has been counted, and after.
        let deadline = Instant::now() + Duration::from_secs(15);
        while metric(pe.status_addr, &errors(kind)).await.unwrap_or(0.0) <= before {
            assert_eq!(get_graph(&url).await, served, "{kind}");
            assert!(Instant::now() < deadline, "{kind} never counted");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(get_graph(&url).await, served, "{kind}");
        fake_gb.set("/v1/scopes", Canned::Body(listing(&good_etag)));
        // Once a poll is answered 304 after the repair, the failures of
        // this fault are all counted: the next one starts from a count
        // only it can raise.
        let confirmed = fake_gb.hits("304 /v1/scopes");
        let deadline = Instant::now() + Duration::from_secs(15);
        while fake_gb.hits("304 /v1/scopes") <= confirmed {
            assert!(Instant::now() < deadline, "{kind}: never repaired");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Down altogether.
    fake_gb.stop().await;
    let before = metric(pe.status_addr, &errors("connect"))
        .await
        .unwrap_or(0.0);
    wait_metric(pe.status_addr, &errors("connect"), |v| v > before).await;
    assert_eq!(get_graph(&url).await, served);

    // Back, with a new release: followed by itself.
    let (releases, updates) = fixture_with_new_release("stable");
    let newer = fixture_graph(&releases, &updates);
    fake_gb.set(
        "/v1/scopes",
        Canned::Body(listing(GraphBody::new(newer.clone()).etag())),
    );
    fake_gb.set("/v1/graph", Canned::Body(newer));
    let fake_gb = fake_gb.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let graph = get_graph(&url).await;
        if versions(&graph).last().map(String::as_str) == Some("33.1.0") {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let age = r#"fcos_cincinnati_pe_graph_age_seconds{basearch="x86_64",stream="stable",type="checksum"}"#;
    assert!(metric(pe.status_addr, age).await.unwrap() < 5.0);
    fake_gb.stop().await;
    pe.stop().await.unwrap();
}
