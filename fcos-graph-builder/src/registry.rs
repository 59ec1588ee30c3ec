//! Streams read from a container registry: the images of one repository,
//! tagged by their builder, give releases (version, stream and
//! per-architecture pullspec read from their labels), and the OCI graph of
//! each stream and architecture found is built from them as from a release
//! index ([`ReleaseIndex::from_image_releases`], then the same
//! [`build_graphs`] as the release-index streams).
//!
//! Polite to the registry: a tag that is a version is read once; any other
//! tag costs one `HEAD` a refresh; manifests and configs are kept by
//! digest (those the tags name now); a refresh makes at most
//! `[registry] max_requests` requests, and a `429` holds the next requests
//! back for its `Retry-After`.

pub mod client;

use crate::config::RegistrySettings;
use crate::fetch::{Document, Fetched as FetchedDocument, Fetcher};
use crate::scraper::{build_graphs, RefreshError, Refreshed, ScraperMetrics};
use crate::store::{GraphStore, StreamGraphs};
use client::{Budget, RegistryClient, RegistryError, Tags};
use commons::graph::Scheme;
use commons::metadata::{is_sha256_digest, ImageRelease, ReleaseIndex, UpdatesMetadata};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// The label giving an image's release version.
pub const VERSION_LABEL: &str = "org.opencontainers.image.version";
/// The label giving when an image was built.
pub const CREATED_LABEL: &str = "org.opencontainers.image.created";
/// The label giving an image's stream (read by Zincati too).
pub const STREAM_LABEL: &str = "com.coreos.stream";
/// The manifest annotation giving an image's stream when its config has no
/// stream label.
pub const STREAM_ANNOTATION: &str = "fedora-coreos.stream";

/// Longest label or annotation value kept (version, stream, created): an
/// image with a longer one is left out (`invalid_manifest`), so that what
/// is kept of each image is small whatever the registry holds.
pub const MAX_LABEL_BYTES: usize = 256;

/// Most streams served from the registry: images of streams past it are
/// left out (`too_many_streams`), so that the graphs and metric series
/// kept are bounded whatever the images' labels say. The streams already
/// served keep their place; new ones come in by name.
pub const MAX_STREAMS: usize = 64;

/// Container platforms → Fedora CoreOS basearches.
pub const ARCHITECTURES: [(&str, &str); 4] = [
    ("amd64", "x86_64"),
    ("arm64", "aarch64"),
    ("ppc64le", "ppc64le"),
    ("s390x", "s390x"),
];

/// Every error kind counted, in `fcos_cincinnati_gb_registry_errors_total`.
pub const ERROR_KINDS: [&str; 16] = [
    "connect",
    "timeout",
    "read",
    "auth",
    "rate_limited",
    "not_found",
    "http_status",
    "invalid_tag_list",
    "invalid_manifest",
    "request_cap",
    "missing_label",
    "moved_tag",
    "stream_conflict",
    "too_many_streams",
    "updates",
    "invalid_graph",
];

/// The registry source's metrics.
#[derive(Clone)]
pub struct RegistryMetrics {
    errors: IntCounterVec,
    state_errors: IntCounterVec,
    requests: IntCounter,
    last_requests: IntGauge,
    tags: IntGauge,
    releases: IntGauge,
}

impl std::fmt::Debug for RegistryMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryMetrics")
            .field("requests", &self.requests.get())
            .field("last_requests", &self.last_requests.get())
            .finish_non_exhaustive()
    }
}

impl RegistryMetrics {
    /// Creates and registers the metrics, every error kind at 0.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = RegistryMetrics {
            errors: IntCounterVec::new(
                Opts::new(
                    "fcos_cincinnati_gb_registry_errors_total",
                    "Errors reading the container registry, by cause (a failed refresh, or an image left out).",
                ),
                &["kind"],
            )?,
            state_errors: IntCounterVec::new(
                Opts::new(
                    "fcos_cincinnati_gb_registry_state_errors_total",
                    "State files of registry.state_dir that could not be read (damaged, ignored) or written.",
                ),
                &["operation"],
            )?,
            requests: IntCounter::new(
                "fcos_cincinnati_gb_registry_requests_total",
                "Requests made to the container registry.",
            )?,
            last_requests: IntGauge::new(
                "fcos_cincinnati_gb_registry_refresh_requests",
                "Requests made to the container registry by the last refresh.",
            )?,
            tags: IntGauge::new(
                "fcos_cincinnati_gb_registry_tags",
                "Tags of the repository matching registry.tags, as last listed.",
            )?,
            releases: IntGauge::new(
                "fcos_cincinnati_gb_registry_releases",
                "Releases read from the container registry, every stream together.",
            )?,
        };
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.state_errors.clone()))?;
        for operation in ["read", "write"] {
            metrics.state_errors.with_label_values(&[operation]);
        }
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.last_requests.clone()))?;
        registry.register(Box::new(metrics.tags.clone()))?;
        registry.register(Box::new(metrics.releases.clone()))?;
        for kind in ERROR_KINDS {
            metrics.errors.with_label_values(&[kind]);
        }
        Ok(metrics)
    }

    fn error(&self, kind: &str) {
        self.errors_of(kind, 1);
    }

    fn errors_of(&self, kind: &str, count: usize) {
        self.errors.with_label_values(&[kind]).inc_by(count as u64);
    }
}

/// One architecture's image of a release, as read from its manifest and
/// config.
#[derive(Debug, Clone, PartialEq)]
struct Image {
    basearch: String,
    /// Digest of the image manifest (the payload's digest).
    digest: String,
    version: String,
    stream: Option<String>,
    created: Option<String>,
}

/// What a manifest read by digest holds (kept across refreshes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Manifest {
    /// An image index: `(basearch, manifest digest, stream annotation)` of
    /// each known architecture.
    Index(Vec<(String, String, Option<String>)>),
    /// An image manifest: its config digest and stream annotation.
    Image {
        config: String,
        stream: Option<String>,
    },
}

/// What an image config gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    architecture: String,
    version: Option<String>,
    stream: Option<String>,
    created: Option<String>,
}

/// Name of the file in `registry.state_dir` that keeps what was read from
/// the registry.
pub const STATE_FILE: &str = "registry.json";
/// Version of its format. Raise it when what is kept of a manifest or a
/// config changes (what [`parse_manifest`] and [`parse_config`] take):
/// a file of another format is ignored, and everything read again.
const STATE_FORMAT: u32 = 1;
/// Largest state file written and read back: some 100 times what 1,000
/// tags of two architectures take.
const MAX_STATE_BYTES: u64 = 32 << 20;

/// The state file: what was read from the repository, by tag and digest,
/// and the digest each release was served at.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryState {
    format: u32,
    repository: String,
    /// tag → manifest digest.
    tags: BTreeMap<String, String>,
    manifests: BTreeMap<String, Manifest>,
    configs: BTreeMap<String, Config>,
    served: Served,
}

/// Why the state file cannot be used.
#[derive(Debug, thiserror::Error)]
enum StateError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("not a registry state file: {0}")]
    Json(#[from] serde_json::Error),
    #[error("format {0} is not {STATE_FORMAT}")]
    Format(u32),
    #[error("'{0}' is not a sha256 digest")]
    Digest(String),
    #[error("{0}")]
    Invalid(String),
}

/// Reads and checks the state file: `Ok(None)` when there is none, or when
/// it is another repository's (the configuration changed). The file is the
/// service's own, but what can be checked is: every digest a sha256
/// digest (what the registry client checks content against), labels within
/// [`MAX_LABEL_BYTES`], architectures known, stream names well formed, and
/// payloads of this repository. A tag whose manifest it lacks is dropped
/// (read again).
fn read_state(path: &Path, repository: &str) -> Result<Option<RegistryState>, StateError> {
    let bytes = match commons::files::read_regular(path, MAX_STATE_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut state: RegistryState = serde_json::from_slice(&bytes)?;
    if state.format != STATE_FORMAT {
        return Err(StateError::Format(state.format));
    }
    if state.repository != repository {
        tracing::info!(
            file = %path.display(),
            kept_for = state.repository,
            "registry: the state file is of another repository, not read (and not written before this one's tag list is read)"
        );
        return Ok(None);
    }
    let mut digests: Vec<&String> = state.tags.values().collect();
    for (digest, manifest) in &state.manifests {
        digests.push(digest);
        match manifest {
            Manifest::Index(entries) => {
                for (basearch, image, stream) in entries {
                    digests.push(image);
                    if !ARCHITECTURES.iter().any(|(_, known)| known == basearch) {
                        return Err(StateError::Invalid(format!(
                            "{digest}: '{basearch}' is not an architecture"
                        )));
                    }
                    check_label(stream.as_deref())?;
                }
            }
            Manifest::Image { config, stream } => {
                digests.push(config);
                check_label(stream.as_deref())?;
            }
        }
    }
    for (digest, config) in &state.configs {
        digests.push(digest);
        for label in [&config.version, &config.stream, &config.created] {
            check_label(label.as_deref())?;
        }
        if config.architecture.len() > MAX_LABEL_BYTES {
            return Err(StateError::Invalid(format!(
                "{digest}: an architecture too long"
            )));
        }
    }
    if let Some(bad) = digests.into_iter().find(|d| !is_sha256_digest(d)) {
        return Err(StateError::Digest(bad.clone()));
    }
    let prefix = format!("{repository}@");
    for (stream, releases) in &state.served {
        if !commons::graph::is_well_formed_name(stream) {
            return Err(StateError::Invalid(format!(
                "'{stream}' is not a stream name"
            )));
        }
        for (version, images) in releases {
            check_label(Some(version))?;
            for (basearch, payload) in images {
                let digest = payload.strip_prefix(&prefix).unwrap_or_default();
                if !ARCHITECTURES.iter().any(|(_, known)| known == basearch)
                    || !is_sha256_digest(digest)
                {
                    return Err(StateError::Invalid(format!(
                        "{stream} {version} {basearch}: '{payload}' is not an image of the repository"
                    )));
                }
            }
        }
    }
    let manifests = &state.manifests;
    state
        .tags
        .retain(|_, digest| manifests.contains_key(digest));
    Ok(Some(state))
}

/// A label kept of a manifest or config: at most [`MAX_LABEL_BYTES`].
fn check_label(label: Option<&str>) -> Result<(), StateError> {
    match label {
        Some(label) if label.len() > MAX_LABEL_BYTES => Err(StateError::Invalid(format!(
            "a label of {} bytes, more than {MAX_LABEL_BYTES}",
            label.len()
        ))),
        _ => Ok(()),
    }
}

/// Whether a tag is a version, hence never moved and read once: numbers
/// separated by dots, optionally after a `v` (`43.20260105.3.0`, `v1.2`).
pub fn is_version_tag(tag: &str) -> bool {
    let numbers = tag.strip_prefix('v').unwrap_or(tag);
    numbers.contains('.')
        && numbers
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// What the graphs of each registry stream are built from: its releases,
/// and its updates metadata when `updates_url` is configured.
type Sources = BTreeMap<String, (ReleaseIndex, Option<Vec<u8>>)>;

/// The registry source: reads the repository every refresh and publishes
/// the graphs of every stream it finds. A failed refresh keeps the last
/// good graphs.
pub struct RegistryScraper {
    settings: RegistrySettings,
    client: RegistryClient,
    fetcher: Fetcher,
    store: GraphStore,
    metrics: RegistryMetrics,
    graph_metrics: ScraperMetrics,
    /// The refresh period: the wait after a `429` without `Retry-After`.
    refresh: Duration,
    /// tag → manifest digest, as last read.
    tags: HashMap<String, String>,
    /// `ETag` of the tag list last read, when the registry gave one.
    tags_etag: Option<String>,
    /// The tag list last read.
    listed: Vec<String>,
    /// Manifests and configs by digest: those the tags name now (directly,
    /// or through an image index), pruned after each refresh.
    manifests: HashMap<String, Manifest>,
    configs: HashMap<String, Config>,
    /// stream → updates metadata last read (with `updates_url`).
    updates: HashMap<String, Document>,
    /// What the published graphs were built from.
    published: Option<Sources>,
    /// No request before this, after a `429`.
    not_before: Option<tokio::time::Instant>,
    /// `fcos_cincinnati_gb_cache_graph_requests_total`, whose series of a
    /// stream found are created at 0 when it is published.
    graph_requests: Option<IntCounterVec>,
    /// With `registry.state_dir`: whether the state file was read yet
    /// (at the first refresh, off the runtime's thread), whether what it
    /// keeps changed since last written, and whether this run has read
    /// the tag list (no file is written before: a repository set wrong
    /// does not overwrite the good one's).
    state_loaded: bool,
    dirty: bool,
    listed_once: bool,
    /// The digest each release was served at when the state was written
    /// (stream → version → basearch → payload), until this run publishes:
    /// a restart keeps them as a running graph-builder does.
    served_before: Served,
}

/// stream → version → basearch → payload served.
type Served = BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>;

impl std::fmt::Debug for RegistryScraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryScraper")
            .field("repository", &self.settings.repository)
            .field("tags", &self.tags.len())
            .field("manifests", &self.manifests.len())
            .field("configs", &self.configs.len())
            .field("not_before", &self.not_before)
            .finish_non_exhaustive()
    }
}

impl RegistryScraper {
    /// A scraper that has read nothing yet.
    pub fn new(
        settings: RegistrySettings,
        timeout: Duration,
        refresh: Duration,
        fetcher: Fetcher,
        store: GraphStore,
        metrics: RegistryMetrics,
        graph_metrics: ScraperMetrics,
    ) -> reqwest::Result<Self> {
        let scraper = RegistryScraper {
            client: RegistryClient::new(&settings, timeout)?,
            settings,
            fetcher,
            store,
            metrics,
            graph_metrics,
            refresh,
            tags: HashMap::new(),
            tags_etag: None,
            listed: Vec::new(),
            manifests: HashMap::new(),
            configs: HashMap::new(),
            updates: HashMap::new(),
            published: None,
            not_before: None,
            graph_requests: None,
            state_loaded: false,
            dirty: false,
            listed_once: false,
            served_before: Served::new(),
        };
        Ok(scraper)
    }

    /// Takes what an earlier run read from the registry from the state
    /// directory, when there is one (read off the runtime's thread): the
    /// digests version tags named are not asked again, nor manifests and
    /// configs by digest, and the releases keep the digests they were
    /// served at. A file that cannot be used is logged, counted and
    /// ignored: everything is read from the registry.
    async fn load_state(&mut self) {
        self.state_loaded = true;
        let Some(dir) = &self.settings.state_dir else {
            return;
        };
        let path = dir.join(STATE_FILE);
        let repository = self.settings.repository.clone();
        let read = tokio::task::spawn_blocking({
            let path = path.clone();
            move || read_state(&path, &repository)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e).into()));
        match read {
            Ok(None) => {}
            Ok(Some(state)) => {
                tracing::info!(
                    file = %path.display(),
                    tags = state.tags.len(),
                    manifests = state.manifests.len(),
                    configs = state.configs.len(),
                    "registry: what an earlier run read is taken from the state directory"
                );
                self.tags = state.tags.into_iter().collect();
                self.manifests = state.manifests.into_iter().collect();
                self.configs = state.configs.into_iter().collect();
                self.served_before = state.served;
            }
            Err(error) => {
                self.metrics.state_errors.with_label_values(&["read"]).inc();
                tracing::warn!(
                    file = %path.display(),
                    "registry: the state file is ignored, everything is read from the registry: {error}"
                );
                // Written anew once this run has read the registry.
                self.dirty = true;
            }
        }
    }

    /// Writes what is known of the registry to the state directory, when
    /// it changed since last written and this run has read the tag list;
    /// a failure is logged and counted.
    async fn save_state(&mut self) {
        let Some(dir) = &self.settings.state_dir else {
            return;
        };
        if !self.dirty || !self.listed_once {
            return;
        }
        let state = RegistryState {
            format: STATE_FORMAT,
            repository: self.settings.repository.clone(),
            tags: self
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            manifests: self
                .manifests
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            configs: self
                .configs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            served: self.served(),
        };
        let path = dir.join(STATE_FILE);
        let written = tokio::task::spawn_blocking({
            let path = path.clone();
            move || {
                let bytes = serde_json::to_vec(&state).map_err(std::io::Error::from)?;
                if bytes.len() as u64 > MAX_STATE_BYTES {
                    return Err(std::io::Error::other(format!(
                        "{} bytes, more than the {MAX_STATE_BYTES} a state file is read back up to",
                        bytes.len()
                    )));
                }
                commons::files::write_atomically(&path, ".registry.", |out| out.write_all(&bytes))
            }
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match written {
            Ok(()) => self.dirty = false,
            Err(error) => {
                self.metrics
                    .state_errors
                    .with_label_values(&["write"])
                    .inc();
                tracing::warn!(file = %path.display(), "registry: cannot save the state: {error}");
            }
        }
    }

    /// The payload each release is served at: of the graphs published, or,
    /// before this run publishes, as the state file kept them.
    fn served(&self) -> Served {
        let Some(published) = &self.published else {
            return self.served_before.clone();
        };
        published
            .iter()
            .map(|(stream, (index, _))| {
                let releases = index
                    .releases
                    .iter()
                    .map(|release| {
                        let images = release
                            .oci_images
                            .iter()
                            .flatten()
                            .map(|i| (i.architecture.clone(), i.digest_ref.clone()))
                            .collect();
                        (release.version.clone(), images)
                    })
                    .collect();
                (stream.clone(), releases)
            })
            .collect()
    }

    /// Creates the series of `graph_requests` (the service's count of
    /// graphs served) of each scope found, at 0.
    pub fn with_graph_requests(mut self, graph_requests: IntCounterVec) -> Self {
        self.graph_requests = Some(graph_requests);
        self
    }

    /// Requests made by the last refresh.
    pub fn last_requests(&self) -> usize {
        self.metrics.last_requests.get() as usize
    }

    /// Manifests and configs kept: those the tags name now.
    pub fn cached_documents(&self) -> (usize, usize) {
        (self.manifests.len(), self.configs.len())
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
    pub async fn refresh_once(&mut self) -> Result<Refreshed, RegistryRefreshError> {
        if let Some(not_before) = self.not_before {
            if tokio::time::Instant::now() < not_before {
                tracing::debug!("registry: still waiting after a 429");
                return Err(RegistryRefreshError::Waiting);
            }
            self.not_before = None;
        }
        if !self.state_loaded {
            self.load_state().await;
        }
        let mut budget = Budget::new(self.settings.max_requests);
        let result = self.refresh(&mut budget).await;
        self.prune();
        self.save_state().await;
        self.metrics.requests.inc_by(budget.used as u64);
        self.metrics.last_requests.set(budget.used as i64);
        self.store.record_registry_refresh(result.is_ok());
        match &result {
            Ok(outcome) => {
                tracing::debug!(
                    repository = %self.settings.repository,
                    requests = budget.used,
                    ?outcome,
                    "registry refresh succeeded"
                );
            }
            Err(error) => {
                if let RegistryRefreshError::Registry(RegistryError::RateLimited { wait, .. }) =
                    error
                {
                    let wait = wait.unwrap_or(self.refresh);
                    self.not_before = Some(tokio::time::Instant::now() + wait);
                }
                tracing::warn!(
                    repository = %self.settings.repository,
                    kind = error.kind(),
                    requests = budget.used,
                    "registry refresh failed, keeping the last good graphs: {error}"
                );
                self.metrics.error(error.kind());
            }
        }
        result
    }

    async fn refresh(&mut self, budget: &mut Budget) -> Result<Refreshed, RegistryRefreshError> {
        match self.client.tags(budget, self.tags_etag.as_deref()).await? {
            Tags::NotModified => {}
            Tags::List(tags, etag) => {
                self.listed = tags;
                self.tags_etag = etag;
            }
        }
        self.listed_once = true;
        let matched: Vec<String> = self
            .listed
            .iter()
            .filter(|tag| {
                self.settings
                    .tags
                    .as_ref()
                    .is_none_or(|pattern| pattern.0.is_match(tag))
            })
            .cloned()
            .collect();
        self.metrics.tags.set(matched.len() as i64);

        // Each tag's digest. What a failed refresh read is kept for the
        // next (of the tags listed now), so that a first build larger than
        // `max_requests` goes on from there.
        let mut current = HashMap::with_capacity(matched.len());
        let read = self.read_tags(budget, &matched, &mut current).await;
        let before = self.tags.clone();
        if read.is_err() {
            let listed: HashSet<&String> = matched.iter().collect();
            self.tags.retain(|tag, _| listed.contains(tag));
            self.tags.extend(current);
        } else {
            self.tags = current;
        }
        self.dirty |= self.tags != before;
        read?;

        // Each distinct digest is one release (several tags may name it).
        let mut digests: Vec<(&String, &String)> = self
            .tags
            .iter()
            .map(|(tag, digest)| (digest, tag))
            .collect();
        digests.sort();
        digests.dedup_by(|a, b| a.0 == b.0);
        let digests: Vec<(String, String)> = digests
            .into_iter()
            .map(|(digest, tag)| (digest.clone(), tag.clone()))
            .collect();
        let mut images = Vec::new();
        for (digest, tag) in &digests {
            match self.images_of(budget, digest).await {
                Ok(found) => images.extend(found.into_iter().map(|image| (tag.clone(), image))),
                Err(error) => self.skip_tag(tag, error)?,
            }
        }
        let by_stream = self.releases_by_stream(images);
        self.metrics
            .releases
            .set(by_stream.values().map(Vec::len).sum::<usize>() as i64);

        // Updates metadata, when configured, per stream found.
        let mut sources = Sources::new();
        for (stream, releases) in by_stream {
            let index = ReleaseIndex::from_image_releases(&stream, releases);
            let updates = match self.settings.updates_url(&stream) {
                None => None,
                Some(url) => Some(self.fetch_updates(&stream, url).await?),
            };
            sources.insert(stream, (index, updates));
        }
        self.updates
            .retain(|stream, _| sources.contains_key(stream));
        if self.published.as_ref() == Some(&sources) {
            return Ok(Refreshed::Unchanged);
        }

        let mut found = BTreeMap::new();
        for (stream, (index, updates_body)) in &sources {
            let updates = match updates_body {
                None => UpdatesMetadata::fully_rolled_out(index),
                Some(body) => UpdatesMetadata::parse(body, Some(stream)).map_err(|source| {
                    RegistryRefreshError::Updates(RefreshError::Metadata {
                        url: self
                            .settings
                            .updates_url(stream)
                            .map(String::from)
                            .unwrap_or_default(),
                        source,
                    })
                })?,
            };
            let basearches = index.architectures();
            let built = build_graphs(stream, &basearches, &[Scheme::Oci], index.clone(), &updates)
                .map_err(RegistryRefreshError::Graph)?;
            let graphs: StreamGraphs = self.graph_metrics.record_graphs(stream, built);
            found.insert(stream.clone(), (basearches, graphs));
        }
        if let Some(counter) = &self.graph_requests {
            for (stream, (basearches, _)) in &found {
                for basearch in basearches {
                    counter.with_label_values(&[basearch.as_str(), stream, Scheme::Oci.as_str()]);
                }
            }
        }
        let streams: Vec<&String> = found.keys().collect();
        tracing::info!(
            repository = %self.settings.repository,
            ?streams,
            requests = budget.used,
            "published new graphs from the registry"
        );
        self.forget_series(&found);
        self.store.publish_registry(found);
        self.published = Some(sources);
        self.served_before.clear();
        self.dirty = true;
        Ok(Refreshed::Published)
    }

    /// Removes the metric series of the graphs published before and not
    /// in `found` (a stream or an architecture gone from the registry),
    /// so that streams coming and going do not add up series.
    fn forget_series(&self, found: &BTreeMap<String, (Vec<String>, StreamGraphs)>) {
        let Some(published) = &self.published else {
            return;
        };
        for (stream, (index, _)) in published {
            let now = found.get(stream).map(|(basearches, _)| basearches);
            for basearch in index.architectures() {
                if now.is_some_and(|now| now.contains(&basearch)) {
                    continue;
                }
                self.graph_metrics
                    .forget_graph(stream, &basearch, Scheme::Oci);
                if let Some(counter) = &self.graph_requests {
                    let _ = counter.remove_label_values(&[&basearch, stream, Scheme::Oci.as_str()]);
                }
            }
        }
    }

    /// The digest each tag of `matched` names, into `current`: version
    /// tags known are not asked again; other known tags cost a HEAD; new
    /// tags a GET (kept by digest).
    async fn read_tags(
        &mut self,
        budget: &mut Budget,
        matched: &[String],
        current: &mut HashMap<String, String>,
    ) -> Result<(), RegistryRefreshError> {
        for tag in matched {
            let known = self.tags.get(tag).cloned();
            let digest = match known {
                Some(digest) if is_version_tag(tag) => digest,
                Some(_) => {
                    let digest = match self.client.head_manifest(budget, tag).await {
                        Ok(digest) => digest,
                        Err(error) => {
                            self.skip_tag(tag, error)?;
                            continue;
                        }
                    };
                    if !self.manifests.contains_key(&digest) {
                        if let Err(error) = self.read_manifest(budget, &digest).await {
                            self.skip_tag(tag, error)?;
                            continue;
                        }
                    }
                    digest
                }
                None => match self.read_manifest(budget, tag).await {
                    Ok(digest) => digest,
                    Err(error) => {
                        self.skip_tag(tag, error)?;
                        continue;
                    }
                },
            };
            current.insert(tag.clone(), digest);
        }
        Ok(())
    }

    /// Drops the manifests and configs that no tag names now (directly,
    /// or through an image index): what is kept is bounded by what the
    /// repository holds now, not by every digest a tag ever named.
    fn prune(&mut self) {
        let mut manifests: HashSet<&str> = HashSet::new();
        let mut configs: HashSet<&str> = HashSet::new();
        for digest in self.tags.values() {
            manifests.insert(digest);
            let images: Vec<&str> = match self.manifests.get(digest) {
                Some(Manifest::Index(entries)) => entries.iter().map(|e| e.1.as_str()).collect(),
                Some(Manifest::Image { .. }) => vec![digest.as_str()],
                None => Vec::new(),
            };
            for image in images {
                manifests.insert(image);
                if let Some(Manifest::Image { config, .. }) = self.manifests.get(image) {
                    configs.insert(config);
                }
            }
        }
        let manifests: HashSet<String> = manifests.into_iter().map(String::from).collect();
        let configs: HashSet<String> = configs.into_iter().map(String::from).collect();
        let held = (self.manifests.len(), self.configs.len());
        self.manifests
            .retain(|digest, _| manifests.contains(digest));
        self.configs.retain(|digest, _| configs.contains(digest));
        self.dirty |= held != (self.manifests.len(), self.configs.len());
    }

    /// Decides what an error reading one tag does: an image that cannot be
    /// used is left out (counted, logged) and the refresh goes on; a
    /// registry that cannot be read ends the refresh.
    fn skip_tag(&self, tag: &str, error: RegistryError) -> Result<(), RegistryRefreshError> {
        match error {
            RegistryError::Invalid { .. } | RegistryError::NotFound { .. } => {
                tracing::warn!(
                    repository = %self.settings.repository,
                    tag,
                    kind = error.kind(),
                    "tag left out: {error}"
                );
                self.metrics.error(error.kind());
                Ok(())
            }
            other => Err(RegistryRefreshError::Registry(other)),
        }
    }

    /// Reads and keeps the manifest `reference` (a tag or a digest) and
    /// returns its digest.
    async fn read_manifest(
        &mut self,
        budget: &mut Budget,
        reference: &str,
    ) -> Result<String, RegistryError> {
        let fetched = self.client.manifest(budget, reference).await?;
        let url = format!("{}@{}", self.settings.repository, fetched.digest);
        let manifest = parse_manifest(&fetched.body)
            .map_err(|message| RegistryError::Invalid { url, message })?;
        self.manifests.insert(fetched.digest.clone(), manifest);
        self.dirty = true;
        Ok(fetched.digest)
    }

    /// The per-architecture images of the manifest `digest` (read before),
    /// reading the manifests and configs not yet known.
    async fn images_of(
        &mut self,
        budget: &mut Budget,
        digest: &str,
    ) -> Result<Vec<Image>, RegistryError> {
        let manifest = self.manifests.get(digest).cloned();
        let entries = match manifest {
            Some(Manifest::Index(entries)) => entries
                .into_iter()
                .map(|(basearch, digest, stream)| (Some(basearch), digest, stream))
                .collect(),
            Some(Manifest::Image { .. }) => vec![(None, digest.to_string(), None)],
            None => Vec::new(),
        };
        let mut images = Vec::new();
        for (basearch, digest, index_stream) in entries {
            if !self.manifests.contains_key(&digest) {
                self.read_manifest(budget, &digest).await?;
            }
            let Some(Manifest::Image { config, stream }) = self.manifests.get(&digest).cloned()
            else {
                return Err(RegistryError::Invalid {
                    url: format!("{}@{digest}", self.settings.repository),
                    message: "an image index lists an image index".to_string(),
                });
            };
            if !self.configs.contains_key(&config) {
                let fetched = self.client.blob(budget, &config).await?;
                let parsed =
                    parse_config(&fetched.body).map_err(|message| RegistryError::Invalid {
                        url: format!("{}@{config}", self.settings.repository),
                        message,
                    })?;
                self.configs.insert(config.clone(), parsed);
                self.dirty = true;
            }
            let config = &self.configs[&config];
            let basearch = match basearch {
                Some(basearch) => basearch,
                None => match basearch_of(&config.architecture) {
                    Some(basearch) => basearch.to_string(),
                    None => continue,
                },
            };
            let Some(version) = config.version.clone() else {
                tracing::warn!(
                    repository = %self.settings.repository,
                    digest,
                    "image left out: its config has no {VERSION_LABEL} label"
                );
                self.metrics.error("missing_label");
                continue;
            };
            images.push(Image {
                basearch,
                digest,
                version,
                stream: config.stream.clone().or(stream).or(index_stream),
                created: config.created.clone(),
            });
        }
        Ok(images)
    }

    /// Groups images into releases by stream and version. An image without
    /// a stream takes `[registry] stream`, or is left out. A version and
    /// architecture served keeps its digest while the repository has an
    /// image of them: another digest for them is refused (counted as
    /// `moved_tag`), whether the digest served is still tagged or not; of
    /// two new digests for one version and architecture, the first (by
    /// digest) is taken and the other refused.
    fn releases_by_stream(
        &self,
        images: Vec<(String, Image)>,
    ) -> BTreeMap<String, Vec<ImageRelease>> {
        let served = |stream: &str, version: &str, basearch: &str| -> Option<String> {
            let Some(published) = &self.published else {
                return self
                    .served_before
                    .get(stream)?
                    .get(version)?
                    .get(basearch)
                    .cloned();
            };
            let (index, _) = published.get(stream)?;
            let release = index.releases.iter().find(|r| r.version == version)?;
            release
                .oci_images
                .iter()
                .flatten()
                .find(|i| i.architecture == basearch)
                .map(|i| i.digest_ref.clone())
        };
        let mut releases: BTreeMap<String, BTreeMap<String, ImageRelease>> = BTreeMap::new();
        for (tag, image) in images {
            let Some(stream) = image
                .stream
                .clone()
                .or_else(|| self.settings.default_stream.clone())
            else {
                tracing::warn!(
                    repository = %self.settings.repository,
                    tag,
                    "image left out: no {STREAM_LABEL} label, no {STREAM_ANNOTATION} annotation and no registry.stream"
                );
                self.metrics.error("missing_label");
                continue;
            };
            if !commons::graph::is_well_formed_name(&stream) {
                tracing::warn!(
                    repository = %self.settings.repository,
                    tag,
                    stream,
                    "image left out: its stream is not a stream name"
                );
                self.metrics.error("missing_label");
                continue;
            }
            if self.store.is_configured(&stream) {
                tracing::warn!(
                    repository = %self.settings.repository,
                    tag,
                    stream,
                    "image left out: its stream is a release-index stream of [streams]"
                );
                self.metrics.error("stream_conflict");
                continue;
            }
            let payload = format!("{}@{}", self.settings.repository, image.digest);
            let served = served(&stream, &image.version, &image.basearch);
            let release = releases
                .entry(stream.clone())
                .or_default()
                .entry(image.version.clone())
                .or_insert_with(|| ImageRelease {
                    version: image.version.clone(),
                    created: image.created.clone(),
                    images: BTreeMap::new(),
                });
            // The digest served, else the first seen this refresh.
            let kept = release
                .images
                .entry(image.basearch.clone())
                .or_insert_with(|| served.unwrap_or_else(|| payload.clone()));
            if *kept != payload {
                tracing::warn!(
                    repository = %self.settings.repository,
                    tag,
                    stream,
                    version = image.version,
                    basearch = image.basearch,
                    kept = %kept,
                    refused = %payload,
                    "tag refused: another digest of the same version and architecture is served"
                );
                self.metrics.error("moved_tag");
            }
        }
        self.within_stream_cap(&mut releases);
        releases
            .into_iter()
            .map(|(stream, releases)| (stream, releases.into_values().collect()))
            .collect()
    }

    /// Leaves out the streams past [`MAX_STREAMS`]: those served keep
    /// their place, new ones come in by name. Each stream left out is
    /// counted, and one warning names the first few.
    fn within_stream_cap<T>(&self, releases: &mut BTreeMap<String, T>) {
        if releases.len() <= MAX_STREAMS {
            return;
        }
        let served = |stream: &String| {
            self.published
                .as_ref()
                .is_some_and(|published| published.contains_key(stream))
        };
        let mut order: Vec<&String> = releases.keys().collect();
        // Stable: by name within served and new.
        order.sort_by_key(|stream| !served(stream));
        let left_out: Vec<String> = order[MAX_STREAMS..].iter().map(|s| (*s).clone()).collect();
        for stream in &left_out {
            releases.remove(stream);
        }
        tracing::warn!(
            repository = %self.settings.repository,
            left_out = left_out.len(),
            first = ?&left_out[..left_out.len().min(5)],
            "streams left out: the registry's images name more than {MAX_STREAMS} streams"
        );
        self.metrics.errors_of("too_many_streams", left_out.len());
    }

    /// The updates metadata of `stream` (conditional on the copy kept).
    async fn fetch_updates(
        &mut self,
        stream: &str,
        url: url::Url,
    ) -> Result<Vec<u8>, RegistryRefreshError> {
        let source = crate::config::DocumentSource::Url(url.clone());
        let previous = self.updates.get(stream);
        let fetched = self
            .fetcher
            .fetch(&source, previous)
            .await
            .map_err(|source| {
                RegistryRefreshError::Updates(RefreshError::Fetch {
                    url: url.to_string(),
                    source,
                })
            })?;
        let document = match fetched {
            FetchedDocument::Document(document) => document,
            FetchedDocument::NotModified => {
                previous.expect("conditional only with a previous").clone()
            }
        };
        let body = document.body.to_vec();
        self.updates.insert(stream.to_string(), document);
        Ok(body)
    }
}

/// The basearch of a container platform architecture.
pub fn basearch_of(architecture: &str) -> Option<&'static str> {
    ARCHITECTURES
        .iter()
        .find(|(platform, _)| *platform == architecture)
        .map(|(_, basearch)| *basearch)
}

/// An image index or image manifest, OCI or Docker.
fn parse_manifest(body: &[u8]) -> Result<Manifest, String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(body).map_err(|e| format!("not a manifest: {e}"))?;
    let is_index = probe.manifests.is_some()
        || probe
            .media_type
            .as_deref()
            .is_some_and(|t| t.contains("index") || t.contains("manifest.list"));
    if is_index {
        let index: ImageIndex =
            serde_json::from_slice(body).map_err(|e| format!("not an image index: {e}"))?;
        // The first image of each known architecture.
        let mut entries: Vec<(String, String, Option<String>)> = Vec::new();
        for entry in index.manifests() {
            let Some(platform) = entry.platform().as_ref() else {
                continue;
            };
            if platform.os().to_string() != "linux" {
                continue;
            }
            let Some(basearch) = basearch_of(&platform.architecture().to_string()) else {
                continue;
            };
            if entries.iter().any(|(kept, _, _)| kept == basearch) {
                continue;
            }
            let stream = bounded(STREAM_ANNOTATION, entry.annotations().as_ref())?;
            entries.push((basearch.to_string(), entry.digest().to_string(), stream));
        }
        Ok(Manifest::Index(entries))
    } else {
        let manifest: ImageManifest =
            serde_json::from_slice(body).map_err(|e| format!("not an image manifest: {e}"))?;
        Ok(Manifest::Image {
            config: manifest.config().digest().to_string(),
            stream: bounded(STREAM_ANNOTATION, manifest.annotations().as_ref())?,
        })
    }
}

/// The labels and platform of an image config.
fn parse_config(body: &[u8]) -> Result<Config, String> {
    let config: ImageConfiguration =
        serde_json::from_slice(body).map_err(|e| format!("not an image config: {e}"))?;
    let labels = config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default();
    let created = match bounded(CREATED_LABEL, Some(&labels))? {
        Some(created) => Some(created),
        None => config
            .created()
            .clone()
            .filter(|created| created.len() <= MAX_LABEL_BYTES),
    };
    Ok(Config {
        architecture: config.architecture().to_string(),
        version: bounded(VERSION_LABEL, Some(&labels))?.filter(|v| !v.is_empty()),
        stream: bounded(STREAM_LABEL, Some(&labels))?.filter(|v| !v.is_empty()),
        created,
    })
}

/// The value of `name` in `values` (labels or annotations), refused when
/// longer than [`MAX_LABEL_BYTES`].
fn bounded(name: &str, values: Option<&HashMap<String, String>>) -> Result<Option<String>, String> {
    match values.and_then(|values| values.get(name)) {
        Some(value) if value.len() > MAX_LABEL_BYTES => Err(format!(
            "{name} is {} bytes long, more than {MAX_LABEL_BYTES}",
            value.len()
        )),
        value => Ok(value.cloned()),
    }
}

/// Why a refresh of the registry failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryRefreshError {
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The updates metadata of a stream could not be read.
    #[error("{0}")]
    Updates(RefreshError),
    /// A built graph breaks the graph rules.
    #[error("{0}")]
    Graph(RefreshError),
    /// A `429` asked to wait, and the wait is not over.
    #[error("waiting after a 429")]
    Waiting,
}

impl RegistryRefreshError {
    /// A stable machine word for this error, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryRefreshError::Registry(error) => error.kind(),
            RegistryRefreshError::Updates(_) => "updates",
            RegistryRefreshError::Graph(_) => "invalid_graph",
            RegistryRefreshError::Waiting => "rate_limited",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the state file may hold is checked when it is read: a file
    /// as written reads back; one of another format, with a digest that
    /// is not one, an unknown architecture, an overlong label or a payload
    /// of another repository is refused; another repository's is not read;
    /// a tag whose manifest is missing is dropped.
    #[test]
    fn the_state_file_is_checked_when_read() {
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let repository = "registry.example.com/me/my-fcos";
        let state = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut value = serde_json::json!({
                "format": STATE_FORMAT,
                "repository": repository,
                "tags": {"43.1": digest('a'), "gone": digest('f')},
                "manifests": {
                    digest('a'): {"index": [["x86_64", digest('b'), null]]},
                    digest('b'): {"image": {"config": digest('c'), "stream": "mine"}},
                },
                "configs": {
                    digest('c'): {"architecture": "amd64", "version": "43.1", "stream": null, "created": null},
                },
                "served": {"mine": {"43.1": {"x86_64": format!("{repository}@{}", digest('b'))}}},
            });
            edit(&mut value);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(STATE_FILE);
            std::fs::write(&path, value.to_string()).unwrap();
            read_state(&path, repository).map(|s| s.map(|s| s.tags.len()))
        };
        assert_eq!(
            state(&|_| {}).unwrap(),
            Some(1),
            "the tag without its manifest dropped"
        );
        assert!(state(&|v| v["format"] = 2.into()).is_err());
        assert!(state(&|v| v["tags"]["43.1"] = "sha256:12".into()).is_err());
        assert!(state(&|v| v["manifests"][digest('a')]["index"][0][0] = "mips".into()).is_err());
        let long = "1".repeat(MAX_LABEL_BYTES + 1);
        assert!(state(&|v| v["configs"][digest('c')]["version"] = long.clone().into()).is_err());
        assert!(state(&|v| v["served"]["mine"]["43.1"]["x86_64"] =
            format!("elsewhere.example.com/x@{}", digest('b')).into())
        .is_err());
        assert!(state(&|v| v["extra"] = 1.into()).is_err());
        assert_eq!(
            state(&|v| v["repository"] = "r.example.com/other".into()).unwrap(),
            None
        );
        // A FIFO planted at the path is refused at once, not waited on.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join(STATE_FILE);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let error = read_state(&fifo, repository).unwrap_err().to_string();
        assert!(error.contains("it is a FIFO"), "{error}");
    }

    #[test]
    fn version_tags() {
        for tag in ["43.20260105.3.0", "v1.2", "1.0"] {
            assert!(is_version_tag(tag), "{tag}");
        }
        for tag in ["latest", "stable", "1", "43.20260105.3.0-rc", "v", "1..2"] {
            assert!(!is_version_tag(tag), "{tag}");
        }
    }

    #[test]
    fn manifests_and_configs_give_architectures_and_labels() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
            "manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
               "digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
               "platform":{"architecture":"arm64","os":"linux"},
               "annotations":{"fedora-coreos.stream":"mine"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
               "digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
               "platform":{"architecture":"riscv64","os":"linux"}}]}"#;
        let Manifest::Index(entries) = parse_manifest(index).unwrap() else {
            panic!("an index");
        };
        assert_eq!(entries.len(), 1, "riscv64 is no basearch");
        assert_eq!(entries[0].0, "aarch64");
        assert_eq!(entries[0].2.as_deref(), Some("mine"));
        assert!(parse_manifest(b"{\"schemaVersion\":2").is_err());
        let config = br#"{"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z",
            "config":{"Labels":{"org.opencontainers.image.version":"43.20260105.3.0",
                                "com.coreos.stream":"mine"}},
            "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config = parse_config(config).unwrap();
        assert_eq!(basearch_of(&config.architecture), Some("x86_64"));
        assert_eq!(config.version.as_deref(), Some("43.20260105.3.0"));
        assert_eq!(config.stream.as_deref(), Some("mine"));
        assert_eq!(config.created.as_deref(), Some("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn what_is_kept_of_an_image_is_bounded() {
        let entry = |arch: &str, digest: char, stream: &str| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
                "digest":"sha256:{}","platform":{{"architecture":"{arch}","os":"linux"}},
                "annotations":{{"fedora-coreos.stream":"{stream}"}}}}"#,
                digest.to_string().repeat(64)
            )
        };
        let index = |entries: &[String]| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
                entries.join(",")
            )
        };
        // One image per architecture: the first.
        let two = index(&[entry("amd64", 'a', "mine"), entry("amd64", 'b', "mine")]);
        let Manifest::Index(entries) = parse_manifest(two.as_bytes()).unwrap() else {
            panic!("an index");
        };
        assert_eq!(entries.len(), 1);
        assert!(entries[0].1.ends_with('a'));
        // A stream annotation over the limit: refused, not kept.
        let long = "s".repeat(MAX_LABEL_BYTES + 1);
        let refused = parse_manifest(index(&[entry("amd64", 'a', &long)]).as_bytes());
        assert!(refused.unwrap_err().contains("fedora-coreos.stream"));
        let at_limit = "s".repeat(MAX_LABEL_BYTES);
        assert!(parse_manifest(index(&[entry("amd64", 'a', &at_limit)]).as_bytes()).is_ok());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":1,
                       "digest":"sha256:{}"}},
            "layers":[],"annotations":{{"fedora-coreos.stream":"{long}"}}}}"#,
            "c".repeat(64)
        );
        assert!(parse_manifest(manifest.as_bytes()).is_err());
        // Labels over the limit: refused.
        for label in [VERSION_LABEL, STREAM_LABEL, CREATED_LABEL] {
            let config = format!(
                r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"{label}":"{long}"}}}},
                "rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            );
            assert!(parse_config(config.as_bytes()).unwrap_err().contains(label));
        }
    }

    #[test]
    fn every_error_kind_is_counted_from_zero() {
        let registry = Registry::new();
        RegistryMetrics::register(&registry).unwrap();
        let text = String::from_utf8(service_kit::metrics::render(&registry)).unwrap();
        for kind in ERROR_KINDS {
            let series = format!(r#"fcos_cincinnati_gb_registry_errors_total{{kind="{kind}"}} 0"#);
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
    }
}
