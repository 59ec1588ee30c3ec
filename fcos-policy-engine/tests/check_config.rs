//! The real `fcos-policy-engine` binary accepts the shipped configuration sample and
//! rejects a bad one naming the key, with `--check-config`.

use std::path::Path;
use std::process::Command;
use test_support::run_until_exit;

const BIN: &str = env!("CARGO_BIN_EXE_fcos-policy-engine");

#[test]
fn shipped_sample_is_accepted() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/fcos-policy-engine.toml");
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
fn shipped_policy_sample_is_accepted_and_a_bad_policy_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pe.toml");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/policy.toml");
    std::fs::write(
        &config,
        format!("[policy]\npath = \"{}\"\n", sample.display()),
    )
    .unwrap();
    let check = || {
        Command::new(BIN)
            .arg("--check-config")
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap()
    };
    let output = check();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bad = dir.path().join("policy.toml");
    std::fs::write(&bad, "[groups.g]\nwindows = [ { start = \"02:00\", end = \"06:00\", timezone = \"Europe/Berlni\" } ]\n").unwrap();
    std::fs::write(&config, format!("[policy]\npath = \"{}\"\n", bad.display())).unwrap();
    let output = check();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("policy.toml")
            && stderr.contains("line 2")
            && stderr.contains("groups.g.windows[0].timezone"),
        "{stderr}"
    );
}

#[test]
fn bad_configuration_is_rejected_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    for (text, key) in [
        ("[upstream]\ntimeout_secs = 0\n", "upstream.timeout_secs"),
        ("[upstream]\nwait_secs = 61\n", "upstream.wait_secs"),
        ("[upstream]\nrefresh_secs = 61\n", "upstream.refresh_secs"),
        (
            "[upstream]\nstate_dir = \"/nonexistent/state\"\n",
            "upstream.state_dir",
        ),
        (
            "[service]\norigin_allowlist = [\"https://a.example\", \"https://b.example/\"]\n",
            "service.origin_allowlist[1]",
        ),
        (
            "[service]\norigin_allowlist = [\"*\"]\n",
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

/// `upstream.refresh_secs`, the former name of `upstream.wait_secs`, is
/// still accepted, with a warning naming both keys; the new key alone
/// warns of nothing.
#[test]
fn the_former_name_of_the_poll_wait_is_accepted_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pe.toml");
    let check = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let output = Command::new(BIN)
            .arg("--check-config")
            .arg("-c")
            .arg(&config)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{text}: {stderr}");
        stderr
    };
    let stderr = check("[upstream]\nrefresh_secs = 5\n");
    assert!(
        stderr.contains("WARN")
            && stderr.contains("upstream.refresh_secs is deprecated")
            && stderr.contains("upstream.wait_secs"),
        "{stderr}"
    );
    let stderr = check("[upstream]\nwait_secs = 5\n");
    assert!(!stderr.contains("refresh_secs"), "{stderr}");
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

/// A port another process listens on is refused, naming the address and
/// the keys that set it.
#[test]
fn a_port_in_use_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("taken.toml");
    for (service_port, status_port, keys) in [
        (port, 0, "service.address/service.port"),
        (0, port, "status.address/status.port"),
    ] {
        std::fs::write(
            &config,
            format!("[service]\naddress = \"127.0.0.1\"\nport = {service_port}\n[status]\naddress = \"127.0.0.1\"\nport = {status_port}\n"),
        )
        .unwrap();
        let (status, stderr) = run_until_exit(Command::new(BIN).arg("-c").arg(&config));
        assert!(!status.success());
        assert!(
            stderr.contains(&format!("cannot listen on 127.0.0.1:{port} ({keys})")),
            "{stderr}"
        );
        assert!(stderr.contains("in use"), "{stderr}");
    }
}
