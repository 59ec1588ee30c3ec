//! The graph rules themselves, checked against the contract: random
//! release indexes and updates metadata are built into graphs by the real
//! code and by a deliberately naive implementation written here from the
//! text of the graph semantics (docs/graph-semantics.md, section 2), which
//! reads the documents as plain JSON and shares nothing with the crate but
//! the JSON parser. Both must give the same nodes, metadata and edges, and
//! the served JSON must be exactly the naive graph.

use commons::graph::{Graph, Scheme};
use commons::metadata::{ReleaseIndex, UpdatesMetadata};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};

/// Architectures releases have; the graphs are also built for `ppc64le`,
/// which none has.
const ARCHES: [&str; 3] = ["x86_64", "aarch64", "s390x"];

// ---------------------------------------------------------------------
// The naive implementation, sentence by sentence from the contract.
// ---------------------------------------------------------------------

/// "checksum scope: a release is a node only if `commits` is present,
/// non-empty, and has an entry for `basearch` with a non-empty `checksum`;
/// payload is that checksum. oci scope: only if `oci-images` is present
/// and has an entry for `basearch` with a non-empty `digest-ref`; payload
/// is that digest-ref. If an arch appears twice, the later entry wins"
/// (among the entries that would make the release a node: those with a
/// non-empty payload).
fn naive_payload(release: &Value, basearch: &str, scheme: &str) -> Option<String> {
    let (list, field) = match scheme {
        "checksum" => ("commits", "checksum"),
        _ => ("oci-images", "digest-ref"),
    };
    let entries = release.get(list)?.as_array()?;
    let mut payload = None;
    for entry in entries {
        let text = entry.get(field).and_then(Value::as_str).unwrap_or("");
        if entry["architecture"] == basearch && !text.is_empty() {
            payload = Some(text.to_string());
        }
    }
    payload
}

/// "`start_percentage` printed as the shortest decimal that round-trips,
/// never in exponent form, integers without a dot": the fewest significant
/// digits that parse back to the same number, then written out in full.
fn naive_decimal(value: f64) -> String {
    assert!(value >= 0.0 && value.is_finite());
    let scientific = (1..=17)
        .map(|digits| format!("{:.*e}", digits - 1, value))
        .find(|text| text.parse::<f64>().unwrap() == value)
        .unwrap();
    let (mantissa, exponent) = scientific.split_once('e').unwrap();
    let exponent: i32 = exponent.parse().unwrap();
    let digits = mantissa.replace('.', "");
    let digits = match digits.trim_end_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    // The decimal point goes after `point` digits.
    let point = exponent + 1;
    if value == 0.0 {
        "0".to_string()
    } else if point <= 0 {
        format!("0.{}{digits}", "0".repeat(-point as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{whole}.{fraction}")
    }
}

/// One graph of section 2, as the JSON the service serves (edges in
/// ascending order; the contract gives them no order). Loops run over
/// positions, as the contract words the rules.
#[allow(clippy::needless_range_loop)]
fn naive_graph(index: &Value, updates: &Value, basearch: &str, scheme: &str) -> Value {
    // "An entry whose version is not in the release index is ignored."
    let mut update_of: HashMap<&str, &Value> = HashMap::new();
    for entry in updates["releases"].as_array().unwrap() {
        update_of.insert(entry["version"].as_str().unwrap(), &entry["metadata"]);
    }
    let flag = |update: Option<&Value>, key: &str| update.and_then(|u| u.get(key)).is_some();
    let reason = |object: &Value| match object.get("reason").and_then(Value::as_str) {
        None | Some("") => "generic".to_string(),
        Some(reason) => reason.to_string(),
    };

    let mut nodes = Vec::new();
    let (mut barrier, mut deadend, mut rollout) = (Vec::new(), Vec::new(), Vec::new());
    // "Nodes, in release-index order: age_index is the release's position
    // in the whole index, counted before any filtering."
    for (position, release) in index["releases"].as_array().unwrap().iter().enumerate() {
        let Some(payload) = naive_payload(release, basearch, scheme) else {
            continue;
        };
        let version = release["version"].as_str().unwrap();
        let update = update_of.get(version).copied();
        let mut metadata = Map::new();
        let mut put = |key: &str, value: String| {
            metadata.insert(
                format!("org.fedoraproject.coreos.{key}"),
                Value::from(value),
            );
        };
        put("releases.age_index", position.to_string());
        put("scheme", scheme.to_string());
        if let Some(object) = update.and_then(|u| u.get("barrier")) {
            put("updates.barrier", "true".to_string());
            put("updates.barrier_reason", reason(object));
        }
        if let Some(object) = update.and_then(|u| u.get("deadend")) {
            put("updates.deadend", "true".to_string());
            put("updates.deadend_reason", reason(object));
        }
        if let Some(object) = update.and_then(|u| u.get("rollout")) {
            put("updates.rollout", "true".to_string());
            if let Some(epoch) = object.get("start_epoch") {
                put("updates.start_epoch", epoch.as_i64().unwrap().to_string());
            }
            if let Some(value) = object.get("start_percentage") {
                put(
                    "updates.start_value",
                    naive_decimal(value.as_f64().unwrap()),
                );
            }
            if let Some(minutes) = object.get("duration_minutes") {
                put(
                    "updates.duration_minutes",
                    minutes.as_u64().unwrap().to_string(),
                );
            }
        }
        barrier.push(flag(update, "barrier"));
        deadend.push(flag(update, "deadend"));
        rollout.push(flag(update, "rollout"));
        nodes.push(json!({"version": version, "metadata": metadata, "payload": payload}));
    }

    // "Edges are pairs of positions in the node list."
    let closest_barrier_before = |node: usize| (0..node).rev().find(|&i| barrier[i]).unwrap_or(0);
    let mut edges = BTreeSet::new();
    for r in 0..nodes.len() {
        // "into every rollout node r: from every node i with b <= i < r,
        // where b is the position of the closest barrier node before r
        // (0 if none)"
        if rollout[r] {
            for i in closest_barrier_before(r)..r {
                edges.insert((i, r));
            }
        }
    }
    for t in 0..nodes.len() {
        // "into every barrier node t that is not also a rollout: from every
        // node i with p <= i < t, where p is the previous barrier (0 if
        // none)"
        if barrier[t] && !rollout[t] {
            for i in closest_barrier_before(t)..t {
                edges.insert((i, t));
            }
        }
    }
    // "finally, every edge whose source is a dead-end is removed."
    edges.retain(|&(from, _)| !deadend[from]);
    json!({"nodes": nodes, "edges": edges.into_iter().collect::<Vec<_>>()})
}

// ---------------------------------------------------------------------
// Random documents.
// ---------------------------------------------------------------------

/// Short text, sometimes with what JSON must escape.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9.:@]{1,6}",
        1 => "[\"\\\\\u{0}-\u{1f} é/a]{0,4}",
    ]
}

/// A list entry (`commits` or `oci-images`): an architecture and a payload
/// field that may be missing, empty or set.
fn entry(field: &'static str) -> impl Strategy<Value = Value> {
    let arch = proptest::sample::select(ARCHES.to_vec());
    let payload =
        prop_oneof![1 => Just(None), 1 => Just(Some(String::new())), 4 => text().prop_map(Some)];
    (arch, payload, any::<bool>()).prop_map(move |(arch, payload, extra)| {
        let mut entry = json!({"architecture": arch});
        if let Some(payload) = payload {
            entry[field] = payload.into();
        }
        if extra {
            entry["image"] = "quay.io/fedora/fedora-coreos".into();
        }
        entry
    })
}

/// The list field of a release: absent, empty, or some entries.
fn list(field: &'static str) -> impl Strategy<Value = Option<Vec<Value>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        4 => proptest::collection::vec(entry(field), 1..4).prop_map(Some),
    ]
}

fn release() -> impl Strategy<Value = Value> {
    (text(), list("checksum"), list("digest-ref")).prop_map(|(suffix, commits, images)| {
        let mut release =
            json!({"version": suffix, "metadata": "https://example.org/release.json"});
        if let Some(commits) = commits {
            release["commits"] = commits.into();
        }
        if let Some(images) = images {
            release["oci-images"] = images.into();
        }
        release
    })
}

/// A `barrier` or `deadend` object, with or without a reason.
fn reason_object() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        Just(json!({"reason": ""})),
        text().prop_map(|reason| json!({"reason": reason})),
    ]
}

fn rollout() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        Just(0.0),
        Just(1.0),
        Just(0.25),
        Just(1e-7),
        Just(1e-20),
        (0u32..=100).prop_map(|p| f64::from(p) / 100.0),
        0.0f64..1.0,
    ];
    (
        proptest::option::of(-5i64..5_000_000_000),
        proptest::option::of(value),
        proptest::option::of(0u64..100_000),
    )
        .prop_map(|(epoch, value, minutes)| {
            let mut rollout = json!({});
            if let Some(epoch) = epoch {
                rollout["start_epoch"] = epoch.into();
            }
            if let Some(value) = value {
                rollout["start_percentage"] = value.into();
            }
            if let Some(minutes) = minutes {
                rollout["duration_minutes"] = minutes.into();
            }
            rollout
        })
}

fn update_metadata() -> impl Strategy<Value = Value> {
    (
        proptest::option::weighted(0.3, reason_object()),
        proptest::option::weighted(0.2, reason_object()),
        proptest::option::weighted(0.3, rollout()),
    )
        .prop_map(|(barrier, deadend, rollout)| {
            let mut metadata = json!({});
            for (key, value) in [
                ("barrier", barrier),
                ("deadend", deadend),
                ("rollout", rollout),
            ] {
                if let Some(value) = value {
                    metadata[key] = value;
                }
            }
            metadata
        })
}

/// A release index and updates metadata: versions are unique (the
/// position makes them so); updates name some of them, once each, and a
/// few versions the index does not have.
fn documents() -> impl Strategy<Value = (Value, Value)> {
    (
        proptest::collection::vec(
            (
                release(),
                proptest::option::weighted(0.6, update_metadata()),
            ),
            0..40,
        ),
        proptest::collection::vec(update_metadata(), 0..3),
    )
        .prop_map(|(releases, strangers)| {
            let mut index = Vec::new();
            let mut updates = Vec::new();
            for (position, (mut release, update)) in releases.into_iter().enumerate() {
                let version = format!("{position}.{}", release["version"].as_str().unwrap());
                release["version"] = version.clone().into();
                index.push(release);
                if let Some(metadata) = update {
                    updates.push(json!({"version": version, "metadata": metadata}));
                }
            }
            for (n, metadata) in strangers.into_iter().enumerate() {
                updates.push(
                    json!({"version": format!("not-in-the-index-{n}"), "metadata": metadata}),
                );
            }
            (
                json!({"stream": "s", "releases": index}),
                json!({"stream": "s", "releases": updates}),
            )
        })
}

/// `graph` with its edges sorted.
fn sorted_edges(mut graph: Value) -> Value {
    let edges = graph["edges"].as_array_mut().unwrap();
    edges.sort_by_key(|e| (e[0].as_u64().unwrap(), e[1].as_u64().unwrap()));
    graph
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn graphs_follow_the_contract(documents in documents()) {
        let (index, updates) = documents;
        // Both read the same bytes.
        let index_bytes = serde_json::to_vec(&index).unwrap();
        let updates_bytes = serde_json::to_vec(&updates).unwrap();
        let index: Value = serde_json::from_slice(&index_bytes).unwrap();
        let updates: Value = serde_json::from_slice(&updates_bytes).unwrap();
        let parsed_index = ReleaseIndex::parse(&index_bytes, Some("s")).unwrap();
        let parsed_updates = UpdatesMetadata::parse(&updates_bytes, Some("s")).unwrap();
        // What the graph-builder serves: all graphs of the stream in one
        // pass (commons::graph::serialize_graphs).
        let merged = parsed_updates.by_version();
        let aligned = commons::graph::align_updates(&parsed_index, &merged);
        let arches = ["x86_64", "aarch64", "s390x", "ppc64le"];
        let scopes: Vec<(&str, Scheme)> = arches
            .iter()
            .flat_map(|arch| Scheme::ALL.map(|scheme| (*arch, scheme)))
            .collect();
        let written = commons::graph::serialize_graphs(&parsed_index, &aligned, &scopes).unwrap();
        for (graph, (basearch, scheme)) in written.iter().zip(&scopes) {
            let served: Value = serde_json::from_slice(&graph.json).unwrap();
            let expected = naive_graph(&index, &updates, basearch, scheme.as_str());
            prop_assert_eq!(sorted_edges(served), expected, "served {}/{}", basearch, scheme);
        }
        for basearch in arches {
            for scheme in Scheme::ALL {
                let expected = naive_graph(&index, &updates, basearch, scheme.as_str());
                let graph = Graph::from_documents(&parsed_index, &parsed_updates, basearch, scheme);
                graph.validate().unwrap();
                // "no duplicate edges"
                let distinct: BTreeSet<_> = graph.edges.iter().collect();
                prop_assert_eq!(distinct.len(), graph.edges.len());
                let served: Value = serde_json::from_slice(&graph.to_json()).unwrap();
                prop_assert_eq!(
                    sorted_edges(served),
                    expected,
                    "{}/{}", basearch, scheme
                );
            }
        }
    }
}

#[test]
fn naive_decimals_are_the_contract_examples() {
    for (value, text) in [
        (0.0, "0"),
        (1.0, "1"),
        (0.25, "0.25"),
        (1e-7, "0.0000001"),
        (0.1 + 0.2, "0.30000000000000004"),
        (123.5, "123.5"),
        (1e21, "1000000000000000000000"),
    ] {
        assert_eq!(naive_decimal(value), text);
    }
}

/// A case the random documents rarely build: a rollout that is a barrier,
/// a dead-end in the middle, a release with no payload for the basearch.
#[test]
fn a_hand_written_stream_follows_the_contract() {
    let index = json!({"stream": "s", "releases": [
        {"version": "a", "commits": [{"architecture": "x86_64", "checksum": "ca"}]},
        {"version": "b", "commits": [{"architecture": "x86_64", "checksum": "cb"}]},
        {"version": "c", "commits": [{"architecture": "aarch64", "checksum": "cc"}]},
        {"version": "d", "commits": [{"architecture": "x86_64", "checksum": "cd"}]},
        {"version": "e", "commits": [{"architecture": "x86_64", "checksum": "ce"}]},
        {"version": "f", "commits": [{"architecture": "x86_64", "checksum": "cf"}]},
    ]});
    let updates = json!({"stream": "s", "releases": [
        {"version": "b", "metadata": {"barrier": {}, "deadend": {"reason": "r"}}},
        {"version": "d", "metadata": {"barrier": {}, "rollout": {"start_percentage": 0.5}}},
        {"version": "f", "metadata": {"barrier": {"reason": "x"}}},
    ]});
    let graph = naive_graph(&index, &updates, "x86_64", "checksum");
    // Nodes a, b, d, e, f at positions 0 to 4. Into barrier b: from a.
    // Into rollout d (also a barrier): from b, a dead-end, so none. Into
    // barrier f: from d and e, since d.
    assert_eq!(graph["edges"], json!([[0, 1], [2, 4], [3, 4]]));
    assert_eq!(
        graph["nodes"][2]["metadata"]["org.fedoraproject.coreos.releases.age_index"],
        "3"
    );
    let real = Graph::from_documents(
        &ReleaseIndex::parse(index.to_string().as_bytes(), None).unwrap(),
        &UpdatesMetadata::parse(updates.to_string().as_bytes(), None).unwrap(),
        "x86_64",
        Scheme::Checksum,
    );
    let served: Value = serde_json::from_slice(&real.to_json()).unwrap();
    assert_eq!(sorted_edges(served), graph);
}
