//! A graph prepared for serving many clients: the response depends on a
//! client only through which in-progress rollouts are hidden from it, so
//! each distinct set of hidden rollouts is serialized (and compressed) once
//! and shared.

use commons::graph::Graph;
use commons::policy::{self, RolloutParams};
use commons::web::GraphBody;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Most rollouts tracked by the per-client cache (one bit each); a graph
/// with more is served by the plain computation.
const MAX_CACHED_ROLLOUTS: usize = 64;
/// Most cached views of one graph before the cache starts over.
const MAX_CACHED_VIEWS: usize = 64;

/// A graph from the graph-builder, ready for per-client views.
pub struct PreparedGraph {
    graph: Graph,
    /// Rollout nodes and their parameters.
    rollouts: Vec<(u64, RolloutParams)>,
    /// Hidden-rollouts bitmask → serialized view.
    views: RwLock<HashMap<u64, Arc<GraphBody>>>,
}

impl PreparedGraph {
    /// Prepares `graph` (edges out of dead-ends are removed here, once).
    pub fn new(mut graph: Graph) -> Self {
        policy::filter_deadends(&mut graph);
        let rollouts = graph
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, node)| RolloutParams::of(node).map(|r| (i as u64, r)))
            .collect();
        PreparedGraph {
            graph,
            rollouts,
            views: RwLock::default(),
        }
    }

    /// The graph as received, dead-end edges removed.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The view of a client of `wariness` at `now`.
    pub fn view(&self, wariness: f64, now: i64) -> Arc<GraphBody> {
        if self.rollouts.len() > MAX_CACHED_ROLLOUTS {
            let view = policy::client_view(self.graph.clone(), wariness, now);
            return Arc::new(GraphBody::new(view.to_json()));
        }
        let mask = self
            .rollouts
            .iter()
            .enumerate()
            .filter(|(_, (_, params))| policy::is_hidden(wariness, params.progress(now)))
            .fold(0u64, |mask, (bit, _)| mask | (1 << bit));
        if let Some(body) = self
            .views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&mask)
        {
            return Arc::clone(body);
        }
        let body = Arc::new(self.render(mask));
        let mut views = self.views.write().unwrap_or_else(|e| e.into_inner());
        if views.len() >= MAX_CACHED_VIEWS {
            views.clear();
        }
        Arc::clone(views.entry(mask).or_insert(body))
    }

    /// Serializes the graph with the edges into the rollouts of `mask`
    /// removed.
    fn render(&self, mask: u64) -> GraphBody {
        let hidden: Vec<u64> = self
            .rollouts
            .iter()
            .enumerate()
            .filter(|(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, (node, _))| *node)
            .collect();
        let view = Graph {
            nodes: self.graph.nodes.clone(),
            edges: self
                .graph
                .edges
                .iter()
                .copied()
                .filter(|(_, to)| !hidden.contains(to))
                .collect(),
        };
        GraphBody::new(view.to_json())
    }
}
