//! Records the git commit being built as `FCOS_CINCINNATI_REVISION`, for
//! the `fcos_cincinnati_build_info` metric.
//!
//! In order: the `FCOS_CINCINNATI_REVISION` environment variable when set
//! (a container build, whose context has no `.git`, passes it); `git
//! rev-parse HEAD` when the workspace is the top of a git checkout; else
//! `unknown` (a source tarball, no `git`, or a tree unpacked inside some
//! other repository, whose history is not this project's).

use std::path::{Path, PathBuf};
use std::process::Command;

const VARIABLE: &str = "FCOS_CINCINNATI_REVISION";

fn main() {
    println!("cargo:rerun-if-env-changed={VARIABLE}");
    let revision = std::env::var(VARIABLE)
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env={VARIABLE}={revision}");
}

/// The manifest directory of this crate; the workspace is its parent.
fn manifest_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"))
}

/// The trimmed output of a successful `git` command run in this crate.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Where git keeps `name` (`--git-path`), as an absolute path.
fn git_path(name: &str) -> Option<PathBuf> {
    git(&["rev-parse", "--git-path", name]).map(|path| manifest_dir().join(path))
}

/// The commit checked out, when the workspace is the top of a checkout;
/// asks cargo to run this again when it moves.
fn git_revision() -> Option<String> {
    let workspace = manifest_dir().parent()?.canonicalize().ok()?;
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != workspace {
        return None;
    }
    let revision = git(&["rev-parse", "--verify", "HEAD"])?;
    // HEAD names a branch, whose ref is a file of its own or a line of
    // packed-refs; a packed ref becomes a file again at the next commit, in
    // a folder watched only then (it holds every branch's ref).
    let mut watched = Vec::new();
    for name in ["HEAD", "packed-refs"] {
        watched.extend(git_path(name).filter(|path| path.exists()));
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]).and_then(|b| git_path(&b)) {
        if branch.exists() {
            watched.push(branch);
        } else {
            watched.extend(
                branch
                    .parent()
                    .filter(|dir| dir.is_dir())
                    .map(Path::to_path_buf),
            );
        }
    }
    for path in watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(revision)
}
