//! Metrics both services export: the process (CPU, memory, file
//! descriptors, start time), the build, and per-response counts and latency
//! of the service port. Each service owns its own [`prometheus::Registry`];
//! nothing here is global.

use crate::web::GraphError;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry,
};
use std::sync::Arc;
use std::time::Instant;

/// The version being run (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit built, or `unknown` when the build had none (a source
/// tarball): see `commons/build.rs`.
pub const REVISION: &str = env!("FCOS_CINCINNATI_REVISION");

/// Registers the standard process metrics: on Linux the `prometheus`
/// crate's collector (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
/// `process_open_fds`, `process_max_fds`, `process_threads` and
/// `process_start_time_seconds`, read from `/proc` at each scrape);
/// elsewhere only `process_start_time_seconds`.
pub fn register_process_metrics(registry: &Registry) -> prometheus::Result<()> {
    #[cfg(target_os = "linux")]
    {
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let gauge = prometheus::IntGauge::with_opts(Opts::new(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
        ))?;
        gauge.set(commons::unix_now());
        registry.register(Box::new(gauge))
    }
}

/// Registers `fcos_cincinnati_build_info{version, revision}`, always 1.
pub fn register_build_info(registry: &Registry) -> prometheus::Result<()> {
    let info = IntGaugeVec::new(
        Opts::new(
            "fcos_cincinnati_build_info",
            "Always 1; the labels say which version and git commit is running.",
        ),
        &["version", "revision"],
    )?;
    info.with_label_values(&[VERSION, REVISION]).set(1);
    registry.register(Box::new(info))
}

/// Status codes counted from the start, at 0, for every handler: the ones
/// the services answer (see [`GraphError`]), so that `rate()` and
/// `increase()` see the first response of each. Other codes appear at
/// their first response.
pub const COMMON_CODES: [u16; 11] = [200, 304, 400, 404, 405, 406, 408, 414, 431, 500, 503];

/// Response counts and latency of one service port, labelled by handler
/// (a fixed set of names) and status code.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    responses: IntCounterVec,
    latency: HistogramVec,
    /// The handlers of the service; every other path is `other`.
    handlers: &'static [&'static str],
    /// Also counts every response of one handler (see
    /// [`HttpMetrics::counting_requests`]).
    requests_of: Option<(&'static str, IntCounter)>,
    /// Connections open on the service port.
    pub connections: prometheus::IntGauge,
    /// Most connections the service port keeps open.
    pub connections_max: prometheus::IntGauge,
    /// The series of each handler and common code, looked up once: a
    /// response is counted without hashing its labels.
    series: Arc<[HandlerSeries]>,
}

/// The latency and the [`COMMON_CODES`] counters of one handler.
#[derive(Clone, Debug)]
struct HandlerSeries {
    handler: &'static str,
    latency: Histogram,
    codes: [IntCounter; COMMON_CODES.len()],
}

impl HttpMetrics {
    /// Creates and registers the metrics as `<prefix>_http_responses_total`
    /// and `<prefix>_http_request_duration_seconds`, labelled by the
    /// service's `handlers` (names from [`handler_label`]) and `other`;
    /// every handler's series for the [`COMMON_CODES`] exist from the
    /// start, at 0.
    pub fn register(
        registry: &Registry,
        prefix: &str,
        handlers: &'static [&'static str],
    ) -> prometheus::Result<Self> {
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
        let connections = prometheus::IntGauge::new(
            format!("{prefix}_http_connections"),
            "Connections open on the service port.",
        )?;
        let connections_max = prometheus::IntGauge::new(
            format!("{prefix}_http_connections_max"),
            "Most connections the service port keeps open; more wait in the listening backlog.",
        )?;
        registry.register(Box::new(responses.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(connections_max.clone()))?;
        let series = handlers
            .iter()
            .chain(&["other"])
            .map(|&handler| HandlerSeries {
                handler,
                latency: latency.with_label_values(&[handler]),
                codes: COMMON_CODES
                    .map(|code| responses.with_label_values(&[handler, &code.to_string()])),
            })
            .collect();
        Ok(HttpMetrics {
            responses,
            latency,
            handlers,
            requests_of: None,
            connections,
            connections_max,
            series,
        })
    }

    /// Also counts every response of `handler` in `counter`, whatever its
    /// method and status, heads over a limit included: a count of requests
    /// to one path, valid or not.
    pub fn counting_requests(mut self, handler: &'static str, counter: IntCounter) -> Self {
        self.requests_of = Some((handler, counter));
        self
    }

    /// The handler label of a request path: one of the service's handlers,
    /// else `other`.
    pub(crate) fn label(&self, path: &str) -> &'static str {
        let handler = handler_label(path);
        if self.handlers.contains(&handler) {
            handler
        } else {
            "other"
        }
    }

    /// Records one response.
    pub fn observe(&self, handler: &str, code: u16, seconds: f64) {
        let series = self.series.iter().find(|s| s.handler == handler);
        let counted = series.and_then(|s| {
            let index = COMMON_CODES.iter().position(|&c| c == code)?;
            Some(&s.codes[index])
        });
        match counted {
            Some(counter) => counter.inc(),
            None => self
                .responses
                .with_label_values(&[handler, &code.to_string()])
                .inc(),
        }
        match series {
            Some(s) => s.latency.observe(seconds),
            None => self.latency.with_label_values(&[handler]).observe(seconds),
        }
        if let Some((counted, counter)) = &self.requests_of {
            if *counted == handler {
                counter.inc();
            }
        }
    }
}

/// The handler label of a request path, among every handler of both
/// services (each service keeps its own: see [`HttpMetrics::register`]).
pub fn handler_label(path: &str) -> &'static str {
    match path {
        "/v1/graph" => "graph",
        "/v1/scopes" => "scopes",
        "/v1/policy" => "policy",
        "/v1/rollouts" => "rollouts",
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
    let handler = metrics
        .as_ref()
        .map_or("other", |metrics| metrics.label(req.path()));
    let over_limit = req
        .headers()
        .get(crate::limits::LIMIT_HEADER)
        .and_then(|value| crate::limits::Limit::from_header(value.as_bytes()));
    let response = match over_limit {
        Some(limit) => {
            let error = match limit {
                crate::limits::Limit::Uri => GraphError::UriTooLong,
                crate::limits::Limit::Headers => GraphError::HeadersTooLarge,
                crate::limits::Limit::Timeout => GraphError::RequestTimeout,
                crate::limits::Limit::Body => GraphError::BodyNotAccepted,
            };
            req.into_response(error.error_response())
                .map_into_right_body()
        }
        None => next.call(req).await?.map_into_left_body(),
    };
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(metrics) = metrics {
        metrics.observe(handler, response.status().as_u16(), elapsed);
    }
    tracing::debug!(
        peer = ?response.request().peer_addr(),
        method = %response.request().method(),
        path = response.request().path(),
        status = response.status().as_u16(),
        seconds = elapsed,
        "request"
    );
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
        let metrics = HttpMetrics::register(&registry, "test", &["graph"]).unwrap();
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

    #[test]
    fn every_handler_and_common_code_is_counted_from_zero() {
        let registry = Registry::new();
        HttpMetrics::register(&registry, "test", &["graph", "openapi"]).unwrap();
        let text = String::from_utf8(render(&registry)).unwrap();
        for handler in ["graph", "openapi", "other"] {
            for code in COMMON_CODES {
                let series =
                    format!(r#"test_http_responses_total{{code="{code}",handler="{handler}"}} 0"#);
                assert!(text.contains(&series), "{series} missing:\n{text}");
            }
            let count =
                format!(r#"test_http_request_duration_seconds_count{{handler="{handler}"}} 0"#);
            assert!(text.contains(&count), "{count} missing");
        }
        assert!(!text.contains(r#"handler="scopes""#), "{text}");
    }

    #[test]
    fn paths_of_handlers_the_service_does_not_have_are_other() {
        let registry = Registry::new();
        let metrics = HttpMetrics::register(&registry, "test", &["graph", "openapi"]).unwrap();
        assert_eq!(metrics.label("/v1/graph"), "graph");
        assert_eq!(metrics.label("/v1/openapi"), "openapi");
        for path in [
            "/v1/scopes",
            "/",
            "/assets/app.js",
            "/v1/streams",
            "/v2/graph",
        ] {
            assert_eq!(metrics.label(path), "other", "{path}");
        }
    }

    #[test]
    fn counting_requests_counts_every_response_of_one_handler() {
        let registry = Registry::new();
        let requests = IntCounter::new("test_requests_total", "Requests.").unwrap();
        let metrics = HttpMetrics::register(&registry, "test", &["graph", "openapi"])
            .unwrap()
            .counting_requests("graph", requests.clone());
        for code in [200, 405, 414, 431, 400] {
            metrics.observe("graph", code, 0.001);
        }
        metrics.observe("openapi", 200, 0.001);
        metrics.observe("other", 404, 0.001);
        assert_eq!(requests.get(), 5);
    }

    #[test]
    fn process_metrics_and_build_info_are_registered_once() {
        let registry = Registry::new();
        register_process_metrics(&registry).unwrap();
        register_build_info(&registry).unwrap();
        let text = String::from_utf8(render(&registry)).unwrap();
        assert_eq!(
            text.matches("# TYPE process_start_time_seconds ").count(),
            1,
            "{text}"
        );
        let start = text
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap();
        assert!((commons::unix_now() - start).abs() < 24 * 3600, "{start}");
        #[cfg(target_os = "linux")]
        for name in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
        ] {
            assert!(
                text.contains(&format!("\n{name} ")),
                "{name} missing:\n{text}"
            );
        }
        let info =
            format!(r#"fcos_cincinnati_build_info{{revision="{REVISION}",version="{VERSION}"}} 1"#);
        assert!(text.contains(&info), "{info} missing:\n{text}");
        assert!(!REVISION.is_empty());
    }
}
