//! fcos-policy-engine: the frontend Fedora CoreOS nodes poll. It reads the
//! graph-builder's graphs and shapes them per client: rollouts throttled by
//! the client's wariness, dead-ends cut.

pub mod aliases;
pub mod census;
pub mod client;
pub mod config;
pub mod in_force;
pub mod population;
pub mod replica;
pub mod rollouts;
pub mod service;
pub mod view;

use actix_web::web;
use anyhow::Context;
pub use config::Settings;
use prometheus::Registry;
pub use service::Clock;
use service_kit::server::Running;
use std::sync::Arc;

/// Keeps a file-size limit (`RLIMIT_FSIZE`) from killing the process when
/// the snapshot is written: with a handler installed for `SIGXFSZ` (it
/// stays installed for the life of the process), the write fails with
/// `EFBIG` instead, and that is logged and counted as a write error.
fn ignore_file_size_signal() {
    let kind = tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ);
    if let Err(error) = tokio::signal::unix::signal(kind) {
        tracing::warn!("cannot handle SIGXFSZ, a file-size limit would stop the process: {error}");
    }
}

/// Binds both ports and returns at once, reading the wall clock.
/// Must be called on an actix runtime.
pub fn start(settings: Settings) -> anyhow::Result<Running> {
    start_with_clock(settings, Arc::new(commons::unix_now))
}

/// Like [`start`], with rollout progress computed at the times `clock`
/// gives.
pub fn start_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Running> {
    let registry = Registry::new();
    service_kit::metrics::register_process_metrics(&registry)?;
    service_kit::metrics::register_build_info(&registry)?;
    let http_metrics = service_kit::metrics::HttpMetrics::register(
        &registry,
        "fcos_cincinnati_pe",
        &["graph", "openapi"],
    )?;
    let views = Arc::new(view::ViewCache::new(settings.view_cache_bytes));
    views.register(&registry)?;
    let replica = Arc::new(replica::Replica::new(&registry, Arc::clone(&views))?);
    if let Some(dir) = &settings.state_dir {
        ignore_file_size_signal();
        replica.load_state(dir, replica::state_limit(settings.max_body_bytes));
    }
    let follower = replica::Follower::new(
        Arc::clone(&replica),
        settings.graph_url.clone(),
        settings.wait,
        settings.timeout,
        settings.max_body_bytes,
        settings.state_dir.clone(),
    )
    .context("cannot create the HTTP client")?;
    let policy = match &settings.policy_path {
        Some(path) => {
            tracing::info!(
                "time zones of the policy's windows: {}",
                commons::fleet_policy::time_zones::source()
            );
            Some(commons::fleet_policy::Policy::load(path, 1)?)
        }
        None => None,
    };
    let in_force = Arc::new(in_force::PolicyInForce::new(
        settings.policy_path.clone(),
        policy,
        Arc::clone(&clock),
        &registry,
    )?);
    let rollouts = Arc::new(rollouts::Rollouts::new(
        settings.rollouts.clone(),
        settings.state_dir.clone(),
        &registry,
    )?);
    let state = service::ServiceState::new(
        Arc::clone(&replica),
        Arc::clone(&clock),
        settings.digest_aliases.clone(),
        Arc::clone(&in_force),
        Arc::clone(&rollouts),
        settings.census_max_group_series,
        &registry,
    )?;
    let explain_state = state.clone();
    let census = Arc::clone(&state.census);
    let state_census = Arc::clone(&state.census);
    let known = Arc::clone(&census);
    replica.on_scopes(move |scopes| known.know_scopes(scopes));
    let http_metrics = http_metrics.counting_requests("graph", state.incoming.clone());

    let service = service_kit::ports::bind_service(
        settings.service_addr,
        settings.origin_allowlist.as_deref(),
        settings.max_connections,
        http_metrics,
        move |cfg| {
            cfg.app_data(web::Data::new(state.clone()));
            service::configure(cfg);
        },
    )?;

    let policy_endpoint = in_force::PolicyEndpoint {
        in_force: Arc::clone(&in_force),
        rollouts: Arc::clone(&rollouts),
        clock: Arc::clone(&clock),
    };
    let rollouts_page = Arc::clone(&rollouts);
    let watched_clock = Arc::clone(&clock);
    let ready = Arc::clone(&replica);
    let rendered = Arc::clone(&replica);
    let status_state = service_kit::status::StatusState {
        registry,
        ready: Arc::new(move || (ready.ready(), ready.status())),
        before_render: Arc::new(move || {
            rendered.update_age_metric();
            views.update_gauges();
            census.update_gauges(clock(), &rendered.versions_by_stream());
        }),
    };
    let status = service_kit::ports::bind_status(settings.status_addr, status_state, move |cfg| {
        cfg.app_data(web::Data::new(policy_endpoint.clone()))
            .app_data(web::Data::new(Arc::clone(&rollouts_page)))
            .app_data(web::Data::new(explain_state.clone()))
            .route("/v1/policy", web::get().to(in_force::serve_policy))
            .route("/v1/rollouts", web::get().to(rollouts::serve_rollouts))
            .route("/v1/explain", web::get().to(service::serve_explain));
    })?;
    tracing::info!(
        service_addr = %service.addr,
        status_addr = %status.addr,
        graph_url = %settings.graph_url,
        "policy-engine listening"
    );
    let versions = Arc::clone(&replica);
    let swept = Arc::clone(&state_census);
    let sweep_clock = Arc::clone(&watched_clock);
    Ok(Running::spawn(service, status)
        .task("census sweep", async move {
            // Idle census series leave even where nothing scrapes the
            // metrics (which sweeps too).
            let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                every.tick().await;
                swept.forget_idle(sweep_clock());
            }
        })
        .task("graph-builder follower", follower.run())
        .task(
            "rollout guards",
            Arc::clone(&rollouts).watch(Arc::clone(&in_force), watched_clock),
        )
        .task(
            "policy reload",
            in_force.watch(move || versions.versions_by_stream()),
        ))
}
