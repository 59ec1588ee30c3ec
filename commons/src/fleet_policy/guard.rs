//! Guards: thresholds on the outcomes of a rollout (see
//! [`crate::outcomes`]) past which the policy-engine halts it.
//!
//! `[guard]` applies to every node of a scope (and to each platform of it
//! alone), `[groups.NAME.guard]` to the nodes of one group. A release is
//! judged once [`Guard::min_nodes`] nodes were offered it; a halt lasts
//! until the release is listed in [`Guard::resume`].

use super::Policy;
use crate::outcomes::Counts;
use serde::{Deserialize, Serialize};

/// The thresholds of one `[guard]` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Guard {
    /// Nodes offered a release before it is judged.
    pub min_nodes: u64,
    /// Highest fraction of arrived nodes that came back to an older
    /// release.
    pub max_rolled_back: f64,
    /// Highest fraction of offered nodes that went silent right after.
    pub max_lost: f64,
    /// Highest fraction of offered nodes still not arrived after
    /// `stuck_after`.
    pub max_stuck: f64,
    /// Seconds after its offer a node still on an older release is stuck.
    pub stuck_after: i64,
    /// Seconds of silence after its offer before a node is lost.
    pub lost_after: i64,
    /// Releases the operator cleared after a halt.
    pub resume: Vec<String>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            min_nodes: 20,
            max_rolled_back: 0.02,
            max_lost: 0.05,
            max_stuck: 0.30,
            stuck_after: 24 * 3600,
            lost_after: 3600,
            resume: Vec::new(),
        }
    }
}

/// A threshold crossed: its key, the fraction measured and its limit, and
/// the counts it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Crossing {
    /// The key of the threshold (`max_rolled_back`, `max_lost`,
    /// `max_stuck`).
    pub key: &'static str,
    /// The fraction measured.
    pub value: f64,
    /// The threshold.
    pub limit: f64,
    /// Nodes counted (rolled back, lost or stuck)…
    pub count: u64,
    /// …out of these (arrived for `max_rolled_back`, else offered).
    pub of: u64,
}

impl Guard {
    /// The first threshold `counts` crosses, if the release has been
    /// offered to enough nodes to be judged.
    pub fn crossed(&self, counts: &Counts) -> Option<Crossing> {
        if counts.offered < self.min_nodes.max(1) {
            return None;
        }
        let checks = [
            (
                "max_rolled_back",
                counts.rolled_back,
                counts.arrived,
                self.max_rolled_back,
            ),
            ("max_lost", counts.lost, counts.offered, self.max_lost),
            ("max_stuck", counts.stuck, counts.offered, self.max_stuck),
        ];
        checks
            .into_iter()
            .filter(|&(_, count, of, _)| of > 0 && count > 0)
            .map(|(key, count, of, limit)| Crossing {
                key,
                value: count as f64 / of as f64,
                limit,
                count,
                of,
            })
            .find(|c| c.value > c.limit)
    }

    /// Whether the operator cleared `release` after a halt.
    pub fn resumes(&self, release: &str) -> bool {
        self.resume.iter().any(|r| r == release)
    }
}

/// A rollout halted by a guard, as the policy-engine keeps it
/// (`halts.json`) and shows it (`/v1/rollouts`, `/v1/policy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Halt {
    /// Stream.
    pub stream: String,
    /// Architecture.
    pub basearch: String,
    /// `checksum` or `oci`.
    pub scheme: String,
    /// The release halted.
    pub release: String,
    /// The group halted, when a group's own guard halted it (else every
    /// group).
    pub group: Option<String>,
    /// The platform halted, when its nodes alone crossed the threshold
    /// (else every platform).
    pub platform: Option<String>,
    /// The threshold crossed (`max_rolled_back`, `max_lost`, `max_stuck`).
    pub key: String,
    /// The fraction measured…
    pub value: f64,
    /// …over the threshold.
    pub limit: f64,
    /// Nodes counted (rolled back, lost or stuck)…
    pub count: u64,
    /// …out of these (arrived for `max_rolled_back`, else offered).
    pub of: u64,
    /// When, seconds since the Unix epoch.
    pub since: i64,
}

impl Halt {
    /// Stream, basearch and scheme.
    pub fn scope(&self) -> (&str, &str, &str) {
        (&self.stream, &self.basearch, &self.scheme)
    }

    /// Whether it is the same halt as `other` (where and what, not why).
    pub fn same(&self, other: &Halt) -> bool {
        (self.scope(), &self.release, &self.group, &self.platform)
            == (other.scope(), &other.release, &other.group, &other.platform)
    }

    /// Whether it applies to a node of `group` and `platform` (metric
    /// labels) in `scope`.
    pub fn applies(&self, scope: (&str, &str, &str), group: &str, platform: &str) -> bool {
        self.scope() == scope
            && self.group.as_deref().is_none_or(|g| g == group)
            && self.platform.as_deref().is_none_or(|p| p == platform)
    }

    /// The guard that decides it in `policy`: the group's own, or `[guard]`.
    pub fn guard<'p>(&self, policy: &'p Policy) -> Option<&'p Guard> {
        match &self.group {
            Some(group) => policy.groups.get(group)?.guard.as_ref(),
            None => policy.guard.as_ref(),
        }
    }

    /// What it says, for people.
    pub fn describe(&self) -> String {
        let mut at = format!("{}/{}/{}", self.stream, self.basearch, self.scheme);
        if let Some(group) = &self.group {
            at += &format!(" group {group}");
        }
        if let Some(platform) = &self.platform {
            at += &format!(" platform {platform}");
        }
        format!(
            "{}: {} = {:.4} > {} ({} of {} nodes)",
            at, self.key, self.value, self.limit, self.count, self.of
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(offered: u64, arrived: u64, rolled_back: u64, lost: u64, stuck: u64) -> Counts {
        Counts {
            offered,
            arrived,
            rolled_back,
            lost,
            stuck,
            ..Counts::default()
        }
    }

    #[test]
    fn a_release_is_judged_once_enough_nodes_were_offered_it() {
        let guard = Guard::default();
        assert_eq!(guard.crossed(&counts(19, 10, 5, 0, 0)), None);
        let crossing = guard.crossed(&counts(20, 10, 1, 0, 0)).unwrap();
        assert_eq!(
            (crossing.key, crossing.count, crossing.of),
            ("max_rolled_back", 1, 10)
        );
        assert!((crossing.value - 0.1).abs() < 1e-9);
    }

    #[test]
    fn each_threshold_is_its_own_key() {
        let guard = Guard::default();
        assert_eq!(guard.crossed(&counts(100, 90, 1, 0, 0)), None);
        assert_eq!(
            guard.crossed(&counts(100, 90, 2, 0, 0)).unwrap().key,
            "max_rolled_back"
        );
        assert_eq!(
            guard.crossed(&counts(100, 50, 0, 6, 0)).unwrap().key,
            "max_lost"
        );
        assert_eq!(guard.crossed(&counts(100, 50, 0, 5, 0)), None);
        assert_eq!(
            guard.crossed(&counts(100, 50, 0, 0, 31)).unwrap().key,
            "max_stuck"
        );
    }
}
