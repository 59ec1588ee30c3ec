//! The model both services share, with no HTTP dependency: the upstream
//! metadata, graph building, rollouts (a client's wariness and each
//! rollout's progress), the fleet policy (the operator's file of rules per
//! group: read safely, checked, evaluated and rendered for `/v1/policy`),
//! distinct-node sketches, and configuration file reading.
//! The HTTP service kit built on it is the `service-kit` crate.

pub mod config;
pub mod files;
pub mod fleet_policy;
pub mod graph;
pub mod metadata;
pub mod outcomes;
pub mod rollout;
pub mod sketch;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
