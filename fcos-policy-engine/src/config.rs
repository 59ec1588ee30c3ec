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
/// Default largest answer taken from the graph-builder (as the
/// graph-builder's own `upstream.max_body_bytes`).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

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
    /// `[policy]`: fleet control.
    pub policy: Option<PolicySection>,
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
    /// Longest time the graph-builder may hold a poll for changes, in
    /// seconds (a change is followed at once; this bounds how long the
    /// replica goes without confirmation).
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
    /// Status port.
    pub status_addr: SocketAddr,
    /// The graph-builder's `/v1/graph`.
    pub graph_url: url::Url,
    /// Time before a fetch is abandoned.
    pub timeout: Duration,
    /// Longest time the graph-builder may hold a poll for changes.
    pub refresh: Duration,
    /// Where the last good snapshot is kept, when configured.
    pub state_dir: Option<std::path::PathBuf>,
    /// Largest answer taken from the graph-builder.
    pub max_body_bytes: u64,
    /// Known container digest aliases, when configured.
    pub digest_aliases: Option<crate::aliases::DigestAliases>,
    /// The fleet policy file, when configured (checked when the settings
    /// are made, loaded again at start, reloaded while running).
    pub policy_path: Option<std::path::PathBuf>,
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
            status_addr,
            graph_url,
            timeout: positive_secs("upstream.timeout_secs", upstream.timeout_secs, 10)?,
            refresh: positive_secs("upstream.refresh_secs", upstream.refresh_secs, 10).and_then(
                |refresh| match refresh.as_secs() {
                    0..=60 => Ok(refresh),
                    _ => Err(ConfigError::Invalid {
                        key: "upstream.refresh_secs".to_string(),
                        message:
                            "must be at most 60 seconds (the longest poll the graph-builder holds)"
                                .to_string(),
                    }),
                },
            )?,
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
            policy_path: match file.policy.and_then(|policy| policy.path) {
                Some(path) => {
                    crate::rules::Policy::load(&path, 0)?;
                    Some(path)
                }
                None => None,
            },
        })
    }
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
        assert_eq!(settings.max_body_bytes, 67_108_864);
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
    }
}
