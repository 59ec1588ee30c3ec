//! The policy-engine's metrics render with readable labels.

use fcos_policy_engine::replica::Replica;
use fcos_policy_engine::rollouts::Rollouts;
use fcos_policy_engine::service::ServiceState;
use prometheus::{Encoder, Registry, TextEncoder};
use std::sync::Arc;

fn views() -> Arc<fcos_policy_engine::view::ViewCache> {
    Arc::new(fcos_policy_engine::view::ViewCache::new(
        fcos_policy_engine::view::DEFAULT_CACHE_BYTES,
    ))
}

#[test]
fn wariness_buckets_are_exact_decimals() {
    let registry = Registry::new();
    let replica = Replica::new(&registry, views()).unwrap();
    let in_force =
        fcos_policy_engine::in_force::PolicyInForce::new(None, None, Arc::new(|| 0), &registry)
            .unwrap();
    ServiceState::new(
        Arc::new(replica),
        Arc::new(|| 0),
        None,
        Arc::new(in_force),
        Arc::new(Rollouts::new(Default::default(), None, &registry).unwrap()),
        fcos_policy_engine::census::DEFAULT_MAX_GROUP_SERIES,
        &registry,
    )
    .unwrap();
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .unwrap();
    let text = String::from_utf8(text).unwrap();
    let bounds: Vec<&str> = text
        .lines()
        .filter_map(|line| {
            line.strip_prefix("fcos_cincinnati_pe_v1_graph_rollout_wariness_bucket{le=\"")
        })
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(
        bounds,
        ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1", "+Inf"],
        "{text}"
    );
}

#[test]
fn every_upstream_error_kind_is_exported_at_zero_and_documented() {
    use fcos_policy_engine::replica::FollowError;
    let registry = Registry::new();
    Replica::new(&registry, views()).unwrap();
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .unwrap();
    let text = String::from_utf8(text).unwrap();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
        .unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `fcos_cincinnati_pe_upstream_errors_total`"))
        .unwrap();
    for kind in FollowError::KINDS {
        let series = format!("fcos_cincinnati_pe_upstream_errors_total{{kind=\"{kind}\"}} 0");
        assert!(text.lines().any(|l| l == series), "{series} in {text}");
        assert!(row.contains(&format!("`{kind}`")), "{kind} in {row}");
    }
}
