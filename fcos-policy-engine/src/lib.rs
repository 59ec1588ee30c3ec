//! fcos-policy-engine: the frontend Fedora CoreOS nodes poll. It reads the
//! graph-builder's graphs and shapes them per client: rollouts throttled by
//! the client's wariness, dead-ends cut.

pub mod aliases;
pub mod config;
pub mod fleet;
pub mod population;
pub mod service;
pub mod upstream;
pub mod view;

use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;
use commons::server::Running;
pub use config::Settings;
use prometheus::Registry;
pub use service::Clock;
use std::sync::Arc;

/// Binds both ports and returns at once, reading the wall clock.
/// Must be called on an actix runtime.
pub fn start(settings: Settings) -> anyhow::Result<Running> {
    start_with_clock(settings, Arc::new(commons::unix_now))
}

/// Like [`start`], with rollout progress computed at the times `clock`
/// gives.
pub fn start_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Running> {
    let registry = Registry::new();
    commons::metrics::register_process_start(&registry)?;
    let http_metrics = commons::metrics::HttpMetrics::register(&registry, "fcos_cincinnati_pe")?;
    let upstream = Arc::new(
        upstream::UpstreamGraphs::new(
            settings.graph_url.clone(),
            settings.timeout,
            settings.refresh,
            &registry,
        )
        .context("cannot create the HTTP client")?,
    );
    let state = service::ServiceState::new(
        Arc::clone(&upstream),
        Arc::clone(&clock),
        settings.digest_aliases.clone(),
        &registry,
    )?;
    let fleet = Arc::clone(&state.fleet);

    let allowlist = settings.origin_allowlist.clone();
    let service = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(http_metrics.clone()))
            .wrap(commons::web::cors(allowlist.as_deref()))
            .wrap(middleware::from_fn(commons::metrics::record_http_metrics))
            .configure(service::configure)
    })
    .shutdown_timeout(10)
    .bind(settings.service_addr)
    .with_context(|| {
        format!(
            "cannot listen on {} (service.address/service.port)",
            settings.service_addr
        )
    })?;
    let service_addr = service.addrs()[0];

    let status_state = commons::status::StatusState {
        registry,
        ready: Arc::new(|| true),
        before_render: Arc::new(move || {
            upstream.update_age_metric();
            fleet.update_gauges(clock(), &upstream.versions_by_stream());
        }),
    };
    let status = HttpServer::new(move || {
        App::new().configure(commons::status::configure(status_state.clone()))
    })
    .workers(1)
    .shutdown_timeout(10)
    .bind(settings.status_addr)
    .with_context(|| {
        format!(
            "cannot listen on {} (status.address/status.port)",
            settings.status_addr
        )
    })?;
    let status_addr = status.addrs()[0];
    tracing::info!(%service_addr, %status_addr, graph_url = %settings.graph_url, "policy-engine listening");
    Ok(Running::spawn(
        service_addr,
        service.run(),
        status_addr,
        status.run(),
        Vec::new(),
    ))
}
