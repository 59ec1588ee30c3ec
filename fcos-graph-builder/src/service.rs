//! The graph-builder's service port: `GET /v1/graph` serves the raw graph
//! of a stream, basearch and scheme.

use crate::store::GraphStore;
use actix_web::{web, HttpRequest, HttpResponse};
use commons::web::{check_accepts_json, GraphError, GraphQuery};
use prometheus::{IntCounterVec, Opts, Registry};

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

/// Routes of the service port.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/graph")
            .route(web::get().to(serve_graph))
            .route(web::head().to(serve_graph))
            .default_service(web::to(commons::web::method_not_allowed)),
    )
    .route("/v1/openapi", web::get().to(commons::web::openapi))
    .configure(crate::viewer::configure)
    .default_service(web::to(commons::web::not_found));
}
