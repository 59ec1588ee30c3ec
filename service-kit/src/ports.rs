//! The two ports of every service, bound the same way: the service port
//! (the service's routes, its answers counted, CORS outermost) and the
//! status port (`/metrics`, `/livez`, `/readyz`, and what a service adds).
//! A port that cannot be bound is refused naming the address and the keys
//! that set it.

use crate::metrics::{record_http_metrics, HttpMetrics};
use crate::server::{bind, Listening, KEEP_ALIVE};
use crate::status::StatusState;
use actix_http::KeepAlive;
use actix_web::{middleware, web, App};
use anyhow::Context;
use std::net::SocketAddr;

/// Binds the service port at `addr`, on one worker a core: the routes and
/// data `configure` adds, every answer (and every request the HTTP parser
/// refuses) counted in `metrics`, CORS for `origin_allowlist` (`None`:
/// any origin), at most `max_connections` open (`None`: from the
/// process's limits, see [`crate::server::connection_budget`]).
pub fn bind_service<F>(
    addr: SocketAddr,
    origin_allowlist: Option<&[String]>,
    max_connections: Option<usize>,
    metrics: HttpMetrics,
    configure: F,
) -> anyhow::Result<Listening>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let cors = crate::web::cors(origin_allowlist);
    let refused = metrics.clone();
    let listening = bind("service", addr, 0, KEEP_ALIVE.into(), move || {
        let cors = cors.clone();
        App::new()
            .app_data(web::Data::new(metrics.clone()))
            .wrap(middleware::from_fn(record_http_metrics))
            .wrap(middleware::from_fn(move |req, next| {
                crate::web::cors_middleware(cors.clone(), req, next)
            }))
            .configure(configure.clone())
    })
    .with_context(|| format!("cannot listen on {addr} (service.address/service.port)"))?;
    let listening = listening.counting(refused);
    Ok(match max_connections {
        Some(max) => listening.max_connections(max),
        None => listening,
    })
}

/// Binds the status port at `addr`, on one worker: the routes of
/// [`crate::status`] reporting on `state`, and those `configure` adds.
/// Each connection is closed after its answer, so that clients kept busy
/// on the port (more than its [`crate::server::STATUS_CONNECTIONS`]) take
/// turns with the probes rather than hold every connection it keeps open.
pub fn bind_status<F>(
    addr: SocketAddr,
    state: StatusState,
    configure: F,
) -> anyhow::Result<Listening>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    bind("status", addr, 1, KeepAlive::Disabled, move || {
        App::new()
            .configure(configure.clone())
            .configure(crate::status::configure(state.clone()))
    })
    .with_context(|| format!("cannot listen on {addr} (status.address/status.port)"))
}
