//! The `fcos-graph-builder` binary: reads its configuration and runs the
//! library until SIGTERM, as every service binary does
//! ([`service_kit::binary`]).

use clap::Parser;
use std::process::ExitCode;

/// Fedora CoreOS update graph builder.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    service: service_kit::binary::ServiceArgs,
}

/// mimalloc rather than glibc's malloc: building and replacing large
/// graphs on several threads left glibc's per-thread arenas holding freed
/// memory (three streams of 9,279 releases, every index changing every
/// 5 s: 348 MB of RSS on glibc, 165 MB peak on mimalloc; docs/deploy.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    service_kit::binary::run(Cli::parse().service, fcos_graph_builder::start)
}
