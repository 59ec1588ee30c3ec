//! The policy-engine's complete replica of the graph-builder: every scope
//! the graph-builder serves, kept current by one background task, never by
//! client requests.
//!
//! The task long-polls the graph-builder's `/v1/scopes` listing (it answers
//! as soon as anything changes), fetches the graphs whose `ETag` changed,
//! and swaps in the new snapshot whole. Clients read the snapshot only: a
//! scope not in it is answered 404 here, and the names a client sends never
//! reach the graph-builder. Each new snapshot is written to the state
//! directory, when configured, so that a restarted policy-engine serves at
//! once, even while the graph-builder is down.
//!
//! Nothing the graph-builder sends is taken on trust: every answer is read
//! up to `upstream.max_body_bytes`, a listing is applied only when it is
//! one the graph-builder can have sent (see `Listing::parse`), and a graph
//! only when its bytes hash to the `ETag` the listing gave for it. A scope
//! whose new graph is refused keeps its last good graph while the others
//! move on.

use crate::view::{PreparedGraph, ViewCache};
use commons::graph::{Graph, GraphScope, InvalidGraph, Scheme};
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use service_kit::web::{GraphBody, GraphError};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// Name of the snapshot file in the state directory.
pub const STATE_FILE: &str = "snapshot.json";
/// Version of the snapshot file's format.
const STATE_FORMAT: u32 = 1;
/// The snapshot file is read, and written, up to this many graphs as large
/// as `upstream.max_body_bytes`: the 8 scopes (four basearches, two
/// schemes) of 8 streams.
pub const STATE_GRAPHS: u64 = 64;

/// The largest snapshot file read or written with `max_body_bytes`.
pub fn state_limit(max_body_bytes: u64) -> u64 {
    max_body_bytes.saturating_mul(STATE_GRAPHS)
}
/// Longest pause between two attempts while the graph-builder fails.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One scope of a snapshot.
#[derive(Debug)]
pub struct Entry {
    /// The `ETag` of the graph-builder's graph this was made from.
    pub etag: String,
    /// The graph as received.
    pub body: Arc<GraphBody>,
    /// The graph, ready for per-client views.
    pub graph: Arc<PreparedGraph>,
}

/// Everything the policy-engine serves, as of one moment.
#[derive(Default, Debug)]
pub struct Snapshot {
    /// Whether this holds the graph-builder's state (from it or from disk);
    /// `false` only before the first snapshot.
    pub loaded: bool,
    /// Every scope served; `None` where the graph-builder has no graph yet.
    pub scopes: HashMap<GraphScope, Option<Arc<Entry>>>,
    /// The `ETag` of the graph-builder listing this snapshot follows.
    pub listing_etag: Option<String>,
    /// Scopes whose newer graph was refused, served from their last good
    /// one: when that one was last confirmed (seconds since the epoch).
    pub behind: HashMap<GraphScope, i64>,
}

impl Snapshot {
    /// The graph of `scope`, or why there is none.
    pub fn graph(&self, scope: &GraphScope) -> Result<&Arc<PreparedGraph>, GraphError> {
        if !self.loaded {
            return Err(GraphError::UpstreamUnavailable);
        }
        match self.scopes.get(scope) {
            Some(Some(entry)) => Ok(&entry.graph),
            Some(None) => Err(GraphError::NotReady(format!("stream '{}'", scope.stream))),
            None => Err(GraphError::UnknownScope {
                stream: scope.stream.clone(),
                basearch: scope.basearch.clone(),
            }),
        }
    }

    /// Whether any scope has a graph.
    fn holds_a_graph(&self) -> bool {
        self.scopes.values().any(Option::is_some)
    }
}

/// Where the snapshot being served came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Nothing yet.
    None,
    /// The state directory, written by an earlier run.
    Disk,
    /// The graph-builder.
    GraphBuilder,
}

impl Source {
    /// Every source, as labelled in `fcos_cincinnati_pe_snapshot_source`.
    pub const ALL: [Source; 3] = [Source::None, Source::Disk, Source::GraphBuilder];

    /// The label value (as in `/readyz`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::None => "none",
            Source::Disk => "disk",
            Source::GraphBuilder => "graph_builder",
        }
    }
}

/// The replica: the snapshot being served and when it was last known to be
/// the graph-builder's.
pub struct Replica {
    snapshot: RwLock<Arc<Snapshot>>,
    /// Seconds since the epoch when the snapshot was last confirmed current
    /// with the graph-builder (or written, for one read from disk; 0 for a
    /// file dated in the future, whose age is unknown).
    confirmed: AtomicI64,
    from_disk: AtomicBool,
    errors: IntCounterVec,
    state_errors: IntCounterVec,
    age: GaugeVec,
    source: IntGaugeVec,
    /// Called with the scopes of every snapshot put in place, so that
    /// per-scope counters exist (at 0) before the scope's first request,
    /// and go with the scope.
    scope_hook: OnceLock<ScopeHook>,
    /// Where the graphs' per-client views are kept.
    views: Arc<ViewCache>,
}

/// See [`Replica::on_scopes`].
type ScopeHook = Box<dyn Fn(&[&GraphScope]) + Send + Sync>;

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("snapshot", &self.snapshot)
            .field("confirmed", &self.confirmed)
            .field("from_disk", &self.from_disk)
            .field("scope_hook", &self.scope_hook.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// An empty replica registering its metrics in `registry`, its graphs'
    /// views kept in `views`.
    pub fn new(registry: &Registry, views: Arc<ViewCache>) -> prometheus::Result<Self> {
        let errors = IntCounterVec::new(
            Opts::new(
                "fcos_cincinnati_pe_upstream_errors_total",
                "Failed exchanges with the graph-builder and refused answers, by cause.",
            ),
            &["kind"],
        )?;
        let state_errors = IntCounterVec::new(
            Opts::new(
                "fcos_cincinnati_pe_state_errors_total",
                "Snapshot files in the state directory that could not be read or written.",
            ),
            &["operation"],
        )?;
        let age = GaugeVec::new(
            Opts::new(
                "fcos_cincinnati_pe_graph_age_seconds",
                "Seconds since the graph being served was last known to be the graph-builder's.",
            ),
            &["basearch", "stream", "type"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(state_errors.clone()))?;
        let source = IntGaugeVec::new(
            Opts::new(
                "fcos_cincinnati_pe_snapshot_source",
                "1 for where the snapshot being served came from (none, disk, graph_builder), 0 for the others.",
            ),
            &["source"],
        )?;
        registry.register(Box::new(age.clone()))?;
        registry.register(Box::new(source.clone()))?;
        for kind in FollowError::KINDS {
            errors.with_label_values(&[kind]);
        }
        for operation in ["read", "write"] {
            state_errors.with_label_values(&[operation]);
        }
        Ok(Replica {
            snapshot: RwLock::new(Arc::default()),
            confirmed: AtomicI64::new(0),
            from_disk: AtomicBool::new(false),
            errors,
            state_errors,
            age,
            source,
            scope_hook: OnceLock::new(),
            views,
        })
    }

    /// Calls `hook` with the scopes of the snapshot being served, and
    /// from then on with those of each snapshot put in place (once per
    /// replica; later calls are ignored).
    pub fn on_scopes(&self, hook: impl Fn(&[&GraphScope]) + Send + Sync + 'static) {
        if self.scope_hook.set(Box::new(hook)).is_ok() {
            self.call_scope_hook(&self.snapshot());
        }
    }

    fn call_scope_hook(&self, snapshot: &Snapshot) {
        if let Some(hook) = self.scope_hook.get() {
            hook(&snapshot.scopes.keys().collect::<Vec<_>>());
        }
    }

    /// The snapshot being served.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn replace(&self, snapshot: Arc<Snapshot>, confirmed: i64, from_disk: bool) {
        self.call_scope_hook(&snapshot);
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
        self.confirmed.store(confirmed, Ordering::Relaxed);
        self.from_disk.store(from_disk, Ordering::Relaxed);
    }

    /// Where the snapshot came from.
    pub fn source(&self) -> Source {
        match (
            self.snapshot().loaded,
            self.from_disk.load(Ordering::Relaxed),
        ) {
            (false, _) => Source::None,
            (true, true) => Source::Disk,
            (true, false) => Source::GraphBuilder,
        }
    }

    /// Seconds since the snapshot was last known to be current, as of
    /// `now`; `None` before the first snapshot.
    pub fn age(&self, now: i64) -> Option<i64> {
        self.snapshot()
            .loaded
            .then(|| (now - self.confirmed.load(Ordering::Relaxed)).max(0))
    }

    /// Whether the policy-engine can serve: it holds a snapshot with at
    /// least one graph.
    pub fn ready(&self) -> bool {
        self.snapshot().holds_a_graph()
    }

    /// The `/readyz` details: source, age and number of scopes.
    pub fn status(&self) -> serde_json::Value {
        let snapshot = self.snapshot();
        serde_json::json!({
            "source": self.source(),
            "age_seconds": self.age(commons::unix_now()),
            "scopes": snapshot.scopes.len(),
            "scopes_with_graph": snapshot.scopes.values().filter(|e| e.is_some()).count(),
            "scopes_behind": snapshot.behind.len(),
            "listing_etag": snapshot.listing_etag,
        })
    }

    /// The versions in the graphs being served, by stream.
    pub fn versions_by_stream(&self) -> HashMap<String, HashSet<String>> {
        let mut versions: HashMap<String, HashSet<String>> = HashMap::new();
        for (scope, entry) in &self.snapshot().scopes {
            if let Some(entry) = entry {
                versions
                    .entry(scope.stream.clone())
                    .or_default()
                    .extend(entry.graph.graph().nodes.iter().map(|n| n.version.clone()));
            }
        }
        versions
    }

    /// Sets the snapshot's source and the age of every graph being served;
    /// a scope whose newer graph was refused ages from when its graph was
    /// last confirmed.
    pub fn update_age_metric(&self) {
        let source = self.source();
        for each in Source::ALL {
            self.source
                .with_label_values(&[each.as_str()])
                .set(i64::from(each == source));
        }
        self.age.reset();
        let now = commons::unix_now();
        let Some(age) = self.age(now) else {
            return;
        };
        let snapshot = self.snapshot();
        for (scope, entry) in &snapshot.scopes {
            if entry.is_some() {
                let age = match snapshot.behind.get(scope) {
                    Some(confirmed) => (now - confirmed).max(age),
                    None => age,
                };
                self.age
                    .with_label_values(&[&scope.basearch, &scope.stream, scope.scheme.as_str()])
                    .set(age as f64);
            }
        }
    }

    /// Loads the snapshot file of `state_dir`, if there is a valid one; an
    /// invalid one is logged, counted and ignored. One dated in the future
    /// is served, its graphs being checked, but its age is unknown: it is
    /// reported as old as can be (counted from the epoch) until the
    /// graph-builder confirms it.
    pub fn load_state(&self, state_dir: &Path, limit: u64) {
        let path = state_dir.join(STATE_FILE);
        match read_state(&path, limit, &self.views) {
            Ok(None) => tracing::info!(file = %path.display(), "no snapshot saved yet"),
            Ok(Some((snapshot, written))) => {
                let now = commons::unix_now();
                let confirmed = if written > now {
                    tracing::warn!(
                        file = %path.display(),
                        written,
                        now,
                        "the saved snapshot is dated in the future: serving it, but as stale until the graph-builder confirms it"
                    );
                    0
                } else {
                    written
                };
                tracing::info!(
                    file = %path.display(),
                    scopes = snapshot.scopes.len(),
                    age_seconds = now - confirmed,
                    "serving the snapshot saved by an earlier run until the graph-builder answers"
                );
                self.replace(Arc::new(snapshot), confirmed, true);
            }
            Err(error) => {
                self.state_errors.with_label_values(&["read"]).inc();
                tracing::warn!(
                    file = %path.display(),
                    "ignoring the saved snapshot, it is not valid: {error}"
                );
            }
        }
    }
}

/// Why a graph's bytes are not a graph the replica can serve.
#[derive(Debug, thiserror::Error)]
pub enum GraphRefused {
    /// The bytes are not a graph's JSON.
    #[error("invalid graph JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The graph breaks the graph rules.
    #[error(transparent)]
    Rules(#[from] InvalidGraph),
    /// The bytes are not those the `ETag` was computed from.
    #[error("the graph hashes to {actual}, not to the ETag {expected} it was announced with")]
    EtagMismatch {
        /// The `ETag` announced.
        expected: String,
        /// The `ETag` of the bytes received.
        actual: String,
    },
}

/// Why a scope listing is not one the graph-builder can have sent; such a
/// listing changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    /// Not the listing's JSON.
    #[error("not a scope listing: {0}")]
    Json(#[from] serde_json::Error),
    /// No scope at all: the graph-builder serves at least one stream.
    #[error("it lists no scope")]
    Empty,
    /// More scopes than a replica takes.
    #[error("it lists {0} scopes, more than the {MAX_SCOPES} a policy-engine takes")]
    TooMany(usize),
    /// A stream or basearch name the graph-builder does not accept.
    #[error("entry {index}: '{name}' is not a stream or basearch name")]
    Name {
        /// Position in the listing.
        index: usize,
        /// The name.
        name: String,
    },
    /// An `ETag` the graph-builder does not make.
    #[error("entry {index}: {etag} is not a graph ETag")]
    Etag {
        /// Position in the listing.
        index: usize,
        /// The `ETag`.
        etag: String,
    },
    /// The same scope twice.
    #[error("{0} is listed twice")]
    Duplicate(GraphScope),
    /// A checksum scope without its OCI sibling: the graph-builder lists
    /// both schemes of a release-index stream, and the OCI scheme alone of
    /// a registry stream.
    #[error("{0} is missing (the graph-builder lists the OCI scope of every stream and basearch it lists)")]
    Incomplete(GraphScope),
    /// Applying it would leave the replica without any graph.
    #[error("it would drop every graph held ({held} scopes with a graph, none left after it)")]
    DropsEveryGraph {
        /// Scopes with a graph before it.
        held: usize,
    },
}

/// Why an exchange with the graph-builder failed or its answer was refused;
/// [`FollowError::kind`] is a metric label.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// No connection; the text is the client's, with every cause (it names
    /// the URL).
    #[error("{0}")]
    Connect(String),
    /// No answer in time.
    #[error("{0}")]
    Timeout(String),
    /// The answer broke off.
    #[error("{0}")]
    Read(String),
    /// A status other than 200 (or 304 to a poll).
    #[error("HTTP status {status} for {what}")]
    HttpStatus {
        /// The listing, or the scope of a graph.
        what: String,
        /// The status.
        status: u16,
    },
    /// An answer larger than `upstream.max_body_bytes`.
    #[error("{what}: the answer is larger than upstream.max_body_bytes ({limit} bytes)")]
    TooLarge {
        /// The listing, or the scope of a graph.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A listing the graph-builder cannot have sent.
    #[error("refusing the scope listing: {0}")]
    InvalidListing(#[from] ListingError),
    /// A graph that cannot be served.
    #[error("refusing the graph of {scope}: {source}")]
    InvalidGraph {
        /// Its scope.
        scope: GraphScope,
        /// Why.
        source: GraphRefused,
    },
}

impl FollowError {
    /// Every [`FollowError::kind`], exported at 0 from the start.
    pub const KINDS: [&'static str; 8] = [
        "connect",
        "timeout",
        "http_status",
        "invalid_listing",
        "invalid_graph",
        "etag_mismatch",
        "too_large",
        "read",
    ];

    /// The metric label of this error.
    pub fn kind(&self) -> &'static str {
        match self {
            FollowError::Connect(_) => "connect",
            FollowError::Timeout(_) => "timeout",
            FollowError::Read(_) => "read",
            FollowError::HttpStatus { .. } => "http_status",
            FollowError::TooLarge { .. } => "too_large",
            FollowError::InvalidListing(_) => "invalid_listing",
            FollowError::InvalidGraph {
                source: GraphRefused::EtagMismatch { .. },
                ..
            } => "etag_mismatch",
            FollowError::InvalidGraph { .. } => "invalid_graph",
        }
    }

    fn request(error: reqwest::Error) -> Self {
        // The error's sources say why (connection refused, …).
        let mut detail = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        if error.is_timeout() {
            FollowError::Timeout(detail)
        } else if error.is_connect() {
            FollowError::Connect(detail)
        } else {
            FollowError::Read(detail)
        }
    }
}

/// The graph-builder's listing, as sent.
#[derive(Deserialize)]
struct ListingFile {
    scopes: Vec<ListedScope>,
}

#[derive(Deserialize)]
struct ListedScope {
    stream: String,
    basearch: String,
    oci: bool,
    etag: Option<String>,
}

/// Most scopes a listing may hold: each scope served costs its graph, its
/// prepared bodies and its metric series, so a listing of more (a faulty or
/// hostile graph-builder) is refused whole. The graph-builder lists two
/// scopes a basearch of each release-index stream: 1,024 is 128 such
/// streams of four basearches.
pub const MAX_SCOPES: usize = 1024;

/// A scope listing the graph-builder can have sent: every scope with the
/// `ETag` of its graph (`None` while it has none), in the order listed.
struct Listing(Vec<(GraphScope, Option<String>)>);

impl Listing {
    /// Parses and checks a listing. It is refused whole unless it parses
    /// fully; lists at least one scope; names each stream and basearch as
    /// the graph-builder's configuration allows; gives each graph an `ETag`
    /// of the graph-builder's form (a quoted 128-bit hash) or none; lists no
    /// scope twice; and lists the OCI scope of every stream and basearch it
    /// lists, as the graph-builder does (both schemes for a release-index
    /// stream, the OCI scheme alone for a registry stream).
    fn parse(bytes: &[u8]) -> Result<Listing, ListingError> {
        let file: ListingFile = serde_json::from_slice(bytes)?;
        if file.scopes.is_empty() {
            return Err(ListingError::Empty);
        }
        if file.scopes.len() > MAX_SCOPES {
            return Err(ListingError::TooMany(file.scopes.len()));
        }
        let mut scopes = Vec::with_capacity(file.scopes.len());
        let mut seen = HashSet::with_capacity(file.scopes.len());
        for (index, listed) in file.scopes.into_iter().enumerate() {
            for name in [&listed.stream, &listed.basearch] {
                if !commons::graph::is_well_formed_name(name) {
                    return Err(ListingError::Name {
                        index,
                        name: name.clone(),
                    });
                }
            }
            if let Some(etag) = listed.etag.as_ref().filter(|e| !is_graph_etag(e)) {
                return Err(ListingError::Etag {
                    index,
                    etag: etag.clone(),
                });
            }
            let scope = GraphScope {
                stream: listed.stream,
                basearch: listed.basearch,
                scheme: Scheme::from_oci_flag(listed.oci),
            };
            if !seen.insert(scope.clone()) {
                return Err(ListingError::Duplicate(scope));
            }
            scopes.push((scope, listed.etag));
        }
        for (scope, _) in &scopes {
            let sibling = GraphScope {
                scheme: Scheme::Oci,
                ..scope.clone()
            };
            if !seen.contains(&sibling) {
                return Err(ListingError::Incomplete(sibling));
            }
        }
        Ok(Listing(scopes))
    }
}

/// Whether `etag` has the form of a graph's `ETag` ([`GraphBody::etag`]):
/// 32 lowercase hexadecimal digits in quotes.
fn is_graph_etag(etag: &str) -> bool {
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .is_some_and(|hex| {
            hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// Keeps a [`Replica`] current with the graph-builder: follows its listing
/// and fetches the graphs that changed.
#[derive(Debug)]
pub struct Follower {
    replica: Arc<Replica>,
    client: reqwest::Client,
    graph_url: url::Url,
    scopes_url: url::Url,
    /// How long the graph-builder may hold a poll.
    wait: Duration,
    /// Timeout of a request, beyond `wait`.
    timeout: Duration,
    /// Largest answer taken from the graph-builder.
    max_body_bytes: u64,
    state_dir: Option<PathBuf>,
}

/// What one round left undone: the scopes whose newer graph was refused.
type Refused = Vec<(GraphScope, FollowError)>;

impl Follower {
    /// A task keeping `replica` current with the graph-builder at
    /// `graph_url` (its `/v1/scopes` is next to it).
    pub fn new(
        replica: Arc<Replica>,
        graph_url: url::Url,
        wait: Duration,
        timeout: Duration,
        max_body_bytes: u64,
        state_dir: Option<PathBuf>,
    ) -> reqwest::Result<Self> {
        let client = service_kit::client::builder("fcos-policy-engine")
            .connect_timeout(timeout)
            .pool_max_idle_per_host(2)
            .build()?;
        let scopes_url = graph_url.join("scopes").expect("a sibling of an http URL");
        Ok(Follower {
            replica,
            client,
            graph_url,
            scopes_url,
            wait,
            timeout,
            max_body_bytes,
            state_dir,
        })
    }

    /// Follows the graph-builder until cancelled; failures are counted,
    /// logged when they start and end, and retried with a growing pause.
    /// A scope whose newer graph is refused keeps its last good graph and
    /// is retried the same way while the other scopes move on.
    pub async fn run(self) {
        let mut failing = false;
        let mut behind: HashSet<GraphScope> = HashSet::new();
        let mut backoff = Duration::from_millis(250);
        loop {
            let retry = match self.follow_once().await {
                Ok(refused) => {
                    if failing {
                        tracing::info!(url = %self.scopes_url, "the graph-builder answers again");
                    }
                    failing = false;
                    let now_behind: HashSet<GraphScope> =
                        refused.iter().map(|(scope, _)| scope.clone()).collect();
                    for (scope, error) in &refused {
                        self.replica.errors.with_label_values(&[error.kind()]).inc();
                        if behind.contains(scope) {
                            tracing::debug!(%scope, kind = error.kind(), "still refused: {error}");
                        } else {
                            tracing::warn!(
                                %scope,
                                kind = error.kind(),
                                "serving the last good graph of this scope: {error}"
                            );
                        }
                    }
                    for scope in behind.difference(&now_behind) {
                        tracing::info!(%scope, "the scope follows the graph-builder again");
                    }
                    behind = now_behind;
                    !refused.is_empty()
                }
                Err(error) => {
                    self.replica.errors.with_label_values(&[error.kind()]).inc();
                    if failing {
                        tracing::debug!(
                            kind = error.kind(),
                            "graph-builder still failing: {error}"
                        );
                    } else {
                        tracing::warn!(
                            url = %self.scopes_url,
                            kind = error.kind(),
                            "cannot follow the graph-builder, serving the last good snapshot: {error}"
                        );
                    }
                    failing = true;
                    true
                }
            };
            if retry {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF).min(self.wait);
            } else {
                backoff = Duration::from_millis(250);
            }
        }
    }

    /// One poll of the listing, and the graphs that changed; returns the
    /// scopes whose newer graph was refused.
    async fn follow_once(&self) -> Result<Refused, FollowError> {
        let current = self.replica.snapshot();
        let mut url = self.scopes_url.clone();
        url.query_pairs_mut()
            .append_pair("wait", &self.wait.as_secs().to_string());
        let mut request = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.wait + self.timeout);
        // Only a snapshot that came from the graph-builder may be waited on.
        if let (Some(etag), false) = (
            &current.listing_etag,
            self.replica.from_disk.load(Ordering::Relaxed),
        ) {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let asked = std::time::Instant::now();
        let response = request.send().await.map_err(FollowError::request)?;
        match response.status().as_u16() {
            304 => {
                self.replica
                    .confirmed
                    .store(commons::unix_now(), Ordering::Relaxed);
                self.pace(asked).await;
                return Ok(Vec::new());
            }
            200 => {}
            status => {
                return Err(FollowError::HttpStatus {
                    what: "the scope listing".to_string(),
                    status,
                })
            }
        }
        let listing_etag = header_text(&response, reqwest::header::ETAG);
        let body = self.read_body(response, "the scope listing").await?;
        let listing = Listing::parse(&body)?;

        let confirmed_before = self.replica.confirmed.load(Ordering::Relaxed);
        let mut scopes = HashMap::with_capacity(listing.0.len());
        let mut behind = HashMap::new();
        let mut refused = Vec::new();
        let mut fetched = 0;
        for (scope, etag) in listing.0 {
            let known = current.scopes.get(&scope).cloned().flatten();
            let entry = match (etag, known) {
                // Unchanged.
                (Some(etag), Some(known)) if known.etag == etag => Some(known),
                (Some(etag), known) => match self.fetch_graph(&scope, &etag).await {
                    Ok(entry) => {
                        fetched += 1;
                        Some(Arc::new(entry))
                    }
                    // The last good graph stays, aging from when it was
                    // last confirmed.
                    Err(error) => {
                        let since = current.behind.get(&scope).copied();
                        behind.insert(scope.clone(), since.unwrap_or(confirmed_before));
                        refused.push((scope.clone(), error));
                        known
                    }
                },
                // The graph-builder has no graph yet (it is starting, or the
                // stream's upstream is broken): the last good one stays.
                (None, known) => known,
            };
            scopes.insert(scope, entry);
        }
        let held = current.scopes.values().filter(|e| e.is_some()).count();
        if held > 0 && !scopes.values().any(Option::is_some) {
            return Err(ListingError::DropsEveryGraph { held }.into());
        }
        let changed = fetched > 0
            || scopes.len() != current.scopes.len()
            || !current.loaded
            || scopes.keys().any(|s| !current.scopes.contains_key(s));
        let snapshot = Snapshot {
            loaded: true,
            scopes,
            // A round that left scopes behind keeps the listing ETag it
            // had, so that the next poll is answered at once and retries.
            listing_etag: if refused.is_empty() {
                listing_etag
            } else {
                current.listing_etag.clone()
            },
            behind,
        };
        if changed {
            tracing::info!(
                fetched,
                scopes = snapshot.scopes.len(),
                behind = snapshot.behind.len(),
                "following a new graph-builder state"
            );
        }
        let snapshot = Arc::new(snapshot);
        self.replica
            .replace(Arc::clone(&snapshot), commons::unix_now(), false);
        if let (true, Some(dir)) = (changed, &self.state_dir) {
            self.save(dir, snapshot).await;
        }
        // A listing that brings nothing new (from a graph-builder that does
        // not hold polls) is not asked for again at once.
        if !changed && refused.is_empty() {
            self.pace(asked).await;
        }
        Ok(refused)
    }

    /// After a poll answered with nothing new: a graph-builder that does
    /// not hold polls (one stopping, or an older one) is not asked again at
    /// once.
    async fn pace(&self, asked: std::time::Instant) {
        if asked.elapsed() < self.wait / 2 {
            tokio::time::sleep(self.wait.min(Duration::from_secs(1))).await;
        }
    }

    /// Reads an answer's body up to `max_body_bytes`: a larger announced
    /// length is refused before reading, a longer stream as soon as it
    /// passes the limit.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        what: &str,
    ) -> Result<Vec<u8>, FollowError> {
        let too_large = || FollowError::TooLarge {
            what: what.to_string(),
            limit: self.max_body_bytes,
        };
        let announced = response.content_length();
        if announced.is_some_and(|len| len > self.max_body_bytes) {
            return Err(too_large());
        }
        // The body is held once: read into a buffer of its announced
        // length (the graph-builder announces it), or kept in chunks as
        // they come and joined once whole (no buffer doubling past the
        // limit).
        let mut body = Vec::with_capacity(announced.unwrap_or(0) as usize);
        let mut chunks = Vec::new();
        let mut len = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(FollowError::request)? {
            len += chunk.len() as u64;
            if len > self.max_body_bytes {
                return Err(too_large());
            }
            if len <= body.capacity() as u64 {
                body.extend_from_slice(&chunk);
            } else {
                chunks.push(chunk);
            }
        }
        if chunks.is_empty() {
            return Ok(body);
        }
        let mut whole = Vec::with_capacity(len as usize);
        whole.extend_from_slice(&body);
        drop(body);
        chunks
            .iter()
            .for_each(|chunk| whole.extend_from_slice(chunk));
        Ok(whole)
    }

    async fn fetch_graph(&self, scope: &GraphScope, etag: &str) -> Result<Entry, FollowError> {
        let mut url = self.graph_url.clone();
        url.query_pairs_mut()
            .append_pair("basearch", &scope.basearch)
            .append_pair("stream", &scope.stream)
            .append_pair(
                "oci",
                if scope.scheme == Scheme::Oci {
                    "true"
                } else {
                    "false"
                },
            );
        let response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(FollowError::request)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FollowError::HttpStatus {
                what: scope.to_string(),
                status: response.status().as_u16(),
            });
        }
        let body = self.read_body(response, &scope.to_string()).await?;
        entry_of(body, etag, &self.replica.views).map_err(|source| FollowError::InvalidGraph {
            scope: scope.clone(),
            source,
        })
    }

    /// Writes `snapshot` to the state directory; a failure is logged and
    /// counted, and serving goes on.
    async fn save(&self, dir: &Path, snapshot: Arc<Snapshot>) {
        let path = dir.join(STATE_FILE);
        let written = commons::unix_now();
        let result = tokio::task::spawn_blocking({
            let path = path.clone();
            let limit = state_limit(self.max_body_bytes);
            move || write_state(&path, &snapshot, written, limit)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e).into()));
        if let Err(error) = result {
            self.replica
                .state_errors
                .with_label_values(&["write"])
                .inc();
            tracing::warn!(file = %path.display(), "cannot save the snapshot: {error}");
        }
    }
}

fn header_text(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// A snapshot entry from a graph's bytes, which must hash to `etag` (the
/// graph-builder's [`GraphBody::etag`]) and follow the graph rules.
fn entry_of(json: Vec<u8>, etag: &str, views: &Arc<ViewCache>) -> Result<Entry, GraphRefused> {
    let body = GraphBody::new(json);
    if body.etag() != etag {
        return Err(GraphRefused::EtagMismatch {
            expected: etag.to_string(),
            actual: body.etag().to_string(),
        });
    }
    let graph: Graph = serde_json::from_slice(body.json())?;
    graph.validate()?;
    Ok(Entry {
        etag: body.etag().to_string(),
        body: Arc::new(body),
        graph: Arc::new(PreparedGraph::new(graph, views)),
    })
}

/// Why the snapshot file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file system refused.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Not a snapshot file.
    #[error("not a snapshot file: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a version with another format.
    #[error("format {0} is not {STATE_FORMAT}")]
    Format(u32),
    /// A graph that cannot be served.
    #[error("{scope}: {source}")]
    Graph {
        /// Its scope.
        scope: GraphScope,
        /// Why.
        source: GraphRefused,
    },
    /// An `ETag` without a graph or the reverse.
    #[error("{0}: an ETag without a graph or a graph without one")]
    Unpaired(GraphScope),
}

/// The snapshot file: every scope with its graph exactly as received.
#[derive(Serialize, Deserialize)]
struct StateFile<'a> {
    format: u32,
    /// When it was written, seconds since the epoch.
    written: i64,
    listing_etag: Option<String>,
    #[serde(borrow)]
    scopes: Vec<StateScope<'a>>,
}

#[derive(Serialize, Deserialize)]
struct StateScope<'a> {
    stream: String,
    basearch: String,
    oci: bool,
    etag: Option<String>,
    #[serde(borrow)]
    graph: Option<&'a RawValue>,
}

/// Writes the snapshot file atomically: a new temporary file of a random
/// name in the same directory (created exclusively, so nothing planted
/// there is followed), synced, then renamed over the old one. On failure
/// the temporary file is removed, as when the file would be larger than
/// `limit`, which it could not be read back from.
fn write_state(
    path: &Path,
    snapshot: &Snapshot,
    written: i64,
    limit: u64,
) -> Result<(), StateError> {
    use std::io::Write as _;
    let mut scopes: Vec<StateScope<'_>> = Vec::with_capacity(snapshot.scopes.len());
    let mut raws = Vec::with_capacity(snapshot.scopes.len());
    for entry in snapshot.scopes.values() {
        raws.push(match entry {
            Some(entry) => Some(RawValue::from_string(
                String::from_utf8_lossy(entry.body.json()).into_owned(),
            )?),
            None => None,
        });
    }
    for ((scope, entry), raw) in snapshot.scopes.iter().zip(&raws) {
        scopes.push(StateScope {
            stream: scope.stream.clone(),
            basearch: scope.basearch.clone(),
            oci: scope.scheme == Scheme::Oci,
            etag: entry.as_ref().map(|e| e.etag.clone()),
            graph: raw.as_deref(),
        });
    }
    scopes.sort_by(|a, b| (&a.stream, &a.basearch, a.oci).cmp(&(&b.stream, &b.basearch, b.oci)));
    let file = StateFile {
        format: STATE_FORMAT,
        written,
        listing_etag: snapshot.listing_etag.clone(),
        scopes,
    };
    commons::files::write_atomically(path, ".snapshot.", |out| {
        let mut out = commons::files::Capped::new(out, limit);
        // An I/O error stays one (a full disk, a file-size limit).
        serde_json::to_writer(&mut out, &file).map_err(std::io::Error::from)?;
        out.write_all(b"\n")
    })?;
    Ok(())
}

/// Reads and validates the snapshot file: `Ok(None)` when there is none.
/// It must be a regular file of at most `limit` bytes (anything else is
/// refused without waiting on it); every graph must parse, follow the
/// graph rules and match its `ETag`.
fn read_state(
    path: &Path,
    limit: u64,
    views: &Arc<ViewCache>,
) -> Result<Option<(Snapshot, i64)>, StateError> {
    let bytes = match commons::files::read_regular(path, limit) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let file: StateFile<'_> = serde_json::from_slice(&bytes)?;
    if file.format != STATE_FORMAT {
        return Err(StateError::Format(file.format));
    }
    let mut scopes = HashMap::with_capacity(file.scopes.len());
    for saved in file.scopes {
        let scope = GraphScope {
            stream: saved.stream,
            basearch: saved.basearch,
            scheme: Scheme::from_oci_flag(saved.oci),
        };
        let entry = match (saved.etag, saved.graph) {
            (Some(etag), Some(graph)) => {
                match entry_of(graph.get().as_bytes().to_vec(), &etag, views) {
                    Ok(entry) => Some(Arc::new(entry)),
                    Err(source) => return Err(StateError::Graph { scope, source }),
                }
            }
            (None, None) => None,
            _ => return Err(StateError::Unpaired(scope)),
        };
        scopes.insert(scope, entry);
    }
    let snapshot = Snapshot {
        loaded: true,
        scopes,
        listing_etag: file.listing_etag,
        behind: HashMap::new(),
    };
    Ok(Some((snapshot, file.written)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 1 << 20;

    fn views() -> Arc<ViewCache> {
        Arc::new(ViewCache::new(crate::view::DEFAULT_CACHE_BYTES))
    }

    const GRAPH: &str = r#"{"nodes":[{"version":"1","metadata":{"org.fedoraproject.coreos.releases.age_index":"0","org.fedoraproject.coreos.scheme":"checksum"},"payload":"a"}],"edges":[]}"#;

    fn snapshot() -> Snapshot {
        let scope = |stream: &str, oci| GraphScope {
            stream: stream.into(),
            basearch: "x86_64".into(),
            scheme: Scheme::from_oci_flag(oci),
        };
        let etag = GraphBody::new(GRAPH.as_bytes().to_vec()).etag().to_string();
        let entry = Arc::new(entry_of(GRAPH.as_bytes().to_vec(), &etag, &views()).unwrap());
        Snapshot {
            loaded: true,
            scopes: HashMap::from([
                (scope("stable", false), Some(Arc::clone(&entry))),
                (scope("stable", true), Some(entry)),
                (scope("next", false), None),
            ]),
            listing_etag: Some("\"l\"".into()),
            behind: HashMap::new(),
        }
    }

    #[test]
    fn listings_have_the_oci_scope_of_every_stream_and_basearch() {
        let listing = |scopes: serde_json::Value| {
            Listing::parse(
                serde_json::json!({ "scopes": scopes })
                    .to_string()
                    .as_bytes(),
            )
        };
        let scope = |stream: &str, oci: bool| serde_json::json!({"stream": stream, "basearch": "x86_64", "oci": oci, "etag": null});
        // A registry stream: the OCI scope alone.
        let parsed = listing(serde_json::json!([
            scope("stable", false),
            scope("stable", true),
            scope("mine", true)
        ]))
        .unwrap();
        assert_eq!(parsed.0.len(), 3);
        assert!(matches!(
            listing(serde_json::json!([scope("stable", false)])),
            Err(ListingError::Incomplete(GraphScope {
                scheme: Scheme::Oci,
                ..
            }))
        ));
    }

    #[test]
    fn listings_of_more_scopes_than_a_replica_takes_are_refused() {
        let listing = |n: usize| {
            let scopes: Vec<_> = (0..n)
                .map(|i| serde_json::json!({"stream": format!("s{i}"), "basearch": "x86_64", "oci": true, "etag": null}))
                .collect();
            Listing::parse(
                serde_json::json!({ "scopes": scopes })
                    .to_string()
                    .as_bytes(),
            )
        };
        assert_eq!(listing(MAX_SCOPES).unwrap().0.len(), MAX_SCOPES);
        assert!(matches!(
            listing(MAX_SCOPES + 1),
            Err(ListingError::TooMany(n)) if n == MAX_SCOPES + 1
        ));
    }

    #[test]
    fn graph_etags_are_those_the_graph_builder_makes() {
        let body = GraphBody::new(GRAPH.as_bytes().to_vec());
        assert!(is_graph_etag(body.etag()));
        for other in [
            "\"new\"",
            "W/\"abc\"",
            "",
            "\"\"",
            &body.etag().to_uppercase(),
        ] {
            assert!(!is_graph_etag(other), "{other}");
        }
    }

    #[test]
    fn the_state_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        assert!(read_state(&path, LIMIT, &views()).unwrap().is_none());
        write_state(&path, &snapshot(), 1_700_000_000, LIMIT).unwrap();
        let (read, written) = read_state(&path, LIMIT, &views()).unwrap().unwrap();
        assert_eq!(written, 1_700_000_000);
        assert_eq!(read.scopes.len(), 3);
        assert_eq!(read.listing_etag.as_deref(), Some("\"l\""));
        let graphs = read.scopes.values().filter(|e| e.is_some()).count();
        assert_eq!(graphs, 2);
        for entry in read.scopes.values().flatten() {
            assert_eq!(entry.body.json().as_ref(), GRAPH.as_bytes());
        }
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, [STATE_FILE]);
    }

    #[test]
    fn a_damaged_state_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        write_state(&path, &snapshot(), 1, LIMIT).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();
        for (what, text) in [
            ("truncated", good[..good.len() / 2].to_string()),
            ("empty", String::new()),
            (
                "other payload",
                good.replace("\"payload\":\"a\"", "\"payload\":\"b\""),
            ),
            (
                "invalid graph",
                good.replace("\"edges\":[]", "\"edges\":[[0,5]]"),
            ),
            ("format", good.replace("\"format\":1", "\"format\":2")),
        ] {
            std::fs::write(&path, text).unwrap();
            assert!(read_state(&path, LIMIT, &views()).is_err(), "{what}");
        }
    }
    #[test]
    fn a_state_file_over_the_limit_is_neither_written_nor_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        write_state(&path, &snapshot(), 1, LIMIT).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let error = read_state(&path, size - 1, &views()).err().unwrap();
        assert!(
            error.to_string().contains("larger than the limit"),
            "{error}"
        );
        assert!(read_state(&path, size, &views()).unwrap().is_some());
        // Too large to write: the good file stays, no temporary is left.
        let error = write_state(&path, &snapshot(), 2, size - 1).unwrap_err();
        assert!(
            error.to_string().contains("larger than the limit"),
            "{error}"
        );
        let (_, written) = read_state(&path, size, &views()).unwrap().unwrap();
        assert_eq!(written, 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_fifo_or_a_directory_at_the_state_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success(), "mkfifo");
        // Read on a thread: a reader that waited on the FIFO would hang.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn({
            let path = path.clone();
            move || {
                done.send(
                    read_state(&path, LIMIT, &views())
                        .err()
                        .map(|e| e.to_string()),
                )
            }
        });
        let error = finished
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the read does not wait on the FIFO")
            .expect("a FIFO is refused");
        assert!(error.contains("a FIFO"), "{error}");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let error = read_state(&path, LIMIT, &views()).err().unwrap();
        assert!(error.to_string().contains("a directory"), "{error}");
    }
}
