//! End to end with the real `fcos-cincinnati` binary: `serve` with a
//! configuration file against a real upstream, shutdown on SIGTERM, and the
//! `graph` previewer.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_fcos-cincinnati");

#[actix_web::test]
async fn serve_runs_both_services_and_stops_on_sigterm() {
    let upstream = Upstream::start();
    upstream.serve_fixture("stable");
    // Port 0 everywhere: the binary binds free ports itself and logs them.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "[graph-builder.service]\naddress = \"127.0.0.1\"\nport = 0\n[graph-builder.status]\naddress = \"127.0.0.1\"\nport = 0\n[graph-builder.upstream]\n{}refresh_secs = 1\n[graph-builder.streams]\nstable = [\"x86_64\"]\n[policy-engine.service]\naddress = \"127.0.0.1\"\nport = 0\n[policy-engine.status]\naddress = \"127.0.0.1\"\nport = 0\n",
            upstream.upstream_toml(),
        ),
    )
    .unwrap();
    let mut process = Process::spawn(
        Command::new(BIN)
            .args(["-v", "serve", "-c"])
            .arg(config.path()),
    );
    let gb = process.line_with("graph-builder listening").await;
    let pe = process.line_with("policy-engine listening").await;
    let gb_status = logged_addr(&gb, "status_addr");
    let (pe_service, pe_status) = (
        logged_addr(&pe, "service_addr"),
        logged_addr(&pe, "status_addr"),
    );
    wait_for_status(&format!("http://{gb_status}/readyz"), 200).await;
    let pe = format!("http://{pe_service}/v1/graph?basearch=x86_64&stream=stable&oci=true");
    wait_for_status(&pe, 200).await;
    let graph = get_graph(&pe).await;
    assert_eq!(versions(&graph), ["31.1.0", "31.2.0", "32.1.0", "32.2.0"]);
    let (status, metrics) = get(&format!("http://{pe_status}/metrics")).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("process_start_time_seconds"));

    let status = Command::new("kill")
        .args(["-TERM", &process.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = process.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit within 15 s of SIGTERM");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    process.line_with("stopped").await;
}

#[test]
fn serve_rejects_a_bad_configuration_naming_the_key() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[graph-builder.upstream]\nrefresh = 3\n").unwrap();
    let output = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(config.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown field `refresh`"), "{stderr}");
    assert!(
        stderr.contains(&config.path().display().to_string()),
        "{stderr}"
    );
}

fn graph_command(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("graph")
        .arg("--releases")
        .arg(fixture("stable", "releases.json"))
        .arg("--updates")
        .arg(fixture("stable", "updates.json"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn graph_previews_what_the_services_serve() {
    let output = graph_command(&["--basearch", "x86_64", "--oci"]);
    assert!(output.status.success());
    let graph: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(versions(&graph), ["31.1.0", "31.2.0", "32.1.0", "32.2.0"]);
    assert_eq!(
        edges(&graph),
        pairs(&[
            ("31.2.0", "32.1.0"),
            ("31.2.0", "32.2.0"),
            ("32.1.0", "32.2.0")
        ])
    );

    // A client view at a pinned time: wariness 0.7 is past the rollout's 0.6.
    let at = MIDWAY.to_string();
    let careful = graph_command(&[
        "--basearch",
        "x86_64",
        "--rollout-wariness",
        "0.7",
        "--at",
        &at,
    ]);
    let graph: serde_json::Value = serde_json::from_slice(&careful.stdout).unwrap();
    assert_eq!(
        edges(&graph),
        pairs(&[("30.1.0", "30.2.0"), ("30.2.0", "31.2.0")])
    );
    let eager = graph_command(&[
        "--basearch",
        "x86_64",
        "--node-uuid",
        "00000000000000000000000000000000",
        "--at",
        &at,
    ]);
    let graph: serde_json::Value = serde_json::from_slice(&eager.stdout).unwrap();
    assert!(edges(&graph).contains(&("31.2.0".to_string(), "32.2.0".to_string())));

    let dot = graph_command(&["--basearch", "x86_64", "--format", "dot", "--at", &at]);
    let dot = String::from_utf8(dot.stdout).unwrap();
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(
        dot.contains("rollout 60.0%") && dot.contains("dead-end"),
        "{dot}"
    );
}

#[test]
fn graph_names_the_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("updates.json");
    let text = std::fs::read_to_string(fixture("stable", "updates.json")).unwrap();
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let output = Command::new(BIN)
        .arg("graph")
        .arg("--releases")
        .arg(fixture("stable", "releases.json"))
        .arg("--updates")
        .arg(&truncated)
        .args(["--basearch", "x86_64"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&truncated.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("EOF while parsing"), "{stderr}");

    let missing = graph_command(&["--basearch", "x86_64", "--releases-typo"]);
    assert!(!missing.status.success());
}
