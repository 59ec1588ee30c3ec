//! A panic while building a stream's graphs (a bug: no input does this) is
//! a refresh error of kind `panic`: counted, logged with the stream, the
//! last good graphs kept, and the next refresh publishes.

use commons::graph::Scheme;
use fcos_graph_builder::config::{DocumentSource, StreamSettings};
use fcos_graph_builder::scraper::{
    build_stream, BuiltGraph, RefreshError, Refreshed, ScraperMetrics, StreamScraper,
};
use fcos_graph_builder::store::GraphStore;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

static BUILDS: AtomicUsize = AtomicUsize::new(0);

/// Panics on the second build, builds normally otherwise.
fn flaky_build(
    stream: &StreamSettings,
    index: &[u8],
    updates: &[u8],
) -> Result<Vec<BuiltGraph>, RefreshError> {
    if BUILDS.fetch_add(1, Ordering::SeqCst) == 1 {
        panic!("index out of bounds on purpose");
    }
    build_stream(stream, index, updates)
}

const RELEASES: &str = r#"{"releases": [{"version": "1.0", "commits": [{"architecture": "x86_64", "checksum": "a"}]}, {"version": "2.0", "commits": [{"architecture": "x86_64", "checksum": "b"}]}]}"#;
const UPDATES: &str = r#"{"stream": "stable", "metadata": {"last-modified": "x"}, "releases": []}"#;

#[tokio::test]
async fn a_panicking_build_is_counted_and_the_next_refresh_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let (releases, updates) = (
        dir.path().join("releases.json"),
        dir.path().join("updates.json"),
    );
    std::fs::write(&releases, RELEASES).unwrap();
    std::fs::write(&updates, UPDATES).unwrap();
    let url = |path: &std::path::Path| DocumentSource::Url(url::Url::from_file_path(path).unwrap());
    let stream = StreamSettings {
        oci_repository: None,
        name: "stable".to_string(),
        basearches: vec!["x86_64".to_string()],
        release_index: url(&releases),
        updates: url(&updates),
    };
    let registry = prometheus::Registry::new();
    let metrics = ScraperMetrics::register(&registry).unwrap();
    let store = GraphStore::new(BTreeMap::from([(
        "stable".to_string(),
        vec!["x86_64".to_string()],
    )]));
    let fetcher =
        fcos_graph_builder::fetch::Fetcher::new(std::time::Duration::from_secs(5), 1 << 20)
            .unwrap();
    let mut scraper =
        StreamScraper::new(stream, fetcher, store.clone(), metrics).with_builder(flaky_build);

    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Published);
    let first = store.get("stable", "x86_64", Scheme::Checksum).unwrap();

    // A change upstream; its build panics.
    std::fs::write(&releases, RELEASES.replace("\"b\"", "\"c\"")).unwrap();
    let error = scraper.refresh_once().await.unwrap_err();
    assert_eq!(error.kind(), "panic");
    assert!(error.to_string().contains("on purpose"), "{error}");
    let text = String::from_utf8(service_kit::metrics::render(&registry)).unwrap();
    assert!(
        text.contains(
            r#"fcos_cincinnati_gb_scraper_upstream_errors_total{kind="panic",stream="stable"} 1"#
        ),
        "{text}"
    );
    let kept = store.get("stable", "x86_64", Scheme::Checksum).unwrap();
    assert_eq!(kept.json(), first.json());

    // The next refresh builds and publishes the change.
    assert_eq!(scraper.refresh_once().await.unwrap(), Refreshed::Published);
    let next = store.get("stable", "x86_64", Scheme::Checksum).unwrap();
    assert!(String::from_utf8_lossy(next.json()).contains("\"c\""));
}
