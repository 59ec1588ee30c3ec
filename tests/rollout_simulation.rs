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

/// A number from the environment, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Min, median and max of `values`.
fn spread(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    match values {
        [] => "none".into(),
        [..] => format!(
            "min {:.4}, median {:.4}, max {:.4} ({} runs)",
            values[0],
            values[values.len() / 2],
            values[values.len() - 1],
            values.len()
        ),
    }
}

/// The figures of `docs/rollout-simulation.md`, at full scale (run it in
/// a release build):
///
/// ```text
/// cargo test --release --test rollout_simulation figures -- --ignored --nocapture
/// ```
///
/// `SIM_NODES` (default 5,000), `SIM_GOOD_RUNS` (20), `SIM_BAD_RUNS` (10),
/// `SIM_ROLLOUT_HOURS` (24) set the scale. Good rollouts are followed to
/// 3 hours past their end, bad ones until they are halted; every step
/// compares the counts with the truth.
#[actix_web::test]
#[ignore = "minutes in a release build: the figures of the docs"]
async fn figures() {
    let nodes: usize = env_or("SIM_NODES", 5_000);
    let good_runs: u64 = env_or("SIM_GOOD_RUNS", 20);
    let bad_runs: u64 = env_or("SIM_BAD_RUNS", 10);
    let hours: i64 = env_or("SIM_ROLLOUT_HOURS", 24);
    let started = std::time::Instant::now();
    let mut errors: Vec<f64> = Vec::new();
    let mut exact_misses = 0u64;
    let mut steps = 0u64;
    let mut polls = 0usize;
    let mut compare = |step: &test_support::fleet::Step, sim: &Simulation| {
        let truth = sim.fleet.truth();
        let counted = step.outcomes();
        let by_definition = fleet::Outcomes {
            lost: truth.lost + sim.fleet.rebooting_past_lost_after(),
            ..truth
        };
        exact_misses += u64::from(counted != by_definition);
        steps += 1;
        polls += step.polls;
        counted.max_difference(&truth).1 as f64 / nodes as f64
    };

    // Good rollouts: halts, and the largest share of lost nodes seen.
    let mut halts = 0;
    let mut most_lost = Vec::new();
    let mut good_error = Vec::new();
    for seed in 0..good_runs {
        let settings = FleetSettings {
            nodes,
            seed: 1_000 + seed,
            ..FleetSettings::default()
        };
        let mut sim = Simulation::start(settings, "[guard]\n", hours as u64 * 60).await;
        let (mut lost, mut error, mut halted) = (0.0f64, 0.0f64, false);
        for _ in 0..(hours + 3) * 60 {
            let step = sim.fleet.step().await;
            error = error.max(compare(&step, &sim));
            let c = step.outcomes();
            if c.offered >= 20 {
                lost = lost.max(c.lost as f64 / c.offered as f64);
            }
            if !step.halts().is_empty() {
                halted = true;
                eprintln!("good run {seed} halted: {}", step.halts()[0]);
                break;
            }
        }
        halts += u64::from(halted);
        eprintln!(
            "good run {seed}: halted {halted}, most lost {lost:.4}, largest error {error:.4} of the fleet, truth {:?}",
            sim.fleet.truth()
        );
        most_lost.push(lost);
        good_error.push(error);
        errors.push(error);
        sim.stack.stop().await;
    }

    // Bad releases: 10% roll back; the share of the fleet offered when
    // halted, and after how long.
    let mut offered_at_halt = Vec::new();
    let mut minutes_to_halt = Vec::new();
    let mut keys = Vec::new();
    for seed in 0..bad_runs {
        let settings = FleetSettings {
            nodes,
            seed: 2_000 + seed,
            profile: Profile {
                rolled_back: 0.10,
                ..Profile::default()
            },
            ..FleetSettings::default()
        };
        let mut sim = Simulation::start(settings, "[guard]\n", hours as u64 * 60).await;
        let mut error = 0.0f64;
        loop {
            let step = sim.fleet.step().await;
            error = error.max(compare(&step, &sim));
            if let Some(halt) = step.halts().first() {
                offered_at_halt.push(sim.fleet.offered() as f64 / nodes as f64);
                minutes_to_halt.push((step.at - START) as f64 / 60.0);
                keys.push(halt["key"].as_str().unwrap_or_default().to_string());
                break;
            }
            assert!(step.at - START < hours * 3600, "never halted");
        }
        eprintln!(
            "bad run {seed}: offered {:.4} of the fleet at the halt ({} min), {:?}, largest error {error:.4}",
            offered_at_halt.last().unwrap(),
            minutes_to_halt.last().unwrap(),
            keys.last().unwrap()
        );
        errors.push(error);
        sim.stack.stop().await;
    }

    eprintln!("FIGURES nodes={nodes} rollout={hours}h");
    eprintln!("good rollouts: {good_runs}, halted: {halts}");
    eprintln!(
        "good rollouts, largest lost/offered: {}",
        spread(&mut most_lost)
    );
    eprintln!(
        "good rollouts, largest count error: {}",
        spread(&mut good_error)
    );
    eprintln!("bad releases: halted by {keys:?}");
    eprintln!(
        "bad releases, fleet offered at the halt: {}",
        spread(&mut offered_at_halt)
    );
    eprintln!(
        "bad releases, minutes to the halt: {}",
        spread(&mut minutes_to_halt)
    );
    eprintln!(
        "all runs, largest count error (of the fleet): {}",
        spread(&mut errors)
    );
    eprintln!("steps whose counts differ from the truth by definition: {exact_misses} of {steps}");
    eprintln!("{polls} polls in {:?}", started.elapsed());
    assert_eq!(halts, 0);
    // A halt comes some 45 minutes after the first offers (a reboot, then
    // a roll-back): before a quarter of the fleet is offered the release
    // only when the rollout lasts several hours.
    if hours >= 12 {
        assert!(offered_at_halt.iter().all(|&f| f < 0.25));
    }
}
