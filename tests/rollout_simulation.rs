//! End to end: rollout safety on a simulated fleet. A fleet of Zincati
//! nodes (`test_support::fleet`) polls a real policy-engine, reading a real
//! graph-builder, while a release rolls out; the policy-engine's clock is
//! the fleet's, moved a minute at a time. What `/v1/rollouts` counts is
//! compared with what the nodes truly did, and the guards of the policy
//! file are checked to halt a bad release early and to leave good ones
//! alone.
//!
//! The figures of `docs/rollout-simulation.md` come from the ignored
//! `figures` test at full scale (see there for the command).

mod support;

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use test_support::fleet::{self, Fleet, FleetSettings, Profile};

/// When the rollouts start: Friday 2027-01-15 08:00 UTC.
const START: i64 = 1_800_000_000 - 3000;

/// A policy-engine with the policy `policy`, reading a graph-builder that
/// serves the fleet's two releases, the newest rolling out from `START`
/// over `duration_minutes`; and the fleet polling it.
struct Simulation {
    stack: Stack,
    fleet: Fleet,
    _upstream: Upstream,
    _dir: tempfile::TempDir,
}

impl Simulation {
    async fn start(settings: FleetSettings, policy: &str, duration_minutes: u64) -> Simulation {
        let upstream = Upstream::start();
        let (releases, updates) = fleet::documents(START, duration_minutes);
        upstream.set("/stable/releases.json", Canned::Body(releases.into_bytes()));
        upstream.set("/stable/updates.json", Canned::Body(updates.into_bytes()));
        let dir = tempfile::tempdir().unwrap();
        let policy_path = dir.path().join("policy.toml");
        std::fs::write(&policy_path, policy).unwrap();
        let graph_builder =
            fcos_graph_builder::start(graph_builder_settings(&upstream, "stable = [\"x86_64\"]"))
                .unwrap();
        let mut settings_pe = policy_engine_settings_with(
            &format!("http://{}/v1/graph", graph_builder.service_addr),
            &format!("[policy]\npath = \"{}\"\n", policy_path.display()),
        );
        // Evaluations follow each other closely in real time: the fleet
        // waits for one at each virtual step.
        settings_pe.rollouts.interval = Duration::from_millis(5);
        let clock = Arc::new(AtomicI64::new(START));
        let read = Arc::clone(&clock);
        let policy_engine = fcos_policy_engine::start_with_clock(
            settings_pe,
            Arc::new(move || read.load(std::sync::atomic::Ordering::SeqCst)),
        )
        .unwrap();
        let stack = Stack {
            graph_builder,
            policy_engine,
        };
        stack.wait_ready().await;
        let fleet = Fleet::new(
            settings,
            stack.policy_engine.service_addr,
            stack.policy_engine.status_addr,
            clock,
            START,
        );
        Simulation {
            stack,
            fleet,
            _upstream: upstream,
            _dir: dir,
        }
    }
}

/// Nodes of the fleets of these tests.
const NODES: usize = 1_000;

/// The value of the first sample of `name` whose labels include every
/// one of `labels` (`key="value"`), from the policy-engine's metrics.
async fn sample(stack: &Stack, name: &str, labels: &[&str]) -> Option<f64> {
    let (_, text) = get(&format!(
        "http://{}/metrics",
        stack.policy_engine.status_addr
    ))
    .await;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A release that 10% of the nodes roll back from, rolling out over a
/// day, is halted by the default guard on `max_rolled_back` before a
/// quarter of the fleet was offered it; from then on, no node that is not
/// on it is offered it.
#[actix_web::test]
async fn a_release_that_rolls_back_is_halted_before_a_quarter_of_the_fleet_is_offered_it() {
    let settings = FleetSettings {
        nodes: NODES,
        seed: 11,
        profile: Profile {
            rolled_back: 0.10,
            ..Profile::default()
        },
        ..FleetSettings::default()
    };
    let mut sim = Simulation::start(settings, "[guard]\n", 24 * 60).await;
    let halted = loop {
        let step = sim.fleet.step().await;
        let offered = sim.fleet.offered();
        assert!(
            offered * 4 < NODES,
            "{offered} of {NODES} nodes were offered the release, not halted: {}",
            step.rollouts
        );
        if !step.halts().is_empty() {
            break step;
        }
    };
    let halt = halted.halts()[0].clone();
    assert_eq!(halt["key"], "max_rolled_back", "{halt}");
    assert_eq!(
        (&halt["group"], &halt["platform"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
    let counts = halted.outcomes();
    assert!(counts.rolled_back > 0 && counts.offered >= 20, "{counts:?}");
    assert_eq!(
        halted.release().unwrap()["halted"][0]["key"],
        "max_rolled_back"
    );
    let gauge = sample(
        &sim.stack,
        "fcos_cincinnati_pe_rollout_halted",
        &[&format!("release=\"{}\"", fleet::NEW), "scheme=\"oci\""],
    )
    .await;
    assert_eq!(gauge, Some(1.0));
    let offered_at_halt = sim.fleet.offered();

    // Half an hour on: the nodes on the old release still poll, and none
    // is offered the new one.
    let mut polls = 0;
    for _ in 0..30 {
        let step = sim.fleet.step().await;
        assert_eq!(step.offers, 0, "offered after the halt at {}", step.at);
        polls += step.polls;
    }
    assert!(polls > NODES * 5, "{polls} polls");
    assert_eq!(sim.fleet.offered(), offered_at_halt);
    let withheld = sample(
        &sim.stack,
        "fcos_cincinnati_pe_policy_withheld_total",
        &["reason=\"halted\""],
    )
    .await;
    assert!(withheld.unwrap_or_default() > 0.0, "{withheld:?}");
    // A node on the old release is told why.
    let explain = get_json(&format!(
        "http://{}/v1/explain?basearch=x86_64&stream=stable&oci=true&os_version={}&node_uuid={}&rollout_wariness=0&group=default&platform=metal",
        sim.stack.policy_engine.status_addr,
        fleet::OLD,
        "0".repeat(32),
    ))
    .await;
    let edge = &explain["edges"][0];
    assert_eq!(
        (&edge["to"], &edge["reason"]),
        (&fleet::NEW.into(), &"halted".into()),
        "{explain}"
    );
    sim.stack.stop().await;
}

async fn get_json(url: &str) -> serde_json::Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Good rollouts over an hour, realistic reboot times (nodes are silent
/// from the offer to the reboot, 6% of them for over an hour), 1% of the
/// nodes silent for good after the offer: the default guard never halts,
/// from the first offers to the last arrival.
#[actix_web::test]
async fn good_rollouts_are_not_halted() {
    let settings = FleetSettings {
        nodes: NODES,
        seed: 12,
        ..FleetSettings::default()
    };
    let mut sim = Simulation::start(settings, "[guard]\n", 60).await;
    let mut most_lost = 0.0f64;
    for _ in 0..150 {
        let step = sim.fleet.step().await;
        assert!(step.halts().is_empty(), "halted: {}", step.rollouts);
        let counts = step.outcomes();
        if counts.offered >= 20 {
            most_lost = most_lost.max(counts.lost as f64 / counts.offered as f64);
        }
    }
    let truth = sim.fleet.truth();
    // Every node was offered it, and the guard judged nodes lost.
    assert_eq!(truth.offered, NODES as u64, "{truth:?}");
    assert!(most_lost > 0.0 && truth.lost > 0, "{most_lost} {truth:?}");
    eprintln!("most lost: {most_lost}");
    sim.stack.stop().await;
}

/// A release that nodes roll back from, go silent after and never reach,
/// rolling out over 8 hours, under guards that never halt (and a
/// `stuck_after` of 75 minutes): at every step, each of the five outcomes
/// `/v1/rollouts` counts is within 1% of the fleet of the nodes' true
/// outcome. The one difference is of definition: a node still rebooting
/// more than `lost_after` after its offer is counted lost until it
/// arrives; with those, the counts are exact.
#[actix_web::test]
async fn outcome_counts_match_what_the_nodes_did() {
    let settings = FleetSettings {
        nodes: NODES,
        seed: 13,
        profile: Profile {
            rolled_back: 0.08,
            silent: 0.06,
            never_arrive: 0.08,
        },
        stuck_after: 75 * 60,
        lost_after: 3600,
        ..FleetSettings::default()
    };
    let policy =
        "[guard]\nmax_rolled_back = 1.0\nmax_lost = 1.0\nmax_stuck = 1.0\nstuck_after = \"75m\"\n";
    let mut sim = Simulation::start(settings, policy, 8 * 60).await;
    let mut largest = ("offered", 0);
    let mut rebooting = 0;
    for _ in 0..130 {
        let step = sim.fleet.step().await;
        let truth = sim.fleet.truth();
        let counted = step.outcomes();
        let difference = counted.max_difference(&truth);
        assert!(
            difference.1 * 100 <= NODES as u64,
            "at {}: counted {counted:?}, truly {truth:?}",
            step.at
        );
        if difference.1 > largest.1 {
            largest = difference;
        }
        let past = sim.fleet.rebooting_past_lost_after();
        rebooting = rebooting.max(past);
        let by_definition = fleet::Outcomes {
            lost: truth.lost + past,
            ..truth
        };
        assert_eq!(counted, by_definition, "at {}", step.at);
    }
    let truth = sim.fleet.truth();
    // Each outcome happened, and nodes rebooting past lost_after too.
    for (name, count) in truth.named() {
        assert!(count >= 5, "{name}: {truth:?}");
    }
    assert!(rebooting > 0);
    eprintln!("largest difference {largest:?}; {truth:?}");
    sim.stack.stop().await;
}
