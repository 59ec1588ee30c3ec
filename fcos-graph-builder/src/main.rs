//! The `fcos-graph-builder` binary: reads its configuration and runs the
//! library until SIGTERM.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Fedora CoreOS update graph builder.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML); without one, production defaults apply.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// More verbose logging (repeat for more).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only check the configuration (and any file it names), then exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    service_kit::logging::init(cli.verbose);
    let result = actix_web::rt::System::new().block_on(run(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = match &cli.config {
        Some(path) => fcos_graph_builder::Settings::load(path)?,
        None => fcos_graph_builder::Settings::default(),
    };
    if cli.check_config {
        println!("configuration OK");
        return Ok(());
    }
    let running = fcos_graph_builder::start(settings)?;
    running.wait().await.context("server failed")
}
