//! End to end: the policy-engine helping the fleet move from OSTree to OCI.
//! A population of synthetic clients (on OSTree, on OCI, booted from a known
//! bad digest, repeating, with unknown payloads) polls the real services.

mod support;

use std::sync::Arc;
use support::*;

const STREAMS: &str = "stable = [\"x86_64\", \"aarch64\"]";
const NOW: i64 = 1_000 + 3600;
const REPO: &str = "quay.io/fedora/fedora-coreos";

fn transition_doc(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture("transition", name)).unwrap()).unwrap()
}

/// The published payload of `version` for x86_64 under a scheme.
fn payload(version: &str, oci: bool) -> String {
    let index = transition_doc("releases.json");
    let release = index["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == version)
        .unwrap()
        .clone();
    let (list, field) = if oci {
        ("oci-images", "digest-ref")
    } else {
        ("commits", "checksum")
    };
    release[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["architecture"] == "x86_64")
        .unwrap()[field]
        .as_str()
        .unwrap()
        .to_string()
}

fn bad_pullspec() -> String {
    let aliases = transition_doc("digest-aliases.json");
    format!(
        "{REPO}@{}",
        aliases["41.2.0"]["x86_64"]["bad"].as_str().unwrap()
    )
}

struct Transition {
    upstream: Upstream,
    stack: Stack,
    /// A second policy-engine on the same graph-builder, without aliases.
    plain: service_kit::server::Running,
}

impl Transition {
    fn start() -> Transition {
        let upstream = Upstream::start();
        for doc in ["releases.json", "updates.json"] {
            upstream.set(
                &format!("/stable/{doc}"),
                Canned::Body(std::fs::read(fixture("transition", doc)).unwrap()),
            );
        }
        let graph_builder =
            fcos_graph_builder::start(graph_builder_settings(&upstream, STREAMS)).unwrap();
        let graph_url = format!("http://{}/v1/graph", graph_builder.service_addr);
        let mut settings = policy_engine_settings(&graph_url);
        settings.digest_aliases = Some(
            fcos_policy_engine::aliases::DigestAliases::load(&fixture(
                "transition",
                "digest-aliases.json",
            ))
            .unwrap(),
        );
        let policy_engine =
            fcos_policy_engine::start_with_clock(settings, Arc::new(|| NOW)).unwrap();
        let plain = fcos_policy_engine::start_with_clock(
            policy_engine_settings(&graph_url),
            Arc::new(|| NOW),
        )
        .unwrap();
        Transition {
            upstream,
            stack: Stack {
                graph_builder,
                policy_engine,
            },
            plain,
        }
    }

    async fn stop(self) {
        self.stack.stop().await;
        self.plain.stop().await.unwrap();
        self.upstream.stop().await;
    }
}

fn zincati_query(version: &str, checksum: &str, uuid: &str, oci: bool) -> String {
    let checksum: String = url::form_urlencoded::byte_serialize(checksum.as_bytes()).collect();
    format!(
        "basearch=x86_64&stream=stable&os_version={version}&os_checksum={checksum}&group=default&node_uuid={uuid}&platform=metal{}",
        if oci { "&oci=true" } else { "" }
    )
}

#[actix_web::test]
async fn bad_digest_nodes_find_themselves_and_others_are_unchanged() {
    let t = Transition::start();
    t.stack.wait_ready().await;
    let pe = |q: &str| t.stack.pe(q);
    let plain = |q: &str| format!("http://{}/v1/graph?{q}", t.plain.service_addr);

    // A node booted from the bad image of 41.2.0.
    let bad = bad_pullspec();
    let query = zincati_query("41.2.0", &bad, "0123456789abcdef0123456789abcdef", true);
    let (_, body) = get(&pe(&query)).await;
    let graph: serde_json::Value = serde_json::from_str(&body).unwrap();
    let nodes = graph["nodes"].as_array().unwrap();
    let own = nodes
        .iter()
        .position(|n| n["payload"] == bad.as_str())
        .expect("the client finds itself");
    assert_eq!(nodes[own]["version"], "41.2.0");
    // Zincati's choice: the out-edge target with the highest age_index.
    let age = |i: u64| {
        nodes[i as usize]["metadata"]["org.fedoraproject.coreos.releases.age_index"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let target = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e[0] == own as u64)
        .map(|e| e[1].as_u64().unwrap())
        .max_by_key(|&i| age(i))
        .expect("the client has an update");
    assert_eq!(
        nodes[target as usize]["version"], "42.2.0",
        "the newest release"
    );
    // The update target keeps its published payload, and apart from the
    // client's own node the response is what everyone gets.
    assert_eq!(nodes[target as usize]["payload"], payload("42.2.0", true));
    let good_query = zincati_query(
        "41.2.0",
        &payload("41.2.0", true),
        "0123456789abcdef0123456789abcdef",
        true,
    );
    let (_, good_body) = get(&pe(&good_query)).await;
    assert_eq!(body.replace(&bad, &payload("41.2.0", true)), good_body);
    // The raw graph never changes.
    let raw = get_graph(&t.stack.gb("basearch=x86_64&stream=stable&oci=true")).await;
    assert!(!serde_json::to_string(&raw).unwrap().contains(&bad));

    // Everyone else gets byte for byte what a policy-engine without
    // aliases serves.
    let others = [
        zincati_query(
            "41.2.0",
            &payload("41.2.0", true),
            "11111111111111111111111111111111",
            true,
        ),
        zincati_query(
            "41.2.0",
            &payload("41.2.0", false),
            "22222222222222222222222222222222",
            false,
        ),
        zincati_query(
            "40.1.0",
            &payload("40.1.0", false),
            "33333333333333333333333333333333",
            false,
        ),
        zincati_query(
            "42.1.0",
            &payload("42.1.0", true),
            "44444444444444444444444444444444",
            true,
        ),
        // The bad pullspec on another arch or as an OSTree checksum is not an alias.
        zincati_query("41.2.0", &bad, "55555555555555555555555555555555", false),
        zincati_query("41.1.0", &bad, "66666666666666666666666666666666", true),
    ];
    for query in &others {
        assert_eq!(get(&pe(query)).await, get(&plain(query)).await, "{query}");
    }
    let substitutions =
        r#"fcos_cincinnati_pe_digest_alias_substitutions_total{basearch="x86_64",stream="stable"}"#;
    assert_eq!(
        metric(t.stack.policy_engine.status_addr, substitutions).await,
        Some(1.0)
    );
    t.stop().await;
}

/// Sends the queries with up to 32 in flight, expecting 200s.
async fn poll_all(queries: Vec<String>, base: &str) {
    use futures_util::StreamExt;
    let client = client();
    let mut responses = futures_util::stream::iter(queries)
        .map(|q| {
            let client = client.clone();
            let url = format!("{base}?{q}");
            async move { client.get(&url).send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(32);
    while let Some(status) = responses.next().await {
        assert_eq!(status, 200);
    }
}

fn uuid(i: usize) -> String {
    format!(
        "{:032x}",
        (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
}

#[actix_web::test]
async fn distinct_node_estimates_are_within_three_percent() {
    let t = Transition::start();
    t.stack.wait_ready().await;
    let base = format!("http://{}/v1/graph", t.stack.policy_engine.service_addr);
    let status = t.stack.policy_engine.status_addr;
    let versions = ["40.1.0", "41.1.0", "41.2.0", "42.1.0", "42.2.0"];
    let payloads: std::collections::HashMap<(&str, bool), String> = versions
        .iter()
        .flat_map(|&v| {
            [
                ((v, false), payload(v, false)),
                (
                    (v, true),
                    if v == "40.1.0" {
                        String::new()
                    } else {
                        payload(v, true)
                    },
                ),
            ]
        })
        .collect();
    // Node i: every fifth on OCI (on 41.1.0 and later; 40.1.0 has no
    // image), the others on OSTree, every thirteenth of those with a
    // payload that no graph has.
    let version_of = |i: usize| {
        if i.is_multiple_of(5) {
            versions[1 + (i / 5) % 4]
        } else {
            versions[(i / 5) % 5]
        }
    };
    let unknown_of = |i: usize| !i.is_multiple_of(5) && i.is_multiple_of(13);
    let node = |i: usize| -> String {
        let oci = i.is_multiple_of(5);
        let version = version_of(i);
        let checksum = if unknown_of(i) {
            format!("{i:064x}")
        } else {
            payloads[&(version, oci)].clone()
        };
        zincati_query(version, &checksum, &uuid(i), oci)
    };
    let mut sent = 0usize;
    let mut sketch_bytes = None;
    let mut unknown_requests = 0usize;
    for total in [10_000usize, 100_000] {
        // New nodes, and every tenth earlier node polling again.
        let repeats: Vec<usize> = (0..sent).step_by(10).collect();
        unknown_requests += (sent..total)
            .chain(repeats.iter().copied())
            .filter(|&i| unknown_of(i))
            .count();
        let queries: Vec<String> = (sent..total).chain(repeats).map(node).collect();
        poll_all(queries, &base).await;
        sent = total;

        let oci = (0..total).filter(|i| i.is_multiple_of(5)).count() as f64;
        let ostree = total as f64 - oci;
        let unknown = (0..total).filter(|&i| unknown_of(i)).count() as f64;
        for (series, truth) in [
            (
                r#"fcos_cincinnati_pe_active_nodes{basearch="x86_64",scheme="oci",stream="stable"}"#,
                oci,
            ),
            (
                r#"fcos_cincinnati_pe_active_nodes{basearch="x86_64",scheme="checksum",stream="stable"}"#,
                ostree,
            ),
            (
                r#"fcos_cincinnati_pe_unknown_payload_nodes{scheme="checksum",stream="stable"}"#,
                unknown,
            ),
        ] {
            let estimate = metric(status, series).await.unwrap();
            let error = (estimate - truth).abs() / truth;
            assert!(
                error < 0.03,
                "{series}: {estimate} for {truth} ({:.2}%)",
                error * 100.0
            );
        }
        // Every request with an unknown payload is counted.
        let requests = metric(
            status,
            r#"fcos_cincinnati_pe_unknown_payload_requests_total{scheme="checksum",stream="stable"}"#,
        )
        .await
        .unwrap();
        assert_eq!(requests as usize, unknown_requests);
        // Nodes per version of the graph (smaller sketches: within 10%).
        for version in versions {
            let series = format!(
                r#"fcos_cincinnati_pe_nodes_by_version{{stream="stable",version="{version}"}}"#
            );
            let estimate = metric(status, &series).await.unwrap();
            let truth = (0..total).filter(|&i| version_of(i) == version).count() as f64;
            assert!(
                (estimate - truth).abs() / truth < 0.1,
                "{version}: {estimate} for {truth}"
            );
        }
        // Memory does not grow with the population.
        let bytes = metric(status, "fcos_cincinnati_pe_fleet_sketch_bytes")
            .await
            .unwrap();
        if let Some(before) = sketch_bytes {
            assert_eq!(bytes, before);
        }
        sketch_bytes = Some(bytes);
    }
    t.stop().await;
}
