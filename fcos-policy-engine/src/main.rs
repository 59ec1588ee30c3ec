//! The `fcos-policy-engine` binary: reads its configuration and runs the
//! library until SIGTERM, as every service binary does
//! ([`service_kit::binary`]).

use clap::Parser;
use std::process::ExitCode;

/// Fedora CoreOS update policy engine.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    service: service_kit::binary::ServiceArgs,
}

fn main() -> ExitCode {
    service_kit::binary::run(Cli::parse().service, fcos_policy_engine::start)
}
