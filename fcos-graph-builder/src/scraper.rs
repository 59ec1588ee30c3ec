//! One scraper per stream: fetches the stream's release index and updates
//! metadata together, builds and validates every graph of the stream, and
//! publishes them all at once. A failed refresh keeps the last good graphs.

use crate::config::StreamSettings;
use crate::fetch::{Document, FetchError, Fetched, Fetcher};
use crate::store::{GraphStore, StreamGraphs};
use commons::graph::{serialize_graphs, InvalidGraph, Scheme};
use commons::metadata::{MetadataError, ReleaseIndex, UpdatesMetadata};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use service_kit::web::GraphBody;
use std::time::Duration;

/// Scraper metrics, shared by every stream's scraper.
#[derive(Clone, Debug)]
pub struct ScraperMetrics {
    scrapes: IntCounterVec,
    errors: IntCounterVec,
    final_edges: IntGaugeVec,
    final_releases: IntGaugeVec,
    last_refresh: IntGaugeVec,
    last_success: IntGaugeVec,
    last_failed: IntGaugeVec,
    last_error: IntGaugeVec,
    since_success: IntGaugeVec,
}

impl ScraperMetrics {
    /// Creates and registers the scraper metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let scope = &["basearch", "stream", "type"];
        let metrics = ScraperMetrics {
            scrapes: IntCounterVec::new(
                Opts::new(
                    "fcos_cincinnati_gb_scraper_upstream_scrapes_total",
                    "Refreshes of a stream's upstream documents, successful or not.",
                ),
                &["stream"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "fcos_cincinnati_gb_scraper_upstream_errors_total",
                    "Failed refreshes of a stream, by cause.",
                ),
                &["stream", "kind"],
            )?,
            final_edges: IntGaugeVec::new(
                Opts::new(
                    "fcos_cincinnati_gb_scraper_graph_final_edges",
                    "Edges in the published graph.",
                ),
                scope,
            )?,
            final_releases: IntGaugeVec::new(
                Opts::new(
                    "fcos_cincinnati_gb_scraper_graph_final_releases",
                    "Releases (nodes) in the published graph.",
                ),
                scope,
            )?,
            last_refresh: IntGaugeVec::new(
                Opts::new(
                    "fcos_cincinnati_gb_scraper_graph_last_refresh_timestamp",
                    "When the published graph was built, seconds since the Unix epoch.",
                ),
                scope,
            )?,
            last_success: IntGaugeVec::new(
                Opts::new(
                    "fcos_cincinnati_gb_scraper_last_success_timestamp_seconds",
                    "When a refresh of the stream last succeeded (changed or not), seconds since the Unix epoch.",
                ),
                &["stream"],
            )?,
            since_success: IntGaugeVec::new(
                Opts::new(
                    "fcos_cincinnati_gb_scraper_seconds_since_last_success",
                    "Seconds since a refresh of the stream last succeeded (since start when none has).",
                ),
                &["stream"],
            )?,
            last_failed: IntGaugeVec::new(
                Opts::new(
                    "fcos_cincinnati_gb_scraper_last_refresh_failed",
                    "1 when the stream's last refresh failed, else 0.",
                ),
                &["stream"],
            )?,
            last_error: IntGaugeVec::new(
                Opts::new(
                    "fcos_cincinnati_gb_scraper_last_refresh_error",
                    "1 for the kind of the stream's last refresh failure, 0 for the other kinds; all 0 once a refresh succeeds.",
                ),
                &["stream", "kind"],
            )?,
        };
        registry.register(Box::new(metrics.scrapes.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.final_edges.clone()))?;
        registry.register(Box::new(metrics.final_releases.clone()))?;
        registry.register(Box::new(metrics.last_refresh.clone()))?;
        registry.register(Box::new(metrics.last_success.clone()))?;
        registry.register(Box::new(metrics.last_failed.clone()))?;
        registry.register(Box::new(metrics.last_error.clone()))?;
        registry.register(Box::new(metrics.since_success.clone()))?;
        Ok(metrics)
    }

    /// Creates the counters of `stream` at 0, every error kind included, so
    /// that `rate()` and `increase()` see their first increment.
    pub fn init_stream(&self, stream: &str) {
        self.scrapes.with_label_values(&[stream]);
        for kind in RefreshError::KINDS {
            self.errors.with_label_values(&[stream, kind]);
            self.last_error.with_label_values(&[stream, kind]);
        }
    }

    /// Marks `failed` (a kind) as the stream's current failure, or none.
    fn set_last_error(&self, stream: &str, failed: Option<&str>) {
        for kind in RefreshError::KINDS {
            self.last_error
                .with_label_values(&[stream, kind])
                .set(i64::from(failed == Some(kind)));
        }
    }

    /// Sets the size and build time of each graph of `stream` just built,
    /// and gathers them for publishing.
    pub fn record_graphs(&self, stream: &str, built: Vec<BuiltGraph>) -> StreamGraphs {
        let now = commons::unix_now();
        let mut graphs = StreamGraphs::default();
        for graph in built {
            let labels = [graph.basearch.as_str(), stream, graph.scheme.as_str()];
            self.final_edges
                .with_label_values(&labels)
                .set(graph.edges as i64);
            self.final_releases
                .with_label_values(&labels)
                .set(graph.nodes as i64);
            self.last_refresh.with_label_values(&labels).set(now);
            graphs.insert(&graph.basearch, graph.scheme, graph.body);
        }
        graphs
    }

    /// Removes the series of a graph no longer published.
    pub fn forget_graph(&self, stream: &str, basearch: &str, scheme: Scheme) {
        let labels = [basearch, stream, scheme.as_str()];
        // A series never set is not there to remove: not an error.
        let _ = self.final_edges.remove_label_values(&labels);
        let _ = self.final_releases.remove_label_values(&labels);
        let _ = self.last_refresh.remove_label_values(&labels);
    }

    /// Sets the seconds since each stream's last successful refresh, as of
    /// `now`; a stream that never had one counts from `started`.
    pub fn update_staleness(&self, streams: &[String], started: i64, now: i64) {
        for stream in streams {
            let last = self.last_success.with_label_values(&[stream]).get();
            let since = if last > 0 { last } else { started };
            self.since_success
                .with_label_values(&[stream])
                .set((now - since).max(0));
        }
    }
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// A document could not be fetched.
    #[error("fetching {url} failed: {source}")]
    Fetch {
        /// Where from.
        url: String,
        /// What happened.
        source: FetchError,
    },
    /// A document was fetched but is not acceptable.
    #[error("{url} was rejected: {source}")]
    Metadata {
        /// Where from.
        url: String,
        /// What is wrong with it.
        source: MetadataError,
    },
    /// A built graph breaks the graph rules.
    #[error("the {scope} graph is invalid: {source}")]
    Graph {
        /// Which graph.
        scope: String,
        /// Which rule.
        source: InvalidGraph,
    },
    /// Building the graphs panicked (a bug): the refresh is abandoned,
    /// the last good graphs stay, and the next refresh tries again.
    #[error("building the graphs panicked: {0}")]
    Panic(String),
}

impl RefreshError {
    /// Every [`RefreshError::kind`].
    pub const KINDS: [&'static str; 12] = crate::fetch::kinds(
        &FetchError::KINDS,
        &[
            "invalid_document",
            "wrong_stream",
            "empty_version",
            "duplicate_version",
            "invalid_graph",
            "panic",
        ],
    );

    /// A stable machine word for this error, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            RefreshError::Fetch { source, .. } => source.kind(),
            RefreshError::Metadata { source, .. } => source.kind(),
            RefreshError::Graph { .. } => "invalid_graph",
            RefreshError::Panic(_) => "panic",
        }
    }
}

/// What a successful refresh did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refreshed {
    /// New graphs were built and published.
    Published,
    /// Both documents were unchanged; nothing was rebuilt.
    Unchanged,
}

/// Builds every graph of a stream from its two documents.
pub type BuildFn = fn(&StreamSettings, &[u8], &[u8]) -> Result<Vec<BuiltGraph>, RefreshError>;

/// The scraper of one stream.
#[derive(Debug)]
pub struct StreamScraper {
    stream: StreamSettings,
    fetcher: Fetcher,
    store: GraphStore,
    metrics: ScraperMetrics,
    build: BuildFn,
    /// The documents the published graphs were built from.
    current: Option<(Document, Document)>,
}

impl StreamScraper {
    /// A scraper that has published nothing yet.
    pub fn new(
        stream: StreamSettings,
        fetcher: Fetcher,
        store: GraphStore,
        metrics: ScraperMetrics,
    ) -> Self {
        metrics.init_stream(&stream.name);
        StreamScraper {
            stream,
            fetcher,
            store,
            metrics,
            build: build_stream,
            current: None,
        }
    }

    /// Builds with `build` instead of [`build_stream`] (tests use it to
    /// make a build fail in ways no input can).
    pub fn with_builder(mut self, build: BuildFn) -> Self {
        self.build = build;
        self
    }

    /// Refreshes forever, every `interval`.
    pub async fn run(mut self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            // The outcome is logged and counted by `refresh_once`.
            let _ = self.refresh_once().await;
        }
    }

    /// One refresh, with its outcome logged and counted.
    pub async fn refresh_once(&mut self) -> Result<Refreshed, RefreshError> {
        let stream = self.stream.name.clone();
        self.metrics.scrapes.with_label_values(&[&stream]).inc();
        let result = self.refresh().await;
        self.store.record_refresh(&stream, result.is_ok());
        match result {
            Ok(outcome) => {
                tracing::debug!(stream, ?outcome, "refresh succeeded");
                self.metrics
                    .last_success
                    .with_label_values(&[&stream])
                    .set(commons::unix_now());
                self.metrics
                    .last_failed
                    .with_label_values(&[&stream])
                    .set(0);
                self.metrics.set_last_error(&stream, None);
                Ok(outcome)
            }
            Err(error) => {
                if let RefreshError::Panic(_) = error {
                    tracing::error!(
                        stream,
                        kind = error.kind(),
                        "refresh failed, keeping the last good graphs: {error}"
                    );
                } else {
                    tracing::warn!(
                        stream,
                        kind = error.kind(),
                        "refresh failed, keeping the last good graphs: {error}"
                    );
                }
                self.metrics
                    .errors
                    .with_label_values(&[&stream, error.kind()])
                    .inc();
                self.metrics
                    .last_failed
                    .with_label_values(&[&stream])
                    .set(1);
                self.metrics.set_last_error(&stream, Some(error.kind()));
                Err(error)
            }
        }
    }

    async fn refresh(&mut self) -> Result<Refreshed, RefreshError> {
        let previous = self.current.as_ref();
        let (index, updates) = tokio::join!(
            self.fetcher
                .fetch(&self.stream.release_index, previous.map(|(i, _)| i)),
            self.fetcher
                .fetch(&self.stream.updates, previous.map(|(_, u)| u)),
        );
        let fetch_error = |url: &dyn ToString| {
            let url = url.to_string();
            move |source| RefreshError::Fetch { url, source }
        };
        let index = index.map_err(fetch_error(&self.stream.release_index))?;
        let updates = updates.map_err(fetch_error(&self.stream.updates))?;
        let resolve = |fetched: Fetched, previous: Option<&Document>| match fetched {
            Fetched::Document(doc) => doc,
            Fetched::NotModified => previous.expect("conditional only with a previous").clone(),
        };
        let index = resolve(index, previous.map(|(i, _)| i));
        let updates = resolve(updates, previous.map(|(_, u)| u));
        if let Some((old_index, old_updates)) = previous {
            if old_index.body == index.body && old_updates.body == updates.body {
                return Ok(Refreshed::Unchanged);
            }
        }

        let stream = self.stream.clone();
        let (index_body, updates_body) = (index.body.clone(), updates.body.clone());
        let build = self.build;
        // One stream builds at a time: building holds several times its
        // documents in memory, and the process's memory limit is sized for
        // one build (see docs/deploy.md).
        let _building = BUILDS.acquire().await.expect("never closed");
        let built = tokio::task::spawn_blocking(move || build(&stream, &index_body, &updates_body))
            .await
            .map_err(|error| {
                let message = match error.try_into_panic() {
                    Ok(payload) => payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no message".to_string()),
                    Err(error) => error.to_string(),
                };
                RefreshError::Panic(message)
            })??;
        let graphs = self.metrics.record_graphs(&self.stream.name, built);
        self.store.publish(&self.stream.name, graphs);
        tracing::info!(stream = %self.stream.name, "published new graphs");
        self.current = Some((index, updates));
        Ok(Refreshed::Published)
    }
}

/// The builds of all streams of the process, one at a time.
static BUILDS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// One graph of a stream, built, validated and serialized.
#[derive(Debug)]
pub struct BuiltGraph {
    /// Its basearch.
    pub basearch: String,
    /// Its scheme.
    pub scheme: Scheme,
    /// Number of nodes.
    pub nodes: usize,
    /// Number of edges.
    pub edges: usize,
    /// The graph as served, with its `ETag`.
    pub body: GraphBody,
}

/// Parses a stream's documents, and builds, validates and serializes every
/// graph of it, in one pass over the parsed release index for each half of
/// the graphs, on two threads (each hashing its graphs for their `ETag`s).
pub fn build_stream(
    stream: &StreamSettings,
    index: &[u8],
    updates: &[u8],
) -> Result<Vec<BuiltGraph>, RefreshError> {
    let mut index = ReleaseIndex::parse(index, Some(&stream.name)).map_err(|source| {
        RefreshError::Metadata {
            url: stream.release_index.to_string(),
            source,
        }
    })?;
    if let Some(repository) = &stream.oci_repository {
        index.replace_oci_repository(repository);
    }
    let updates = UpdatesMetadata::parse(updates, Some(&stream.name)).map_err(|source| {
        RefreshError::Metadata {
            url: stream.updates.to_string(),
            source,
        }
    })?;
    build_graphs(
        &stream.name,
        &stream.basearches,
        &Scheme::ALL,
        index,
        &updates,
    )
}

/// Builds, validates and serializes the graphs of one stream for every
/// basearch and scheme listed, from its parsed documents, in one pass over
/// the release index for each half of the graphs, on two threads.
pub fn build_graphs(
    stream: &str,
    basearches: &[String],
    schemes: &[Scheme],
    index: ReleaseIndex,
    updates: &UpdatesMetadata,
) -> Result<Vec<BuiltGraph>, RefreshError> {
    let merged = updates.by_version();
    let aligned = commons::graph::align_updates(&index, &merged);
    let scopes: Vec<(&str, Scheme)> = basearches
        .iter()
        .flat_map(|arch| schemes.iter().map(move |&scheme| (arch.as_str(), scheme)))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    let per_thread = scopes.len().div_ceil(threads).max(1);
    let parts: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = scopes
            .chunks(per_thread)
            .enumerate()
            .map(|(part, chunk)| {
                let (index, aligned) = (&index, &aligned);
                s.spawn(move || {
                    let graphs = serialize_graphs(index, aligned, chunk)
                        .map_err(|(position, error)| (part * per_thread + position, error))?;
                    let built = chunk
                        .iter()
                        .zip(graphs)
                        .map(|(&(basearch, scheme), graph)| BuiltGraph {
                            basearch: basearch.to_string(),
                            scheme,
                            nodes: graph.nodes,
                            edges: graph.edges,
                            body: GraphBody::new(graph.json),
                        });
                    Ok(built.collect::<Vec<_>>())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    // Freeing the parsed release index (millions of allocations, and its
    // memory handed back to the system) is left to a thread of its own, off
    // the way to publishing.
    drop(aligned);
    drop(merged);
    let _ = std::thread::Builder::new()
        .name("release-index-drop".into())
        .spawn(move || drop(index));
    let mut graphs = Vec::with_capacity(scopes.len());
    for part in parts {
        graphs.extend(part.map_err(|(position, source)| {
            let (basearch, scheme) = scopes[position];
            RefreshError::Graph {
                scope: format!("{stream}/{basearch}/{scheme}"),
                source,
            }
        })?);
    }
    Ok(graphs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// One error of every kind. A new variant of these enums fails to
    /// compile in `kind` below until it is added here and to
    /// [`RefreshError::KINDS`].
    fn every_error() -> Vec<RefreshError> {
        let fetch = |source| RefreshError::Fetch {
            url: String::new(),
            source,
        };
        let metadata = |source| RefreshError::Metadata {
            url: String::new(),
            source,
        };
        vec![
            fetch(FetchError::Connect(String::new())),
            fetch(FetchError::Timeout(Duration::ZERO)),
            fetch(FetchError::Status(500)),
            fetch(FetchError::TooLarge(1)),
            fetch(FetchError::Read(String::new())),
            fetch(FetchError::Redirect(String::new())),
            metadata(MetadataError::Malformed {
                document: "",
                reason: String::new(),
            }),
            metadata(MetadataError::WrongStream {
                document: "",
                expected: String::new(),
                found: String::new(),
            }),
            metadata(MetadataError::EmptyVersion { position: 0 }),
            metadata(MetadataError::DuplicateVersion {
                version: String::new(),
                first: 0,
                second: 1,
            }),
            RefreshError::Graph {
                scope: String::new(),
                source: InvalidGraph::EdgeBackward(1, 0),
            },
            RefreshError::Panic(String::new()),
        ]
    }

    #[test]
    fn kinds_lists_every_kind_once() {
        // Exhaustive on purpose: no wildcard arm.
        let kind = |error: &RefreshError| match error {
            RefreshError::Fetch { source, .. } => match source {
                FetchError::Connect(_)
                | FetchError::Timeout(_)
                | FetchError::Status(_)
                | FetchError::TooLarge(_)
                | FetchError::Read(_)
                | FetchError::Redirect(_) => error.kind(),
            },
            RefreshError::Metadata { source, .. } => match source {
                MetadataError::Malformed { .. }
                | MetadataError::WrongStream { .. }
                | MetadataError::EmptyVersion { .. }
                | MetadataError::DuplicateVersion { .. } => error.kind(),
            },
            RefreshError::Graph { .. } | RefreshError::Panic(_) => error.kind(),
        };
        let kinds: Vec<&str> = every_error().iter().map(kind).collect();
        assert_eq!(kinds, RefreshError::KINDS);
    }

    #[test]
    fn every_kind_is_counted_from_zero_for_each_stream() {
        let registry = Registry::new();
        let metrics = ScraperMetrics::register(&registry).unwrap();
        metrics.init_stream("stable");
        let text = String::from_utf8(service_kit::metrics::render(&registry)).unwrap();
        for kind in RefreshError::KINDS {
            let series = format!(
                r#"fcos_cincinnati_gb_scraper_upstream_errors_total{{kind="{kind}",stream="stable"}} 0"#
            );
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
        assert!(text
            .contains(r#"fcos_cincinnati_gb_scraper_upstream_scrapes_total{stream="stable"} 0"#));
    }
}
