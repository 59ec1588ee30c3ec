//! Policy-engine configuration: the TOML file as written (every key
//! optional, unknown keys rejected) and the validated [`Settings`].

use commons::config::{
    at_least_one, positive_secs, ConfigError, ListenerFile, Ports, ServiceSettings,
};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// Default graph-builder endpoint (the graph-builder in the same pod).
pub const DEFAULT_GRAPH_URL: &str = "http://127.0.0.1:8080/v1/graph";
/// Default service port.
pub const DEFAULT_SERVICE_PORT: u16 = 8081;
/// Default status port.
pub const DEFAULT_STATUS_PORT: u16 = 9081;
/// Default largest answer taken from the graph-builder: 16 MiB, some 300
/// times a stream's largest graph today (about 50 KB), and within the
/// policy-engine's memory limit (128 MiB) with room to parse it.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// The configuration file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[service]`: the port nodes poll.
    pub service: Option<ListenerFile>,
    /// `[status]`: the metrics and health port.
    pub status: Option<ListenerFile>,
    /// `[upstream]`: the graph-builder.
    pub upstream: Option<UpstreamFile>,
    /// `[oci]`: the move to OCI updates.
    pub oci: Option<OciFile>,
    /// `[policy]`: the fleet policy file.
    pub policy: Option<PolicySection>,
    /// `[rollouts]`: tracking the outcomes of rollouts.
    pub rollouts: Option<RolloutsFile>,
    /// `[cache]`: the per-client views kept ready.
    pub cache: Option<CacheFile>,
    /// `[census]`: the distinct-node estimates.
    pub census: Option<CensusFile>,
}

/// The `[census]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CensusFile {
    /// Series of `active_nodes_by_group` kept at most.
    pub max_group_series: Option<u64>,
}

/// The `[cache]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    /// Bytes of serialized per-client views kept at most.
    pub max_bytes: Option<u64>,
}

/// Least `cache.max_bytes`: 1 MiB, some twenty views of a real graph.
const MIN_CACHE_BYTES: u64 = 1024 * 1024;

/// The `[rollouts]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutsFile {
    /// Nodes tracked at most.
    pub max_nodes: Option<u64>,
    /// Seconds between two evaluations of the outcomes and guards.
    pub interval_secs: Option<u64>,
}

/// The `[policy]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Path of the policy file (TOML); absent: no fleet policy.
    pub path: Option<std::path::PathBuf>,
}

/// The `[oci]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciFile {
    /// Path of the digest alias table (JSON); absent: no aliases.
    pub digest_aliases: Option<std::path::PathBuf>,
}

/// The `[upstream]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// The graph-builder's `/v1/graph` URL.
    pub graph_url: Option<String>,
    /// Seconds before a fetch from the graph-builder is abandoned.
    pub timeout_secs: Option<u64>,
    /// Longest time the graph-builder may hold a poll of `/v1/scopes` for
    /// changes, in seconds, sent as its `wait` parameter (a change is
    /// followed at once; this bounds how long the replica goes without
    /// confirmation).
    pub wait_secs: Option<u64>,
    /// The former name of `wait_secs`, still read (with a warning).
    pub refresh_secs: Option<u64>,
    /// Directory where the last good snapshot is kept across restarts.
    pub state_dir: Option<std::path::PathBuf>,
    /// Largest answer (listing or graph) taken from the graph-builder, in
    /// bytes.
    pub max_body_bytes: Option<u64>,
}

/// Validated policy-engine settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Service port.
    pub service_addr: SocketAddr,
    /// CORS origins; `None` allows any.
    pub origin_allowlist: Option<Vec<String>>,
    /// Connections the service port keeps open at most; `None`: from the
    /// process's descriptor and memory limits.
    pub max_connections: Option<usize>,
    /// Status port.
    pub status_addr: SocketAddr,
    /// The graph-builder's `/v1/graph`.
    pub graph_url: url::Url,
    /// Time before a fetch is abandoned.
    pub timeout: Duration,
    /// Longest time the graph-builder may hold a poll for changes
    /// (`upstream.wait_secs`).
    pub wait: Duration,
    /// Where the last good snapshot is kept, when configured.
    pub state_dir: Option<std::path::PathBuf>,
    /// Largest answer taken from the graph-builder.
    pub max_body_bytes: u64,
    /// Known container digest aliases, when configured.
    pub digest_aliases: Option<crate::aliases::DigestAliases>,
    /// The fleet policy file, when configured (checked when the settings
    /// are made, loaded again at start, reloaded while running).
    pub policy_path: Option<std::path::PathBuf>,
    /// Rollout tracking.
    pub rollouts: crate::rollouts::Settings,
    /// Bytes of serialized per-client views kept at most (`cache.max_bytes`).
    pub view_cache_bytes: u64,
    /// Series of the census by (stream, group, platform) kept at most
    /// (`census.max_group_series`).
    pub census_max_group_series: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::production()
    }
}

impl ServiceSettings for Settings {
    type File = FileConfig;

    fn from_file(file: FileConfig) -> Result<Settings, ConfigError> {
        let Ports {
            service_addr,
            origin_allowlist,
            status_addr,
            max_connections,
        } = Ports::from_sections(
            &file.service.unwrap_or_default(),
            file.status.as_ref(),
            DEFAULT_SERVICE_PORT,
            DEFAULT_STATUS_PORT,
        )?;
        let upstream = file.upstream.unwrap_or_default();
        let text = upstream.graph_url.as_deref().unwrap_or(DEFAULT_GRAPH_URL);
        let graph_url = url::Url::parse(text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| ConfigError::Invalid {
                key: "upstream.graph_url".to_string(),
                message: format!("'{text}' is not an http or https URL"),
            })?;
        Ok(Settings {
            service_addr,
            origin_allowlist,
            max_connections,
            status_addr,
            graph_url,
            timeout: positive_secs("upstream.timeout_secs", upstream.timeout_secs, 10)?,
            wait: wait(&upstream)?,
            max_body_bytes: at_least_one(
                "upstream.max_body_bytes",
                upstream.max_body_bytes,
                DEFAULT_MAX_BODY_BYTES,
            )?,
            state_dir: match upstream.state_dir {
                Some(dir) => Some(commons::config::writable_dir("upstream.state_dir", dir)?),
                None => None,
            },
            digest_aliases: match file.oci.and_then(|oci| oci.digest_aliases) {
                Some(path) => Some(crate::aliases::DigestAliases::load(&path)?),
                None => None,
            },
            rollouts: rollouts(file.rollouts.unwrap_or_default())?,
            view_cache_bytes: cache_bytes(file.cache.unwrap_or_default())?,
            census_max_group_series: max_group_series(file.census.unwrap_or_default())?,
            policy_path: match file.policy.and_then(|policy| policy.path) {
                Some(path) => {
                    commons::fleet_policy::Policy::load(&path, 0)?;
                    Some(path)
                }
                None => None,
            },
        })
    }
}

/// `cache.max_bytes`: at least 1 MiB.
fn cache_bytes(file: CacheFile) -> Result<u64, ConfigError> {
    let bytes = file.max_bytes.unwrap_or(crate::view::DEFAULT_CACHE_BYTES);
    if bytes < MIN_CACHE_BYTES {
        return Err(ConfigError::Invalid {
            key: "cache.max_bytes".to_string(),
            message: format!("must be at least {MIN_CACHE_BYTES} (1 MiB)"),
        });
    }
    Ok(bytes)
}

/// `census.max_group_series`: 1 to 65,536 (64 KiB each, 4 GiB).
fn max_group_series(file: CensusFile) -> Result<usize, ConfigError> {
    let series = at_least_one(
        "census.max_group_series",
        file.max_group_series,
        crate::census::DEFAULT_MAX_GROUP_SERIES as u64,
    )?;
    if series > 65_536 {
        return Err(ConfigError::Invalid {
            key: "census.max_group_series".to_string(),
            message: "must be at most 65536 (64 KiB of memory each)".to_string(),
        });
    }
    Ok(series as usize)
}

/// `[rollouts]`: at most 100,000,000 nodes; every 1 to 3,600 seconds.
fn rollouts(file: RolloutsFile) -> Result<crate::rollouts::Settings, ConfigError> {
    let defaults = crate::rollouts::Settings::default();
    let max_nodes = at_least_one(
        "rollouts.max_nodes",
        file.max_nodes,
        defaults.max_nodes as u64,
    )?;
    if max_nodes > 100_000_000 {
        return Err(ConfigError::Invalid {
            key: "rollouts.max_nodes".to_string(),
            message: "must be at most 100000000 (about 5 GiB of memory)".to_string(),
        });
    }
    let interval = positive_secs(
        "rollouts.interval_secs",
        file.interval_secs,
        defaults.interval.as_secs(),
    )?;
    if interval.as_secs() > 3600 {
        return Err(ConfigError::Invalid {
            key: "rollouts.interval_secs".to_string(),
            message: "must be at most 3600 seconds".to_string(),
        });
    }
    Ok(crate::rollouts::Settings {
        max_nodes: max_nodes as usize,
        interval,
    })
}

/// `upstream.wait_secs`, or its former name `upstream.refresh_secs` (with
/// a warning naming both; both at once are refused): 1 to 60 seconds.
fn wait(upstream: &UpstreamFile) -> Result<Duration, ConfigError> {
    let (key, secs) = match (upstream.wait_secs, upstream.refresh_secs) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                key: "upstream.refresh_secs".to_string(),
                message: "is the former name of upstream.wait_secs, which is set too: keep only upstream.wait_secs".to_string(),
            })
        }
        (None, Some(secs)) => {
            tracing::warn!(
                "upstream.refresh_secs is deprecated in the policy-engine's configuration: it is the longest time the graph-builder may hold a poll, now named upstream.wait_secs; rename the key (the value {secs} is used)"
            );
            ("upstream.refresh_secs", Some(secs))
        }
        (wait_secs, None) => ("upstream.wait_secs", wait_secs),
    };
    let wait = positive_secs(key, secs, 10)?;
    if wait.as_secs() > 60 {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "must be at most 60 seconds (the longest poll the graph-builder holds)"
                .to_string(),
        });
    }
    Ok(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let settings = Settings::default();
        assert_eq!(settings.service_addr.to_string(), "0.0.0.0:8081");
        assert_eq!(settings.status_addr.to_string(), "0.0.0.0:9081");
        assert_eq!(settings.graph_url.as_str(), DEFAULT_GRAPH_URL);
        assert_eq!(settings.max_body_bytes, 16 << 20);
        assert_eq!(settings.view_cache_bytes, 8 << 20);
        assert_eq!(settings.census_max_group_series, 256);
    }

    #[test]
    fn digest_aliases_are_loaded_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("aliases.json");
        let parse = |text: String| {
            commons::config::parse_toml::<FileConfig>(&text, "pe.toml")
                .and_then(Settings::from_file)
        };
        let config = format!("[oci]\ndigest_aliases = \"{}\"\n", table.display());
        let missing = parse(config.clone()).unwrap_err().to_string();
        assert!(missing.contains("aliases.json"), "{missing}");
        std::fs::write(&table, "{not json").unwrap();
        let invalid = parse(config.clone()).unwrap_err().to_string();
        assert!(invalid.contains("aliases.json"), "{invalid}");
        std::fs::write(&table, "{}").unwrap();
        assert_eq!(parse(config).unwrap().digest_aliases.unwrap().len(), 0);
        assert_eq!(Settings::default().digest_aliases, None);
    }

    #[test]
    fn errors_name_the_key() {
        let parse = |text: &str| {
            commons::config::parse_toml::<FileConfig>(text, "pe.toml")
                .and_then(Settings::from_file)
                .unwrap_err()
                .to_string()
        };
        assert!(parse("[upstream]\ngraph_url = \"file:///x\"").contains("upstream.graph_url"));
        assert!(parse("[upstream]\ntimeout_secs = 0").contains("upstream.timeout_secs"));
        assert!(parse("[servic]\nport = 1").contains("servic"));
        assert!(parse("[upstream]\nmax_body_bytes = 0").contains("upstream.max_body_bytes"));
        assert!(parse("[upstream]\nwait_secs = 61").contains("upstream.wait_secs"));
        assert!(parse("[cache]\nmax_bytes = 1048575").contains("cache.max_bytes"));
        assert!(parse("[census]\nmax_group_series = 0").contains("census.max_group_series"));
        assert!(parse("[census]\nmax_group_series = 65537").contains("census.max_group_series"));
        assert!(parse("[upstream]\nrefresh_secs = 61").contains("upstream.refresh_secs"));
        let both = parse("[upstream]\nwait_secs = 5\nrefresh_secs = 5");
        assert!(
            both.contains("upstream.refresh_secs") && both.contains("upstream.wait_secs"),
            "{both}"
        );
    }

    #[test]
    fn the_poll_wait_has_its_own_key_and_the_former_one_still_works() {
        let parse = |text: &str| {
            commons::config::parse_toml::<FileConfig>(text, "pe.toml")
                .and_then(Settings::from_file)
                .unwrap()
        };
        assert_eq!(Settings::default().wait, Duration::from_secs(10));
        assert_eq!(
            parse("[upstream]\nwait_secs = 7").wait,
            Duration::from_secs(7)
        );
        assert_eq!(
            parse("[upstream]\nrefresh_secs = 7").wait,
            Duration::from_secs(7)
        );
    }
}
