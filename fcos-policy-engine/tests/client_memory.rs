//! What anonymous clients can make the real `fcos-policy-engine` binary
//! keep: the per-client views they cause (one per group with target rules,
//! per set of hidden rollouts, per graph) stay within `cache.max_bytes`,
//! and the census series they cause (one per stream, group and platform)
//! within `census.max_group_series`, however many they cause.

mod stand_in;

use stand_in::{get, graph, graph_padded, listing, FakeGraphBuilder, PolicyEngine};
use std::time::Instant;

const MIB: u64 = 1024 * 1024;

/// Groups of the policy, each with a target rule, so that each has views
/// of its own.
const GROUPS: usize = 128;

/// A graph shaped as the graph-builder's: `releases` nodes of about 250
/// bytes (age index, scheme, a 64-digit checksum), every release with an
/// edge to the newest, `tag` in every version.
fn graph_of(releases: usize, tag: &str) -> Vec<u8> {
    let nodes: Vec<serde_json::Value> = (0..releases)
        .map(|i| {
            serde_json::json!({
                "version": format!("{tag}.{i}"),
                "metadata": {
                    "org.fedoraproject.coreos.releases.age_index": i.to_string(),
                    "org.fedoraproject.coreos.scheme": "checksum",
                    "org.fedoraproject.coreos.updates.release_notes": format!("https://example.com/{tag}/{i}"),
                },
                "payload": format!("{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15),
            })
        })
        .collect();
    let edges: Vec<[usize; 2]> = (0..releases.saturating_sub(1))
        .map(|i| [i, releases - 1])
        .collect();
    serde_json::json!({ "nodes": nodes, "edges": edges })
        .to_string()
        .into_bytes()
}

/// Every group polling every scope of two streams: 8 graphs of 500
/// releases (about 110 KB) times 128 groups would be 110 MB of views, all
/// of which the former cap of 128 views per graph let through. The cache
/// holds at most 4 MiB, as set, and the process grows by little more; a
/// view held is not rendered again, and a graph replaced takes its views
/// with it.
#[actix_web::test]
async fn views_anonymous_clients_cause_stay_within_the_cache_budget() {
    let fake = FakeGraphBuilder::start();
    let graph = graph_of(500, "1");
    let streams = ["stable", "testing"];
    let scopes: Vec<(&str, &str, &[u8])> = streams
        .iter()
        .flat_map(|s| [(*s, "x86_64", &graph[..]), (*s, "aarch64", &graph[..])])
        .collect();
    for (stream, basearch, body) in &scopes {
        fake.set_graph(stream, basearch, body);
    }
    fake.set_listing(listing(&scopes));
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let text: String = (0..GROUPS)
        .map(|g| format!("[groups.g{g}]\ndeny = [\"0.{g}\"]\n"))
        .collect();
    std::fs::write(&policy, text).unwrap();
    let max_bytes = 4 * MIB;
    let engine = PolicyEngine::start(
        &fake.graph_url(),
        &format!(
            "[policy]\npath = \"{}\"\n[cache]\nmax_bytes = {max_bytes}\n",
            policy.display()
        ),
    )
    .await;
    for (stream, basearch, _) in &scopes {
        for oci in [false, true] {
            engine.wait_serving(stream, basearch, oci, "1.0").await;
        }
    }
    let before = engine.process.memory("VmRSS");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let urls: Vec<String> = (0..GROUPS)
        .flat_map(|group| {
            let engine = &engine;
            scopes.iter().flat_map(move |(stream, basearch, _)| {
                [false, true].map(|oci| {
                    // No node UUID: the fleet census keeps nothing, so
                    // that the memory measured is the views'.
                    format!("{}&group=g{group}", engine.graph_url(stream, basearch, oci))
                })
            })
        })
        .collect();
    let requests = urls.len();
    // Four clients at once.
    let tasks: Vec<_> = urls
        .chunks(requests.div_ceil(4))
        .map(|urls| {
            let (client, urls, len) = (client.clone(), urls.to_vec(), graph.len());
            actix_web::rt::spawn(async move {
                for url in urls {
                    let response = client.get(&url).send().await.unwrap();
                    assert_eq!(response.status(), 200, "{url}");
                    assert_eq!(response.bytes().await.unwrap().len(), len, "{url}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let grown = (engine.process.memory("VmRSS")).saturating_sub(before);
    assert!(
        grown < 16 * MIB,
        "RSS grew by {:.1} MiB in {:?}",
        grown as f64 / MIB as f64,
        started.elapsed()
    );
    let renders = engine
        .metric("fcos_cincinnati_pe_view_renders_total")
        .await
        .unwrap();
    let held = engine
        .metric("fcos_cincinnati_pe_view_cache_bytes")
        .await
        .unwrap();
    let views = engine
        .metric("fcos_cincinnati_pe_view_cache_views")
        .await
        .unwrap();
    eprintln!(
        "{requests} requests in {:?}: {renders} views rendered, {views} held in {:.1} MiB, RSS +{:.1} MiB",
        started.elapsed(),
        held / MIB as f64,
        grown as f64 / MIB as f64
    );
    // Each request was a view of its own: all rendered, few kept.
    assert!(renders >= requests as f64, "{renders} renders");
    assert!(held <= max_bytes as f64, "{held} bytes held");
    assert!((1.0..=40.0).contains(&views), "{views} views held");
    assert!(held >= max_bytes as f64 / 2.0, "{held} bytes held");
    assert_eq!(
        engine
            .metric("fcos_cincinnati_pe_view_cache_max_bytes")
            .await,
        Some(max_bytes as f64)
    );

    // A view held is served again without rendering.
    let (stream, basearch, _) = scopes[0];
    let last = format!(
        "{}&group=g{}",
        engine.graph_url(stream, basearch, true),
        GROUPS - 1
    );
    assert_eq!(get(&last).await.0, 200);
    let renders_now = engine
        .metric("fcos_cincinnati_pe_view_renders_total")
        .await
        .unwrap();
    assert_eq!(get(&last).await.0, 200);
    assert_eq!(
        engine
            .metric("fcos_cincinnati_pe_view_renders_total")
            .await
            .unwrap(),
        renders_now
    );

    // New graphs everywhere: the old graphs' views go with them.
    let newer = graph_padded("2", 0);
    for (stream, basearch, _) in &scopes {
        fake.set_graph(stream, basearch, &newer);
    }
    let newer_scopes: Vec<(&str, &str, &[u8])> = scopes
        .iter()
        .map(|(s, b, _)| (*s, *b, &newer[..]))
        .collect();
    fake.set_listing(listing(&newer_scopes));
    for (stream, basearch, _) in &scopes {
        for oci in [false, true] {
            engine.wait_serving(stream, basearch, oci, "2").await;
        }
    }
    let held = engine
        .wait_metric("fcos_cincinnati_pe_view_cache_bytes", |bytes| {
            bytes < 64.0 * 1024.0
        })
        .await;
    assert!(held > 0.0, "the views of the new graphs are held");
    fake.stop().await;
}

/// Every (stream, group, platform) series a client can name: 2 streams,
/// 41 groups (40 of the policy and `other`), 26 platforms (25 and
/// `other`), 2,132 series of 64 KiB, 136 MB before the cap. With the
/// default cap, 256 series (16 MiB) are kept and the polls of the others
/// counted as refused; every poll is answered as usual.
#[actix_web::test]
async fn census_series_anonymous_clients_cause_stay_within_their_cap() {
    let fake = FakeGraphBuilder::start();
    let one = graph("1");
    let scopes: Vec<(&str, &str, &[u8])> =
        vec![("stable", "x86_64", &one), ("testing", "x86_64", &one)];
    for (stream, basearch, body) in &scopes {
        fake.set_graph(stream, basearch, body);
    }
    fake.set_listing(listing(&scopes));
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let text: String = (0..40).map(|g| format!("[groups.g{g}]\n")).collect();
    std::fs::write(&policy, text).unwrap();
    let engine = PolicyEngine::start(
        &fake.graph_url(),
        &format!("[policy]\npath = \"{}\"\n", policy.display()),
    )
    .await;
    for (stream, basearch, _) in &scopes {
        engine.wait_serving(stream, basearch, false, "1").await;
    }
    let platforms: Vec<String> = commons::fleet_policy::PLATFORMS
        .iter()
        .map(|p| p.to_string())
        .chain(["unknown-platform".to_string()])
        .collect();
    let groups: Vec<String> = (0..40)
        .map(|g| format!("g{g}"))
        .chain(["not-in-the-policy".to_string()])
        .collect();
    let mut urls = Vec::new();
    for (stream, basearch, _) in &scopes {
        for group in &groups {
            for platform in &platforms {
                urls.push(format!(
                    "{}&group={group}&platform={platform}&node_uuid={:032x}",
                    engine.graph_url(stream, basearch, false),
                    urls.len()
                ));
            }
        }
    }
    let series = urls.len() as f64;
    let before = engine.process.memory("VmRSS");
    let client = reqwest::Client::new();
    let tasks: Vec<_> = urls
        .chunks(urls.len().div_ceil(4))
        .map(|urls| {
            let (client, urls) = (client.clone(), urls.to_vec());
            actix_web::rt::spawn(async move {
                for url in urls {
                    let response = client.get(&url).send().await.unwrap();
                    assert_eq!(response.status(), 200, "{url}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let grown = (engine.process.memory("VmRSS")).saturating_sub(before);
    let refused = engine
        .metric("fcos_cincinnati_pe_active_nodes_by_group_refused_total")
        .await;
    let sketches = engine
        .metric("fcos_cincinnati_pe_fleet_sketch_bytes")
        .await
        .unwrap();
    eprintln!(
        "{series} series asked for: {refused:?} polls refused, sketches {:.1} MiB, RSS +{:.1} MiB",
        sketches / MIB as f64,
        grown as f64 / MIB as f64
    );
    assert!(
        grown < 32 * MIB,
        "RSS grew by {:.1} MiB",
        grown as f64 / MIB as f64
    );
    assert_eq!(refused, Some(series - 256.0));
    // 256 series by group of 64 KiB, and the 2 series by scope.
    assert_eq!(sketches, (258 * 64 * 1024) as f64);
    fake.stop().await;
}
