//! The JSON form of the outcomes, `/v1/rollouts`: rendered by the
//! policy-engine from its [`Summary`](super::Summary), read and checked by
//! the graph-builder for the viewer. One type for both sides, so that the
//! two cannot drift apart.

use super::{ReleaseOutcomes, Summary};
use crate::fleet_policy::{rfc3339, Halt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `/v1/rollouts` document.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Document {
    /// When the policy-engine evaluated it (RFC 3339); absent before its
    /// first evaluation.
    #[serde(default)]
    pub at: Option<String>,
    /// Nodes tracked.
    #[serde(default)]
    pub tracked_nodes: Option<u64>,
    /// Nodes tracked at most.
    #[serde(default)]
    pub max_nodes: Option<u64>,
    /// Nodes forgotten early because the tracker was full.
    #[serde(default)]
    pub evicted: Option<u64>,
    /// The outcomes of each release offered.
    pub releases: Vec<Release>,
    /// The halts in force.
    pub halts: Vec<Halt>,
}

/// The outcomes of one release in one scope.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Release {
    /// Stream.
    pub stream: String,
    /// Architecture.
    pub basearch: String,
    /// `checksum` or `oci`.
    pub scheme: String,
    /// The release.
    pub release: String,
    /// Its outcomes, every node together.
    #[serde(flatten)]
    pub counts: Counts,
    /// When it was last offered (RFC 3339).
    #[serde(default)]
    pub last_offered: Option<String>,
    /// Outcomes by group (metric labels: a group of the policy, `other`).
    #[serde(default)]
    pub by_group: BTreeMap<String, Counts>,
    /// Outcomes by platform.
    #[serde(default)]
    pub by_platform: BTreeMap<String, Counts>,
    /// Its halts.
    #[serde(default)]
    pub halted: Vec<Halt>,
}

/// Distinct nodes by outcome.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Counts {
    /// Offered the release.
    pub offered: u64,
    /// Then polled from it.
    pub arrived: u64,
    /// Still on an older release long after the offer.
    pub stuck: u64,
    /// Polled from it, then from an older release.
    pub rolled_back: u64,
    /// Silent since the offer.
    pub lost: u64,
    /// Time from the offer to the arrival.
    pub arrival_seconds: Arrival,
}

/// Quantiles of the arrival times, seconds (`null` without arrivals).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Arrival {
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
}

impl Document {
    /// The document of `summary`, evaluated at `now` with `halts` in
    /// force, of a tracker of at most `max_nodes` nodes.
    pub fn of(summary: &Summary, now: i64, max_nodes: u64, halts: &[Halt]) -> Document {
        Document {
            at: rfc3339(now),
            tracked_nodes: Some(summary.tracked_nodes as u64),
            max_nodes: Some(max_nodes),
            evicted: Some(summary.evicted),
            releases: summary
                .releases
                .iter()
                .map(|r| Release::of(r, halts))
                .collect(),
            halts: halts.to_vec(),
        }
    }
}

impl Release {
    /// The outcomes of `r`, with the halts of `halts` that are its own.
    pub fn of(r: &ReleaseOutcomes, halts: &[Halt]) -> Release {
        let scope = (r.stream.as_str(), r.basearch.as_str(), r.scheme.as_str());
        let named = |list: &[(String, super::Counts)]| {
            list.iter()
                .map(|(name, c)| (name.clone(), Counts::of(c)))
                .collect()
        };
        Release {
            stream: r.stream.clone(),
            basearch: r.basearch.clone(),
            scheme: r.scheme.clone(),
            release: r.release.clone(),
            counts: Counts::of(&r.total),
            last_offered: rfc3339(r.last_offered),
            by_group: named(&r.by_group),
            by_platform: named(&r.by_platform),
            halted: halts
                .iter()
                .filter(|h| h.scope() == scope && h.release == r.release)
                .cloned()
                .collect(),
        }
    }
}

impl Counts {
    /// The counts of `c`, its arrival times as their median and 90th
    /// percentile.
    pub fn of(c: &super::Counts) -> Counts {
        Counts {
            offered: c.offered,
            arrived: c.arrived,
            stuck: c.stuck,
            rolled_back: c.rolled_back,
            lost: c.lost,
            arrival_seconds: Arrival {
                p50: c.arrival.quantile(0.5),
                p90: c.arrival.quantile(0.9),
            },
        }
    }
}
