//! The graphs being served: for every configured stream, the serialized
//! graphs of each basearch and scheme, replaced all at once per stream; the
//! streams found in a container registry, replaced all at once together;
//! and the state of the whole store as one versioned listing (`/v1/scopes`)
//! that readers can wait on for a change.

use commons::graph::Scheme;
use serde::Serialize;
use service_kit::web::{GraphBody, GraphError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// The graphs of one stream, from one refresh.
#[derive(Debug, Default)]
pub struct StreamGraphs {
    /// basearch → `[checksum graph, oci graph]`.
    pub by_arch: HashMap<String, [Arc<GraphBody>; 2]>,
}

fn slot(scheme: Scheme) -> usize {
    match scheme {
        Scheme::Checksum => 0,
        Scheme::Oci => 1,
    }
}

impl StreamGraphs {
    /// Adds the graph of one basearch and scheme.
    pub fn insert(&mut self, basearch: &str, scheme: Scheme, body: GraphBody) {
        let empty = || Arc::new(GraphBody::new(br#"{"nodes":[],"edges":[]}"#.to_vec()));
        let entry = self
            .by_arch
            .entry(basearch.to_string())
            .or_insert_with(|| [empty(), empty()]);
        entry[slot(scheme)] = Arc::new(body);
    }
}

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// No refresh has finished yet.
    Pending,
    /// Graphs are served and the last refresh succeeded.
    Ready,
    /// Graphs are served, but the last refresh failed: they may be stale.
    Stale,
    /// Every refresh so far failed: nothing is served.
    Failed,
}

#[derive(Debug)]
struct Stream {
    basearches: Vec<String>,
    /// The schemes served: both for a release-index stream, OCI only for a
    /// registry stream.
    schemes: &'static [Scheme],
    /// Whether the stream was found in the registry (and goes when its
    /// images go).
    from_registry: bool,
    graphs: Option<Arc<StreamGraphs>>,
    state: StreamState,
}

/// The listing of every scope served, with the `ETag` of its graph.
#[derive(Serialize)]
struct Listing<'a> {
    scopes: Vec<ListedScope<'a>>,
}

#[derive(Serialize)]
struct ListedScope<'a> {
    stream: &'a str,
    basearch: &'a str,
    oci: bool,
    /// `None` while the stream has no graph.
    etag: Option<&'a str>,
}

/// What long-polling readers watch: the listing, and whether the store is
/// closing (every wait then ends at once).
#[derive(Clone, Debug)]
struct Published {
    listing: Arc<GraphBody>,
    closing: bool,
}

/// Cheap, cloneable handle to the served graphs.
#[derive(Clone, Debug)]
pub struct GraphStore {
    streams: Arc<RwLock<BTreeMap<String, Stream>>>,
    /// Where the registry stands, when one is configured: its streams are
    /// known only once it has been read.
    registry: Arc<RwLock<Option<StreamState>>>,
    published: Arc<watch::Sender<Published>>,
}

impl GraphStore {
    /// An empty store for the configured streams and basearches.
    pub fn new(configured: BTreeMap<String, Vec<String>>) -> Self {
        let streams: BTreeMap<String, Stream> = configured
            .into_iter()
            .map(|(name, basearches)| {
                let stream = Stream {
                    basearches,
                    schemes: &Scheme::ALL,
                    from_registry: false,
                    graphs: None,
                    state: StreamState::Pending,
                };
                (name, stream)
            })
            .collect();
        let listing = Arc::new(listing(&streams));
        GraphStore {
            streams: Arc::new(RwLock::new(streams)),
            registry: Arc::new(RwLock::new(None)),
            published: Arc::new(watch::Sender::new(Published {
                listing,
                closing: false,
            })),
        }
    }

    /// The store with a registry: not ready before the registry's first
    /// refresh has ended.
    pub fn with_registry(self) -> Self {
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = Some(StreamState::Pending);
        self
    }

    /// The streams served now, each with its basearches: the configured
    /// ones, and those found in the registry.
    pub fn configured(&self) -> BTreeMap<String, Vec<String>> {
        let streams = self.streams.read().unwrap_or_else(|e| e.into_inner());
        streams
            .iter()
            .map(|(name, entry)| (name.clone(), entry.basearches.clone()))
            .collect()
    }

    /// Whether `stream` is a configured (release-index) stream.
    pub fn is_configured(&self, stream: &str) -> bool {
        let streams = self.streams.read().unwrap_or_else(|e| e.into_inner());
        streams
            .get(stream)
            .is_some_and(|entry| !entry.from_registry)
    }

    /// Replaces every registry stream at once by `found` (stream →
    /// basearches and OCI graphs): streams no longer found are no longer
    /// served. Names of configured streams are never replaced.
    pub fn publish_registry(&self, found: BTreeMap<String, (Vec<String>, StreamGraphs)>) {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        streams.retain(|_, entry| !entry.from_registry);
        for (name, (basearches, graphs)) in found {
            if streams.contains_key(&name) {
                continue;
            }
            let stream = Stream {
                basearches,
                schemes: &[Scheme::Oci],
                from_registry: true,
                graphs: Some(Arc::new(graphs)),
                state: StreamState::Ready,
            };
            streams.insert(name, stream);
        }
        self.republish(streams);
    }

    /// Records that a refresh of the registry succeeded (`true`) or
    /// failed; its streams are then ready or stale.
    pub fn record_registry_refresh(&self, succeeded: bool) {
        let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
        let served = {
            let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
            let mut served = false;
            for entry in streams.values_mut().filter(|entry| entry.from_registry) {
                served = true;
                entry.state = if succeeded {
                    StreamState::Ready
                } else {
                    StreamState::Stale
                };
            }
            served
        };
        *registry = Some(match (succeeded, served) {
            (true, _) => StreamState::Ready,
            (false, true) => StreamState::Stale,
            (false, false) => StreamState::Failed,
        });
    }

    /// Where the registry stands, when one is configured.
    pub fn registry_state(&self) -> Option<StreamState> {
        *self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    fn republish(&self, streams: std::sync::RwLockWriteGuard<'_, BTreeMap<String, Stream>>) {
        let listing = Arc::new(listing(&streams));
        drop(streams);
        self.published.send_if_modified(|published| {
            let changed = published.listing.etag() != listing.etag();
            if changed {
                published.listing = listing;
            }
            changed
        });
    }

    /// Replaces all the graphs of `stream` at once.
    pub fn publish(&self, stream: &str, graphs: StreamGraphs) {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = streams.get_mut(stream) {
            entry.graphs = Some(Arc::new(graphs));
            entry.state = StreamState::Ready;
        }
        self.republish(streams);
    }

    /// Records that a refresh of `stream` succeeded (`true`) or failed.
    pub fn record_refresh(&self, stream: &str, succeeded: bool) {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = streams.get_mut(stream) {
            entry.state = match (succeeded, entry.graphs.is_some()) {
                (true, _) => StreamState::Ready,
                (false, true) => StreamState::Stale,
                (false, false) => StreamState::Failed,
            };
        }
    }

    /// The graph of one scope, or why there is none.
    pub fn get(
        &self,
        stream: &str,
        basearch: &str,
        scheme: Scheme,
    ) -> Result<Arc<GraphBody>, GraphError> {
        let streams = self.streams.read().unwrap_or_else(|e| e.into_inner());
        let entry = streams
            .get(stream)
            .filter(|entry| {
                entry.basearches.iter().any(|a| a == basearch) && entry.schemes.contains(&scheme)
            })
            .ok_or_else(|| GraphError::UnknownScope {
                stream: stream.to_string(),
                basearch: basearch.to_string(),
            })?;
        entry
            .graphs
            .as_ref()
            .and_then(|graphs| graphs.by_arch.get(basearch))
            .map(|pair| Arc::clone(&pair[slot(scheme)]))
            .ok_or_else(|| GraphError::NotReady(format!("stream '{stream}'")))
    }

    /// The state of every configured stream.
    pub fn states(&self) -> BTreeMap<String, StreamState> {
        let streams = self.streams.read().unwrap_or_else(|e| e.into_inner());
        streams
            .iter()
            .map(|(name, entry)| (name.clone(), entry.state))
            .collect()
    }

    /// Whether the graph-builder is ready for clients: every stream, and
    /// the registry when there is one, has finished a first refresh (with
    /// a graph or without), and at least one stream has graphs. One broken
    /// stream does not hold back the others.
    pub fn ready(&self) -> bool {
        let states = self.states();
        self.registry_state() != Some(StreamState::Pending)
            && !states.values().any(|s| *s == StreamState::Pending)
            && states
                .values()
                .any(|s| matches!(s, StreamState::Ready | StreamState::Stale))
    }

    /// The listing of every scope and its graph's `ETag`.
    pub fn listing(&self) -> Arc<GraphBody> {
        Arc::clone(&self.published.borrow().listing)
    }

    /// The listing, as soon as its `ETag` differs from `etag`, or after
    /// `wait` (or at once when the store is closing), whichever comes
    /// first.
    pub async fn listing_changed_from(&self, etag: &str, wait: Duration) -> Arc<GraphBody> {
        let mut receiver = self.published.subscribe();
        let changed = receiver.wait_for(|p| p.closing || p.listing.etag() != etag);
        let _ = tokio::time::timeout(wait, changed).await;
        self.listing()
    }

    /// Ends every wait for a change now and from now on (on shutdown).
    pub fn close(&self) {
        self.published.send_modify(|p| p.closing = true);
    }
}

/// The listing of `streams`, serialized.
fn listing(streams: &BTreeMap<String, Stream>) -> GraphBody {
    let scopes = streams
        .iter()
        .flat_map(|(name, entry)| {
            entry.basearches.iter().flat_map(move |basearch| {
                entry.schemes.iter().map(move |&scheme| {
                    let graph = entry
                        .graphs
                        .as_ref()
                        .and_then(|graphs| graphs.by_arch.get(basearch));
                    ListedScope {
                        stream: name,
                        basearch,
                        oci: scheme == Scheme::Oci,
                        etag: graph.map(|pair| pair[slot(scheme)].etag()),
                    }
                })
            })
        })
        .collect();
    let json = serde_json::to_vec(&Listing { scopes }).expect("a listing serializes");
    GraphBody::new(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> GraphStore {
        GraphStore::new(BTreeMap::from([
            ("next".to_string(), vec!["x86_64".to_string()]),
            ("stable".to_string(), vec!["x86_64".to_string()]),
        ]))
    }

    fn graphs(payload: &str) -> StreamGraphs {
        let mut graphs = StreamGraphs::default();
        let json = format!(
            r#"{{"nodes":[{{"version":"1","metadata":{{}},"payload":"{payload}"}}],"edges":[]}}"#
        );
        graphs.insert(
            "x86_64",
            Scheme::Checksum,
            GraphBody::new(json.into_bytes()),
        );
        graphs
    }

    #[test]
    fn ready_once_every_stream_is_refreshed_and_one_has_graphs() {
        let store = store();
        assert!(!store.ready());
        store.record_refresh("next", false);
        assert!(!store.ready(), "stable has not been refreshed yet");
        store.publish("stable", graphs("a"));
        store.record_refresh("stable", true);
        assert!(store.ready());
        assert_eq!(store.states()["next"], StreamState::Failed);
        store.record_refresh("stable", false);
        assert_eq!(store.states()["stable"], StreamState::Stale);
        assert!(store.ready());
    }

    #[test]
    fn the_listing_changes_with_the_graphs_only() {
        let store = store();
        let empty = store.listing();
        let text: serde_json::Value = serde_json::from_slice(empty.json()).unwrap();
        assert_eq!(text["scopes"].as_array().unwrap().len(), 4);
        assert!(text["scopes"][0]["etag"].is_null());
        store.publish("stable", graphs("a"));
        let first = store.listing();
        assert_ne!(first.etag(), empty.etag());
        store.publish("stable", graphs("a"));
        assert_eq!(store.listing().etag(), first.etag());
        store.publish("stable", graphs("b"));
        assert_ne!(store.listing().etag(), first.etag());
    }

    #[test]
    fn registry_streams_serve_oci_only_and_go_when_no_longer_found() {
        let store = store().with_registry();
        store.publish("stable", graphs("a"));
        store.record_refresh("stable", true);
        store.record_refresh("next", true);
        assert!(!store.ready(), "the registry has not been read yet");
        let mut oci = StreamGraphs::default();
        oci.insert(
            "aarch64",
            Scheme::Oci,
            GraphBody::new(br#"{"nodes":[],"edges":[]}"#.to_vec()),
        );
        let found = BTreeMap::from([
            ("mine".to_string(), (vec!["aarch64".to_string()], oci)),
            (
                "stable".to_string(),
                (vec!["aarch64".to_string()], StreamGraphs::default()),
            ),
        ]);
        store.publish_registry(found);
        store.record_registry_refresh(true);
        assert!(store.ready());
        assert!(store.get("mine", "aarch64", Scheme::Oci).is_ok());
        assert!(matches!(
            store.get("mine", "aarch64", Scheme::Checksum),
            Err(GraphError::UnknownScope { .. })
        ));
        // A configured stream is never replaced by a registry stream.
        assert_eq!(store.configured()["stable"], ["x86_64"]);
        assert!(store.is_configured("stable") && !store.is_configured("mine"));
        let text: serde_json::Value = serde_json::from_slice(store.listing().json()).unwrap();
        let mine: Vec<&serde_json::Value> = text["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["stream"] == "mine")
            .collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0]["oci"], true);
        store.record_registry_refresh(false);
        assert_eq!(store.states()["mine"], StreamState::Stale);
        store.publish_registry(BTreeMap::new());
        assert!(!store.configured().contains_key("mine"));
    }

    #[tokio::test]
    async fn waits_end_on_a_change_on_close_or_after_the_wait() {
        let store = store();
        let etag = store.listing().etag().to_string();
        let started = std::time::Instant::now();
        let same = store
            .listing_changed_from(&etag, Duration::from_millis(50))
            .await;
        assert_eq!(same.etag(), etag);
        assert!(started.elapsed() >= Duration::from_millis(50));

        let waiter = {
            let store = store.clone();
            let etag = etag.clone();
            tokio::spawn(async move {
                store
                    .listing_changed_from(&etag, Duration::from_secs(60))
                    .await
            })
        };
        tokio::task::yield_now().await;
        store.publish("next", graphs("n"));
        let changed = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(changed.etag(), etag);

        let etag = changed.etag().to_string();
        store.close();
        let closing = tokio::time::timeout(
            Duration::from_secs(5),
            store.listing_changed_from(&etag, Duration::from_secs(60)),
        )
        .await
        .unwrap();
        assert_eq!(closing.etag(), etag);
    }
}
