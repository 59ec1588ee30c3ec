//! The real `fcos-policy-engine` binary accepts the shipped configuration sample and
//! rejects a bad one naming the key, with `--check-config`.

use std::path::Path;
use std::process::Command;

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
fn bad_configuration_is_rejected_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[upstream]\ntimeout_secs = 0\n").unwrap();
    let output = Command::new(BIN)
        .arg("--check-config")
        .arg("-c")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("upstream.timeout_secs"), "{stderr}");
}
