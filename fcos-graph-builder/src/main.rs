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

/// mimalloc rather than glibc's malloc (the graph-builder's): building and replacing large
/// graphs on several threads left glibc's per-thread arenas holding freed
/// memory the other threads could not reuse (a graph-builder with three
/// streams of 9,279 releases reached 326 MB of RSS in five minutes of
/// rebuilds, against 197 MB with mimalloc; docs/deploy.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    service_kit::binary::run(Cli::parse().service, fcos_graph_builder::start)
}
