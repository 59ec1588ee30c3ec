//! fcos-graph-builder: scrapes each stream's release index and updates
//! metadata, builds the checksum (OSTree) and OCI graphs of every configured
//! basearch, and serves them raw on `/v1/graph`.

pub mod config;
pub mod fetch;
pub mod scraper;
pub mod service;
pub mod store;
pub mod viewer;

use actix_web::{middleware, web, App, HttpServer};
use anyhow::Context;
use commons::server::Running;
pub use config::Settings;
use prometheus::Registry;
use std::sync::Arc;

/// Binds both ports, starts one scraper per stream and returns at once.
/// Must be called on an actix runtime.
pub fn start(settings: Settings) -> anyhow::Result<Running> {
    let registry = Registry::new();
    commons::metrics::register_process_start(&registry)?;
    let http_metrics = commons::metrics::HttpMetrics::register(&registry, "fcos_cincinnati_gb")?;
    let scraper_metrics = scraper::ScraperMetrics::register(&registry)?;
    let store = store::GraphStore::new(
        settings
            .streams
            .iter()
            .map(|s| (s.name.clone(), s.basearches.clone()))
            .collect(),
    );
    let state = service::ServiceState::new(store.clone(), &registry)?;
    let fetcher = fetch::Fetcher::new(settings.timeout, settings.max_body_bytes)
        .context("cannot create the HTTP client")?;

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

    let ready_store = store.clone();
    let stream_names: Vec<String> = settings.streams.iter().map(|s| s.name.clone()).collect();
    let started = commons::unix_now();
    let staleness = scraper_metrics.clone();
    let status_state = commons::status::StatusState {
        registry,
        ready: Arc::new(move || ready_store.all_ready()),
        before_render: Arc::new(move || {
            staleness.update_staleness(&stream_names, started, commons::unix_now())
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

    let tasks = settings
        .streams
        .iter()
        .map(|stream| {
            let scraper = scraper::StreamScraper::new(
                stream.clone(),
                fetcher.clone(),
                store.clone(),
                scraper_metrics.clone(),
            );
            actix_web::rt::spawn(scraper.run(settings.refresh))
        })
        .collect();
    tracing::info!(%service_addr, %status_addr, "graph-builder listening");
    Ok(Running::spawn(
        service_addr,
        service.run(),
        status_addr,
        status.run(),
        tasks,
    ))
}
