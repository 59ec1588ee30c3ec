//! The `fcos-cincinnati` binary: `serve` (the default) runs both services,
//! `graph` previews one graph from local files.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use commons::config::ServiceSettings;
use commons::graph::Scheme;
use fcos_cincinnati::preview::{self, Viewer};
use fcos_cincinnati::serve;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Fedora CoreOS update service: graph-builder and policy-engine in one
/// process, and an offline graph previewer.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// More verbose logging (repeat for more).
    #[arg(short = 'v', action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run both services (the default). Without a configuration, serve the
    /// embedded sample on the default ports.
    Serve {
        /// Combined configuration file with [graph-builder] and
        /// [policy-engine] tables.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// Print one graph built from local files, or read from a container
    /// registry.
    Graph(Box<GraphArgs>),
}

#[derive(Debug, clap::Args)]
struct GraphArgs {
    /// Release index (releases.json).
    #[arg(
        long,
        required_unless_present = "registry",
        conflicts_with = "registry"
    )]
    releases: Option<PathBuf>,
    /// Updates metadata (updates/<stream>.json).
    #[arg(
        long,
        required_unless_present = "registry",
        conflicts_with = "registry"
    )]
    updates: Option<PathBuf>,
    /// A container repository (`registry.example.com/me/my-fcos`): the OCI
    /// graph its images give, read as the graph-builder's `[registry]`
    /// reads it (anonymously, every tag, no updates metadata).
    #[arg(long, requires = "stream", value_parser = oci_repository)]
    registry: Option<String>,
    /// The stream of the graph read from --registry.
    #[arg(long, requires = "registry")]
    stream: Option<String>,
    /// Base architecture.
    #[arg(long)]
    basearch: String,
    /// The OCI graph (container pullspecs) instead of the OSTree one.
    #[arg(long)]
    oci: bool,
    /// Show what a client of this wariness (0 to 1) sees.
    #[arg(long, conflicts_with = "node_uuid")]
    rollout_wariness: Option<f64>,
    /// Show what the node with this UUID sees.
    #[arg(long)]
    node_uuid: Option<String>,
    /// The time of the client view, seconds since the Unix epoch (default: now).
    #[arg(long)]
    at: Option<i64>,
    /// A fleet policy file: show what the policy-engine answers a client
    /// of `--group` under it.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The client's group (Zincati's identity.group), with --policy.
    #[arg(long, requires = "policy")]
    group: Option<String>,
    /// A mirror: the repository every OCI payload is pulled from, as the
    /// graph-builder's `[oci] repository` sets it (the digest is kept).
    #[arg(long, requires = "oci", value_parser = oci_repository)]
    oci_repository: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Instead of the graph, say why a node of this release is offered
    /// the update it is, or none, as the policy-engine's `/v1/explain`
    /// answers (JSON), for the client the other options give.
    #[arg(long, value_name = "VERSION", conflicts_with = "format")]
    explain: Option<String>,
}

/// `--oci-repository`, checked as the graph-builder checks `[oci]
/// repository`.
fn oci_repository(value: &str) -> Result<String, String> {
    commons::metadata::ReleaseIndex::check_oci_repository(value).map(|()| value.to_string())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Dot,
}

/// The graph-builder's allocator (see its `main.rs`): this process runs
/// one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    service_kit::logging::init(cli.verbose.max(1));
    service_kit::binary::exit_code(
        match cli.command.unwrap_or(Command::Serve { config: None }) {
            Command::Serve { config } => run_serve(config),
            Command::Graph(args) => run_graph(*args),
        },
    )
}

fn run_serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = match &config {
        Some(path) => serve::Settings::load(path)?,
        None => serve::Settings::sample(),
    };
    actix_web::rt::System::new().block_on(async move {
        let both = serve::start(settings, Arc::new(commons::unix_now))?;
        tracing::info!(
            graph_builder = %both.graph_builder.service_addr,
            policy_engine = %both.policy_engine.service_addr,
            "serving{}",
            if config.is_none() { " the embedded sample" } else { "" }
        );
        // One process: if either service fails, both stop.
        both.graph_builder
            .absorb(both.policy_engine)
            .wait()
            .await
            .context("server failed")
    })
}

fn run_graph(args: GraphArgs) -> anyhow::Result<()> {
    let now = args.at.unwrap_or_else(commons::unix_now);
    anyhow::ensure!(
        args.rollout_wariness.is_none_or(f64::is_finite),
        "--rollout-wariness must be a finite number"
    );
    let policy = match &args.policy {
        Some(path) => Some(commons::fleet_policy::Policy::load(path, 1)?),
        None => None,
    };
    let (source, scheme) = read_source(&args)?;
    if let Some(version) = &args.explain {
        let query = service_kit::web::GraphQuery {
            stream: source.stream.clone().into(),
            basearch: args.basearch.as_str().into(),
            oci: scheme == Scheme::Oci,
            rollout_wariness: args.rollout_wariness,
            node_uuid: args.node_uuid.as_deref().map(Into::into),
            os_version: Some(version.as_str().into()),
            os_checksum: None,
            group: args.group.as_deref().map(Into::into),
            platform: None,
        };
        let explained = preview::explain(source, &query, policy.as_ref(), now);
        let mut json = serde_json::to_vec_pretty(&explained)?;
        json.push(b'\n');
        return write_out(&json);
    }
    let viewer = match (policy, args.rollout_wariness, &args.node_uuid) {
        (Some(policy), _, _) => Viewer::Group {
            wariness: commons::rollout::client_wariness(
                args.rollout_wariness,
                args.node_uuid.as_deref(),
            ),
            now,
            policy: Box::new(policy),
            group: args.group.clone(),
        },
        (None, Some(w), _) => Viewer::Client {
            wariness: commons::rollout::client_wariness(Some(w), None),
            now,
        },
        (None, None, Some(uuid)) => Viewer::Client {
            wariness: commons::rollout::wariness_from_uuid(uuid),
            now,
        },
        (None, None, None) => Viewer::GraphBuilder,
    };
    let graph = preview::view(source, &viewer)?;
    let output = match args.format {
        Format::Json => {
            let mut json = graph.to_json();
            json.push(b'\n');
            json
        }
        Format::Dot => {
            preview::to_dot(&graph, &format!("{}/{scheme}", args.basearch), now).into_bytes()
        }
    };
    write_out(&output)
}

/// The graph-builder's graph the arguments name, and its scheme.
fn read_source(args: &GraphArgs) -> anyhow::Result<(preview::Source, Scheme)> {
    match (&args.registry, &args.stream, &args.releases, &args.updates) {
        (Some(repository), Some(stream), _, _) => {
            let source = actix_web::rt::System::new().block_on(preview::build_from_registry(
                repository,
                stream,
                &args.basearch,
            ))?;
            Ok((source, Scheme::Oci))
        }
        (_, _, Some(releases), Some(updates)) => {
            let scheme = Scheme::from_oci_flag(args.oci);
            let source = preview::build(
                releases,
                updates,
                &args.basearch,
                scheme,
                args.oci_repository.as_deref(),
            )?;
            Ok((source, scheme))
        }
        _ => anyhow::bail!("give --releases and --updates, or --registry and --stream"),
    }
}

fn write_out(output: &[u8]) -> anyhow::Result<()> {
    std::io::stdout()
        .lock()
        .write_all(output)
        .context("cannot write to standard output")
}
