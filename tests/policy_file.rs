//! End to end, with the real binary: the fleet policy file is read safely
//! (regular files only, bounded, off the serving threads), a refused file
//! says why and keeps the last good policy, `/v1/policy` is rendered once
//! per load, and what a policy leaves behind (metric series, warnings) is
//! bounded.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

/// `fcos-cincinnati serve` on loopback with a policy file, reading a
/// local upstream.
struct Served {
    process: Process,
    /// The policy-engine's ports.
    pe: SocketAddr,
    pe_status: SocketAddr,
    /// The graph-builder's ports.
    gb: SocketAddr,
    policy: PathBuf,
    upstream: Upstream,
    _dir: tempfile::TempDir,
}

impl Served {
    async fn start(policy_text: &str) -> Served {
        let upstream = Upstream::start();
        upstream.serve_fixture("stable");
        let started = serve_with_policy(
            &upstream,
            "stable = [\"x86_64\"]",
            policy_text,
            "[policy-engine.upstream]\nwait_secs = 1\n",
        )
        .await;
        let served = Served {
            pe: started.pe,
            pe_status: started.pe_status,
            gb: started.gb,
            process: started.process,
            policy: started.policy,
            upstream,
            _dir: started.dir,
        };
        wait_for_status(&served.graph("g"), 200).await;
        served
    }

    /// The graph a node of `group` on 31.2.0 gets.
    fn graph(&self, group: &str) -> String {
        format!(
            "http://{}/v1/graph?basearch=x86_64&stream=stable&os_version=31.2.0&group={group}&rollout_wariness=0.1",
            self.pe
        )
    }

    async fn edges(&self, group: &str) -> Vec<(String, String)> {
        edges(&get_graph(&self.graph(group)).await)
    }

    /// Waits until the policy-engine has refused `n` files, checking the
    /// process's memory meanwhile; returns the log line saying why.
    async fn wait_refused(&mut self, n: f64, why: &str) -> String {
        let series = r#"fcos_cincinnati_pe_policy_reloads_total{result="failure"}"#;
        let deadline = Instant::now() + Duration::from_secs(15);
        while metric(self.pe_status, series).await != Some(n) {
            let rss = self.process.memory("VmRSS");
            assert!(rss < 300 << 20, "{rss} bytes resident");
            assert!(Instant::now() < deadline, "never refused: {why}");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        let line = self.process.line_with(why).await;
        assert!(
            line.contains(&self.policy.display().to_string()) && line.contains("refused"),
            "{line}"
        );
        line
    }

    /// Puts `make` at the policy file's place.
    fn replace(&self, make: impl FnOnce(&Path)) {
        let _ = std::fs::remove_file(&self.policy);
        make(&self.policy);
    }
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(made.unwrap().success());
}

#[actix_web::test]
async fn a_fifo_is_refused_and_the_replica_still_follows() {
    let mut served = Served::start("[groups.g]\npaused = true\n").await;
    served.replace(mkfifo);
    served
        .wait_refused(1.0, "it is a FIFO, not a regular file")
        .await;
    // The replica still follows the graph-builder.
    let (releases, updates) = fixture_with_new_release("stable");
    served
        .upstream
        .set("/stable/releases.json", Canned::Body(releases));
    served
        .upstream
        .set("/stable/updates.json", Canned::Body(updates));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = get(&format!(
            "http://{}/v1/graph?basearch=x86_64&stream=stable",
            served.pe
        ))
        .await;
        if body.contains("33.1.0") {
            break;
        }
        assert!(Instant::now() < deadline, "the replica stopped following");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // The last good policy stays.
    assert!(served.edges("g").await.is_empty());
    let (status, _) = get(&format!("http://{}/readyz", served.pe_status)).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn a_link_to_dev_zero_is_refused_in_bounded_memory_and_sigterm_stops_it() {
    let mut served = Served::start("[groups.g]\npaused = true\n").await;
    served.replace(|path| std::os::unix::fs::symlink("/dev/zero", path).unwrap());
    served
        .wait_refused(1.0, "it is a character device, not a regular file")
        .await;
    assert!(served.edges("g").await.is_empty());
    let pid = served.process.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while served.process.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "SIGTERM did not stop it");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_missing_or_odd_file_says_why_and_the_last_good_policy_stays() {
    let mut served = Served::start("[groups.g]\npaused = true\n").await;
    served.replace(|_| ());
    served
        .wait_refused(1.0, "No such file or directory (os error 2)")
        .await;
    assert!(served.edges("g").await.is_empty());
    served.replace(|path| std::fs::create_dir(path).unwrap());
    served.wait_refused(2.0, "it is a directory").await;
    std::fs::remove_dir(&served.policy).unwrap();
    std::fs::write(&served.policy, vec![b'#'; (4 << 20) + 1]).unwrap();
    served
        .wait_refused(3.0, "larger than the limit of 4194304 bytes")
        .await;
    assert!(served.edges("g").await.is_empty());
    assert_eq!(
        metric(served.pe_status, "fcos_cincinnati_pe_policy_file_rejected").await,
        Some(1.0)
    );
    // A link to a regular file, as a ConfigMap mounts it, is read.
    let target = served.policy.with_file_name("target.toml");
    std::fs::write(&target, "[groups.h]\npaused = true\n").unwrap();
    served.replace(|path| std::os::unix::fs::symlink(&target, path).unwrap());
    let reloads = r#"fcos_cincinnati_pe_policy_reloads_total{result="success"}"#;
    wait_metric(served.pe_status, reloads, |v| v == 1.0).await;
    assert!(!served.edges("g").await.is_empty());
}

#[actix_web::test]
async fn withheld_series_of_removed_groups_go_and_warnings_are_summarised() {
    let mut served = Served::start("[groups.a]\npaused = true\n[groups.b]\n").await;
    let series =
        |group: &str| format!("fcos_cincinnati_pe_policy_withheld_total{{group=\"{group}\"");
    let metrics =
        |status: SocketAddr| async move { get(&format!("http://{status}/metrics")).await.1 };
    assert!(metrics(served.pe_status).await.contains(&series("a")));
    // One group goes, one comes; its rules name 1,000 versions not served.
    let versions: Vec<String> = (0..1000).map(|i| format!("\"99.{i}\"")).collect();
    std::fs::write(
        &served.policy,
        format!("[groups.b]\n[groups.c]\ndeny = [{}]\n", versions.join(",")),
    )
    .unwrap();
    let reloads = r#"fcos_cincinnati_pe_policy_reloads_total{result="success"}"#;
    wait_metric(served.pe_status, reloads, |v| v == 1.0).await;
    let text = metrics(served.pe_status).await;
    assert!(!text.contains(&series("a")), "{text}");
    assert!(text.contains(&series("b")) && text.contains(&series("c")));
    // The policy-engine's line (the graph-builder's has no `fleet`),
    // logged after the warnings.
    served.process.line_with("fleet=false").await;
    let log = served.process.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("graphs being served"))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("1000 rules"), "{warned:?}");
}

/// A policy of 10,000 groups, each with a window that opens in 20 hours
/// (so that none changes during the test).
fn ten_thousand_groups() -> String {
    let now = commons::unix_now();
    let hh_mm = |t: i64| {
        format!(
            "{:02}:{:02}",
            t.rem_euclid(86400) / 3600,
            t.rem_euclid(3600) / 60
        )
    };
    let (start, end) = (hh_mm(now + 20 * 3600), hh_mm(now + 21 * 3600));
    (0..10_000)
        .map(|i| {
            format!(
                "[groups.group-{i}]\nwariness_min = 0.{}\nwindows = [ {{ start = \"{start}\", end = \"{end}\", timezone = \"UTC\" }} ]\n",
                i % 10
            )
        })
        .collect()
}

#[actix_web::test]
async fn ten_thousand_groups_are_rendered_once_and_readyz_answers_meanwhile() {
    let served = Served::start(&ten_thousand_groups()).await;
    let pe_renders = "fcos_cincinnati_pe_policy_renders_total";
    let gb_status = {
        // The graph-builder's status address, from its log line.
        let line = served.process.log();
        let line = line
            .lines()
            .find(|l| l.contains("graph-builder listening"))
            .unwrap()
            .to_string();
        logged_addr(&line, "status_addr")
    };
    let gb_renders = "fcos_cincinnati_gb_policy_renders_total";
    wait_for_status(&format!("http://{}/readyz", served.pe_status), 200).await;
    // Rendered at the load, and again as the versions served become known
    // (for the warnings): before the replica has any, then once it does.
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    let before = (
        metric(served.pe_status, pe_renders).await,
        metric(gb_status, gb_renders).await,
    );

    let pe_policy = format!("http://{}/v1/policy", served.pe_status);
    let gb_policy = format!("http://{}/v1/policy", served.gb);
    for url in [&pe_policy, &gb_policy] {
        let body: serde_json::Value = serde_json::from_str(&get(url).await.1).unwrap();
        assert_eq!(body["policy"]["groups"].as_object().unwrap().len(), 10_000);
        assert_eq!(body["policy"]["groups"]["group-7"]["closed"], "window");
    }
    let hammering: Vec<_> = (0..8)
        .map(|i| {
            let url = if i % 2 == 0 {
                pe_policy.clone()
            } else {
                gb_policy.clone()
            };
            actix_web::rt::spawn(async move {
                // Not parsed here: this runtime also runs the probe.
                for _ in 0..5 {
                    let (status, body) = get(&url).await;
                    assert_eq!(status, 200);
                    assert!(body.contains("\"group-9999\":{"));
                }
            })
        })
        .collect();
    // The probe's timeout is a second.
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    for _ in 0..10 {
        let response = probe
            .get(format!("http://{}/readyz", served.pe_status))
            .send()
            .await
            .expect("/readyz answers within its probe timeout");
        assert_eq!(response.status(), 200);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    for task in hammering {
        task.await.unwrap();
    }
    let after = (
        metric(served.pe_status, pe_renders).await,
        metric(gb_status, gb_renders).await,
    );
    assert_eq!(after, before, "40 requests rendered nothing");
    let (pe, gb) = (before.0.unwrap(), before.1.unwrap());
    assert!(pe <= 3.0 && gb == 1.0, "{before:?}");
}
