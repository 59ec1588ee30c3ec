//! End to end: what both services export on `/metrics`. Every label
//! combination known at start exists from the start (at 0 until counted),
//! so that `rate()` and `increase()` see first increments.

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
            for code in commons::metrics::COMMON_CODES {
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
