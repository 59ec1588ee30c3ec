//! The graph-builder's service port: `GET /v1/graph` serves the raw graph
//! of a stream, basearch and scheme.

use crate::store::GraphStore;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use commons::graph::Scheme;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use service_kit::logging::LimitNotice;
use service_kit::web::{check_accepts_json, GraphError, GraphQuery};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The handlers of the service port, as labelled in
/// `fcos_cincinnati_gb_http_responses_total` (any other path is `other`).
pub const HANDLERS: &[&str] = &[
    "graph", "scopes", "policy", "rollouts", "openapi", "streams", "index", "assets",
];

/// State of the service port.
#[derive(Clone, Debug)]
pub struct ServiceState {
    /// The graphs being served.
    pub store: GraphStore,
    /// `fcos_cincinnati_gb_cache_graph_requests_total`.
    pub graph_requests: IntCounterVec,
    /// The long polls of `/v1/scopes` held now, and their cap.
    pub waiting: WaitingPolls,
}

impl ServiceState {
    /// Creates the state and registers its metrics.
    pub fn new(store: GraphStore, registry: &Registry) -> prometheus::Result<Self> {
        let graph_requests = IntCounterVec::new(
            Opts::new(
                "fcos_cincinnati_gb_cache_graph_requests_total",
                "Graphs served, by scope (requests for scopes not served are not counted here).",
            ),
            &["basearch", "stream", "type"],
        )?;
        registry.register(Box::new(graph_requests.clone()))?;
        // Every scope served is counted from the start, at 0.
        for (stream, basearches) in &store.configured() {
            for basearch in basearches {
                for scheme in Scheme::ALL {
                    graph_requests.with_label_values(&[basearch, stream, scheme.as_str()]);
                }
            }
        }
        Ok(ServiceState {
            store,
            graph_requests,
            waiting: WaitingPolls::register(crate::config::DEFAULT_MAX_WAITING_POLLS, registry)?,
        })
    }

    /// Holds at most `max` long polls of `/v1/scopes` at once.
    pub fn with_max_waiting_polls(mut self, max: usize) -> Self {
        self.waiting.max = max;
        self.waiting.shared.max_gauge.set(gauge_value(max));
        self
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The long polls of `/v1/scopes` held at once, capped: each holds a
/// connection (a descriptor) for up to [`MAX_WAIT`], so without a cap a
/// burst of polls could use up the descriptors of the process.
#[derive(Clone, Debug)]
pub struct WaitingPolls {
    max: usize,
    shared: Arc<WaitingShared>,
}

#[derive(Debug)]
struct WaitingShared {
    held: AtomicUsize,
    /// The cap reached (logged when reached and when there is room again,
    /// a warning a minute at most).
    full: LimitNotice,
    /// `fcos_cincinnati_gb_scopes_waiting`.
    waiting: IntGauge,
    /// `fcos_cincinnati_gb_scopes_waiting_max`.
    max_gauge: IntGauge,
    /// `fcos_cincinnati_gb_scopes_waits_refused_total`.
    refused: IntCounter,
}

impl WaitingPolls {
    /// A cap of `max` held polls, its metrics registered in `registry`.
    pub fn register(max: usize, registry: &Registry) -> prometheus::Result<Self> {
        let waiting = IntGauge::new(
            "fcos_cincinnati_gb_scopes_waiting",
            "Long polls of /v1/scopes held now, waiting for a change.",
        )?;
        let max_gauge = IntGauge::new(
            "fcos_cincinnati_gb_scopes_waiting_max",
            "Most long polls of /v1/scopes held at once (service.max_waiting_polls).",
        )?;
        let refused = IntCounter::new(
            "fcos_cincinnati_gb_scopes_waits_refused_total",
            "Long polls of /v1/scopes answered at once because service.max_waiting_polls were held.",
        )?;
        registry.register(Box::new(waiting.clone()))?;
        registry.register(Box::new(max_gauge.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        max_gauge.set(gauge_value(max));
        Ok(WaitingPolls {
            max,
            shared: Arc::new(WaitingShared {
                held: AtomicUsize::new(0),
                full: LimitNotice::default(),
                waiting,
                max_gauge,
                refused,
            }),
        })
    }

    /// A place for one more held poll, released when dropped; `None` (and
    /// counted) when `max` polls are held already.
    pub fn enter(&self) -> Option<WaitSlot> {
        let shared = &self.shared;
        let admitted = shared
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max).then_some(held + 1)
            })
            .is_ok();
        if admitted {
            shared.waiting.inc();
            return Some(WaitSlot {
                shared: Arc::clone(shared),
            });
        }
        shared.refused.inc();
        if let Some(unsaid) = shared.full.reached() {
            tracing::warn!(
                max_waiting_polls = self.max,
                "{} long polls of /v1/scopes held (service.max_waiting_polls): more are answered at once, without waiting, until one ends{}",
                self.max,
                service_kit::logging::unsaid(unsaid)
            );
        }
        None
    }

    /// Polls held now.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::Acquire)
    }
}

/// One held poll, counted until dropped (when the poll is answered or its
/// client leaves).
#[derive(Debug)]
pub struct WaitSlot {
    shared: Arc<WaitingShared>,
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        self.shared.held.fetch_sub(1, Ordering::AcqRel);
        self.shared.waiting.dec();
        if self.shared.full.relieved() {
            tracing::info!("long polls of /v1/scopes below service.max_waiting_polls again: they wait for a change again");
        }
    }
}

/// `GET /v1/graph?basearch=…&stream=…[&oci=true]`.
pub async fn serve_graph(
    req: HttpRequest,
    state: web::Data<ServiceState>,
) -> Result<HttpResponse, GraphError> {
    check_accepts_json(&req)?;
    let query = GraphQuery::parse(req.query_string())?;
    let scheme = query.scheme();
    let body = state.store.get(&query.stream, &query.basearch, scheme)?;
    state
        .graph_requests
        .with_label_values(&[&query.basearch, &query.stream, scheme.as_str()])
        .inc();
    Ok(body.respond(&req))
}

/// Longest wait for a change that `/v1/scopes` accepts.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// `GET /v1/scopes[?wait=N]`: every scope served and the `ETag` of its
/// graph. With `wait` and an `If-None-Match` naming the current listing,
/// the answer waits until the listing changes (200) or `wait` seconds pass
/// (304). Beyond [`WaitingPolls`]' cap, the answer comes at once, as
/// without `wait`.
pub async fn serve_scopes(
    req: HttpRequest,
    state: web::Data<ServiceState>,
) -> Result<HttpResponse, GraphError> {
    check_accepts_json(&req)?;
    let wait = parse_wait(req.query_string())?;
    let known = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let listing = match (wait, known) {
        (Some(wait), Some(etag)) if !wait.is_zero() => match state.waiting.enter() {
            Some(slot) => {
                // Dropped with the request if its client leaves first.
                let listing = state
                    .store
                    .listing_changed_from(&identity_etag(etag), wait)
                    .await;
                drop(slot);
                listing
            }
            None => state.store.listing(),
        },
        _ => state.store.listing(),
    };
    Ok(listing.respond(&req))
}

/// The `ETag` of the identity representation that `etag` (as a client
/// sends it back, possibly weak or of the gzip body) names.
fn identity_etag(etag: &str) -> String {
    let etag = etag.trim();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    match etag.strip_suffix("-gzip\"") {
        Some(tag) => format!("{tag}\""),
        None => etag.to_string(),
    }
}

/// The `wait` parameter: whole seconds, optionally followed by `s`, at most
/// [`MAX_WAIT`]. Other parameters are ignored.
fn parse_wait(query: &str) -> Result<Option<Duration>, GraphError> {
    let mut wait = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key != "wait" {
            continue;
        }
        if wait.is_some() {
            return Err(GraphError::RepeatedParameter("wait"));
        }
        let secs = value
            .strip_suffix('s')
            .unwrap_or(&value)
            .parse::<u64>()
            .ok()
            .filter(|secs| *secs <= MAX_WAIT.as_secs())
            .ok_or_else(|| GraphError::InvalidParameter {
                name: "wait",
                reason: format!(
                    "expected whole seconds from 0 to {}, got '{}'",
                    MAX_WAIT.as_secs(),
                    value.chars().take(40).collect::<String>()
                ),
            })?;
        wait = Some(Duration::from_secs(secs));
    }
    Ok(wait)
}

/// Routes of the service port.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/graph")
            .route(web::get().to(serve_graph))
            .route(web::head().to(serve_graph))
            .default_service(web::to(service_kit::web::method_not_allowed)),
    )
    .service(
        web::resource("/v1/scopes")
            .route(web::get().to(serve_scopes))
            .route(web::head().to(serve_scopes))
            .default_service(web::to(service_kit::web::method_not_allowed)),
    )
    .service(
        web::resource("/v1/policy")
            .route(web::get().to(crate::policy_view::serve_policy))
            .route(web::head().to(crate::policy_view::serve_policy))
            .default_service(web::to(service_kit::web::method_not_allowed)),
    )
    .service(
        web::resource("/v1/rollouts")
            .route(web::get().to(crate::rollouts_view::serve_rollouts))
            .route(web::head().to(crate::rollouts_view::serve_rollouts))
            .default_service(web::to(service_kit::web::method_not_allowed)),
    )
    .route("/v1/openapi", web::get().to(serve_openapi))
    .configure(crate::viewer::configure)
    .default_service(web::to(service_kit::web::not_found));
}

/// The OpenAPI description of the graph-builder: the shared one, with the
/// graph-builder's own endpoints.
pub static OPENAPI: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    service_kit::web::openapi_with_paths(include_str!("../openapi-paths.yaml"))
});

/// `GET /v1/openapi`.
pub async fn serve_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_bounded_whole_seconds() {
        assert_eq!(parse_wait("").unwrap(), None);
        assert_eq!(
            parse_wait("wait=30").unwrap(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_wait("x=1&wait=30s").unwrap(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_wait("wait=0").unwrap(), Some(Duration::ZERO));
        for bad in ["wait=61", "wait=-1", "wait=1.5", "wait=", "wait=30m"] {
            assert_eq!(
                parse_wait(bad).unwrap_err().kind(),
                "invalid_parameter",
                "{bad}"
            );
        }
        assert_eq!(
            parse_wait("wait=1&wait=2").unwrap_err().kind(),
            "repeated_parameter"
        );
    }

    #[test]
    fn waits_beyond_the_cap_are_refused_and_counted() {
        let registry = Registry::new();
        let waiting = WaitingPolls::register(2, &registry).unwrap();
        let render = || String::from_utf8(service_kit::metrics::render(&registry)).unwrap();
        assert!(render().contains("fcos_cincinnati_gb_scopes_waits_refused_total 0"));
        assert!(render().contains("fcos_cincinnati_gb_scopes_waiting_max 2"));
        let first = waiting.enter().unwrap();
        let _second = waiting.enter().unwrap();
        assert!(waiting.enter().is_none());
        assert!(waiting.enter().is_none());
        assert!(render().contains("fcos_cincinnati_gb_scopes_waits_refused_total 2"));
        assert!(render().contains("fcos_cincinnati_gb_scopes_waiting 2"));
        drop(first);
        assert_eq!(waiting.held(), 1);
        assert!(render().contains("fcos_cincinnati_gb_scopes_waiting 1"));
        assert!(waiting.enter().is_some());
    }

    #[test]
    fn etags_of_either_representation_name_the_identity_one() {
        assert_eq!(identity_etag("\"abc\""), "\"abc\"");
        assert_eq!(identity_etag(" W/\"abc-gzip\""), "\"abc\"");
    }

    #[test]
    fn openapi_describes_the_graph_builder_endpoints() {
        let doc = OPENAPI.as_str();
        for path in ["/v1/graph:", "/v1/scopes:", "/v1/streams:", "/v1/rollouts:"] {
            assert!(doc.contains(path), "{path}");
        }
        assert!(doc.find("/v1/scopes:") < doc.find("components:"));
    }
}
