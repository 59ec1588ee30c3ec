//! The service kit both services are built with: the HTTP surface (the
//! `/v1/graph` query, the `{"kind","value"}` error type, content
//! negotiation, CORS, prepared bodies), the servers and their request-head
//! limits, the status port, metrics, logging, and the synthetic streams of
//! the benchmarks. The model they serve (metadata, graphs, rollouts, the
//! fleet policy) is in `commons`, which has no HTTP dependency.

mod debug;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod status;
pub mod synthetic;
pub mod web;
