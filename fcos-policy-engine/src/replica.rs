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

use crate::view::PreparedGraph;
use commons::graph::{Graph, GraphScope, Scheme};
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use service_kit::web::{GraphBody, GraphError};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Name of the snapshot file in the state directory.
pub const STATE_FILE: &str = "snapshot.json";
/// Version of the snapshot file's format.
const STATE_FORMAT: u32 = 1;
/// Longest pause between two attempts while the graph-builder fails.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One scope of a snapshot.
pub struct Entry {
    /// The `ETag` of the graph-builder's graph this was made from.
    pub etag: String,
    /// The graph as received.
    pub body: Arc<GraphBody>,
    /// The graph, ready for per-client views.
    pub graph: Arc<PreparedGraph>,
}

/// Everything the policy-engine serves, as of one moment.
#[derive(Default)]
pub struct Snapshot {
    /// Whether this holds the graph-builder's state (from it or from disk);
    /// `false` only before the first snapshot.
    pub loaded: bool,
    /// Every scope served; `None` where the graph-builder has no graph yet.
    pub scopes: HashMap<GraphScope, Option<Arc<Entry>>>,
    /// The `ETag` of the graph-builder listing this snapshot follows.
    pub listing_etag: Option<String>,
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

/// The replica: the snapshot being served and when it was last known to be
/// the graph-builder's.
pub struct Replica {
    snapshot: RwLock<Arc<Snapshot>>,
    /// Seconds since the epoch when the snapshot was last confirmed current
    /// with the graph-builder (or written, for one read from disk).
    confirmed: AtomicI64,
    from_disk: AtomicBool,
    errors: IntCounterVec,
    state_errors: IntCounterVec,
    age: GaugeVec,
}

impl Replica {
    /// An empty replica registering its metrics in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let errors = IntCounterVec::new(
            Opts::new(
                "fcos_cincinnati_pe_upstream_errors_total",
                "Failed exchanges with the graph-builder, by cause.",
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
        registry.register(Box::new(age.clone()))?;
        for kind in [
            "connect",
            "timeout",
            "http_status",
            "invalid_listing",
            "invalid_graph",
            "read",
        ] {
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
        })
    }

    /// The snapshot being served.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn replace(&self, snapshot: Arc<Snapshot>, confirmed: i64, from_disk: bool) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
        self.confirmed.store(confirmed, Ordering::Relaxed);
        self.from_disk.store(from_disk, Ordering::Relaxed);
    }

    /// The graph of `scope`, or why there is none.
    pub fn get(&self, scope: &GraphScope) -> Result<Arc<PreparedGraph>, GraphError> {
        let snapshot = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        if !snapshot.loaded {
            return Err(GraphError::UpstreamUnavailable);
        }
        match snapshot.scopes.get(scope) {
            Some(Some(entry)) => Ok(Arc::clone(&entry.graph)),
            Some(None) => Err(GraphError::NotReady(format!("stream '{}'", scope.stream))),
            None => Err(GraphError::UnknownScope {
                stream: scope.stream.clone(),
                basearch: scope.basearch.clone(),
            }),
        }
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
        self.snapshot().scopes.values().any(Option::is_some)
    }

    /// The `/readyz` details: source, age and number of scopes.
    pub fn status(&self) -> serde_json::Value {
        let snapshot = self.snapshot();
        serde_json::json!({
            "source": self.source(),
            "age_seconds": self.age(commons::unix_now()),
            "scopes": snapshot.scopes.len(),
            "scopes_with_graph": snapshot.scopes.values().filter(|e| e.is_some()).count(),
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

    /// Sets the age of every graph being served.
    pub fn update_age_metric(&self) {
        self.age.reset();
        let Some(age) = self.age(commons::unix_now()) else {
            return;
        };
        for (scope, entry) in &self.snapshot().scopes {
            if entry.is_some() {
                self.age
                    .with_label_values(&[&scope.basearch, &scope.stream, scope.scheme.as_str()])
                    .set(age as f64);
            }
        }
    }

    /// Loads the snapshot file of `state_dir`, if there is a valid one; an
    /// invalid one is logged, counted and ignored.
    pub fn load_state(&self, state_dir: &Path) {
        let path = state_dir.join(STATE_FILE);
        match read_state(&path) {
            Ok(None) => tracing::info!(file = %path.display(), "no snapshot saved yet"),
            Ok(Some((snapshot, written))) => {
                tracing::info!(
                    file = %path.display(),
                    scopes = snapshot.scopes.len(),
                    age_seconds = commons::unix_now() - written,
                    "serving the snapshot saved by an earlier run until the graph-builder answers"
                );
                self.replace(Arc::new(snapshot), written, true);
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

/// The graph-builder's listing, as sent.
#[derive(Deserialize)]
struct Listing {
    scopes: Vec<ListedScope>,
}

#[derive(Deserialize)]
struct ListedScope {
    stream: String,
    basearch: String,
    oci: bool,
    etag: Option<String>,
}

/// Why an exchange with the graph-builder failed; `kind` is a metric
/// label.
#[derive(Debug)]
struct SyncError {
    kind: &'static str,
    detail: String,
}

impl SyncError {
    fn of(kind: &'static str, detail: impl ToString) -> Self {
        SyncError {
            kind,
            detail: detail.to_string(),
        }
    }

    fn request(error: reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            "timeout"
        } else if error.is_connect() {
            "connect"
        } else {
            "read"
        };
        // The error's sources say why (connection refused, …).
        let mut detail = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        SyncError::of(kind, detail)
    }
}

/// Keeps a [`Replica`] current with the graph-builder.
pub struct Sync {
    replica: Arc<Replica>,
    client: reqwest::Client,
    graph_url: url::Url,
    scopes_url: url::Url,
    /// How long the graph-builder may hold a poll.
    wait: Duration,
    /// Timeout of a request, beyond `wait`.
    timeout: Duration,
    state_dir: Option<PathBuf>,
}

impl Sync {
    /// A task keeping `replica` current with the graph-builder at
    /// `graph_url` (its `/v1/scopes` is next to it).
    pub fn new(
        replica: Arc<Replica>,
        graph_url: url::Url,
        wait: Duration,
        timeout: Duration,
        state_dir: Option<PathBuf>,
    ) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .pool_max_idle_per_host(2)
            .user_agent(concat!("fcos-policy-engine/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let scopes_url = graph_url.join("scopes").expect("a sibling of an http URL");
        Ok(Sync {
            replica,
            client,
            graph_url,
            scopes_url,
            wait,
            timeout,
            state_dir,
        })
    }

    /// Follows the graph-builder until cancelled; failures are counted,
    /// logged when they start and end, and retried with a growing pause.
    pub async fn run(self) {
        let mut failing = false;
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.sync_once().await {
                Ok(()) => {
                    if failing {
                        tracing::info!(url = %self.scopes_url, "the graph-builder answers again");
                    }
                    failing = false;
                    backoff = Duration::from_millis(250);
                }
                Err(error) => {
                    self.replica.errors.with_label_values(&[error.kind]).inc();
                    if failing {
                        tracing::debug!(
                            kind = error.kind,
                            "graph-builder still failing: {}",
                            error.detail
                        );
                    } else {
                        tracing::warn!(
                            url = %self.scopes_url,
                            kind = error.kind,
                            "cannot follow the graph-builder, serving the last good snapshot: {}",
                            error.detail
                        );
                    }
                    failing = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF).min(self.wait);
                }
            }
        }
    }

    /// One poll of the listing, and the graphs that changed.
    async fn sync_once(&self) -> Result<(), SyncError> {
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
        let response = request.send().await.map_err(SyncError::request)?;
        match response.status().as_u16() {
            304 => {
                self.replica
                    .confirmed
                    .store(commons::unix_now(), Ordering::Relaxed);
                // A graph-builder that does not hold polls (one stopping, or
                // an older one) is not asked again at once.
                if asked.elapsed() < self.wait / 2 {
                    tokio::time::sleep(self.wait.min(Duration::from_secs(1))).await;
                }
                return Ok(());
            }
            200 => {}
            status => {
                return Err(SyncError::of(
                    "http_status",
                    format!("HTTP status {status}"),
                ))
            }
        }
        let listing_etag = header_text(&response, reqwest::header::ETAG);
        let body = response.bytes().await.map_err(SyncError::request)?;
        let listing: Listing = serde_json::from_slice(&body)
            .map_err(|e| SyncError::of("invalid_listing", format!("invalid scope listing: {e}")))?;

        let mut scopes = HashMap::with_capacity(listing.scopes.len());
        let mut fetched = 0;
        for listed in listing.scopes {
            let scope = GraphScope {
                stream: listed.stream,
                basearch: listed.basearch,
                scheme: Scheme::from_oci_flag(listed.oci),
            };
            let known = current.scopes.get(&scope).cloned().flatten();
            let entry = match (listed.etag, known) {
                // Unchanged.
                (Some(etag), Some(known)) if known.etag == etag => Some(known),
                (Some(_), _) => {
                    fetched += 1;
                    Some(Arc::new(self.fetch_graph(&scope).await?))
                }
                // The graph-builder has no graph yet (it is starting, or the
                // stream's upstream is broken): the last good one stays.
                (None, known) => known,
            };
            scopes.insert(scope, entry);
        }
        let changed = fetched > 0
            || scopes.len() != current.scopes.len()
            || !current.loaded
            || scopes.keys().any(|s| !current.scopes.contains_key(s));
        let snapshot = Snapshot {
            loaded: true,
            scopes,
            listing_etag,
        };
        if changed {
            tracing::info!(
                fetched,
                scopes = snapshot.scopes.len(),
                "following a new graph-builder state"
            );
        }
        let snapshot = Arc::new(snapshot);
        self.replica
            .replace(Arc::clone(&snapshot), commons::unix_now(), false);
        if let (true, Some(dir)) = (changed, &self.state_dir) {
            self.save(dir, snapshot).await;
        }
        Ok(())
    }

    async fn fetch_graph(&self, scope: &GraphScope) -> Result<Entry, SyncError> {
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
            .map_err(SyncError::request)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(SyncError::of(
                "http_status",
                format!("HTTP status {} for {scope}", response.status().as_u16()),
            ));
        }
        let body = response.bytes().await.map_err(SyncError::request)?;
        entry_of(body.to_vec()).map_err(|e| SyncError::of("invalid_graph", format!("{scope}: {e}")))
    }

    /// Writes `snapshot` to the state directory; a failure is logged and
    /// counted, and serving goes on.
    async fn save(&self, dir: &Path, snapshot: Arc<Snapshot>) {
        let path = dir.join(STATE_FILE);
        let written = commons::unix_now();
        let result = tokio::task::spawn_blocking({
            let path = path.clone();
            move || write_state(&path, &snapshot, written)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
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

/// A snapshot entry from a graph's bytes, checked against the graph rules.
fn entry_of(json: Vec<u8>) -> Result<Entry, String> {
    let graph: Graph =
        serde_json::from_slice(&json).map_err(|e| format!("invalid graph JSON: {e}"))?;
    graph.validate().map_err(|e| e.to_string())?;
    let body = GraphBody::new(json);
    Ok(Entry {
        etag: body.etag().to_string(),
        body: Arc::new(body),
        graph: Arc::new(PreparedGraph::new(graph)),
    })
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

/// Writes the snapshot file atomically: a temporary file in the same
/// directory, synced, then renamed over the old one.
fn write_state(path: &Path, snapshot: &Snapshot, written: i64) -> std::io::Result<()> {
    use std::io::Write;
    let mut scopes: Vec<StateScope<'_>> = Vec::with_capacity(snapshot.scopes.len());
    let mut raws = Vec::with_capacity(snapshot.scopes.len());
    for entry in snapshot.scopes.values() {
        raws.push(match entry {
            Some(entry) => Some(
                RawValue::from_string(String::from_utf8_lossy(entry.body.json()).into_owned())
                    .map_err(std::io::Error::other)?,
            ),
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
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = path.with_extension("json.tmp");
    {
        let mut out = std::fs::File::create(&temporary)?;
        serde_json::to_writer(&mut out, &file).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        out.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads and validates the snapshot file: `Ok(None)` when there is none.
/// Every graph must parse, follow the graph rules and match its `ETag`.
fn read_state(path: &Path) -> Result<Option<(Snapshot, i64)>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let file: StateFile<'_> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if file.format != STATE_FORMAT {
        return Err(format!("format {} is not {STATE_FORMAT}", file.format));
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
                let entry = entry_of(graph.get().as_bytes().to_vec())
                    .map_err(|e| format!("{scope}: {e}"))?;
                if entry.etag != etag {
                    return Err(format!("{scope}: the graph does not match its ETag"));
                }
                Some(Arc::new(entry))
            }
            (None, None) => None,
            _ => {
                return Err(format!(
                    "{scope}: an ETag without a graph or a graph without one"
                ))
            }
        };
        scopes.insert(scope, entry);
    }
    let snapshot = Snapshot {
        loaded: true,
        scopes,
        listing_etag: file.listing_etag,
    };
    Ok(Some((snapshot, file.written)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRAPH: &str = r#"{"nodes":[{"version":"1","metadata":{"org.fedoraproject.coreos.releases.age_index":"0","org.fedoraproject.coreos.scheme":"checksum"},"payload":"a"}],"edges":[]}"#;

    fn snapshot() -> Snapshot {
        let scope = |stream: &str, oci| GraphScope {
            stream: stream.into(),
            basearch: "x86_64".into(),
            scheme: Scheme::from_oci_flag(oci),
        };
        let entry = Arc::new(entry_of(GRAPH.as_bytes().to_vec()).unwrap());
        Snapshot {
            loaded: true,
            scopes: HashMap::from([
                (scope("stable", false), Some(Arc::clone(&entry))),
                (scope("stable", true), Some(entry)),
                (scope("next", false), None),
            ]),
            listing_etag: Some("\"l\"".into()),
        }
    }

    #[test]
    fn the_state_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        assert!(read_state(&path).unwrap().is_none());
        write_state(&path, &snapshot(), 1_700_000_000).unwrap();
        let (read, written) = read_state(&path).unwrap().unwrap();
        assert_eq!(written, 1_700_000_000);
        assert_eq!(read.scopes.len(), 3);
        assert_eq!(read.listing_etag.as_deref(), Some("\"l\""));
        let graphs = read.scopes.values().filter(|e| e.is_some()).count();
        assert_eq!(graphs, 2);
        for entry in read.scopes.values().flatten() {
            assert_eq!(entry.body.json().as_ref(), GRAPH.as_bytes());
        }
        assert!(!dir.path().join("snapshot.json.tmp").exists());
    }

    #[test]
    fn a_damaged_state_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        write_state(&path, &snapshot(), 1).unwrap();
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
            assert!(read_state(&path).is_err(), "{what}");
        }
    }
}
