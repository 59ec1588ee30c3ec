//! End to end: the policy-engine against a graph-builder that goes down,
//! hangs or returns garbage. It keeps answering from the last good graph,
//! says how stale it is, counts the failures, and recovers by itself.

mod support;

use commons::graph::{Graph, Scheme};
use commons::metadata::{ReleaseIndex, UpdatesMetadata};
use support::*;

/// The fixture's x86_64 OSTree graph, as the graph-builder would serve it.
fn fixture_graph(releases: &[u8], updates: &[u8]) -> Vec<u8> {
    let index = ReleaseIndex::parse(releases, Some("stable")).unwrap();
    let updates = UpdatesMetadata::parse(updates, Some("stable")).unwrap();
    Graph::from_documents(&index, &updates, "x86_64", Scheme::Checksum).to_json()
}

#[actix_web::test]
async fn last_good_graph_is_served_through_graph_builder_faults() {
    let read = |doc| std::fs::read(fixture("stable", doc)).unwrap();
    let good = fixture_graph(&read("releases.json"), &read("updates.json"));
    let fake_gb = Upstream::start();
    fake_gb.set("/v1/graph", Canned::Body(good));
    let pe = fcos_policy_engine::start(policy_engine_settings(&format!(
        "http://{}/v1/graph",
        fake_gb.addr
    )))
    .unwrap();
    let url = format!(
        "http://{}/v1/graph?basearch=x86_64&stream=stable&rollout_wariness=0.5",
        pe.service_addr
    );
    let served = get_graph(&url).await;
    assert_eq!(versions(&served).len(), 5);
    let errors =
        |kind: &str| format!(r#"fcos_cincinnati_pe_upstream_errors_total{{kind="{kind}"}}"#);
    let age = r#"fcos_cincinnati_pe_graph_age_seconds{basearch="x86_64",stream="stable",type="checksum"}"#;

    let backward = br#"{"nodes":[{"version":"a","metadata":{},"payload":"p"},{"version":"b","metadata":{},"payload":"q"}],"edges":[[1,0]]}"#;
    let faults: [(&str, Canned); 5] = [
        ("http_status", Canned::Status(500)),
        ("http_status", Canned::Status(502)),
        ("invalid_graph", Canned::Body(b"{\"nodes\": [".to_vec())),
        ("invalid_graph", Canned::Body(backward.to_vec())),
        ("timeout", Canned::Hang),
    ];
    // Requests keep coming while the fault lasts; each is answered from
    // the last good graph until the failure has been counted.
    let served_through = |kind: &'static str, before: f64| {
        let (url, served, series) = (url.clone(), served.clone(), errors(kind));
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            while metric(pe.status_addr, &series).await.unwrap_or(0.0) <= before {
                assert_eq!(get_graph(&url).await, served, "{kind}");
                assert!(std::time::Instant::now() < deadline, "{kind} never counted");
                actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert_eq!(get_graph(&url).await, served, "{kind}");
        }
    };
    for (kind, canned) in faults {
        let before = metric(pe.status_addr, &errors(kind)).await.unwrap_or(0.0);
        fake_gb.set("/v1/graph", canned);
        served_through(kind, before).await;
    }
    // It says how stale its graph is.
    assert!(metric(pe.status_addr, age).await.unwrap() >= 1.0);

    // Down altogether.
    fake_gb.stop().await;
    served_through("connect", 0.0).await;

    // Back, with a new release: followed by itself.
    let (releases, updates) = fixture_with_new_release("stable");
    fake_gb.set(
        "/v1/graph",
        Canned::Body(fixture_graph(&releases, &updates)),
    );
    let fake_gb = fake_gb.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let graph = get_graph(&url).await;
        if versions(&graph).last().map(String::as_str) == Some("33.1.0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never recovered");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(metric(pe.status_addr, age).await.unwrap() < 5.0);
    fake_gb.stop().await;
    pe.stop().await.unwrap();
}

#[actix_web::test]
async fn a_404_that_is_not_unknown_scope_is_a_fault() {
    // A graph URL with a wrong path: the server answers a plain 404.
    let fake_gb = Upstream::start();
    let pe = fcos_policy_engine::start(policy_engine_settings(&format!(
        "http://{}/wrong/path",
        fake_gb.addr
    )))
    .unwrap();
    let url = format!(
        "http://{}/v1/graph?basearch=x86_64&stream=stable",
        pe.service_addr
    );
    let (status, body) = get(&url).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("upstream_unavailable"), "{body}");
    assert_eq!(
        metric(
            pe.status_addr,
            r#"fcos_cincinnati_pe_upstream_errors_total{kind="http_status"}"#
        )
        .await,
        Some(1.0)
    );
    fake_gb.stop().await;
    pe.stop().await.unwrap();
}

#[actix_web::test]
async fn made_up_scopes_asked_during_an_outage_do_not_crowd_out_real_ones() {
    let fake_gb = Upstream::start();
    fake_gb.set("/v1/graph", Canned::Status(503));
    let pe = fcos_policy_engine::start(policy_engine_settings(&format!(
        "http://{}/v1/graph",
        fake_gb.addr
    )))
    .unwrap();
    let url = |q: &str| format!("http://{}/v1/graph?{q}", pe.service_addr);
    // While the graph-builder has no graph, made-up streams are asked for.
    for i in 0..300 {
        let (status, _) = get(&url(&format!("basearch=x86_64&stream=made-up-{i}"))).await;
        assert_eq!(status, 503);
    }
    // Then it serves; a real scope is fetched once and cached.
    let read = |doc| std::fs::read(fixture("stable", doc)).unwrap();
    fake_gb.set(
        "/v1/graph",
        Canned::Body(fixture_graph(&read("releases.json"), &read("updates.json"))),
    );
    let before = fake_gb.hits("/v1/graph");
    for _ in 0..5 {
        let (status, _) = get(&url("basearch=x86_64&stream=stable")).await;
        assert_eq!(status, 200);
    }
    assert_eq!(fake_gb.hits("/v1/graph") - before, 1);
    fake_gb.stop().await;
    pe.stop().await.unwrap();
}
