//! The status port both services expose: `/metrics`, `/livez`, `/readyz`.

use crate::metrics;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use prometheus::Registry;
use std::sync::Arc;

/// What the status port reports on.
#[derive(Clone)]
pub struct StatusState {
    /// The service's metrics.
    pub registry: Registry,
    /// Whether the service is ready to serve clients, and the state behind
    /// that answer (the JSON body of `/readyz`).
    pub ready: Arc<dyn Fn() -> (bool, serde_json::Value) + Send + Sync>,
    /// Brings gauges that depend on the current time up to date, just
    /// before they are rendered.
    pub before_render: Arc<dyn Fn() + Send + Sync>,
}

/// The registry; the callbacks are code.
impl std::fmt::Debug for StatusState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusState")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// Routes of the status port.
pub fn configure(state: StatusState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .route("/metrics", web::get().to(serve_metrics))
            .route(
                "/livez",
                web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
            )
            .route("/readyz", web::get().to(serve_readyz));
    }
}

async fn serve_metrics(state: web::Data<StatusState>) -> HttpResponse {
    (state.before_render)();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics::render(&state.registry))
}

async fn serve_readyz(state: web::Data<StatusState>) -> HttpResponse {
    let (ready, details) = (state.ready)();
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(serde_json::json!({"ready": ready, "details": details}))
}
