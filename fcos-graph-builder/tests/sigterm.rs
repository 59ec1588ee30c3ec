//! The real `fcos-graph-builder` binary, idle with a policy-engine-like
//! client's keep-alive connection open, stops on SIGTERM at once: it logs
//! its shutdown and exits 0 before that connection's keep-alive would have
//! closed it (the idle connection does not hold the stop).

use std::process::Command;
use std::time::{Duration, Instant};
use test_support::{logged_addr, Process};

const BIN: &str = env!("CARGO_BIN_EXE_fcos-graph-builder");

#[tokio::test]
async fn an_idle_graph_builder_stops_on_sigterm_without_waiting_for_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stable-releases.json"),
        r#"{"stream": "stable", "releases": [
            {"version": "1.0", "commits": [{"architecture": "x86_64", "checksum": "a"}]},
            {"version": "2.0", "commits": [{"architecture": "x86_64", "checksum": "b"}]}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("stable-updates.json"),
        r#"{"stream": "stable", "releases": [{"version": "2.0", "metadata": {"barrier": {}}}]}"#,
    )
    .unwrap();
    let config = dir.path().join("fcos-graph-builder.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\naddress = \"127.0.0.1\"\nport = 0\n[status]\naddress = \"127.0.0.1\"\nport = 0\n[upstream]\nrelease_index_url = \"file://{0}/${{stream}}-releases.json\"\nupdates_url = \"file://{0}/${{stream}}-updates.json\"\nrefresh_secs = 1\n[streams]\nstable = [\"x86_64\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Process::spawn(Command::new(BIN).arg("-v").arg("-c").arg(&config));
    let listening = child.line_with("graph-builder listening").await;
    let service = logged_addr(&listening, "service_addr");
    let status = logged_addr(&listening, "status_addr");

    // A client like the policy-engine's: one pooled connection, kept alive.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !client
        .get(format!("http://{status}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "never ready:\n{}", child.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let scopes = client
        .get(format!("http://{service}/v1/scopes"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(scopes.status(), 200);
    let etag = scopes.headers()["etag"].to_str().unwrap().to_string();
    scopes.bytes().await.unwrap();
    // A poll held by the graph-builder, answered 304 when nothing changed.
    let held = client
        .get(format!("http://{service}/v1/scopes?wait=1"))
        .header("Accept", "application/json")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 304);
    let graph = client
        .get(format!(
            "http://{service}/v1/graph?basearch=x86_64&stream=stable"
        ))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(graph.status(), 200);
    graph.bytes().await.unwrap();
    // The connection is idle from here, and kept alive for KEEP_ALIVE.
    let idle_since = Instant::now();

    let kill = Command::new("kill")
        .args(["-TERM", &child.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 15 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Had the stop waited for the idle connection, the process would have
    // outlived its keep-alive.
    assert!(
        idle_since.elapsed() < service_kit::server::KEEP_ALIVE,
        "exited {:?} after the connection went idle: the idle connection held the stop",
        idle_since.elapsed()
    );
    assert!(exit.success(), "{exit:?}");
    child
        .line_with("stopping: finishing the requests in flight")
        .await;
    child.line_with("stopped").await;
    drop(client);
}
