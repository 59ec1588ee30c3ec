//! Graph-builder configuration: the TOML file as written (every key
//! optional, unknown keys rejected) and the validated [`Settings`].

use commons::config::{
    at_least_one, positive_secs, ConfigError, ListenerFile, Ports, ServiceSettings,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Production release index location; `${stream}` is substituted.
pub const DEFAULT_RELEASE_INDEX_URL: &str =
    "https://builds.coreos.fedoraproject.org/prod/streams/${stream}/releases.json";
/// Production updates metadata location; `${stream}` is substituted.
pub const DEFAULT_UPDATES_URL: &str =
    "https://builds.coreos.fedoraproject.org/updates/${stream}.json";
/// Default service port.
pub const DEFAULT_SERVICE_PORT: u16 = 8080;
/// Default status port.
pub const DEFAULT_STATUS_PORT: u16 = 9080;
/// Default largest accepted upstream document.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// Default number of `/v1/scopes?wait=…` long polls held at once.
pub const DEFAULT_MAX_WAITING_POLLS: usize = 256;

/// The configuration file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[service]`: the graph port.
    pub service: Option<ServiceFile>,
    /// `[status]`: the metrics and health port.
    pub status: Option<ListenerFile>,
    /// `[upstream]`: where the documents come from.
    pub upstream: Option<UpstreamFile>,
    /// `[streams]`: stream name → basearches.
    pub streams: Option<BTreeMap<String, Vec<String>>>,
    /// `[oci]`: the OCI graphs.
    pub oci: Option<OciFile>,
    /// `[policy]`: the fleet policy, shown by the viewer.
    pub policy: Option<PolicyFile>,
}

/// The `[service]` section as written: the listener's keys, and the
/// graph-builder's own limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// Address to listen on.
    pub address: Option<std::net::IpAddr>,
    /// Port to listen on.
    pub port: Option<u16>,
    /// Origins allowed by CORS.
    pub origin_allowlist: Option<Vec<String>>,
    /// Most `/v1/scopes?wait=…` long polls held at once; more are answered
    /// at once, as without `wait`.
    pub max_waiting_polls: Option<usize>,
}

impl ServiceFile {
    fn listener(&self) -> ListenerFile {
        ListenerFile {
            address: self.address,
            port: self.port,
            origin_allowlist: self.origin_allowlist.clone(),
        }
    }
}

/// The `[policy]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The policy-engine's policy file, for the viewer's group picker.
    pub path: Option<std::path::PathBuf>,
}

/// The `[oci]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciFile {
    /// Repository that replaces the one of every OCI payload (a mirror).
    pub repository: Option<String>,
}

/// The `[upstream]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// Release index URL template.
    pub release_index_url: Option<String>,
    /// Updates metadata URL template.
    pub updates_url: Option<String>,
    /// Seconds between refreshes.
    pub refresh_secs: Option<u64>,
    /// Seconds before a fetch is abandoned.
    pub timeout_secs: Option<u64>,
    /// Largest accepted document, in bytes.
    pub max_body_bytes: Option<u64>,
}

/// Where one upstream document comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentSource {
    /// An `http`, `https` or `file` URL.
    Url(url::Url),
    /// Bytes compiled into the program (the embedded sample).
    Static(&'static [u8]),
}

impl std::fmt::Display for DocumentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocumentSource::Url(url) => write!(f, "{url}"),
            DocumentSource::Static(_) => f.write_str("embedded sample"),
        }
    }
}

/// What the graph-builder serves for one stream, and where from.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSettings {
    /// Stream name.
    pub name: String,
    /// Architectures to build graphs for.
    pub basearches: Vec<String>,
    /// The release index.
    pub release_index: DocumentSource,
    /// The updates metadata.
    pub updates: DocumentSource,
    /// Repository that replaces the one of every OCI payload, digest kept
    /// (`[oci] repository`: a mirror).
    pub oci_repository: Option<String>,
}

/// Validated graph-builder settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Graph port.
    pub service_addr: SocketAddr,
    /// CORS origins; `None` allows any.
    pub origin_allowlist: Option<Vec<String>>,
    /// Most long polls of `/v1/scopes` held at once (each holds a
    /// connection, hence a descriptor, for up to a minute).
    pub max_waiting_polls: usize,
    /// Status port.
    pub status_addr: SocketAddr,
    /// Time between refreshes of a stream.
    pub refresh: Duration,
    /// Time before a fetch is abandoned.
    pub timeout: Duration,
    /// Largest accepted document.
    pub max_body_bytes: u64,
    /// Streams, by name.
    pub streams: Vec<StreamSettings>,
    /// The fleet policy file the viewer shows (reloaded when it changes,
    /// see [`crate::policy_view`]), when configured.
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
        let service_file = file.service.unwrap_or_default();
        let Ports {
            service_addr,
            origin_allowlist,
            status_addr,
        } = Ports::from_sections(
            &service_file.listener(),
            file.status.as_ref(),
            DEFAULT_SERVICE_PORT,
            DEFAULT_STATUS_PORT,
        )?;
        let upstream = file.upstream.unwrap_or_default();
        let release_template = upstream
            .release_index_url
            .as_deref()
            .unwrap_or(DEFAULT_RELEASE_INDEX_URL);
        let updates_template = upstream
            .updates_url
            .as_deref()
            .unwrap_or(DEFAULT_UPDATES_URL);
        let streams = file.streams.unwrap_or_else(|| {
            ["stable", "testing", "next"]
                .into_iter()
                .map(|s| {
                    let arches = ["x86_64", "aarch64", "ppc64le", "s390x"];
                    (s.to_string(), arches.map(String::from).to_vec())
                })
                .collect()
        });
        if streams.is_empty() {
            return Err(invalid("streams", "at least one stream is required"));
        }
        let oci_repository = match file.oci.and_then(|oci| oci.repository) {
            None => None,
            Some(repository) => {
                commons::metadata::ReleaseIndex::check_oci_repository(&repository).map_err(
                    |message| ConfigError::Invalid {
                        key: "oci.repository".to_string(),
                        message,
                    },
                )?;
                Some(repository)
            }
        };
        let mut stream_settings = Vec::with_capacity(streams.len());
        for (name, basearches) in streams {
            let key = format!("streams.{name}");
            if !commons::graph::is_well_formed_name(&name) {
                return Err(invalid(
                    &key,
                    "a stream name is letters, digits, '.', '_' or '-'",
                ));
            }
            if basearches.is_empty() {
                return Err(invalid(&key, "at least one basearch is required"));
            }
            if let Some(bad) = basearches
                .iter()
                .find(|a| !commons::graph::is_well_formed_name(a))
            {
                return Err(invalid(&key, &format!("invalid basearch '{bad}'")));
            }
            let mut unique = basearches.clone();
            unique.sort();
            unique.dedup();
            if unique.len() != basearches.len() {
                return Err(invalid(&key, "a basearch is listed twice"));
            }
            stream_settings.push(StreamSettings {
                release_index: DocumentSource::Url(stream_url(
                    "upstream.release_index_url",
                    release_template,
                    &name,
                )?),
                updates: DocumentSource::Url(stream_url(
                    "upstream.updates_url",
                    updates_template,
                    &name,
                )?),
                name,
                basearches,
                oci_repository: oci_repository.clone(),
            });
        }
        Ok(Settings {
            service_addr,
            origin_allowlist,
            max_waiting_polls: at_least_one(
                "service.max_waiting_polls",
                service_file.max_waiting_polls,
                DEFAULT_MAX_WAITING_POLLS,
            )?,
            status_addr,
            refresh: positive_secs("upstream.refresh_secs", upstream.refresh_secs, 30)?,
            timeout: positive_secs("upstream.timeout_secs", upstream.timeout_secs, 60)?,
            max_body_bytes: at_least_one(
                "upstream.max_body_bytes",
                upstream.max_body_bytes,
                DEFAULT_MAX_BODY_BYTES,
            )?,
            streams: stream_settings,
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

fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.to_string(),
    }
}

/// Substitutes `${stream}` and checks the result is an http, https or file
/// URL.
fn stream_url(key: &str, template: &str, stream: &str) -> Result<url::Url, ConfigError> {
    let text = template.replace("${stream}", stream);
    let url =
        url::Url::parse(&text).map_err(|e| invalid(key, &format!("'{text}' is not a URL: {e}")))?;
    match url.scheme() {
        "http" | "https" | "file" => Ok(url),
        other => Err(invalid(
            key,
            &format!("unsupported scheme '{other}' (use http, https or file)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_production() {
        let settings = Settings::default();
        assert_eq!(settings.service_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(settings.status_addr.to_string(), "0.0.0.0:9080");
        assert_eq!(settings.refresh, Duration::from_secs(30));
        assert_eq!(settings.timeout, Duration::from_secs(60));
        assert_eq!(settings.origin_allowlist, None);
        assert_eq!(settings.max_waiting_polls, 256);
        let names: Vec<&str> = settings.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["next", "stable", "testing"]);
        let stable = &settings.streams[1];
        assert_eq!(stable.basearches, ["x86_64", "aarch64", "ppc64le", "s390x"]);
        assert_eq!(
            stable.release_index.to_string(),
            "https://builds.coreos.fedoraproject.org/prod/streams/stable/releases.json"
        );
        assert_eq!(
            stable.updates.to_string(),
            "https://builds.coreos.fedoraproject.org/updates/stable.json"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let parse = |text: &str| {
            commons::config::parse_toml::<FileConfig>(text, "gb.toml")
                .and_then(Settings::from_file)
                .unwrap_err()
                .to_string()
        };
        assert!(parse("[upstream]\nrefresh_sec = 3").contains("refresh_sec"));
        assert!(parse("[upstream]\nrefresh_secs = 0").contains("upstream.refresh_secs"));
        assert!(parse("[upstream]\nupdates_url = \"ftp://x/${stream}\"")
            .contains("upstream.updates_url"));
        assert!(parse("[streams]\nstable = []").contains("streams.stable"));
        assert!(parse("[status]\norigin_allowlist = []").contains("status.origin_allowlist"));
        assert!(parse("[service]\nmax_waiting_polls = 0").contains("service.max_waiting_polls"));
        assert!(parse("[status]\nmax_waiting_polls = 1").contains("max_waiting_polls"));
    }

    #[test]
    fn file_urls_and_custom_streams() {
        let file: FileConfig = commons::config::parse_toml(
            "[upstream]\nrelease_index_url = \"file:///srv/${stream}/releases.json\"\n[streams]\nrawhide = [\"x86_64\"]\n",
            "gb.toml",
        )
        .unwrap();
        let settings = Settings::from_file(file).unwrap();
        assert_eq!(settings.streams.len(), 1);
        assert_eq!(
            settings.streams[0].release_index.to_string(),
            "file:///srv/rawhide/releases.json"
        );
    }
}
