//! The graph-builder's service port: `GET /v1/graph` serves the raw graph
//! of a stream, basearch and scheme.

use crate::store::GraphStore;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use commons::graph::Scheme;
use prometheus::{IntCounterVec, Opts, Registry};
use service_kit::web::{check_accepts_json, GraphError, GraphQuery};
use std::time::Duration;

/// The handlers of the service port, as labelled in
/// `fcos_cincinnati_gb_http_responses_total` (any other path is `other`).
pub const HANDLERS: &[&str] = &[
    "graph", "scopes", "policy", "openapi", "streams", "index", "assets",
];

/// State of the service port.
#[derive(Clone)]
pub struct ServiceState {
    /// The graphs being served.
    pub store: GraphStore,
    /// `fcos_cincinnati_gb_cache_graph_requests_total`.
    pub graph_requests: IntCounterVec,
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
        for (stream, basearches) in store.configured() {
            for basearch in basearches {
                for scheme in Scheme::ALL {
                    graph_requests.with_label_values(&[basearch, stream, scheme.as_str()]);
                }
            }
        }
        Ok(ServiceState {
            store,
            graph_requests,
        })
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
/// (304).
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
        (Some(wait), Some(etag)) if !wait.is_zero() => {
            state
                .store
                .listing_changed_from(&identity_etag(etag), wait)
                .await
        }
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
            .route(web::get().to(crate::policy::serve_policy))
            .route(web::head().to(crate::policy::serve_policy))
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
    fn etags_of_either_representation_name_the_identity_one() {
        assert_eq!(identity_etag("\"abc\""), "\"abc\"");
        assert_eq!(identity_etag(" W/\"abc-gzip\""), "\"abc\"");
    }

    #[test]
    fn openapi_describes_the_graph_builder_endpoints() {
        let doc = OPENAPI.as_str();
        for path in ["/v1/graph:", "/v1/scopes:", "/v1/streams:"] {
            assert!(doc.contains(path), "{path}");
        }
        assert!(doc.find("/v1/scopes:") < doc.find("components:"));
    }
}
