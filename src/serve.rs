//! `fcos-cincinnati serve`: the graph-builder and the policy-engine in one
//! process, the policy-engine reading the graph-builder over loopback.

use commons::config::{ConfigError, ServiceSettings};
use fcos_graph_builder::config::{DocumentSource, StreamSettings};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The combined configuration file: the two services' files as tables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[graph-builder]`, as in the graph-builder's own file.
    #[serde(rename = "graph-builder")]
    pub graph_builder: Option<fcos_graph_builder::config::FileConfig>,
    /// `[policy-engine]`, as in the policy-engine's own file.
    #[serde(rename = "policy-engine")]
    pub policy_engine: Option<fcos_policy_engine::config::FileConfig>,
}

/// Settings of both services.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The graph-builder.
    pub graph_builder: fcos_graph_builder::Settings,
    /// The policy-engine; its `graph_url` is replaced by the in-process
    /// graph-builder's address when the file does not set one.
    pub policy_engine: fcos_policy_engine::Settings,
    /// Whether `policy_engine.graph_url` was set explicitly.
    pub graph_url_given: bool,
}

impl Settings {
    /// Both services on their default ports, serving the embedded sample.
    pub fn sample() -> Self {
        let streams = crate::sample::STREAMS
            .iter()
            .map(|&stream| {
                let (releases, updates) =
                    crate::sample::documents(stream).expect("sample streams have documents");
                StreamSettings {
                    oci_repository: None,
                    name: stream.to_string(),
                    basearches: crate::sample::BASEARCHES.map(String::from).to_vec(),
                    release_index: DocumentSource::Static(releases),
                    updates: DocumentSource::Static(updates),
                }
            })
            .collect();
        Settings {
            graph_builder: fcos_graph_builder::Settings {
                streams,
                ..fcos_graph_builder::Settings::default()
            },
            policy_engine: fcos_policy_engine::Settings::default(),
            graph_url_given: false,
        }
    }
}

/// The combined file's settings; without a file, both services' production
/// defaults.
impl ServiceSettings for Settings {
    type File = FileConfig;

    fn from_file(file: FileConfig) -> Result<Self, ConfigError> {
        let pe_file = file.policy_engine.unwrap_or_default();
        let graph_url_given = pe_file
            .upstream
            .as_ref()
            .is_some_and(|u| u.graph_url.is_some());
        Ok(Settings {
            graph_builder: fcos_graph_builder::Settings::from_file(
                file.graph_builder.unwrap_or_default(),
            )?,
            policy_engine: fcos_policy_engine::Settings::from_file(pe_file)?,
            graph_url_given,
        })
    }
}

/// The loopback URL of a graph-builder bound at `addr`.
pub fn loopback_graph_url(addr: SocketAddr) -> url::Url {
    loopback_url(addr, "/v1/graph")
}

/// The URL of `path` on a server bound at `addr`, over loopback when it is
/// bound to every address.
fn loopback_url(addr: SocketAddr, path: &str) -> url::Url {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    url::Url::parse(&format!(
        "http://{}{path}",
        SocketAddr::new(ip, addr.port())
    ))
    .expect("a socket address makes a valid URL")
}

/// Both services, started.
#[derive(Debug)]
pub struct Both {
    /// The graph-builder.
    pub graph_builder: service_kit::server::Running,
    /// The policy-engine.
    pub policy_engine: service_kit::server::Running,
}

/// Starts both services; the policy-engine reads the graph-builder over
/// loopback unless the configuration names another graph URL.
pub fn start(mut settings: Settings, clock: fcos_policy_engine::Clock) -> anyhow::Result<Both> {
    // The viewer of this process shows the policy-engine's fleet policy.
    if settings.graph_builder.policy_path.is_none() {
        settings.graph_builder.policy_path = settings.policy_engine.policy_path.clone();
    }
    // The viewer of this process shows the policy-engine's rollouts when
    // its status port is known before it starts.
    if settings.graph_builder.rollouts.is_none() && settings.policy_engine.status_addr.port() != 0 {
        let rollouts = loopback_url(settings.policy_engine.status_addr, "/v1/rollouts");
        settings.graph_builder.rollouts = Some(fcos_graph_builder::config::RolloutsSettings {
            url: rollouts,
            refresh: std::time::Duration::from_secs(5),
        });
    }
    // Two service ports share the process's descriptors.
    service_kit::server::share_descriptors(2);
    let graph_builder = fcos_graph_builder::start(settings.graph_builder)?;
    if !settings.graph_url_given {
        settings.policy_engine.graph_url = loopback_graph_url(graph_builder.service_addr);
    }
    let policy_engine = fcos_policy_engine::start_with_clock(settings.policy_engine, clock)?;
    Ok(Both {
        graph_builder,
        policy_engine,
    })
}
