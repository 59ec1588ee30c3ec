//! The real `fcos-policy-engine` binary reads the windows of its policy
//! with the system's time zone database when there is one, else with the
//! copy built in, and says at start which.

use std::path::Path;
use std::process::Command;
use test_support::Process;

const BIN: &str = env!("CARGO_BIN_EXE_fcos-policy-engine");

/// Starts the binary with a policy whose window is in Europe/Berlin,
/// `TZDIR` set to `tzdir` (or unset), and returns its log line naming the
/// time zone database, once it listens.
async fn time_zone_line(tzdir: Option<&Path>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[groups.g]\nwindows = [ { start = \"02:00\", end = \"06:00\", timezone = \"Europe/Berlin\" } ]\n",
    )
    .unwrap();
    let config = dir.path().join("pe.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\naddress = \"127.0.0.1\"\nport = 0\n[status]\naddress = \"127.0.0.1\"\nport = 0\n[upstream]\ngraph_url = \"http://127.0.0.1:9/v1/graph\"\n[policy]\npath = \"{}\"\n",
            policy.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(BIN);
    command
        .arg("-v")
        .arg("-c")
        .arg(&config)
        .env_remove("RUST_LOG");
    match tzdir {
        Some(tzdir) => command.env("TZDIR", tzdir),
        None => command.env_remove("TZDIR"),
    };
    let mut process = Process::spawn(&mut command);
    // The policy loaded, with its Berlin window, before the servers listen.
    process.line_with("policy-engine listening").await;
    process
        .line_with("time zones of the policy's windows")
        .await
}

#[actix_web::test]
async fn without_a_system_database_the_copy_built_in_is_used_and_said() {
    let empty = tempfile::tempdir().unwrap();
    let line = time_zone_line(Some(empty.path())).await;
    assert!(
        line.contains("the copy built in")
            && line.contains(&format!(
                "no time zone database at {}",
                empty.path().display()
            )),
        "{line}"
    );
}

#[actix_web::test]
async fn the_system_database_is_used_when_present_and_said() {
    let system = Path::new(commons::fleet_policy::time_zones::SYSTEM_DIR);
    if !system.join("Europe/Berlin").is_file() {
        // No system database here: the test above covers the fallback.
        return;
    }
    let line = time_zone_line(None).await;
    assert!(line.contains("the system's, /usr/share/zoneinfo"), "{line}");
}
