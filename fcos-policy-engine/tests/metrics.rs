//! The policy-engine's metrics render with readable labels.

use fcos_policy_engine::replica::Replica;
use fcos_policy_engine::service::ServiceState;
use prometheus::{Encoder, Registry, TextEncoder};
use std::sync::Arc;

#[test]
fn wariness_buckets_are_exact_decimals() {
    let registry = Registry::new();
    let replica = Replica::new(&registry).unwrap();
    let control =
        fcos_policy_engine::control::Control::new(None, None, Arc::new(|| 0), &registry).unwrap();
    ServiceState::new(
        Arc::new(replica),
        Arc::new(|| 0),
        None,
        Arc::new(control),
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
