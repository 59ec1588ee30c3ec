//! End to end: what both services export on `/metrics`. Every label
//! combination known at start exists from the start (at 0 until counted),
//! so that `rate()` and `increase()` see first increments; the process and
//! build metrics are there once each; and the policy-engine's request
//! counters count what their help texts say.

mod support;

use fcos_graph_builder::scraper::RefreshError;
use std::net::SocketAddr;
use support::*;

const STREAMS: &str = "stable = [\"x86_64\", \"aarch64\"]\ntesting = [\"x86_64\"]";

async fn metrics_page(status_addr: SocketAddr) -> String {
    let (status, text) = get(&format!("http://{status_addr}/metrics")).await;
    assert_eq!(status, 200);
    text
}

/// Asserts `text` has a sample of `series` (any value).
fn assert_series(text: &str, series: &str) {
    assert!(
        text.lines()
            .any(|l| l.starts_with(series) && l[series.len()..].starts_with(' ')),
        "{series} missing"
    );
}

#[actix_web::test]
async fn known_label_combinations_exist_from_the_start() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    upstream.serve_fixture_as("stable", "testing");
    // Looked at before anything can have failed or been asked for.
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    let gb = metrics_page(stack.graph_builder.status_addr).await;
    for stream in ["stable", "testing"] {
        for kind in RefreshError::KINDS {
            assert_series(
                &gb,
                &format!(
                    r#"fcos_cincinnati_gb_scraper_upstream_errors_total{{kind="{kind}",stream="{stream}"}}"#
                ),
            );
        }
        assert_series(
            &gb,
            &format!(r#"fcos_cincinnati_gb_scraper_upstream_scrapes_total{{stream="{stream}"}}"#),
        );
    }
    for (stream, basearch) in [
        ("stable", "x86_64"),
        ("stable", "aarch64"),
        ("testing", "x86_64"),
    ] {
        for scheme in ["checksum", "oci"] {
            assert_series(
                &gb,
                &format!(
                    r#"fcos_cincinnati_gb_cache_graph_requests_total{{basearch="{basearch}",stream="{stream}",type="{scheme}"}}"#
                ),
            );
        }
    }
    let pe = metrics_page(stack.policy_engine.status_addr).await;
    let services = [
        (
            &gb,
            "gb",
            &[
                "graph", "scopes", "openapi", "streams", "index", "assets", "other",
            ][..],
        ),
        (&pe, "pe", &["graph", "openapi", "other"][..]),
    ];
    for (text, prefix, handlers) in services {
        for handler in handlers {
            for code in service_kit::metrics::COMMON_CODES {
                assert_series(
                    text,
                    &format!(
                        r#"fcos_cincinnati_{prefix}_http_responses_total{{code="{code}",handler="{handler}"}}"#
                    ),
                );
            }
            assert_series(
                text,
                &format!(
                    r#"fcos_cincinnati_{prefix}_http_request_duration_seconds_count{{handler="{handler}"}}"#
                ),
            );
        }
    }
    // The policy-engine labels only the handlers it has.
    assert!(!pe.contains(r#"handler="scopes""#));
    // Nothing failed: the error counters are there at 0.
    assert_eq!(
        metric(
            stack.graph_builder.status_addr,
            r#"fcos_cincinnati_gb_scraper_upstream_errors_total{kind="panic",stream="testing"}"#
        )
        .await,
        Some(0.0)
    );
    stack.stop().await;
}

#[test]
fn every_refresh_error_kind_is_documented() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `fcos_cincinnati_gb_scraper_upstream_errors_total`"))
        .unwrap();
    for kind in RefreshError::KINDS {
        assert!(row.contains(&format!("`{kind}`")), "{kind}");
    }
}

#[actix_web::test]
async fn process_and_build_metrics_are_exported_once_by_each_service() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    for status_addr in [
        stack.graph_builder.status_addr,
        stack.policy_engine.status_addr,
    ] {
        let text = metrics_page(status_addr).await;
        assert_eq!(
            text.matches("# TYPE process_start_time_seconds gauge")
                .count(),
            1,
            "{text}"
        );
        for name in [
            "process_start_time_seconds",
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
        ] {
            assert_series(&text, name);
        }
        let resident = metric(status_addr, "process_resident_memory_bytes")
            .await
            .unwrap();
        assert!(resident > 1e6, "{resident}");
        let info = format!(
            r#"fcos_cincinnati_build_info{{revision="{}",version="{}"}}"#,
            service_kit::metrics::REVISION,
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(metric(status_addr, &info).await, Some(1.0), "{text}");
    }
    let revision = service_kit::metrics::REVISION;
    assert!(
        revision == "unknown"
            || (revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())),
        "{revision}"
    );
    stack.stop().await;
}

#[actix_web::test]
async fn policy_engine_request_counters_match_their_help() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;
    let status = stack.policy_engine.status_addr;
    let incoming = "fcos_cincinnati_pe_v1_graph_incoming_requests_total";
    let uuids = "fcos_cincinnati_pe_v1_graph_unique_uuids_total";
    assert_eq!(metric(status, incoming).await, Some(0.0));
    assert_eq!(metric(status, uuids).await, Some(0.0));

    let good = "basearch=x86_64&stream=stable";
    let uuid = |n: u32| format!("{n:032x}");
    let client = client();
    // (method, query, Accept, status answered): each with its own UUID.
    let requests = [
        ("POST", good.to_string(), "application/json", 405),
        ("DELETE", good.to_string(), "application/json", 405),
        (
            "GET",
            "basearch=x86_64&stream=rawhide".to_string(),
            "application/json",
            404,
        ),
        ("GET", format!("{good}&oci=yes"), "application/json", 400),
        ("GET", good.to_string(), "text/html", 406),
        (
            "GET",
            format!("{good}&pad={}", "a".repeat(9 * 1024)),
            "application/json",
            414,
        ),
        ("GET", good.to_string(), "application/json", 200),
        ("HEAD", good.to_string(), "application/json", 200),
    ];
    for (n, (method, query, accept, expected)) in requests.iter().enumerate() {
        let url = stack.pe(&format!("{query}&node_uuid={}", uuid(n as u32)));
        let response = client
            .request(method.parse().unwrap(), &url)
            .header("Accept", *accept)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            *expected,
            "{method} {query:.60}"
        );
    }
    // The UUID answered a graph again is not new.
    let again = stack.pe(&format!("{good}&node_uuid={}", uuid(6)));
    assert_eq!(get(&again).await.0, 200);

    // Every request to /v1/graph, whatever its method and answer...
    assert_eq!(
        metric(status, incoming).await,
        Some(requests.len() as f64 + 1.0)
    );
    // ... and only the UUIDs of requests answered with a graph.
    assert_eq!(metric(status, uuids).await, Some(2.0));
    stack.stop().await;
}

/// The graph-builder names the kind of a stream's current failure only: a
/// truncated document, fixed, then the upstream gone, leaves `connect`
/// alone at 1 (what FcosGraphBuilderUpstreamRejected reads), and a success
/// clears it.
#[actix_web::test]
async fn the_last_refresh_error_is_the_current_one() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let gb = fcos_graph_builder::start(graph_builder_settings(&upstream, "stable = [\"x86_64\"]"))
        .unwrap();
    wait_ready(&gb).await;
    let last_error = |kind: &str| {
        format!(r#"fcos_cincinnati_gb_scraper_last_refresh_error{{kind="{kind}",stream="stable"}}"#)
    };
    for kind in RefreshError::KINDS {
        assert_eq!(metric(gb.status_addr, &last_error(kind)).await, Some(0.0));
    }
    let body = std::fs::read(fixture("stable", "updates.json")).unwrap();
    upstream.set(
        "/stable/updates.json",
        Canned::Body(body[..body.len() / 2].to_vec()),
    );
    wait_metric(gb.status_addr, &last_error("invalid_document"), |n| {
        n == 1.0
    })
    .await;
    upstream.serve_fixture("stable");
    wait_metric(gb.status_addr, &last_error("invalid_document"), |n| {
        n == 0.0
    })
    .await;
    upstream.stop().await;
    wait_metric(gb.status_addr, &last_error("connect"), |n| n == 1.0).await;
    for kind in RefreshError::KINDS.iter().filter(|k| **k != "connect") {
        assert_eq!(
            metric(gb.status_addr, &last_error(kind)).await,
            Some(0.0),
            "{kind}"
        );
    }
    let upstream = upstream.restart().await;
    wait_metric(gb.status_addr, &last_error("connect"), |n| n == 0.0).await;
    upstream.stop().await;
    gb.stop().await.unwrap();
}
