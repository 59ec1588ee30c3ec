//! End to end: a real upstream serving the fixture documents, the real
//! graph-builder reading it, the real policy-engine reading the
//! graph-builder, all over loopback HTTP.

mod support;

use support::*;

const STREAMS: &str = "stable = [\"x86_64\", \"aarch64\", \"ppc64le\"]";

#[actix_web::test]
async fn graph_builder_serves_both_schemes_for_every_arch() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;

    // OSTree graphs: releases with a commit for the arch; 32.1.0 is
    // OCI-only and absent.
    let x86 = get_graph(&stack.gb("basearch=x86_64&stream=stable")).await;
    assert_eq!(
        versions(&x86),
        ["30.1.0", "30.2.0", "31.1.0", "31.2.0", "32.2.0"]
    );
    assert_eq!(
        edges(&x86),
        pairs(&[
            ("30.1.0", "30.2.0"),
            ("30.2.0", "31.2.0"),
            ("31.2.0", "32.2.0")
        ])
    );
    assert_eq!(x86["nodes"][0]["payload"], "c30-1-x86");
    // `oci=false` and `oci=0` are the same graph.
    for flag in ["false", "0"] {
        let same = get_graph(&stack.gb(&format!("basearch=x86_64&stream=stable&oci={flag}"))).await;
        assert_eq!(same, x86);
    }

    // OCI graphs: releases without oci-images are absent, OCI-only ones present.
    for flag in ["true", "1"] {
        let oci = get_graph(&stack.gb(&format!("basearch=x86_64&stream=stable&oci={flag}"))).await;
        assert_eq!(versions(&oci), ["31.1.0", "31.2.0", "32.1.0", "32.2.0"]);
        assert_eq!(
            edges(&oci),
            pairs(&[
                ("31.2.0", "32.1.0"),
                ("31.2.0", "32.2.0"),
                ("32.1.0", "32.2.0")
            ])
        );
        assert_eq!(
            oci["nodes"][2]["payload"],
            "quay.io/fedora/fedora-coreos@sha256:o32-1-x86"
        );
        assert_eq!(
            oci["nodes"][2]["metadata"]["org.fedoraproject.coreos.scheme"],
            "oci"
        );
        assert_eq!(
            oci["nodes"][2]["metadata"]["org.fedoraproject.coreos.releases.age_index"],
            "4"
        );
    }

    let ppc = get_graph(&stack.gb("basearch=ppc64le&stream=stable")).await;
    assert_eq!(versions(&ppc), ["30.2.0", "31.1.0", "31.2.0"]);
    assert_eq!(edges(&ppc), pairs(&[("30.2.0", "31.2.0")]));
    let ppc_oci = get_graph(&stack.gb("basearch=ppc64le&stream=stable&oci=true")).await;
    assert_eq!(versions(&ppc_oci), ["31.2.0", "32.1.0"]);
    assert_eq!(edges(&ppc_oci), pairs(&[("31.2.0", "32.1.0")]));

    let arm = get_graph(&stack.gb("basearch=aarch64&stream=stable")).await;
    assert_eq!(versions(&arm), ["30.1.0", "30.2.0", "31.1.0", "31.2.0"]);
    let arm_oci = get_graph(&stack.gb("basearch=aarch64&stream=stable&oci=true")).await;
    assert_eq!(versions(&arm_oci), ["31.1.0", "31.2.0", "32.1.0", "32.2.0"]);

    // Metrics under the production names.
    let status = stack.graph_builder.status_addr;
    assert_eq!(
        metric(
            status,
            r#"fcos_cincinnati_gb_scraper_graph_final_releases{basearch="x86_64",stream="stable",type="oci"}"#
        )
        .await,
        Some(4.0)
    );
    // Three from this test, one from the policy-engine's replica.
    assert_eq!(
        metric(
            status,
            r#"fcos_cincinnati_gb_cache_graph_requests_total{basearch="x86_64",stream="stable",type="checksum"}"#
        )
        .await,
        Some(4.0)
    );
    assert!(metric(
        status,
        r#"fcos_cincinnati_gb_scraper_upstream_scrapes_total{stream="stable"}"#
    )
    .await
    .is_some_and(|n| n >= 1.0));
    stack.stop().await;
}

#[actix_web::test]
async fn barrier_and_deadend_metadata_reach_clients() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;

    let graph = get_graph(&stack.pe("basearch=x86_64&stream=stable&rollout_wariness=0")).await;
    let meta = |i: usize| graph["nodes"][i]["metadata"].clone();
    assert_eq!(meta(1)["org.fedoraproject.coreos.updates.barrier"], "true");
    assert_eq!(
        meta(1)["org.fedoraproject.coreos.updates.barrier_reason"],
        "generic"
    );
    assert_eq!(meta(2)["org.fedoraproject.coreos.updates.deadend"], "true");
    assert_eq!(
        meta(2)["org.fedoraproject.coreos.updates.deadend_reason"],
        "https://example.org/deadend"
    );
    assert_eq!(
        meta(3)["org.fedoraproject.coreos.updates.barrier_reason"],
        "https://example.org/barrier"
    );
    // Nothing leaves the dead-end, and a node on 30.1.0 must pass the barrier.
    let all = edges(&graph);
    assert!(all.iter().all(|(from, _)| from != "31.1.0"), "{all:?}");
    assert!(!all.contains(&("30.1.0".to_string(), "31.2.0".to_string())));
    stack.stop().await;
}

#[actix_web::test]
async fn rollout_midway_is_offered_by_wariness() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;
    let to_rollout = ("31.2.0".to_string(), "32.2.0".to_string());

    // Progress is 0.6 at MIDWAY: wariness up to 0.6 sees the rollout.
    for (wariness, offered) in [
        ("0", true),
        ("0.599999", true),
        ("0.6", true),
        ("0.600001", false),
        ("1", false),
        ("7", false),
        ("-1", true),
    ] {
        let graph = get_graph(&stack.pe(&format!(
            "basearch=x86_64&stream=stable&rollout_wariness={wariness}"
        )))
        .await;
        assert_eq!(
            edges(&graph).contains(&to_rollout),
            offered,
            "wariness {wariness}"
        );
        // Nodes are never hidden, only edges.
        assert_eq!(versions(&graph).len(), 5);
    }

    // Without rollout_wariness the node UUID decides, the same way every time.
    let uuid_wariness = |uuid: &str| commons::rollout::wariness_from_uuid(uuid);
    let (eager, wary) = (
        "00000000000000000000000000000000",
        "0123456789abcdef0123456789abcdef",
    );
    assert!(uuid_wariness(eager) < 0.6 && uuid_wariness(wary) > 0.6);
    for (uuid, offered) in [(eager, true), (wary, false)] {
        for _ in 0..2 {
            let graph = get_graph(&stack.pe(&format!(
                "basearch=x86_64&stream=stable&os_version=31.2.0&os_checksum=c31-2-x86&group=default&node_uuid={uuid}&platform=metal"
            )))
            .await;
            assert_eq!(edges(&graph).contains(&to_rollout), offered, "{uuid}");
        }
    }

    // The graph-builder's raw graph always has every edge.
    let raw = get_graph(&stack.gb("basearch=x86_64&stream=stable")).await;
    assert!(edges(&raw).contains(&to_rollout));

    // The OCI graph is throttled the same way; the finished 32.1.0 rollout
    // is offered to everyone.
    let oci =
        get_graph(&stack.pe("basearch=x86_64&stream=stable&oci=true&rollout_wariness=1")).await;
    assert_eq!(edges(&oci), pairs(&[("31.2.0", "32.1.0")]));
    let status = stack.policy_engine.status_addr;
    assert!(metric(
        status,
        "fcos_cincinnati_pe_v1_graph_incoming_requests_total"
    )
    .await
    .is_some_and(|n| n >= 12.0));
    assert_eq!(
        metric(status, "fcos_cincinnati_pe_v1_graph_unique_uuids_total").await,
        Some(2.0)
    );
    stack.stop().await;
}

#[actix_web::test]
async fn rollout_progress_follows_the_clock() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    // Before the start nobody gets it; after the end everybody does.
    for (now, offered_to_careful) in [
        (1_800_000_000 - 1, false),
        (1_800_000_000 + 100 * 60 + 1, true),
    ] {
        let stack = Stack::start(&upstream, STREAMS, now);
        stack.wait_ready().await;
        let to_rollout = ("31.2.0".to_string(), "32.2.0".to_string());
        let eager =
            get_graph(&stack.pe("basearch=x86_64&stream=stable&rollout_wariness=0.000001")).await;
        let careful =
            get_graph(&stack.pe("basearch=x86_64&stream=stable&rollout_wariness=1")).await;
        assert_eq!(
            edges(&eager).contains(&to_rollout),
            offered_to_careful,
            "at {now}"
        );
        assert_eq!(
            edges(&careful).contains(&to_rollout),
            offered_to_careful,
            "at {now}"
        );
        stack.stop().await;
    }
}

#[actix_web::test]
async fn policy_engine_follows_upstream_changes() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;
    let query = "basearch=x86_64&stream=stable&rollout_wariness=0";
    let before = get_graph(&stack.pe(query)).await;
    assert_eq!(versions(&before).len(), 5);

    // Release engineering publishes 33.1.0 as a barrier and marks 32.2.0 a dead-end.
    let (index, updates) = fixture_with_new_release("stable");
    let mut updates: serde_json::Value = serde_json::from_slice(&updates).unwrap();
    updates["releases"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"version": "32.2.0", "metadata": {"deadend": {"reason": "bug"}}}));
    upstream.set("/stable/releases.json", Canned::Body(index));
    upstream.set(
        "/stable/updates.json",
        Canned::Body(updates.to_string().into_bytes()),
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let after = loop {
        let graph = get_graph(&stack.pe(query)).await;
        if versions(&graph).len() == 6 {
            break graph;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the policy-engine never saw 33.1.0"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        edges(&after),
        pairs(&[
            ("30.1.0", "30.2.0"),
            ("30.2.0", "31.2.0"),
            ("31.2.0", "32.2.0"),
            ("31.2.0", "33.1.0"),
        ])
    );
    stack.stop().await;
}

#[actix_web::test]
async fn gzip_is_offered_and_cors_allows_the_graph_browser() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    let stack = Stack::start(&upstream, STREAMS, MIDWAY);
    stack.wait_ready().await;
    let plain = reqwest::Client::builder().no_gzip().build().unwrap();
    for url in [
        stack.gb("basearch=x86_64&stream=stable&oci=true"),
        stack.pe("basearch=x86_64&stream=stable&oci=true"),
    ] {
        let response = plain
            .get(&url)
            .header("Accept-Encoding", "gzip")
            .header("Origin", "https://builds.coreos.fedoraproject.org")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-encoding"], "gzip");
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        assert_eq!(response.headers()["content-type"], "application/json");
        let zipped = response.bytes().await.unwrap();
        let identity = plain.get(&url).send().await.unwrap();
        assert!(identity.headers().get("content-encoding").is_none());
        let identity = identity.bytes().await.unwrap();
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&zipped[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, identity);
    }
    stack.stop().await;
}
