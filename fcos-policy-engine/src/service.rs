//! The policy-engine's service port: `GET /v1/graph` with Zincati's
//! parameters returns the graph as that client should see it.

use crate::aliases::DigestAliases;
use crate::census::{Census, Poll};
use crate::client::Client;
use crate::in_force::PolicyInForce;
use crate::population::Population;
use crate::replica::{Replica, Snapshot};
use crate::rollouts::Rollouts;
use crate::view::PreparedGraph;
use actix_web::{web, HttpRequest, HttpResponse};
use commons::graph::GraphScope;
use commons::outcomes;
use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};
use service_kit::web::{check_accepts_json, GraphError, GraphQuery};
use std::hash::Hasher;
use std::sync::Arc;

/// Seconds since the Unix epoch; injected so tests can pin time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// State of the service port.
#[derive(Clone)]
pub struct ServiceState {
    /// The replica of the graph-builder's graphs.
    pub replica: Arc<Replica>,
    /// The current time.
    pub clock: Clock,
    /// Known digest aliases, when configured.
    pub aliases: Option<Arc<DigestAliases>>,
    /// The fleet census: distinct nodes by scope, version, group and
    /// platform.
    pub census: Arc<Census>,
    /// The fleet policy in force.
    pub in_force: Arc<PolicyInForce>,
    /// Rollout outcomes and halts.
    pub rollouts: Arc<Rollouts>,
    population: Arc<Population>,
    /// `fcos_cincinnati_pe_v1_graph_incoming_requests_total`: counted by
    /// the HTTP metrics middleware, which sees every request to `/v1/graph`
    /// (other methods and heads over a limit never reach [`serve_graph`]).
    pub incoming: IntCounter,
    unique_uuids: IntCounter,
    malformed_uuids: IntCounter,
    wariness: Histogram,
}

/// What it serves from and with (the clock is code).
impl std::fmt::Debug for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceState")
            .field("replica", &self.replica)
            .field("aliases", &self.aliases)
            .field("census", &self.census)
            .field("in_force", &self.in_force)
            .field("rollouts", &self.rollouts)
            .finish_non_exhaustive()
    }
}

impl ServiceState {
    /// Creates the state and registers its metrics; the census by group
    /// holds at most `max_group_series` series.
    pub fn new(
        replica: Arc<Replica>,
        clock: Clock,
        aliases: Option<DigestAliases>,
        in_force: Arc<PolicyInForce>,
        rollouts: Arc<Rollouts>,
        max_group_series: usize,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let incoming = IntCounter::new(
            "fcos_cincinnati_pe_v1_graph_incoming_requests_total",
            "Requests to /v1/graph, valid or not.",
        )?;
        let unique_uuids = IntCounter::new(
            "fcos_cincinnati_pe_v1_graph_unique_uuids_total",
            "Distinct node UUIDs of requests answered with a graph since start (Bloom filter estimate).",
        )?;
        let malformed_uuids = IntCounter::new(
            "fcos_cincinnati_pe_v1_graph_malformed_uuids_total",
            "Requests answered with a graph whose node_uuid is not 32 hexadecimal digits (not counted as nodes).",
        )?;
        let wariness = Histogram::with_opts(
            HistogramOpts::new(
                "fcos_cincinnati_pe_v1_graph_rollout_wariness",
                "Rollout wariness of answered requests.",
            )
            // Literals, not linear_buckets(0.0, 0.1, 11): its sums print
            // as le="0.30000000000000004".
            .buckets(vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        )?;
        registry.register(Box::new(incoming.clone()))?;
        registry.register(Box::new(unique_uuids.clone()))?;
        registry.register(Box::new(malformed_uuids.clone()))?;
        registry.register(Box::new(wariness.clone()))?;
        Ok(ServiceState {
            replica,
            clock,
            aliases: aliases.map(Arc::new),
            census: Arc::new(Census::register(registry, max_group_series)?),
            in_force,
            rollouts,
            population: Arc::default(),
            incoming,
            unique_uuids,
            malformed_uuids,
            wariness,
        })
    }

    fn record_node(&self, node_uuid: &str) {
        let mut hasher = siphasher::sip::SipHasher13::new_with_keys(0, 0);
        hasher.write(node_uuid.as_bytes());
        if self.population.insert(hasher.finish()) {
            self.unique_uuids.inc();
        }
    }
}

/// `GET /v1/graph` with Zincati's parameters.
pub async fn serve_graph(
    req: HttpRequest,
    state: web::Data<ServiceState>,
) -> Result<HttpResponse, GraphError> {
    check_accepts_json(&req)?;
    let query = GraphQuery::parse(req.query_string())?;
    let body = state.with_client(&query, |client| {
        // Zincati's node_uuid is 32 hex digits; anything else is answered
        // all the same, but counted apart rather than as a node. Only
        // requests answered with a graph count.
        let node_uuid = query.node_uuid.as_deref().filter(|u| !u.is_empty());
        let node_uuid = match node_uuid {
            Some(uuid) if is_node_uuid(uuid) => {
                state.record_node(uuid);
                Some(uuid)
            }
            Some(_) => {
                state.malformed_uuids.inc();
                None
            }
            None => None,
        };
        let (scope, graph) = (&client.scope, client.client.graph);
        let client = &client.client;
        state.wariness.observe(client.wariness);
        // A node booted from a known bad digest of its release is shown
        // its own pullspec on that release's node.
        let alias = match (
            &state.aliases,
            client.own_node,
            query.os_checksum.as_deref(),
        ) {
            (Some(aliases), Some(node), Some(checksum))
                if query.oci && client.payload_known == Some(false) =>
            {
                let published = &graph.graph().nodes[node].payload;
                let version = query.os_version.as_deref().unwrap_or_default();
                aliases
                    .is_bad_image(version, &query.basearch, published, checksum)
                    .then_some((node, checksum))
            }
            _ => None,
        };
        if let Some(reason) = client.decision.and_then(|d| d.withheld) {
            state.in_force.record_withheld(client.group_label, reason);
        }
        let known_version = client.own_node.and(query.os_version.as_deref());
        state.census.record(
            &Poll {
                scope,
                node_uuid,
                known_version,
                unknown_payload: client.payload_known == Some(false) && alias.is_none(),
                group: client.group_label,
                platform: client.platform_label,
            },
            client.now,
        );
        if let (Some(uuid), Some(node)) = (node_uuid, client.own_node) {
            state.rollouts.record_poll(
                uuid,
                outcomes::Poll {
                    node: 0,
                    scope: (&scope.stream, &scope.basearch, scope.scheme.as_str()),
                    group: client.group_label,
                    platform: client.platform_label,
                    from: (&graph.graph().nodes[node].version, graph.age(node)),
                    offer: client.offer(),
                    now: client.now,
                },
            );
        }
        let (wariness, now, removal, halted) =
            (client.wariness, client.now, &client.removal, &client.halted);
        match alias {
            Some((node, checksum)) => {
                state.census.record_substitution(scope);
                graph.view_with_payload(wariness, now, removal, halted, node, checksum)
            }
            None => graph.view(wariness, now, removal, halted),
        }
    })?;
    Ok(body.respond(&req))
}

/// `GET /v1/explain` on the status port, with the parameters of
/// `/v1/graph`: why that client gets what it gets now, from the values
/// its answer is made of (nothing is recorded).
pub async fn serve_explain(
    req: HttpRequest,
    state: web::Data<ServiceState>,
) -> Result<HttpResponse, GraphError> {
    let query = GraphQuery::parse(req.query_string())?;
    let explained = state.with_client(&query, |client| {
        let halts = state.rollouts.halts_for(
            &client.scope,
            client.client.group_label,
            client.client.platform_label,
        );
        client.client.explain(&halts)
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .json(explained))
}

/// A client and the scope of its graph.
struct Scoped<'a> {
    scope: GraphScope,
    client: Client<'a>,
}

impl ServiceState {
    /// Calls `answer` with the client of `query` now: the one computation
    /// behind `/v1/graph` and `/v1/explain`.
    fn with_client<R>(
        &self,
        query: &GraphQuery<'_>,
        answer: impl FnOnce(&Scoped<'_>) -> R,
    ) -> Result<R, GraphError> {
        let scope = query.scope();
        // One snapshot for the client's graph and the releases of the
        // stream's other graphs.
        let snapshot = self.replica.snapshot();
        let graph = snapshot.graph(&scope)?;
        let now = (self.clock)();
        let policy = self.in_force.policy();
        let client = Client::new(
            query,
            graph,
            policy.as_deref(),
            now,
            |version| release_age(&snapshot, graph, &scope.stream, version),
            |group, platform| self.rollouts.halted_for(&scope, group, platform, graph),
        );
        Ok(answer(&Scoped { scope, client }))
    }
}

/// Whether `uuid` is a node UUID as Zincati sends it: 32 hexadecimal digits.
fn is_node_uuid(uuid: &str) -> bool {
    uuid.len() == 32 && uuid.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The age index of release `version` of `stream` (its place in the
/// stream's release index): from `graph`, the client's, when the release
/// is one of its nodes, else from the stream's other graphs in the same
/// snapshot (a release without an OCI image, or not built for the
/// client's architecture, is a node of another scope's graph with the
/// same age index). `None` when no graph of the stream has it. Should two graphs
/// disagree (built from different fetches of the index), the lower age
/// wins: it withholds more.
fn release_age(
    snapshot: &Snapshot,
    graph: &PreparedGraph,
    stream: &str,
    version: &str,
) -> Option<u64> {
    graph.age_of(version).or_else(|| {
        snapshot
            .scopes
            .iter()
            .filter(|(scope, _)| scope.stream == stream)
            .filter_map(|(_, entry)| entry.as_ref()?.graph.age_of(version))
            .min()
    })
}

/// Routes of the service port.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/graph")
            .route(web::get().to(serve_graph))
            .route(web::head().to(serve_graph))
            .default_service(web::to(service_kit::web::method_not_allowed)),
    )
    .route("/v1/openapi", web::get().to(service_kit::web::openapi))
    .default_service(web::to(service_kit::web::not_found));
}
