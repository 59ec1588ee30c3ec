//! End to end: the graph-builder against an upstream that misbehaves on
//! purpose. For every fault the last good graphs stay served unchanged, the
//! failure is counted by kind, and the next good refresh recovers.

mod support;

use support::*;

const STREAMS: &str = "stable = [\"x86_64\", \"aarch64\"]\ntesting = [\"x86_64\"]";
const QUERY: &str = "basearch=x86_64&stream=stable";

/// Runs one fault: `break_it` spoils the upstream; the graph-builder must
/// count a `kind` error, keep serving, and pick up a fixed upstream.
async fn fault(kind: &str, break_it: impl FnOnce(&Upstream)) {
    fault_with(kind, |_| {}, break_it).await
}

/// [`fault`] with the graph-builder's settings changed by `tweak` first.
async fn fault_with(
    kind: &str,
    tweak: impl FnOnce(&mut fcos_graph_builder::Settings),
    break_it: impl FnOnce(&Upstream),
) {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    upstream.serve_fixture_as("stable", "testing");
    let mut settings = graph_builder_settings(&upstream, STREAMS);
    tweak(&mut settings);
    let gb = fcos_graph_builder::start(settings).unwrap();
    wait_ready(&gb).await;
    let url = |q: &str| format!("http://{}/v1/graph?{q}", gb.service_addr);
    let good = get(&url(QUERY)).await;
    let good_oci = get(&url("basearch=aarch64&stream=stable&oci=true")).await;
    let testing = get(&url("basearch=x86_64&stream=testing")).await;
    let errors = format!(
        r#"fcos_cincinnati_gb_scraper_upstream_errors_total{{kind="{kind}",stream="stable"}}"#
    );
    let failed = r#"fcos_cincinnati_gb_scraper_last_refresh_failed{stream="stable"}"#;

    break_it(&upstream);
    wait_metric(gb.status_addr, &errors, |n| n >= 1.0).await;
    assert_eq!(metric(gb.status_addr, failed).await, Some(1.0));
    let since = r#"fcos_cincinnati_gb_scraper_seconds_since_last_success{stream="stable"}"#;
    wait_metric(gb.status_addr, since, |n| n >= 2.0).await;
    // Nothing changed for clients, in any scope, nor in the other stream.
    assert_eq!(get(&url(QUERY)).await, good, "{kind}");
    assert_eq!(
        get(&url("basearch=aarch64&stream=stable&oci=true")).await,
        good_oci
    );
    assert_eq!(get(&url("basearch=x86_64&stream=testing")).await, testing);
    assert_eq!(
        metric(
            gb.status_addr,
            r#"fcos_cincinnati_gb_scraper_last_refresh_failed{stream="testing"}"#
        )
        .await,
        Some(0.0)
    );
    let (status, _) = get(&format!("http://{}/readyz", gb.status_addr)).await;
    assert_eq!(
        status, 200,
        "a failing refresh does not make a served stream unready"
    );

    // Fixed upstream, with a new release: recovered by itself.
    let (index, updates) = fixture_with_new_release("stable");
    upstream.set("/stable/releases.json", Canned::Body(index));
    upstream.set("/stable/updates.json", Canned::Body(updates));
    wait_metric(gb.status_addr, failed, |n| n == 0.0).await;
    assert!(metric(gb.status_addr, since).await.unwrap() <= 1.0);
    let graph = get_graph(&url(QUERY)).await;
    assert_eq!(versions(&graph).last().unwrap(), "33.1.0");
    upstream.stop().await;
    gb.stop().await.unwrap();
}

fn updates_with(f: impl FnOnce(&mut serde_json::Value)) -> Canned {
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("stable", "updates.json")).unwrap()).unwrap();
    f(&mut doc);
    Canned::Body(doc.to_string().into_bytes())
}

fn releases_with(f: impl FnOnce(&mut serde_json::Value)) -> Canned {
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("stable", "releases.json")).unwrap())
            .unwrap();
    f(&mut doc);
    Canned::Body(doc.to_string().into_bytes())
}

#[actix_web::test]
async fn http_errors() {
    for code in [404, 500, 503] {
        fault("http_status", |u| {
            u.set("/stable/updates.json", Canned::Status(code))
        })
        .await;
    }
}

#[actix_web::test]
async fn hanging_server_times_out() {
    fault("timeout", |u| u.set("/stable/releases.json", Canned::Hang)).await;
}

#[actix_web::test]
async fn slow_body_times_out() {
    let body = std::fs::read(fixture("stable", "releases.json")).unwrap();
    fault("timeout", |u| {
        u.set("/stable/releases.json", Canned::Trickle(body))
    })
    .await;
}

#[actix_web::test]
async fn truncated_json() {
    let body = std::fs::read(fixture("stable", "updates.json")).unwrap();
    fault("invalid_document", |u| {
        u.set(
            "/stable/updates.json",
            Canned::Body(body[..body.len() / 2].to_vec()),
        )
    })
    .await;
}

#[actix_web::test]
async fn invalid_json() {
    fault("invalid_document", |u| {
        u.set(
            "/stable/releases.json",
            Canned::Body(b"<html>maintenance</html>".to_vec()),
        )
    })
    .await;
}

#[actix_web::test]
async fn document_in_the_retired_format() {
    // The shape of updates documents before they named their stream.
    let old = br#"{"updates":{"barriers":[],"deadends":[{"version":"31.1.0","reason":"x"}],"rollouts":[{"version":"32.2.0","start_epoch":"1","start_value":"0.0","duration_minutes":"120"}]}}"#;
    fault("invalid_document", |u| {
        u.set("/stable/updates.json", Canned::Body(old.to_vec()))
    })
    .await;
}

#[actix_web::test]
async fn updates_for_another_stream() {
    fault("wrong_stream", |u| {
        u.set(
            "/stable/updates.json",
            updates_with(|d| d["stream"] = "next".into()),
        )
    })
    .await;
}

#[actix_web::test]
async fn duplicate_version_in_release_index() {
    fault("duplicate_version", |u| {
        u.set(
            "/stable/releases.json",
            releases_with(|d| {
                let first = d["releases"][0].clone();
                d["releases"].as_array_mut().unwrap().push(first);
            }),
        )
    })
    .await;
}

#[actix_web::test]
async fn empty_version_in_release_index() {
    fault("empty_version", |u| {
        u.set(
            "/stable/releases.json",
            releases_with(|d| d["releases"][3]["version"] = "".into()),
        )
    })
    .await;
}

#[actix_web::test]
async fn body_over_the_limit() {
    // A 1 MiB limit (the default is 8 MiB), and a document over it: small
    // enough to arrive well within the fetch timeout on a busy machine.
    let mut big = b"{\"releases\": [], \"padding\": \"".to_vec();
    big.resize(2 * 1024 * 1024, b'x');
    big.extend_from_slice(b"\"}");
    fault_with(
        "too_large",
        |settings| settings.max_body_bytes = 1024 * 1024,
        |u| u.set("/stable/releases.json", Canned::Body(big)),
    )
    .await;
}

#[actix_web::test]
async fn connection_refused() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    upstream.serve_fixture_as("stable", "testing");
    let gb = fcos_graph_builder::start(graph_builder_settings(&upstream, STREAMS)).unwrap();
    wait_ready(&gb).await;
    let url = format!("http://{}/v1/graph?{QUERY}", gb.service_addr);
    let good = get(&url).await;
    let errors =
        r#"fcos_cincinnati_gb_scraper_upstream_errors_total{kind="connect",stream="stable"}"#;
    let failed = r#"fcos_cincinnati_gb_scraper_last_refresh_failed{stream="stable"}"#;
    upstream.stop().await;
    wait_metric(gb.status_addr, errors, |n| n >= 1.0).await;
    assert_eq!(get(&url).await, good);
    let (index, updates) = fixture_with_new_release("stable");
    upstream.set("/stable/releases.json", Canned::Body(index));
    upstream.set("/stable/updates.json", Canned::Body(updates));
    let upstream = upstream.restart().await;
    wait_metric(gb.status_addr, failed, |n| n == 0.0).await;
    assert_eq!(versions(&get_graph(&url).await).last().unwrap(), "33.1.0");
    upstream.stop().await;
    gb.stop().await.unwrap();
}

#[actix_web::test]
async fn unchanged_documents_are_not_downloaded_or_rebuilt() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    upstream.serve_fixture_as("stable", "testing");
    let gb = fcos_graph_builder::start(graph_builder_settings(&upstream, STREAMS)).unwrap();
    wait_ready(&gb).await;
    let built = r#"fcos_cincinnati_gb_scraper_graph_last_refresh_timestamp{basearch="x86_64",stream="stable",type="checksum"}"#;
    let first_build = metric(gb.status_addr, built).await.unwrap();
    // Two more refreshes (one per second), each answered 304 for both
    // documents.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while upstream.hits("304 /stable/releases.json") < 2
        || upstream.hits("304 /stable/updates.json") < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no conditional requests seen"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(metric(gb.status_addr, built).await.unwrap(), first_build);
    assert_eq!(
        metric(
            gb.status_addr,
            r#"fcos_cincinnati_gb_scraper_last_refresh_failed{stream="stable"}"#
        )
        .await,
        Some(0.0)
    );
    upstream.stop().await;
    gb.stop().await.unwrap();
}

#[actix_web::test]
async fn one_broken_stream_at_start_does_not_keep_the_graph_builder_unready() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    // `testing` is broken from the start.
    upstream.set("/testing/releases.json", Canned::Status(500));
    upstream.set("/testing/updates.json", Canned::Status(500));
    let gb = fcos_graph_builder::start(graph_builder_settings(&upstream, STREAMS)).unwrap();
    wait_ready(&gb).await;
    let (status, ready) = readyz(&gb).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["details"]["streams"]["stable"], "ready");
    assert_eq!(ready["details"]["streams"]["testing"], "failed");
    let url = |q: &str| format!("http://{}/v1/graph?{q}", gb.service_addr);
    assert_eq!(get(&url(QUERY)).await.0, 200);
    let (status, body) = get(&url("basearch=x86_64&stream=testing")).await;
    assert_eq!(status, 503, "{body}");

    // The broken stream recovers by itself; a stream that breaks after
    // serving is stale, and the service stays ready.
    upstream.serve_fixture_as("stable", "testing");
    wait_for_status(&url("basearch=x86_64&stream=testing"), 200).await;
    upstream.set("/stable/updates.json", Canned::Status(500));
    wait_metric(
        gb.status_addr,
        r#"fcos_cincinnati_gb_scraper_last_refresh_failed{stream="stable"}"#,
        |v| v == 1.0,
    )
    .await;
    let (status, ready) = readyz(&gb).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["details"]["streams"]["stable"], "stale");
    assert_eq!(ready["details"]["streams"]["testing"], "ready");
    gb.stop().await.unwrap();
}

#[actix_web::test]
async fn no_stream_with_a_graph_is_not_ready() {
    let upstream = Upstream::start();
    let gb = fcos_graph_builder::start(graph_builder_settings(&upstream, STREAMS)).unwrap();
    wait_metric(
        gb.status_addr,
        r#"fcos_cincinnati_gb_scraper_last_refresh_failed{stream="testing"}"#,
        |v| v == 1.0,
    )
    .await;
    let (status, ready) = readyz(&gb).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["details"]["streams"]["stable"], "failed");
    gb.stop().await.unwrap();
}
