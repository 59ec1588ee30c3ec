//! The graphs the policy-engine has fetched from the graph-builder, one
//! slot per scope. A slot is refreshed in the background once it is older
//! than the refresh interval, while the last good graph keeps being served;
//! only a scope that never had a graph makes a client wait for a fetch.

use crate::view::PreparedGraph;
use commons::graph::{Graph, GraphScope};
use commons::web::GraphError;
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Most scopes remembered; requests for further scopes are answered
/// without being cached. Scopes the graph-builder does not serve never
/// keep a slot (they go to the bounded negative cache), and slots that
/// never got a graph are the first forgotten when the table is full, so
/// made-up stream names can neither grow memory nor crowd out real scopes.
const MAX_SLOTS: usize = 256;
/// Most scopes remembered as not served by the graph-builder.
const MAX_UNKNOWN: usize = 1024;
/// How long a failed fetch is remembered before the next client retries.
const ERROR_TTL: Duration = Duration::from_secs(1);

/// The result of the last fetch of a scope.
#[derive(Clone)]
enum Outcome {
    /// A graph was fetched.
    Graph,
    /// The graph-builder does not serve this scope.
    Unknown,
    /// The graph-builder could not give a graph.
    Failed(GraphError),
}

#[derive(Clone)]
struct SlotState {
    /// The last good graph, and when it was fetched.
    graph: Option<Arc<PreparedGraph>>,
    fetched: Option<Instant>,
    /// When the last fetch finished, and how.
    last: Option<(Instant, Outcome)>,
}

struct Slot {
    state: RwLock<SlotState>,
    /// Held while a fetch of this scope is in flight, so there is one at a
    /// time.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            state: RwLock::new(SlotState {
                graph: None,
                fetched: None,
                last: None,
            }),
            fetching: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn snapshot(&self) -> SlotState {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Fetches graphs from the graph-builder with one pooled client.
pub struct UpstreamGraphs {
    client: reqwest::Client,
    graph_url: url::Url,
    refresh: Duration,
    slots: RwLock<HashMap<GraphScope, Arc<Slot>>>,
    /// Scopes the graph-builder said it does not serve, and when.
    unknown: RwLock<HashMap<GraphScope, Instant>>,
    errors: IntCounterVec,
    age: GaugeVec,
}

impl UpstreamGraphs {
    /// A cache reading `graph_url`, registering its metrics in `registry`.
    pub fn new(
        graph_url: url::Url,
        timeout: Duration,
        refresh: Duration,
        registry: &Registry,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(8)
            .user_agent(concat!("fcos-policy-engine/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let errors = IntCounterVec::new(
            Opts::new(
                "fcos_cincinnati_pe_upstream_errors_total",
                "Failed fetches of a graph from the graph-builder, by cause.",
            ),
            &["kind"],
        )?;
        let age = GaugeVec::new(
            Opts::new(
                "fcos_cincinnati_pe_graph_age_seconds",
                "Seconds since the graph being served was fetched from the graph-builder.",
            ),
            &["basearch", "stream", "type"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(age.clone()))?;
        Ok(UpstreamGraphs {
            client,
            graph_url,
            refresh,
            slots: RwLock::default(),
            unknown: RwLock::default(),
            errors,
            age,
        })
    }

    /// The scopes and their slots, taken under the lock and used outside it.
    fn slots_snapshot(&self) -> Vec<(GraphScope, Arc<Slot>)> {
        self.slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(scope, slot)| (scope.clone(), Arc::clone(slot)))
            .collect()
    }

    /// The versions in the graphs being served, by stream.
    pub fn versions_by_stream(&self) -> HashMap<String, HashSet<String>> {
        let slots = self.slots_snapshot();
        let mut versions: HashMap<String, HashSet<String>> = HashMap::new();
        for (scope, slot) in slots {
            if let Some(graph) = slot.snapshot().graph {
                versions
                    .entry(scope.stream)
                    .or_default()
                    .extend(graph.graph().nodes.iter().map(|n| n.version.clone()));
            }
        }
        versions
    }

    /// Sets the age of every graph being served. Only scopes the
    /// graph-builder served have a graph, so the labels stay bounded.
    pub fn update_age_metric(&self) {
        let slots = self.slots_snapshot();
        self.age.reset();
        for (scope, slot) in slots {
            if let Some(fetched) = slot.snapshot().fetched {
                self.age
                    .with_label_values(&[&scope.basearch, &scope.stream, scope.scheme.as_str()])
                    .set(fetched.elapsed().as_secs_f64());
            }
        }
    }

    /// The graph of `scope`: cached, refreshed in the background when
    /// stale, fetched now when never seen.
    pub async fn get(
        self: &Arc<Self>,
        scope: &GraphScope,
    ) -> Result<Arc<PreparedGraph>, GraphError> {
        let known_unknown = self
            .unknown
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
            .is_some_and(|at| at.elapsed() < self.refresh);
        if known_unknown {
            return Err(GraphError::UnknownScope {
                stream: scope.stream.clone(),
                basearch: scope.basearch.clone(),
            });
        }
        let slot = self.slot(scope);
        let state = slot.snapshot();
        if let Some(answer) = self.answer_if_fresh(scope, &state) {
            return answer;
        }
        if let Some(graph) = state.graph {
            // Stale but usable: serve it, refresh behind.
            if let Ok(guard) = Arc::clone(&slot.fetching).try_lock_owned() {
                let this = Arc::clone(self);
                let scope = scope.clone();
                let slot = Arc::clone(&slot);
                tokio::spawn(async move {
                    this.fetch_into(&scope, &slot).await;
                    drop(guard);
                });
            }
            return Ok(graph);
        }
        let _guard = slot.fetching.lock().await;
        let state = slot.snapshot();
        if let Some(answer) = self.answer_if_fresh(scope, &state) {
            return answer;
        }
        self.fetch_into(scope, &slot).await;
        let state = slot.snapshot();
        self.answer_if_fresh(scope, &state)
            .unwrap_or(Err(GraphError::UpstreamUnavailable))
    }

    /// The answer recorded in `state`, unless it is too old to use.
    fn answer_if_fresh(
        &self,
        scope: &GraphScope,
        state: &SlotState,
    ) -> Option<Result<Arc<PreparedGraph>, GraphError>> {
        let (at, outcome) = state.last.as_ref()?;
        let ttl = match outcome {
            Outcome::Graph | Outcome::Unknown => self.refresh,
            Outcome::Failed(_) => ERROR_TTL,
        };
        let fresh = at.elapsed() < ttl;
        match (outcome, &state.graph) {
            (_, Some(graph)) if fresh => Some(Ok(Arc::clone(graph))),
            (Outcome::Unknown, None) if fresh => Some(Err(GraphError::UnknownScope {
                stream: scope.stream.clone(),
                basearch: scope.basearch.clone(),
            })),
            (Outcome::Failed(error), None) if fresh => Some(Err(error.clone())),
            _ => None,
        }
    }

    fn slot(&self, scope: &GraphScope) -> Arc<Slot> {
        if let Some(slot) = self
            .slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
        {
            return Arc::clone(slot);
        }
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(scope) {
            return Arc::clone(slot);
        }
        let slot = Arc::new(Slot::new());
        if slots.len() >= MAX_SLOTS {
            // Make room by forgetting scopes that never got a graph (made-up
            // names asked while the graph-builder was failing); scopes with
            // a graph are bounded by what the graph-builder serves.
            slots.retain(|_, slot| slot.snapshot().graph.is_some());
        }
        if slots.len() < MAX_SLOTS {
            slots.insert(scope.clone(), Arc::clone(&slot));
        }
        slot
    }

    /// Fetches `scope` and records the outcome in `slot`; a failure keeps
    /// the last good graph.
    async fn fetch_into(&self, scope: &GraphScope, slot: &Slot) {
        let outcome = self.fetch(scope).await;
        let mut state = slot.state.write().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match outcome {
            Ok(graph) => {
                // An unchanged graph keeps its prepared views.
                let unchanged = state
                    .graph
                    .as_ref()
                    .is_some_and(|current| current.is_prepared_from(&graph));
                if !unchanged {
                    state.graph = Some(Arc::new(PreparedGraph::new(graph)));
                }
                state.fetched = Some(now);
                state.last = Some((now, Outcome::Graph));
                drop(state);
                self.unknown
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(scope);
            }
            Err(FetchFailure::Unknown) => {
                state.graph = None;
                state.fetched = None;
                state.last = Some((now, Outcome::Unknown));
                drop(state);
                // Not served: remember it in the negative cache (first, so
                // that no request in between sees neither), not as a slot.
                {
                    let mut unknown = self.unknown.write().unwrap_or_else(|e| e.into_inner());
                    if unknown.len() >= MAX_UNKNOWN {
                        let refresh = self.refresh;
                        unknown.retain(|_, at| at.elapsed() < refresh);
                        if unknown.len() >= MAX_UNKNOWN {
                            unknown.clear();
                        }
                    }
                    unknown.insert(scope.clone(), now);
                }
                self.slots
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(scope);
            }
            Err(FetchFailure::Failed {
                kind,
                error,
                detail,
            }) => {
                self.errors.with_label_values(&[kind]).inc();
                tracing::warn!(
                    scope = %scope,
                    kind,
                    "fetching the graph from {} failed, serving the last good graph if any: {detail}",
                    self.graph_url
                );
                state.last = Some((now, Outcome::Failed(error)));
            }
        }
    }

    async fn fetch(&self, scope: &GraphScope) -> Result<Graph, FetchFailure> {
        let mut url = self.graph_url.clone();
        url.query_pairs_mut()
            .append_pair("basearch", &scope.basearch)
            .append_pair("stream", &scope.stream)
            .append_pair(
                "oci",
                if scope.scheme == commons::graph::Scheme::Oci {
                    "true"
                } else {
                    "false"
                },
            );
        let unavailable = |kind: &'static str, detail: String| FetchFailure::Failed {
            kind,
            error: GraphError::UpstreamUnavailable,
            detail,
        };
        let response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                let kind = if e.is_timeout() { "timeout" } else { "connect" };
                unavailable(kind, e.to_string())
            })?;
        match response.status().as_u16() {
            200 => {}
            404 => {
                // Only the graph-builder's own "not served" means the scope
                // is unknown; another 404 (a wrong URL, a proxy) is a fault.
                let body = response.bytes().await.unwrap_or_default();
                let kind = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["kind"].as_str().map(String::from));
                return Err(match kind.as_deref() {
                    Some("unknown_scope") => FetchFailure::Unknown,
                    _ => unavailable("http_status", "HTTP status 404".to_string()),
                });
            }
            503 => {
                return Err(FetchFailure::Failed {
                    kind: "not_ready",
                    error: GraphError::NotReady(format!("stream '{}'", scope.stream)),
                    detail: "the graph-builder has no graph yet".to_string(),
                })
            }
            status => return Err(unavailable("http_status", format!("HTTP status {status}"))),
        }
        let body = response.bytes().await.map_err(|e| {
            unavailable(
                if e.is_timeout() { "timeout" } else { "read" },
                e.to_string(),
            )
        })?;
        let graph: Graph = serde_json::from_slice(&body)
            .map_err(|e| unavailable("invalid_graph", format!("invalid graph JSON: {e}")))?;
        graph
            .validate()
            .map_err(|e| unavailable("invalid_graph", e.to_string()))?;
        Ok(graph)
    }
}

enum FetchFailure {
    Unknown,
    Failed {
        kind: &'static str,
        error: GraphError,
        detail: String,
    },
}
