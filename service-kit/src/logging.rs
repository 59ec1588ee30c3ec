//! Logging set-up for the binaries: `-v` flags raise the level, `RUST_LOG`
//! overrides it.

use tracing_subscriber::EnvFilter;

/// Installs a global subscriber; `verbosity` is the number of `-v` flags
/// (0: warnings, 1: info, 2: debug, 3 or more: trace).
pub fn init(verbosity: u8) {
    let level = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // The level applies to the project's crates; libraries stay at warn
    // unless RUST_LOG says otherwise. The HTTP parser logs each request it
    // refuses as an error: those are client mistakes, logged at debug
    // level and counted by the servers (`service_kit::server`) instead.
    let default = format!(
        "warn,actix_http::h1::dispatcher=off,commons={level},service_kit={level},fcos_graph_builder={level},fcos_policy_engine={level},fcos_cincinnati={level}"
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
