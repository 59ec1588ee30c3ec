//! Metrics both services export: process start time, and per-response
//! counts and latency of the service port. Each service owns its own
//! [`prometheus::Registry`]; nothing here is global.

use crate::web::GraphError;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use std::time::Instant;

/// Registers `process_start_time_seconds`, set to now.
pub fn register_process_start(registry: &Registry) -> prometheus::Result<()> {
    let gauge = IntGauge::with_opts(Opts::new(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds.",
    ))?;
    gauge.set(crate::unix_now());
    registry.register(Box::new(gauge))
}

/// Response counts and latency of one service port, labelled by handler
/// (a fixed set of names) and status code.
#[derive(Clone)]
pub struct HttpMetrics {
    responses: IntCounterVec,
    latency: HistogramVec,
}

impl HttpMetrics {
    /// Creates and registers the metrics as `<prefix>_http_responses_total`
    /// and `<prefix>_http_request_duration_seconds`.
    pub fn register(registry: &Registry, prefix: &str) -> prometheus::Result<Self> {
        let responses = IntCounterVec::new(
            Opts::new(
                format!("{prefix}_http_responses_total"),
                "HTTP responses on the service port, by handler and status code.",
            ),
            &["handler", "code"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                format!("{prefix}_http_request_duration_seconds"),
                "Time to produce an HTTP response on the service port, by handler.",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["handler"],
        )?;
        registry.register(Box::new(responses.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(HttpMetrics { responses, latency })
    }

    /// Records one response.
    pub fn observe(&self, handler: &str, code: u16, seconds: f64) {
        self.responses
            .with_label_values(&[handler, &code.to_string()])
            .inc();
        self.latency.with_label_values(&[handler]).observe(seconds);
    }
}

/// The bounded handler label of a request path.
fn handler_label(path: &str) -> &'static str {
    match path {
        "/v1/graph" => "graph",
        "/v1/scopes" => "scopes",
        "/v1/policy" => "policy",
        "/v1/openapi" => "openapi",
        "/v1/streams" => "streams",
        "/" => "index",
        p if p.starts_with("/assets/") => "assets",
        _ => "other",
    }
}

/// Middleware recording [`HttpMetrics`] (taken from app data) for every
/// response, errors included. It also answers the requests that stand in
/// for heads over a limit (see [`crate::limits`]) with their JSON error.
pub async fn record_http_metrics<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let handler = handler_label(req.path());
    let over_limit = req
        .headers()
        .get(crate::limits::LIMIT_HEADER)
        .and_then(|value| crate::limits::Limit::from_header(value.as_bytes()));
    let response = match over_limit {
        Some(limit) => {
            let error = match limit {
                crate::limits::Limit::Uri => GraphError::UriTooLong,
                crate::limits::Limit::Headers => GraphError::HeadersTooLarge,
            };
            req.into_response(error.error_response())
                .map_into_right_body()
        }
        None => next.call(req).await?.map_into_left_body(),
    };
    if let Some(metrics) = metrics {
        metrics.observe(
            handler,
            response.status().as_u16(),
            start.elapsed().as_secs_f64(),
        );
    }
    Ok(response)
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> Vec<u8> {
    let mut buffer = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("encoding metrics into a Vec cannot fail");
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observes_responses_by_handler_and_code() {
        let registry = Registry::new();
        let metrics = HttpMetrics::register(&registry, "test").unwrap();
        metrics.observe("graph", 200, 0.001);
        metrics.observe("graph", 404, 0.001);
        metrics.observe("graph", 404, 0.001);
        let text = String::from_utf8(render(&registry)).unwrap();
        assert!(
            text.contains(r#"test_http_responses_total{code="404",handler="graph"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"test_http_request_duration_seconds_count{handler="graph"} 3"#));
    }
}
