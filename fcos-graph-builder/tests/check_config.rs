//! The real `fcos-graph-builder` binary accepts the shipped configuration sample and
//! rejects a bad one naming the key, with `--check-config`.

use std::path::Path;
use std::process::Command;
use test_support::run_until_exit;

const BIN: &str = env!("CARGO_BIN_EXE_fcos-graph-builder");

#[test]
fn shipped_sample_is_accepted() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/fcos-graph-builder.toml");
    let output = Command::new(BIN)
        .arg("--check-config")
        .arg("-c")
        .arg(&sample)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "configuration OK"
    );
}

#[test]
fn bad_configuration_is_rejected_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    for (text, key) in [
        ("[upstream]\nrefresh_secs = 0\n", "upstream.refresh_secs"),
        (
            "[service]\norigin_allowlist = [\"not an origin\"]\n",
            "service.origin_allowlist[0]",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let output = Command::new(BIN)
            .arg("--check-config")
            .arg("-c")
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{key}: {stderr}");
    }
}

/// A configuration the service cannot start with never leaves a process
/// half alive: it exits non-zero at once, naming the key.
#[test]
fn a_service_that_cannot_start_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[service]\naddress = \"127.0.0.1\"\nport = 0\norigin_allowlist = [\"https://ok.example\", \"https://bad.example/path\"]\n[status]\naddress = \"127.0.0.1\"\nport = 0\n",
    )
    .unwrap();
    let (status, stderr) = run_until_exit(Command::new(BIN).arg("-c").arg(&bad));
    assert!(!status.success());
    assert!(stderr.contains("service.origin_allowlist[1]"), "{stderr}");
}

/// A service port another process listens on is refused (each worker has
/// its own socket on the port, but no other process joins them).
#[test]
fn a_port_in_use_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("taken.toml");
    std::fs::write(
        &config,
        format!("[service]\naddress = \"127.0.0.1\"\nport = {port}\n[status]\naddress = \"127.0.0.1\"\nport = 0\n"),
    )
    .unwrap();
    let (status, stderr) = run_until_exit(Command::new(BIN).arg("-c").arg(&config));
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "cannot listen on 127.0.0.1:{port} (service.address/service.port)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("in use"), "{stderr}");
}
