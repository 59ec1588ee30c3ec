//! What the graph-builder and the policy-engine share: the upstream
//! metadata model, graph building, per-client policies, the HTTP error type
//! and query, configuration pieces, metrics and the status port.

pub mod config;
pub mod graph;
pub mod limits;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod policy;
pub mod rules;
pub mod server;
pub mod sketch;
pub mod status;
pub mod synthetic;
pub mod web;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
