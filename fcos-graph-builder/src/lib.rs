//! fcos-graph-builder: scrapes each stream's release index and updates
//! metadata, builds the checksum (OSTree) and OCI graphs of every configured
//! basearch, reads more streams from a container registry when one is
//! configured, and serves the graphs raw on `/v1/graph`.

pub mod config;
pub mod fetch;
pub mod policy_view;
pub mod registry;
pub mod rollouts_view;
pub mod scraper;
pub mod service;
pub mod store;
pub mod viewer;

use actix_web::web;
use anyhow::Context;
pub use config::Settings;
use prometheus::Registry;
use service_kit::server::Running;
use std::sync::Arc;

/// Binds both ports, starts one scraper per stream and returns at once.
/// Must be called on an actix runtime.
pub fn start(settings: Settings) -> anyhow::Result<Running> {
    let registry = Registry::new();
    service_kit::metrics::register_process_metrics(&registry)?;
    service_kit::metrics::register_build_info(&registry)?;
    let http_metrics = service_kit::metrics::HttpMetrics::register(
        &registry,
        "fcos_cincinnati_gb",
        service::HANDLERS,
    )?;
    let scraper_metrics = scraper::ScraperMetrics::register(&registry)?;
    let registry_metrics = match &settings.registry {
        Some(_) => Some(registry::RegistryMetrics::register(&registry)?),
        None => None,
    };
    let mut store = store::GraphStore::new(
        settings
            .streams
            .iter()
            .map(|s| (s.name.clone(), s.basearches.clone()))
            .collect(),
    );
    if settings.registry.is_some() {
        store = store.with_registry();
    }
    let state = service::ServiceState::new(store.clone(), &registry)?
        .with_max_waiting_polls(settings.max_waiting_polls);
    let graph_requests = state.graph_requests.clone();
    let policy_view = match &settings.policy_path {
        Some(path) => {
            tracing::info!(
                "time zones of the policy's windows: {}",
                commons::fleet_policy::time_zones::source()
            );
            Some(policy_view::PolicyView::load(path.clone(), &registry)?)
        }
        None => None,
    };
    let shown_policy = policy_view.clone();
    let rollouts_view = match &settings.rollouts {
        Some(rollouts) => Some(rollouts_view::RolloutsView::new(
            rollouts.clone(),
            settings
                .timeout
                .min(rollouts.refresh.max(std::time::Duration::from_secs(2))),
            &registry,
        )?),
        None => None,
    };
    let shown_rollouts = rollouts_view.clone();
    let fetcher = fetch::Fetcher::new(settings.timeout, settings.max_body_bytes)
        .context("cannot create the HTTP client")?;

    let service = service_kit::ports::bind_service(
        settings.service_addr,
        settings.origin_allowlist.as_deref(),
        settings.max_connections,
        http_metrics,
        move |cfg| {
            cfg.app_data(web::Data::new(state.clone()))
                .app_data(web::Data::new(shown_policy.clone()))
                .app_data(web::Data::new(shown_rollouts.clone()));
            service::configure(cfg);
        },
    )?;

    let ready_store = store.clone();
    let stream_names: Vec<String> = settings.streams.iter().map(|s| s.name.clone()).collect();
    let started = commons::unix_now();
    let staleness = scraper_metrics.clone();
    let status_state = service_kit::status::StatusState {
        registry,
        ready: Arc::new(move || {
            let streams = serde_json::to_value(ready_store.states()).unwrap_or_default();
            (
                ready_store.ready(),
                serde_json::json!({ "streams": streams }),
            )
        }),
        before_render: Arc::new(move || {
            staleness.update_staleness(&stream_names, started, commons::unix_now())
        }),
    };
    let status = service_kit::ports::bind_status(settings.status_addr, status_state, |_| {})?;
    tracing::info!(service_addr = %service.addr, status_addr = %status.addr, "graph-builder listening");

    let closing = store.clone();
    let mut running = Running::spawn(service, status).on_stop(move || closing.close());
    for stream in &settings.streams {
        let scraper = scraper::StreamScraper::new(
            stream.clone(),
            fetcher.clone(),
            store.clone(),
            scraper_metrics.clone(),
        );
        running = running.task("scraper", scraper.run(settings.refresh));
    }
    if let (Some(source), Some(metrics)) = (&settings.registry, registry_metrics) {
        let scraper = registry::RegistryScraper::new(
            source.clone(),
            settings.timeout,
            settings.refresh,
            fetcher.clone(),
            store.clone(),
            metrics,
            scraper_metrics.clone(),
        )
        .context("cannot create the registry's HTTP client")?
        .with_graph_requests(graph_requests);
        running = running.task("registry", scraper.run(settings.refresh));
    }
    if let Some(view) = policy_view {
        running = running.task("policy reload", view.watch());
    }
    if let Some(view) = rollouts_view {
        running = running.task("rollouts", view.watch());
    }
    Ok(running)
}
