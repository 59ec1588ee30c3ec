//! The configuration samples shipped in `dist/` load, and say what the
//! defaults are.

use commons::config::ServiceSettings;
use std::path::Path;

fn dist(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dist")
        .join(name)
}

#[test]
fn graph_builder_sample_is_the_defaults() {
    let loaded = fcos_graph_builder::Settings::load(&dist("fcos-graph-builder.toml")).unwrap();
    assert_eq!(loaded, fcos_graph_builder::Settings::default());
}

#[test]
fn policy_engine_sample_is_the_defaults() {
    let loaded = fcos_policy_engine::Settings::load(&dist("fcos-policy-engine.toml")).unwrap();
    assert_eq!(loaded, fcos_policy_engine::Settings::default());
}

#[test]
fn combined_sample_loads() {
    let loaded = fcos_cincinnati::serve::Settings::load(&dist("fcos-cincinnati.toml")).unwrap();
    assert_eq!(
        loaded.graph_builder,
        fcos_graph_builder::Settings::default()
    );
    assert!(!loaded.graph_url_given);
    assert_eq!(
        loaded.policy_engine,
        fcos_policy_engine::Settings::default()
    );
}

/// A time within the embedded sample's long rollout (2025-12-01 to
/// 2030-12-01, see `dist/sample/generate.py`): 2026-06-01T00:00:00Z. Pinned,
/// so the test does not depend on the day it runs.
const IN_SAMPLE_ROLLOUT: i64 = 1_780_272_000;

#[test]
fn embedded_sample_builds_valid_graphs_with_every_feature() {
    use commons::graph::{Graph, Scheme};
    use commons::metadata::{ReleaseIndex, UpdatesMetadata};
    let mut seen = (false, false, false, false);
    for stream in fcos_cincinnati::sample::STREAMS {
        let (releases, updates) = fcos_cincinnati::sample::documents(stream).unwrap();
        let index = ReleaseIndex::parse(releases, Some(stream)).unwrap();
        let updates = UpdatesMetadata::parse(updates, Some(stream)).unwrap();
        for basearch in fcos_cincinnati::sample::BASEARCHES {
            for scheme in Scheme::ALL {
                let graph = Graph::from_documents(&index, &updates, basearch, scheme);
                graph.validate().unwrap();
                assert!(!graph.nodes.is_empty(), "{stream}/{basearch}/{scheme}");
                seen.0 |= graph.nodes.iter().any(|n| n.is_barrier());
                seen.1 |= graph.nodes.iter().any(|n| n.is_deadend());
                seen.2 |= graph.nodes.iter().any(|n| {
                    commons::rollout::RolloutParams::of(n)
                        .is_some_and(|r| (0.0..1.0).contains(&r.progress(IN_SAMPLE_ROLLOUT)))
                });
                seen.3 |= scheme == Scheme::Oci
                    && index
                        .releases
                        .iter()
                        .any(|r| r.commits.is_none() && r.oci_images.is_some());
            }
        }
    }
    assert_eq!(
        seen,
        (true, true, true, true),
        "barrier, dead-end, rollout in progress, OCI-only"
    );
}

/// The sample's `[registry]` block (commented out: no registry by
/// default), uncommented, lists every key and loads.
#[test]
fn graph_builder_sample_lists_every_registry_key() {
    let text = std::fs::read_to_string(dist("fcos-graph-builder.toml")).unwrap();
    let block: String = text
        .split("\n# [registry]\n")
        .nth(1)
        .expect("a [registry] block")
        .lines()
        .take_while(|line| !line.starts_with('['))
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| line.contains(" = "))
        .map(|line| format!("{line}\n"))
        .collect();
    let file: fcos_graph_builder::config::RegistryFile =
        commons::config::parse_toml(&block, "fcos-graph-builder.toml [registry]").unwrap();
    let listed = [
        file.repository.is_some(),
        file.tags.is_some(),
        file.updates_url.is_some(),
        file.auth_file.is_some(),
        file.insecure.is_some(),
        file.stream.is_some(),
        file.max_requests.is_some(),
        file.state_dir.is_some(),
    ];
    assert!(listed.iter().all(|&l| l), "{block}");
    // The auth file is read and the state directory checked at start (on
    // the host they are written for); the others are checked as written.
    let settings = fcos_graph_builder::config::RegistrySettings::from_file(
        fcos_graph_builder::config::RegistryFile {
            auth_file: None,
            state_dir: None,
            ..file
        },
    )
    .unwrap();
    assert_eq!(
        settings.max_requests,
        fcos_graph_builder::config::DEFAULT_REGISTRY_MAX_REQUESTS
    );
}

#[test]
fn policy_sample_loads_with_its_guards() {
    let policy = commons::fleet_policy::Policy::load(&dist("policy.toml"), 1).unwrap();
    // The sample's [guard] spells out the defaults.
    assert_eq!(policy.guard, Some(commons::fleet_policy::Guard::default()));
    let canary = policy.groups["canary"].guard.as_ref().unwrap();
    assert_eq!((canary.min_nodes, canary.max_rolled_back), (5, 0.01));
    assert_eq!(policy.groups["canary"].wariness_max, 0.0);
    assert!(policy.fleet.is_some());
}
