//! What each service binary does, written once: its command line (`-c`,
//! `-v`, `--check-config`), its configuration read in stages
//! ([`ServiceSettings`]), the service run until SIGTERM, and the exit: 0,
//! or 1 with the whole cause chain on standard error.

use anyhow::Context;
use commons::config::ServiceSettings;
use std::path::PathBuf;
use std::process::ExitCode;

/// The options every service binary takes; flattened into the binary's
/// own `clap` parser, which names it.
#[derive(Debug, clap::Args)]
pub struct ServiceArgs {
    /// Configuration file (TOML); without one, production defaults apply.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// More verbose logging (repeat for more).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only check the configuration (and any file it names), then exit.
    #[arg(long)]
    pub check_config: bool,
}

/// Runs a service binary: logging at the asked verbosity, the settings of
/// `args.config` (production defaults without one), then, unless only the
/// configuration is checked, the service `start` makes until SIGTERM or
/// until a part of it ends (then the whole process ends, non-zero).
pub fn run<S: ServiceSettings>(
    args: ServiceArgs,
    start: impl FnOnce(S) -> anyhow::Result<crate::server::Running>,
) -> ExitCode {
    crate::logging::init(args.verbose);
    exit_code(actix_web::rt::System::new().block_on(async move {
        let settings = match &args.config {
            Some(path) => S::load(path)?,
            None => S::production(),
        };
        if args.check_config {
            println!("configuration OK");
            return Ok(());
        }
        start(settings)?.wait().await.context("server failed")
    }))
}

/// The exit code of a binary's `result`; an error is printed first, with
/// its whole cause chain.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
