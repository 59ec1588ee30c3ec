//! One client's answer: everything the graph a client gets depends on,
//! computed once per request. `/v1/graph` serves its view; `/v1/explain`
//! (and `fcos-cincinnati graph --explain`) say why it is what it is, from
//! the same values.

use crate::view::{Decision, EdgeOut, Halted, PreparedGraph, Removal};
use commons::fleet_policy::Halt;
use commons::fleet_policy::{self, rfc3339, Group, Policy, Reason};
use commons::{metadata, rollout};
use serde_json::{json, Value};
use service_kit::web::GraphQuery;

/// A client's view of one graph at one time.
#[derive(Debug)]
pub struct Client<'a> {
    /// Its request.
    pub query: &'a GraphQuery<'a>,
    /// The graph of its scope.
    pub graph: &'a PreparedGraph,
    /// The policy in force, if any.
    pub policy: Option<&'a Policy>,
    /// The rules of its group, if any apply.
    pub rules: Option<&'a Group>,
    /// What they remove now.
    pub removal: Removal<'a>,
    /// The releases halted for it.
    pub halted: Halted,
    /// Its wariness, clamped by its group.
    pub wariness: f64,
    /// Its group as a metric label.
    pub group_label: &'a str,
    /// Its platform as a metric label.
    pub platform_label: &'static str,
    /// The node of its release (by `os_version`).
    pub own_node: Option<usize>,
    /// Whether its payload (`os_checksum`) is a node's, when it sent one.
    pub payload_known: Option<bool>,
    /// What its view offers it, when its node was found.
    pub decision: Option<Decision>,
    /// When.
    pub now: i64,
}

impl<'a> Client<'a> {
    /// The client of `query` on `graph` under `policy` at `now`.
    /// `release_age` gives a release's age index in the stream (see
    /// [`Removal::of`]); `halted` the releases halted for a client of a
    /// group and platform (metric labels).
    pub fn new(
        query: &'a GraphQuery<'a>,
        graph: &'a PreparedGraph,
        policy: Option<&'a Policy>,
        now: i64,
        release_age: impl FnOnce(&str) -> Option<u64>,
        halted: impl FnOnce(&str, &str) -> Halted,
    ) -> Self {
        let (rules, removal) = Removal::of(
            policy,
            query.group.as_deref(),
            &query.stream,
            now,
            release_age,
        );
        let wariness = rollout::client_wariness(query.rollout_wariness, query.node_uuid.as_deref());
        let wariness = rules.map_or(wariness, |group| group.clamp(wariness));
        let group_label = policy.map_or(fleet_policy::OTHER, |p| {
            p.group_label(query.group.as_deref())
        });
        let platform_label = fleet_policy::platform_label(query.platform.as_deref());
        let halted = halted(group_label, platform_label);
        let own_node = query
            .os_version
            .as_deref()
            .and_then(|v| graph.node_by_version(v));
        let payload_known = query
            .os_checksum
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| graph.node_by_payload(c).is_some());
        let decision = own_node.map(|node| graph.decide(wariness, now, &removal, &halted, node));
        Client {
            query,
            graph,
            policy,
            rules,
            removal,
            halted,
            wariness,
            group_label,
            platform_label,
            own_node,
            payload_known,
            decision,
            now,
        }
    }

    /// The update the client takes, as (version, age index).
    pub fn offer(&self) -> Option<(&'a str, u64)> {
        let node = self.decision?.offer?;
        Some((
            &self.graph.graph().nodes[node].version,
            self.graph.age(node),
        ))
    }

    /// Why the client gets what it gets: its node, its wariness, every
    /// edge out of its node with why it is withheld, and the update it
    /// takes or why none. `halts` are those that apply to it.
    pub fn explain(&self, halts: &[Halt]) -> Value {
        let query = self.query;
        let nodes = &self.graph.graph().nodes;
        let version = |node: usize| nodes[node].version.as_str();
        let wariness_source = match (query.rollout_wariness, query.node_uuid.as_deref()) {
            (Some(_), _) => "given",
            (None, Some(uuid)) if !uuid.is_empty() => "node_uuid",
            _ => "default",
        };
        let unclamped =
            rollout::client_wariness(query.rollout_wariness, query.node_uuid.as_deref());
        let clamped_by = self
            .rules
            .filter(|_| unclamped != self.wariness)
            .map(|g| json!({"group": g.name, "wariness_min": g.wariness_min, "wariness_max": g.wariness_max}));
        let node = match self.own_node {
            Some(node) => json!({
                "found": true,
                "version": version(node),
                "payload": nodes[node].payload,
                "payload_matches": self.payload_known,
            }),
            None => json!({
                "found": false,
                "version": query.os_version,
                "why": match query.os_version.as_deref() {
                    None | Some("") => "the request has no os_version",
                    Some(_) => "no release of this version in the graph: Zincati finds no node for itself and takes no update",
                },
            }),
        };
        let mut edges = Vec::new();
        let mut deadend = Value::Null;
        let mut barrier = Value::Null;
        if let Some(node) = self.own_node {
            let own = &nodes[node];
            if own.is_deadend() {
                deadend = json!({
                    "reason": own.metadata.get(metadata::DEADEND_REASON),
                });
            }
            barrier = self.barrier_after(node);
            for edge in
                self.graph
                    .edges_out(self.wariness, self.now, &self.removal, &self.halted, node)
            {
                edges.push(self.edge_json(&edge, halts));
            }
            edges.sort_by_key(|e| std::cmp::Reverse(e["age_index"].as_u64()));
        }
        let update = self.offer().map(|(v, _)| {
            let node = self.graph.node_by_version(v).unwrap_or_default();
            json!({"version": v, "payload": nodes[node].payload})
        });
        let why_none = match (&update, self.own_node) {
            (Some(_), _) => None,
            (None, None) => Some("its release was not found".to_string()),
            (None, Some(_)) if !deadend.is_null() => {
                Some("its release is a dead-end: no update leaves it".to_string())
            }
            (None, Some(_)) if edges.is_empty() => {
                Some("no newer release: it is up to date".to_string())
            }
            (None, Some(_)) => Some(why_withheld(&edges)),
        };
        json!({
            "now": rfc3339(self.now),
            "scope": {
                "stream": query.stream,
                "basearch": query.basearch,
                "scheme": query.scheme().as_str(),
            },
            "node": node,
            "wariness": {
                "value": self.wariness,
                "source": wariness_source,
                "clamped_by": clamped_by,
            },
            "group": {
                "sent": query.group,
                "rules": self.rules.map(|g| g.name.as_str()),
                "label": self.group_label,
            },
            "platform": self.platform_label,
            "deadend": deadend,
            "barrier": barrier,
            "edges": edges,
            "update": update,
            "why_none": why_none,
        })
    }

    /// The first barrier newer than node `node` behind which newer
    /// releases wait (they are reached through it).
    fn barrier_after(&self, node: usize) -> Value {
        let nodes = &self.graph.graph().nodes;
        let age = self.graph.age(node);
        let barrier = (0..nodes.len())
            .filter(|&n| self.graph.age(n) > age && nodes[n].is_barrier())
            .min_by_key(|&n| self.graph.age(n));
        match barrier {
            Some(b) if (0..nodes.len()).any(|n| self.graph.age(n) > self.graph.age(b)) => json!({
                "version": nodes[b].version,
                "reason": nodes[b].metadata.get(metadata::BARRIER_REASON),
                "why": "newer releases are reached only through this barrier: update to it first",
            }),
            _ => Value::Null,
        }
    }

    fn edge_json(&self, edge: &EdgeOut, halts: &[Halt]) -> Value {
        let target = &self.graph.graph().nodes[edge.to];
        let rollout = edge.rollout.map(|(progress, reached)| {
            json!({
                "progress": progress,
                "wariness": self.wariness,
                "reached_at": reached.and_then(rfc3339),
            })
        });
        let reason = if edge.hidden {
            Some("rollout")
        } else {
            edge.removed.map(Reason::as_str)
        };
        let detail = match (edge.hidden, edge.removed) {
            (true, _) => edge.rollout.map(|(progress, reached)| match reached {
                Some(at) => format!(
                    "rolled out to {:.1}% of the fleet; this node's wariness {:.4} is reached at {}",
                    progress * 100.0,
                    self.wariness,
                    rfc3339(at).unwrap_or_default()
                ),
                None => format!(
                    "rolled out to {:.1}% of the fleet, not rolling further; this node's wariness {:.4} is not reached",
                    progress * 100.0,
                    self.wariness
                ),
            }).map(Value::from),
            (false, Some(reason)) => Some(self.removal_detail(reason, &target.version, halts)),
            (false, None) => None,
        };
        json!({
            "to": target.version,
            "age_index": self.graph.age(edge.to),
            "offered": edge.offered(),
            "reason": reason,
            "detail": detail,
            "rollout": rollout,
        })
    }

    /// Why the policy or a halt removes the edge into `version`: the rule,
    /// where it comes from, and when it ends when it does.
    fn removal_detail(&self, reason: Reason, version: &str, halts: &[Halt]) -> Value {
        let fleet = self.policy.and_then(|p| p.fleet.as_ref());
        let table = |in_fleet: bool| match (in_fleet, self.rules) {
            (true, _) => "fleet".to_string(),
            (false, Some(g)) if g.name != "fleet" => format!("groups.{}", g.name),
            _ => "fleet".to_string(),
        };
        let rules = self.rules;
        match reason {
            Reason::Paused => json!({
                "rule": format!("{}.paused", table(fleet.is_some_and(|f| f.paused))),
            }),
            Reason::Freeze => {
                let freeze = rules.and_then(|g| g.freeze_at(self.now));
                let in_fleet = fleet.is_some_and(|f| f.freeze_at(self.now).is_some());
                json!({
                    "rule": format!("{}.freezes", table(in_fleet)),
                    "until": freeze.map(|f| f.to.clone()),
                    "why": freeze.map(|f| f.reason.clone()),
                })
            }
            Reason::Window => json!({
                "rule": format!("{}.windows", table(false)),
                "next_window": rules.and_then(|g| g.next_window(self.now)).and_then(rfc3339),
            }),
            Reason::MaxVersion => json!({
                "rule": format!("{}.max_version.{}", table(false), self.query.stream),
                "max_version": rules.and_then(|g| g.max_version(&self.query.stream)),
            }),
            Reason::Deny => json!({
                "rule": format!("{}.deny", table(fleet.is_some_and(|f| f.denies(version)))),
            }),
            Reason::Halted => {
                let halt = halts.iter().find(|h| h.release == version);
                json!({
                    "rule": halt.map(|h| match &h.group {
                        Some(group) => format!("groups.{group}.guard.{}", h.key),
                        None => format!("guard.{}", h.key),
                    }),
                    "halt": halt,
                    "resume": "list the release in the guard's resume to lift the halt",
                })
            }
        }
    }
}

/// Why no edge of `edges` (as explained, none offered) is taken: the
/// rollouts have not reached the node yet (and when the first will), or
/// the reasons they are withheld.
fn why_withheld(edges: &[Value]) -> String {
    let mut reasons: Vec<&str> = edges.iter().filter_map(|e| e["reason"].as_str()).collect();
    reasons.sort_unstable();
    reasons.dedup();
    if reasons == ["rollout"] {
        let next = edges
            .iter()
            .filter_map(|e| e["rollout"]["reached_at"].as_str())
            .min();
        return match next {
            Some(at) => format!(
                "the rollouts of its updates have not reached its wariness yet: the first does at {at}"
            ),
            None => "the rollouts of its updates have not reached its wariness, and are not rolling further".to_string(),
        };
    }
    format!(
        "every update out of its release is withheld ({})",
        reasons.join(", ")
    )
}
