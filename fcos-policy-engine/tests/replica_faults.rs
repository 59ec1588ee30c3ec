//! End to end with the real `fcos-policy-engine` binary against a stand-in
//! graph-builder whose answers each test crafts: the replica takes only
//! what the graph-builder can have meant, and a bad answer on the internal
//! link never wipes or corrupts what the policy-engine serves or keeps on
//! disk.

mod stand_in;

use stand_in::{etag, graph, graph_padded, listing, Answer, FakeGraphBuilder, PolicyEngine};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn errors(kind: &str) -> String {
    format!(r#"fcos_cincinnati_pe_upstream_errors_total{{kind="{kind}"}}"#)
}

fn age(stream: &str, basearch: &str) -> String {
    format!(
        r#"fcos_cincinnati_pe_graph_age_seconds{{basearch="{basearch}",stream="{stream}",type="checksum"}}"#
    )
}

/// The saved snapshot, when there is a readable one.
fn saved(state_dir: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(state_dir.join("snapshot.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Waits until the state directory holds a snapshot passing `accept`.
async fn wait_saved(state_dir: &Path, accept: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !saved(state_dir).as_ref().is_some_and(&accept) {
        assert!(
            Instant::now() < deadline,
            "no such snapshot saved: {:?}",
            saved(state_dir)
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The saved graphs, as `stream/basearch/oci` → version of their first
/// node.
fn saved_versions(snapshot: &serde_json::Value) -> HashMap<String, String> {
    snapshot["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                format!(
                    "{}/{}/{}",
                    s["stream"].as_str().unwrap(),
                    s["basearch"].as_str().unwrap(),
                    s["oci"]
                ),
                s["graph"]["nodes"][0]["version"]
                    .as_str()
                    .unwrap_or("none")
                    .to_string(),
            )
        })
        .collect()
}

/// Waits until the fake has answered `count` more listing polls than
/// `before` (the policy-engine has read what is set).
async fn wait_polls(fake: &FakeGraphBuilder, before: usize, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.hits("/v1/scopes") < before + count {
        assert!(Instant::now() < deadline, "the listing is not polled");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A state directory's path as a `state_dir` line.
fn state_line(dir: &Path) -> String {
    format!("state_dir = \"{}\"\n", dir.display())
}

const ALL: [(&str, &str, bool); 4] = [
    ("stable", "x86_64", false),
    ("stable", "x86_64", true),
    ("stable", "aarch64", false),
    ("stable", "aarch64", true),
];

#[actix_web::test]
async fn an_empty_or_malformed_listing_wipes_nothing() {
    let fake = FakeGraphBuilder::start();
    let one = graph("1");
    fake.set_graph("stable", "x86_64", &one);
    fake.set_graph("stable", "aarch64", &one);
    fake.set_listing(listing(&[
        ("stable", "x86_64", &one),
        ("stable", "aarch64", &one),
    ]));
    let state = tempfile::tempdir().unwrap();
    let mut pe = PolicyEngine::start(&fake.graph_url(), &state_line(state.path())).await;
    for (stream, basearch, oci) in ALL {
        pe.wait_serving(stream, basearch, oci, "1").await;
    }
    wait_saved(state.path(), |s| saved_versions(s).len() == 4).await;

    let entry = |stream: &str, basearch: &str, oci: bool, etag: serde_json::Value| serde_json::json!({"stream": stream, "basearch": basearch, "oci": oci, "etag": etag});
    let good = serde_json::Value::from(etag(&one));
    let mut complete: Vec<serde_json::Value> = ALL
        .iter()
        .map(|(s, b, o)| entry(s, b, *o, good.clone()))
        .collect();
    let without_one_scheme = complete[..3].to_vec();
    complete.push(entry("stable", "x86_64", false, good.clone()));
    let twice = complete;
    let bad: [(&str, serde_json::Value); 6] = [
        ("empty", serde_json::json!({"scopes": []})),
        (
            "one scheme missing",
            serde_json::json!({ "scopes": without_one_scheme }),
        ),
        ("a scope twice", serde_json::json!({ "scopes": twice })),
        (
            "not an ETag",
            serde_json::json!({"scopes": ALL.iter().map(|(s, b, o)| entry(s, b, *o, "\"new\"".into())).collect::<Vec<_>>()}),
        ),
        (
            "not a stream name",
            serde_json::json!({"scopes": [entry("", "x86_64", false, good.clone()), entry("", "x86_64", true, good.clone())]}),
        ),
        ("not a listing", serde_json::json!({"streams": []})),
    ];
    for (what, body) in bad {
        let counted = pe.metric(&errors("invalid_listing")).await.unwrap_or(0.0);
        let polls = fake.hits("/v1/scopes");
        fake.set_listing(body.to_string().into_bytes());
        wait_polls(&fake, polls, 2).await;
        pe.wait_metric(&errors("invalid_listing"), |v| v > counted)
            .await;
        for (stream, basearch, oci) in ALL {
            let (status, body) = pe.graph(stream, basearch, oci).await;
            assert_eq!(status, 200, "{what}: {stream}/{basearch}: {body}");
        }
        let kept = saved_versions(&saved(state.path()).unwrap());
        assert_eq!(kept.len(), 4, "{what}: {kept:?}");
        assert!(kept.values().all(|v| v == "1"), "{what}: {kept:?}");
    }
    let logged = pe.process.line_with("refusing the scope listing").await;
    assert!(logged.contains("it lists no scope"), "{logged}");
    assert!(logged.contains(r#"kind="invalid_listing""#), "{logged}");

    // A complete listing without aarch64 (its stream configuration
    // changed): aarch64 is dropped, on disk too.
    fake.set_listing(listing(&[("stable", "x86_64", &one)]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while pe.graph("stable", "aarch64", false).await.0 != 404 {
        assert!(Instant::now() < deadline, "aarch64 never dropped");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pe.graph("stable", "x86_64", false).await.0, 200);
    wait_saved(state.path(), |s| saved_versions(s).len() == 2).await;
    fake.stop().await;
}

#[actix_web::test]
async fn a_graph_that_does_not_hash_to_its_etag_is_refused() {
    let fake = FakeGraphBuilder::start();
    let (one, two) = (graph("1"), graph("2"));
    fake.set_graph("stable", "x86_64", &one);
    fake.set_listing(listing(&[("stable", "x86_64", &one)]));
    let state = tempfile::tempdir().unwrap();
    let mut pe = PolicyEngine::start(&fake.graph_url(), &state_line(state.path())).await;
    pe.wait_serving("stable", "x86_64", false, "1").await;
    wait_saved(state.path(), |s| saved_versions(s).len() == 2).await;

    // Release 2 is announced, but a valid graph of nothing comes.
    let empty = br#"{"nodes":[],"edges":[]}"#.to_vec();
    fake.set_graph("stable", "x86_64", &empty);
    fake.set_listing(listing(&[("stable", "x86_64", &two)]));
    pe.wait_metric(&errors("etag_mismatch"), |v| v >= 2.0).await;
    for oci in [false, true] {
        pe.wait_serving("stable", "x86_64", oci, "1").await;
    }
    let kept = saved_versions(&saved(state.path()).unwrap());
    assert!(kept.values().all(|v| v == "1"), "{kept:?}");
    let logged = pe
        .process
        .line_with("serving the last good graph of this scope")
        .await;
    assert!(
        logged.contains(&format!("not to the ETag {}", etag(&two))),
        "{logged}"
    );

    // The real graph 2 comes: followed.
    fake.set_graph("stable", "x86_64", &two);
    for oci in [false, true] {
        pe.wait_serving("stable", "x86_64", oci, "2").await;
    }
    wait_saved(state.path(), |s| {
        saved_versions(s).values().all(|v| v == "2")
    })
    .await;
    fake.stop().await;
}

#[actix_web::test]
async fn a_huge_answer_is_refused_at_the_limit_and_memory_stays_bounded() {
    let fake = FakeGraphBuilder::start();
    let (one, two) = (graph("1"), graph("2"));
    fake.set_graph("stable", "x86_64", &one);
    fake.set_listing(listing(&[("stable", "x86_64", &one)]));
    // The default limit, 16 MiB.
    let mut pe = PolicyEngine::start(&fake.graph_url(), "").await;
    pe.wait_serving("stable", "x86_64", false, "1").await;
    pe.wait_serving("stable", "x86_64", true, "1").await;
    let before = pe.process.memory("VmRSS") / 1024;

    // 1 GB, announced for one scheme, chunked without a length for the
    // other.
    let gigabyte = 1 << 30;
    fake.set(
        "stable/x86_64/false",
        Answer::Huge {
            len: gigabyte,
            announced: true,
        },
    );
    fake.set(
        "stable/x86_64/true",
        Answer::Huge {
            len: gigabyte,
            announced: false,
        },
    );
    fake.set_listing(listing(&[("stable", "x86_64", &two)]));
    pe.wait_metric(&errors("too_large"), |v| v >= 4.0).await;
    let peak = pe.process.memory("VmHWM") / 1024;
    assert!(
        peak < before + 100 * 1024,
        "resident memory rose from {before} kB to a peak of {peak} kB"
    );
    let logged = pe
        .process
        .line_with("larger than upstream.max_body_bytes")
        .await;
    assert!(logged.contains("(16777216 bytes)"), "{logged}");
    for oci in [false, true] {
        pe.wait_serving("stable", "x86_64", oci, "1").await;
    }
    fake.stop().await;
}

#[actix_web::test]
async fn one_failing_scope_does_not_hold_back_the_others() {
    let fake = FakeGraphBuilder::start();
    let (one, two) = (graph("1"), graph("2"));
    fake.set_graph("stable", "x86_64", &one);
    fake.set_graph("stable", "aarch64", &one);
    fake.set_listing(listing(&[
        ("stable", "x86_64", &one),
        ("stable", "aarch64", &one),
    ]));
    let mut pe = PolicyEngine::start(&fake.graph_url(), "").await;
    for (stream, basearch, oci) in ALL {
        pe.wait_serving(stream, basearch, oci, "1").await;
    }

    // Release 2 everywhere; x86_64's graphs fail (listed first).
    fake.set_graphs("stable", "x86_64", Answer::Status(500));
    fake.set_graph("stable", "aarch64", &two);
    fake.set_listing(listing(&[
        ("stable", "x86_64", &two),
        ("stable", "aarch64", &two),
    ]));
    for oci in [false, true] {
        pe.wait_serving("stable", "aarch64", oci, "2").await;
    }
    pe.wait_metric(&errors("http_status"), |v| v >= 2.0).await;
    for oci in [false, true] {
        pe.wait_serving("stable", "x86_64", oci, "1").await;
    }
    // The age of the scope held back grows; the others' are confirmed.
    pe.wait_metric(&age("stable", "x86_64"), |v| v >= 3.0).await;
    let aarch64 = pe.metric(&age("stable", "aarch64")).await.unwrap();
    assert!(aarch64 < 3.0, "aarch64 age {aarch64}");
    let logged = pe
        .process
        .line_with("serving the last good graph of this scope")
        .await;
    assert!(logged.contains("scope=stable/x86_64/"), "{logged}");
    assert!(logged.contains(r#"kind="http_status""#), "{logged}");
    let (status, ready) = pe.readyz().await;
    assert_eq!(status, 200);
    assert_eq!(ready["details"]["scopes_behind"], 2, "{ready}");
    fake.stop().await;
}

#[actix_web::test]
async fn a_200_without_change_is_paced_like_a_304() {
    let fake = FakeGraphBuilder::start();
    let one = graph("1");
    fake.set_graph("stable", "x86_64", &one);
    // A listing answered 200 at once, whatever the poll says.
    fake.set(
        "/v1/scopes",
        Answer::Json {
            body: listing(&[("stable", "x86_64", &one)]),
            conditional: false,
        },
    );
    let pe = PolicyEngine::start(&fake.graph_url(), "").await;
    pe.wait_serving("stable", "x86_64", false, "1").await;
    let before = fake.hits("/v1/scopes");
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    let polls = fake.hits("/v1/scopes") - before;
    // Paced at most once a second (wait_secs = 1).
    assert!(polls <= 5, "{polls} polls in 3 s");
    assert_eq!(fake.hits("stable/x86_64/false"), 1);
    fake.stop().await;
}

/// A valid snapshot file of stable/x86_64 holding `graph`, written at
/// `written`.
fn snapshot_file(graph: &[u8], written: i64) -> String {
    // The graph's bytes as they are: they must hash to the ETag.
    let raw = String::from_utf8(graph.to_vec()).unwrap();
    let tag = serde_json::Value::from(etag(graph));
    let scopes: Vec<String> = [false, true]
        .iter()
        .map(|oci| format!(r#"{{"stream":"stable","basearch":"x86_64","oci":{oci},"etag":{tag},"graph":{raw}}}"#))
        .collect();
    format!(
        r#"{{"format":1,"written":{written},"listing_etag":"\"l\"","scopes":[{}]}}"#,
        scopes.join(",")
    )
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[actix_web::test]
async fn a_snapshot_dated_in_the_future_is_not_reported_fresh() {
    let state = tempfile::tempdir().unwrap();
    // Compact JSON, as the graph-builder sends it and the snapshot keeps it.
    let one = graph("1");
    let a_year = 365 * 86_400;
    std::fs::write(
        state.path().join("snapshot.json"),
        snapshot_file(&one, unix_now() + a_year),
    )
    .unwrap();
    // Nothing listens at the graph-builder's address.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let graph_url = format!("http://{}/v1/graph", free.local_addr().unwrap());
    drop(free);
    let mut pe = PolicyEngine::start(&graph_url, &state_line(state.path())).await;
    pe.wait_serving("stable", "x86_64", false, "1").await;
    let (status, ready) = pe.readyz().await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["details"]["source"], "disk");
    let age_seconds = ready["details"]["age_seconds"].as_i64().unwrap();
    assert!(age_seconds > a_year, "{ready}");
    let metric = pe.metric(&age("stable", "x86_64")).await.unwrap();
    assert!(metric > a_year as f64, "{metric}");
    pe.process.line_with("dated in the future").await;
}

#[actix_web::test]
async fn a_symlink_planted_at_the_temporary_path_is_not_followed() {
    let fake = FakeGraphBuilder::start();
    let one = graph("1");
    fake.set_graph("stable", "x86_64", &one);
    fake.set_listing(listing(&[("stable", "x86_64", &one)]));
    let state = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let victim = elsewhere.path().join("precious");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, state.path().join("snapshot.json.tmp")).unwrap();
    let pe = PolicyEngine::start(&fake.graph_url(), &state_line(state.path())).await;
    pe.wait_serving("stable", "x86_64", false, "1").await;
    wait_saved(state.path(), |s| saved_versions(s).len() == 2).await;
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let saved = std::fs::symlink_metadata(state.path().join("snapshot.json")).unwrap();
    assert!(saved.file_type().is_file(), "{saved:?}");
    fake.stop().await;
}

#[actix_web::test]
async fn a_file_size_limit_is_a_counted_write_error() {
    let fake = FakeGraphBuilder::start();
    // A snapshot of several kilobytes; the limit is 512 bytes.
    let one = graph_padded("1", 4096);
    fake.set_graph("stable", "x86_64", &one);
    fake.set_listing(listing(&[("stable", "x86_64", &one)]));
    let state = tempfile::tempdir().unwrap();
    let mut pe =
        PolicyEngine::start_with(&fake.graph_url(), &state_line(state.path()), Some(1)).await;
    pe.wait_serving("stable", "x86_64", false, "1").await;
    let write_errors = r#"fcos_cincinnati_pe_state_errors_total{operation="write"}"#;
    pe.wait_metric(write_errors, |v| v >= 1.0).await;
    assert!(
        pe.process.child.try_wait().unwrap().is_none(),
        "{}",
        pe.process.log()
    );
    pe.wait_serving("stable", "x86_64", true, "1").await;
    let logged = pe.process.line_with("cannot save the snapshot").await;
    assert!(logged.contains("File too large"), "{logged}");
    // Nothing half-written is left behind.
    let left: Vec<_> = std::fs::read_dir(state.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    fake.stop().await;
}
