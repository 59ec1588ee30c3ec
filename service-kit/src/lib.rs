//! The service kit both services are built with: the HTTP surface (the
//! `/v1/graph` query, the `{"kind","value"}` error type, content
//! negotiation, CORS, prepared bodies), the servers and their request-head
//! limits, the HTTP clients' common settings, the status port, metrics, logging, and what each service binary
//! does (command line, start, exit). The model they serve (metadata,
//! graphs, rollouts, the fleet policy) is in `commons`, which has no HTTP
//! dependency.

pub mod binary;
pub mod client;
mod debug;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod ports;
pub mod server;
pub mod status;
pub mod web;
