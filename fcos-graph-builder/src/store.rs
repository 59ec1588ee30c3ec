//! The graphs being served: for every configured stream, the serialized
//! graphs of each basearch and scheme, replaced all at once per stream.

use commons::graph::Scheme;
use commons::web::{GraphBody, GraphError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

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

/// Cheap, cloneable handle to the served graphs.
#[derive(Clone)]
pub struct GraphStore {
    /// stream → basearches it is configured with.
    configured: Arc<BTreeMap<String, Vec<String>>>,
    graphs: Arc<RwLock<HashMap<String, Arc<StreamGraphs>>>>,
}

impl GraphStore {
    /// An empty store for the configured streams and basearches.
    pub fn new(configured: BTreeMap<String, Vec<String>>) -> Self {
        GraphStore {
            configured: Arc::new(configured),
            graphs: Arc::default(),
        }
    }

    /// The configured streams, each with the basearches it is served for.
    pub fn configured(&self) -> &BTreeMap<String, Vec<String>> {
        &self.configured
    }

    /// Replaces all the graphs of `stream` at once.
    pub fn publish(&self, stream: &str, graphs: StreamGraphs) {
        let mut map = self.graphs.write().unwrap_or_else(|e| e.into_inner());
        map.insert(stream.to_string(), Arc::new(graphs));
    }

    /// The graph of one scope, or why there is none.
    pub fn get(
        &self,
        stream: &str,
        basearch: &str,
        scheme: Scheme,
    ) -> Result<Arc<GraphBody>, GraphError> {
        let configured = self
            .configured
            .get(stream)
            .is_some_and(|arches| arches.iter().any(|a| a == basearch));
        if !configured {
            return Err(GraphError::UnknownScope {
                stream: stream.to_string(),
                basearch: basearch.to_string(),
            });
        }
        let map = self.graphs.read().unwrap_or_else(|e| e.into_inner());
        map.get(stream)
            .and_then(|graphs| graphs.by_arch.get(basearch))
            .map(|pair| Arc::clone(&pair[slot(scheme)]))
            .ok_or_else(|| GraphError::NotReady(format!("stream '{stream}'")))
    }

    /// Whether every configured stream has graphs.
    pub fn all_ready(&self) -> bool {
        let map = self.graphs.read().unwrap_or_else(|e| e.into_inner());
        self.configured
            .keys()
            .all(|stream| map.contains_key(stream))
    }
}
