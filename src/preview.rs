//! `fcos-cincinnati graph`: one graph from local files or from a container
//! registry, as the graph-builder serves it or as one client of the
//! policy-engine sees it, in JSON or Graphviz DOT, or why that client is
//! offered what it is (`--explain`).

use anyhow::Context;
use commons::graph::{Graph, Scheme};
use commons::metadata::{ReleaseIndex, UpdatesMetadata};
use commons::rollout::{self, RolloutParams};
use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

/// A graph as the graph-builder builds it, and where its releases stand in
/// their stream.
#[derive(Debug)]
pub struct Source {
    /// The graph-builder's graph.
    pub graph: Graph,
    /// Its stream.
    pub stream: String,
    /// The age index of each release of the stream (its place in the
    /// release index), also of releases the graph does not have.
    pub ages: HashMap<String, u64>,
}

/// Whose view of the graph to print.
#[derive(Debug)]
pub enum Viewer {
    /// The graph-builder's raw graph.
    GraphBuilder,
    /// A policy-engine client of this wariness, at this time.
    Client {
        /// Rollout wariness in [0, 1].
        wariness: f64,
        /// Seconds since the Unix epoch.
        now: i64,
    },
    /// A policy-engine client of this wariness and group, under a fleet
    /// policy: exactly what the policy-engine answers it.
    Group {
        /// Rollout wariness in [0, 1], before the group's clamp.
        wariness: f64,
        /// Seconds since the Unix epoch.
        now: i64,
        /// The policy.
        policy: Box<commons::fleet_policy::Policy>,
        /// The client's group (`None`: Zincati sent none).
        group: Option<String>,
    },
}

/// Reads and checks both documents, and builds the graph of `basearch` and
/// `scheme`, with the OCI payloads pulled from `oci_repository` when given
/// (a mirror).
pub fn build(
    releases: &Path,
    updates: &Path,
    basearch: &str,
    scheme: Scheme,
    oci_repository: Option<&str>,
) -> anyhow::Result<Source> {
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let updates_doc = UpdatesMetadata::parse(&read(updates)?, None)
        .with_context(|| format!("{} is not usable", updates.display()))?;
    let mut index = ReleaseIndex::parse(&read(releases)?, Some(&updates_doc.stream))
        .with_context(|| format!("{} is not usable", releases.display()))?;
    if let Some(repository) = oci_repository {
        index.replace_oci_repository(repository);
    }
    let graph = Graph::from_documents(&index, &updates_doc, basearch, scheme);
    if graph.nodes.is_empty() {
        let known = index.architectures();
        if !known.contains(&basearch.to_string()) {
            // An empty graph is the right answer (the graph-builder serves
            // one too), but the likelier cause is a typo: say so.
            tracing::warn!(
                "{} has no release for basearch '{basearch}' (it has: {})",
                releases.display(),
                known.join(", ")
            );
        }
    }
    graph
        .validate()
        .context("the built graph breaks the graph rules")?;
    let ages = index
        .releases
        .iter()
        .enumerate()
        .map(|(i, release)| (release.version.clone(), i as u64))
        .collect();
    Ok(Source {
        graph,
        stream: updates_doc.stream,
        ages,
    })
}

/// Reads the registry `repository` once, as the graph-builder's
/// `[registry]` source does (anonymously, every tag), and builds the OCI
/// graph of `stream` and `basearch`.
pub async fn build_from_registry(
    repository: &str,
    stream: &str,
    basearch: &str,
) -> anyhow::Result<Source> {
    use fcos_graph_builder::config::{RegistryFile, RegistrySettings};
    use fcos_graph_builder::registry::{RegistryMetrics, RegistryScraper};
    let settings = RegistrySettings::from_file(RegistryFile {
        repository: Some(repository.to_string()),
        ..RegistryFile::default()
    })
    .context("--registry")?;
    let metrics = prometheus::Registry::new();
    let store = fcos_graph_builder::store::GraphStore::new(Default::default()).with_registry();
    let timeout = std::time::Duration::from_secs(60);
    let mut scraper = RegistryScraper::new(
        settings,
        timeout,
        timeout,
        fcos_graph_builder::fetch::Fetcher::new(timeout, 64 << 20)?,
        store.clone(),
        RegistryMetrics::register(&metrics)?,
        fcos_graph_builder::scraper::ScraperMetrics::register(&metrics)?,
    )?;
    scraper
        .refresh_once()
        .await
        .with_context(|| format!("cannot read {repository}"))?;
    let found = store.configured();
    let body = store.get(stream, basearch, Scheme::Oci).map_err(|_| {
        let found: Vec<String> = found
            .iter()
            .map(|(stream, arches)| format!("{stream} ({})", arches.join(", ")))
            .collect();
        anyhow::anyhow!(
            "{repository} has no image of stream '{stream}' for basearch '{basearch}' (it has: {})",
            if found.is_empty() {
                "none".to_string()
            } else {
                found.join(", ")
            }
        )
    })?;
    let graph: Graph =
        serde_json::from_slice(body.json()).context("the graph-builder's graph is a graph")?;
    let ages = graph
        .nodes
        .iter()
        .filter_map(|node| {
            let age = node
                .metadata
                .get(commons::metadata::AGE_INDEX)?
                .parse()
                .ok()?;
            Some((node.version.clone(), age))
        })
        .collect();
    Ok(Source {
        graph,
        stream: stream.to_string(),
        ages,
    })
}

/// The graph of `source` as `viewer` sees it.
pub fn view(source: Source, viewer: &Viewer) -> anyhow::Result<Graph> {
    let Source {
        graph,
        stream,
        ages,
    } = source;
    let age_index = |version: &str| ages.get(version).copied();
    Ok(match viewer {
        Viewer::GraphBuilder => graph,
        Viewer::Client { wariness, now } => rollout::client_view(graph, *wariness, *now),
        Viewer::Group {
            wariness,
            now,
            policy,
            group,
        } => {
            use fcos_policy_engine::view::{Halted, PreparedGraph, Removal, ViewCache};
            // A release's age index is its place in the release index, the
            // order the policy-engine reads from the graphs of the stream.
            let (rules, removal) =
                Removal::of(Some(policy), group.as_deref(), &stream, *now, age_index);
            let wariness = rules.map_or(*wariness, |rules| rules.clamp(*wariness));
            let cache = std::sync::Arc::new(ViewCache::new(
                fcos_policy_engine::view::DEFAULT_CACHE_BYTES,
            ));
            let body =
                PreparedGraph::new(graph, &cache).view(wariness, *now, &removal, &Halted::NONE);
            serde_json::from_slice(body.json()).context("the policy-engine's view is a graph")?
        }
    })
}

/// Why the client of `query` is offered what it is from the graph of
/// `source` under `policy` at `now`, as the policy-engine's `/v1/explain`
/// answers (no release is halted: halts live in a running policy-engine).
pub fn explain(
    source: Source,
    query: &service_kit::web::GraphQuery<'_>,
    policy: Option<&commons::fleet_policy::Policy>,
    now: i64,
) -> serde_json::Value {
    use fcos_policy_engine::client::Client;
    use fcos_policy_engine::view::{Halted, PreparedGraph, ViewCache, DEFAULT_CACHE_BYTES};
    let Source { graph, ages, .. } = source;
    let graph = PreparedGraph::new(
        graph,
        &std::sync::Arc::new(ViewCache::new(DEFAULT_CACHE_BYTES)),
    );
    let client = Client::new(
        query,
        &graph,
        policy,
        now,
        |version| ages.get(version).copied(),
        |_, _| Halted::NONE,
    );
    client.explain(&[])
}

/// The graph in Graphviz DOT, left to right: barriers as double boxes,
/// dead-ends red, rollouts with their progress at `now`.
pub fn to_dot(graph: &Graph, title: &str, now: i64) -> String {
    let mut dot = String::new();
    let _ = writeln!(dot, "digraph \"{}\" {{", escape(title));
    dot.push_str("  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\"];\n");
    for (i, node) in graph.nodes.iter().enumerate() {
        // The version is escaped; the `\n` line breaks added below are DOT
        // escapes of their own.
        let mut label = escape(&node.version);
        let mut attrs = Vec::new();
        if node.is_barrier() {
            label.push_str("\\nbarrier");
            attrs.push("peripheries=2".to_string());
        }
        if node.is_deadend() {
            label.push_str("\\ndead-end");
            attrs.push("color=red, fontcolor=red".to_string());
        }
        if let Some(rollout) = RolloutParams::of(node) {
            let progress = rollout.progress(now);
            let _ = write!(label, "\\nrollout {:.1}%", progress * 100.0);
            if progress < 1.0 {
                attrs.push("style=dashed".to_string());
            }
        }
        attrs.insert(0, format!("label=\"{label}\""));
        let _ = writeln!(dot, "  n{i} [{}];", attrs.join(", "));
    }
    for (from, to) in &graph.edges {
        let _ = writeln!(dot, "  n{from} -> n{to};");
    }
    dot.push_str("}\n");
    dot
}

/// `text` as the content of a DOT quoted string: a backslash or a double
/// quote is escaped with a backslash (an unescaped backslash would start a
/// DOT escape such as `\l` or `\N`).
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '"') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use commons::graph::Node;

    #[test]
    fn dot_escapes_backslashes_and_quotes() {
        let mut barrier = Node {
            version: r#"41\N"x"#.to_string(),
            metadata: Default::default(),
            payload: "p".to_string(),
        };
        barrier
            .metadata
            .insert(commons::metadata::BARRIER.into(), "true".into());
        let graph = Graph {
            nodes: vec![barrier],
            edges: Vec::new(),
        };
        let dot = to_dot(&graph, r#"a\b"c"#, 0);
        assert!(dot.starts_with(r#"digraph "a\\b\"c" {"#), "{dot}");
        assert!(
            dot.contains(r#"n0 [label="41\\N\"x\nbarrier", peripheries=2];"#),
            "{dot}"
        );
    }
}
