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

const SCOPES: [(&str, &str); 3] = [
    ("stable", "x86_64"),
    ("stable", "aarch64"),
    ("testing", "x86_64"),
];

/// The policy-engine's per-scope counters exist at 0 as soon as it knows
/// the scope (from the graph-builder or its state directory), before any
/// request for it, and the snapshot's source is exported.
#[actix_web::test]
async fn policy_engine_scope_series_exist_before_their_first_request() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    upstream.serve_fixture_as("stable", "testing");
    let state = tempfile::tempdir().unwrap();
    let state_line = format!("state_dir = \"{}\"\n", state.path().display());
    let stack = Stack::start_with(&upstream, STREAMS, MIDWAY, &state_line);
    stack.wait_ready().await;
    let pe = metrics_page(stack.policy_engine.status_addr).await;
    for (stream, basearch) in SCOPES {
        for scheme in ["checksum", "oci"] {
            for series in [
                format!(
                    r#"fcos_cincinnati_pe_scope_requests_total{{basearch="{basearch}",scheme="{scheme}",stream="{stream}"}} 0"#
                ),
                format!(
                    r#"fcos_cincinnati_pe_unknown_payload_requests_total{{scheme="{scheme}",stream="{stream}"}} 0"#
                ),
            ] {
                assert!(pe.lines().any(|l| l == series), "{series} missing:\n{pe}");
            }
        }
        let series = format!(
            r#"fcos_cincinnati_pe_digest_alias_substitutions_total{{basearch="{basearch}",stream="{stream}"}} 0"#
        );
        assert!(pe.lines().any(|l| l == series), "{series} missing");
    }
    let source =
        |source: &str| format!(r#"fcos_cincinnati_pe_snapshot_source{{source="{source}"}}"#);
    let status = stack.policy_engine.status_addr;
    assert_eq!(metric(status, &source("graph_builder")).await, Some(1.0));
    assert_eq!(metric(status, &source("disk")).await, Some(0.0));
    assert_eq!(metric(status, &source("none")).await, Some(0.0));

    // Restarted with the graph-builder gone: from its state directory.
    let path = state.path().join("snapshot.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline, "no snapshot saved");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let graph_url = format!("http://{}/v1/graph", stack.graph_builder.service_addr);
    stack.stop().await;
    let pe =
        fcos_policy_engine::start(policy_engine_settings_with(&graph_url, &state_line)).unwrap();
    assert_eq!(readyz(&pe).await.0, 200);
    assert_eq!(metric(pe.status_addr, &source("disk")).await, Some(1.0));
    assert_eq!(
        metric(pe.status_addr, &source("graph_builder")).await,
        Some(0.0)
    );
    let series = r#"fcos_cincinnati_pe_scope_requests_total{basearch="aarch64",scheme="oci",stream="stable"}"#;
    assert_eq!(metric(pe.status_addr, series).await, Some(0.0));
    pe.stop().await.unwrap();
}

/// A `node_uuid` that is not 32 hex digits is answered like any other
/// request, but counted as malformed, not as a node; requests are counted
/// by scope, and unknown payloads by stream and scheme.
#[actix_web::test]
async fn malformed_node_uuids_are_answered_but_not_counted_as_nodes() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;
    let status = stack.policy_engine.status_addr;
    let malformed = "fcos_cincinnati_pe_v1_graph_malformed_uuids_total";
    assert_eq!(metric(status, malformed).await, Some(0.0));
    let scope = "basearch=x86_64&stream=stable&os_version=32.1.0";
    let bad = [
        "not-a-uuid",
        "e0f3745b-108f-471c-bd48-83c6fbed8cdd",
        "e0f3745b108f471cbd4883c6fbed8cd",
        "e0f3745b108f471cbd4883c6fbed8cdd0",
        "g0f3745b108f471cbd4883c6fbed8cdd",
    ];
    for uuid in bad {
        let (code, body) = get(&stack.pe(&format!("{scope}&node_uuid={uuid}"))).await;
        assert_eq!(code, 200, "{uuid}: {body}");
    }
    for uuid in [
        "E0F3745B108F471CBD4883C6FBED8CDD",
        "e0f3745b108f471cbd4883c6fbed8cdd",
    ] {
        let query = format!("{scope}&node_uuid={uuid}&os_checksum=nowhere");
        assert_eq!(get(&stack.pe(&query)).await.0, 200);
    }
    assert_eq!(metric(status, malformed).await, Some(bad.len() as f64));
    assert_eq!(
        metric(status, "fcos_cincinnati_pe_v1_graph_unique_uuids_total").await,
        Some(2.0)
    );
    let scoped = |name: &str| {
        format!(
            r#"fcos_cincinnati_pe_{name}{{basearch="x86_64",scheme="checksum",stream="stable"}}"#
        )
    };
    assert_eq!(metric(status, &scoped("active_nodes")).await, Some(2.0));
    assert_eq!(
        metric(status, &scoped("scope_requests_total")).await,
        Some(bad.len() as f64 + 2.0)
    );
    let unknown =
        |name: &str| format!(r#"fcos_cincinnati_pe_{name}{{scheme="checksum",stream="stable"}}"#);
    assert_eq!(
        metric(status, &unknown("unknown_payload_requests_total")).await,
        Some(2.0)
    );
    assert_eq!(
        metric(status, &unknown("unknown_payload_nodes")).await,
        Some(2.0)
    );
    stack.stop().await;
}

/// A metrics page as families: name → (type, label names, label values).
type Families = std::collections::BTreeMap<
    String,
    (
        String,
        std::collections::BTreeSet<String>,
        Vec<(String, String)>,
    ),
>;

/// Parses a Prometheus text page: each family's type (`# TYPE`), the
/// label names of its samples (without a histogram's `le`) and their
/// values.
fn families(text: &str) -> Families {
    let mut families = Families::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.insert(
                name.to_string(),
                (kind.to_string(), Default::default(), vec![]),
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap();
        let sample = &line[..name_end];
        let family = [
            sample,
            sample.trim_end_matches("_bucket"),
            sample.trim_end_matches("_sum"),
            sample.trim_end_matches("_count"),
        ]
        .into_iter()
        .find(|f| families.contains_key(*f))
        .unwrap_or_else(|| panic!("sample without a family: {line}"))
        .to_string();
        let (_, names, values) = families.get_mut(&family).unwrap();
        let mut rest = &line[name_end..];
        if let Some(labels) = rest.strip_prefix('{') {
            rest = labels;
            while let Some((key, after)) = rest.split_once("=\"") {
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next().unwrap() {
                        (_, '\\') => value.push(chars.next().unwrap().1),
                        (i, '"') => break i,
                        (_, c) => value.push(c),
                    }
                };
                if key != "le" {
                    names.insert(key.to_string());
                    values.push((key.to_string(), value));
                }
                rest = after[end + 1..].trim_start_matches(',');
                if rest.starts_with('}') {
                    break;
                }
            }
        }
    }
    families
}

/// The tables `| metric | type | labels | meaning |` of the sections of
/// docs/metrics.md named `## <section>`: name → (type, label names).
fn documented(doc: &str, section: &str) -> Families {
    let mut documented = Families::new();
    let mut in_section = false;
    let mut in_table = false;
    for line in doc.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            in_section = title == section;
            continue;
        }
        if !in_section {
            continue;
        }
        if line.starts_with("| metric | type | labels |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        // The first three cells hold no `|`.
        let cells: Vec<&str> = line.split('|').skip(1).map(str::trim).collect();
        let ticked = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        let kind = cells[1].split(' ').next().unwrap().to_string();
        for name in ticked(cells[0]) {
            documented.insert(
                name,
                (kind.clone(), ticked(cells[2]).into_iter().collect(), vec![]),
            );
        }
    }
    assert!(!documented.is_empty(), "no table in section {section}");
    documented
}

/// docs/metrics.md against what `/metrics` shows: every metric of each
/// service is documented in its section (or under both services) with its
/// type and labels, every documented one is exported, and every value of a
/// label of fixed words (`handler`, `kind`, `source`, …) is named in the
/// service's section.
#[actix_web::test]
async fn documented_metrics_are_the_exported_ones() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[groups.g]\npaused = true\n").unwrap();
    let policy_section = format!("[policy]\npath = \"{}\"\n", policy.display());
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    upstream.serve_fixture_as("stable", "testing");
    let stack = Stack::start_with(
        &upstream,
        &format!("{STREAMS}\n{policy_section}"),
        MIDWAY,
        &format!("{policy_section}[rollouts]\ninterval_secs = 1\n"),
    );
    stack.wait_ready().await;
    // A request that makes every per-node series appear: a known version,
    // a payload in no graph, a group and a platform.
    let query = "basearch=x86_64&stream=stable&os_version=31.2.0&os_checksum=nowhere&group=g&platform=metal&node_uuid=e0f3745b108f471cbd4883c6fbed8cdd";
    assert_eq!(get(&stack.pe(query)).await.0, 200);
    // A node offered 32.2.0 that arrives: the rollout series appear at the
    // next evaluation.
    let node = "basearch=x86_64&stream=stable&platform=metal&node_uuid=0a4f3745b108f471cbd4883c6fbed8cd&rollout_wariness=0";
    for version in ["31.2.0", "32.2.0"] {
        let url = stack.pe(&format!("{node}&os_version={version}"));
        assert_eq!(get(&url).await.0, 200);
    }
    let arrival = r#"fcos_cincinnati_pe_rollout_arrival_seconds{basearch="x86_64",quantile="0.5",release="32.2.0",scheme="checksum",stream="stable"}"#;
    wait_metric(stack.policy_engine.status_addr, arrival, |v| v >= 0.0).await;
    assert_eq!(
        metric(
            stack.policy_engine.status_addr,
            "fcos_cincinnati_pe_policy_loaded_timestamp_seconds"
        )
        .await,
        Some(MIDWAY as f64)
    );

    let both = documented(&doc, "Both services");
    for (section, status) in [
        ("fcos-graph-builder", stack.graph_builder.status_addr),
        ("fcos-policy-engine", stack.policy_engine.status_addr),
    ] {
        let mut expected = documented(&doc, section);
        expected.extend(both.clone());
        let exported = families(&metrics_page(status).await);
        let section_text = doc
            .split(&format!("\n## {section}\n"))
            .nth(1)
            .unwrap()
            .split("\n## ")
            .next()
            .unwrap();
        for (name, (kind, labels, values)) in &exported {
            let Some((documented_kind, documented_labels, _)) = expected.get(name) else {
                panic!("{name} is exported by {section} but not documented");
            };
            assert_eq!(kind, documented_kind, "type of {name}");
            assert_eq!(labels, documented_labels, "labels of {name}");
            for (label, value) in values {
                if ["handler", "kind", "source", "result", "operation", "reason"]
                    .contains(&label.as_str())
                {
                    assert!(
                        section_text.contains(&format!("`{value}`")),
                        "{name}: {label} value {value} is not documented in {section}"
                    );
                }
            }
        }
        // Metrics of a section this stack does not configure (their row
        // starts "with `[registry]`" or "with `[rollouts]`"), and of a
        // halted rollout ("while a rollout is halted"), are checked by
        // their own tests.
        let conditional = |name: &str| {
            doc.lines().any(|line| {
                line.starts_with(&format!("| `{name}` |"))
                    && line.split('|').nth(4).is_some_and(|meaning| {
                        let meaning = meaning.trim_start();
                        meaning.starts_with("with `[registry]`")
                            || meaning.starts_with("with `[rollouts]`")
                            || meaning.starts_with("while a rollout is halted")
                    })
            })
        };
        for name in expected.keys() {
            assert!(
                exported.contains_key(name) || conditional(name),
                "{name} is documented for {section} but not exported"
            );
        }
    }
    stack.stop().await;
}

/// The graph-builder counts the 304s it answers as graphs served, as
/// docs/metrics.md says.
#[actix_web::test]
async fn graph_builder_counts_304s_as_graphs_served() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `fcos_cincinnati_gb_cache_graph_requests_total`"))
        .unwrap();
    assert!(row.contains("304s"), "{row}");
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let gb = fcos_graph_builder::start(graph_builder_settings(&upstream, "stable = [\"x86_64\"]"))
        .unwrap();
    wait_ready(&gb).await;
    let url = format!(
        "http://{}/v1/graph?basearch=x86_64&stream=stable",
        gb.service_addr
    );
    let first = client().get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].clone();
    let again = client()
        .get(&url)
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let series = r#"fcos_cincinnati_gb_cache_graph_requests_total{basearch="x86_64",stream="stable",type="checksum"}"#;
    assert_eq!(metric(gb.status_addr, series).await, Some(2.0));
    upstream.stop().await;
    gb.stop().await.unwrap();
}

/// The real binary: a SIGHUP that finds the policy file unchanged is not
/// counted as a reload (as docs/metrics.md says); one after a change is.
#[actix_web::test]
async fn sighup_on_an_unchanged_policy_file_is_not_a_reload() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `fcos_cincinnati_pe_policy_reloads_total`"))
        .unwrap();
    assert!(row.contains("SIGHUP"), "{row}");
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let mut served = serve_with_policy(
        &upstream,
        "stable = [\"x86_64\"]",
        "[groups.g]\npaused = true\n",
        "",
    )
    .await;
    let hangup = |served: &ServedWithPolicy| {
        let code = std::process::Command::new("kill")
            .args(["-HUP", &served.process.child.id().to_string()])
            .status()
            .unwrap();
        assert!(code.success());
    };
    let reloads =
        |result: &str| format!(r#"fcos_cincinnati_pe_policy_reloads_total{{result="{result}"}}"#);
    wait_metric(served.pe_status, &reloads("success"), |v| v == 0.0).await;
    hangup(&served);
    served
        .process
        .line_with("SIGHUP: reloading the policy file")
        .await;
    // Ordering only: the check of that SIGHUP reads the file before it
    // changes (a later read would see the change and count it once all
    // the same).
    actix_web::rt::time::sleep(std::time::Duration::from_millis(500)).await;
    std::fs::write(&served.policy, "[groups.g]\npaused = false\n").unwrap();
    hangup(&served);
    wait_metric(served.pe_status, &reloads("success"), |v| v >= 1.0).await;
    assert_eq!(
        metric(served.pe_status, &reloads("success")).await,
        Some(1.0)
    );
    assert_eq!(
        metric(served.pe_status, &reloads("failure")).await,
        Some(0.0)
    );
    upstream.stop().await;
}
