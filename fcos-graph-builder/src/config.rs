//! Graph-builder configuration: the TOML file as written (every key
//! optional, unknown keys rejected) and the validated [`Settings`].

use commons::config::{
    at_least_one, positive_secs, ConfigError, ListenerFile, Ports, ServiceSettings,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
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
/// Default largest accepted upstream document: 8 MiB, some 40 times a
/// stream's release index today (about 200 KB); the memory a build takes
/// (several times its documents) is sized from it in docs/operations.md.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;
/// Default number of `/v1/scopes?wait=…` long polls held at once.
pub const DEFAULT_MAX_WAITING_POLLS: usize = 256;
/// Default seconds between two reads of the policy-engine's rollouts.
pub const DEFAULT_ROLLOUTS_REFRESH_SECS: u64 = 5;
/// Default most requests to the registry in one refresh.
pub const DEFAULT_REGISTRY_MAX_REQUESTS: usize = 5000;

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
    /// `[registry]`: streams read from a container registry.
    pub registry: Option<RegistryFile>,
    /// `[rollouts]`: the policy-engine's rollout outcomes, shown by the
    /// viewer.
    pub rollouts: Option<RolloutsFile>,
}

/// The `[rollouts]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutsFile {
    /// The policy-engine's `/v1/rollouts` (on its status port).
    pub url: Option<String>,
    /// Seconds between two reads.
    pub refresh_secs: Option<u64>,
}

/// Validated `[rollouts]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutsSettings {
    /// The policy-engine's `/v1/rollouts` (`http` or `https`). Never shown
    /// on the service port.
    pub url: url::Url,
    /// Time between two reads.
    pub refresh: Duration,
}

/// The `[registry]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    /// The repository, `registry.example.com/me/my-fcos`.
    pub repository: Option<String>,
    /// Regular expression a tag must match as a whole to be read.
    pub tags: Option<String>,
    /// Updates metadata URL template (`${stream}` substituted).
    pub updates_url: Option<String>,
    /// Registry auth file (podman's and skopeo's `auth.json` format).
    pub auth_file: Option<std::path::PathBuf>,
    /// Registries (`host` or `host:port`) spoken to over plain HTTP.
    pub insecure: Option<Vec<String>>,
    /// Stream of images that name none.
    pub stream: Option<String>,
    /// Most requests to the registry in one refresh.
    pub max_requests: Option<usize>,
    /// Directory where what was read from the registry is kept across
    /// restarts.
    pub state_dir: Option<std::path::PathBuf>,
}

/// Validated `[registry]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrySettings {
    /// The repository as written, the start of every payload.
    pub repository: String,
    /// The registry, `host` or `host:port`.
    pub registry: String,
    /// The repository's path in the registry, `me/my-fcos`.
    pub name: String,
    /// Tags read; every tag when `None`. Anchored at both ends.
    pub tags: Option<TagPattern>,
    /// Updates metadata URL template; without it every release is a
    /// target from every older one.
    pub updates_url: Option<String>,
    /// Credentials for the registry, from the auth file.
    pub credentials: Option<Credentials>,
    /// Whether the registry is spoken to over plain HTTP (loopback, or
    /// listed in `insecure`).
    pub plain_http: bool,
    /// Stream of images that name none.
    pub default_stream: Option<String>,
    /// Most requests to the registry in one refresh.
    pub max_requests: usize,
    /// Where what was read from the registry is kept across restarts
    /// (`registry.json`), when configured.
    pub state_dir: Option<std::path::PathBuf>,
}

/// A user and password for a registry; `Debug` does not show the password.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password (or token).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A compiled `[registry] tags` expression.
#[derive(Debug, Clone)]
pub struct TagPattern(pub regex::Regex);

impl PartialEq for TagPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
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
    /// Connections kept open at most; absent: from the process's
    /// descriptor and memory limits.
    pub max_connections: Option<usize>,
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
            max_connections: self.max_connections,
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
    /// Connections the service port keeps open at most; `None`: from the
    /// process's descriptor and memory limits.
    pub max_connections: Option<usize>,
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
    /// The registry whose images give more streams, when configured.
    pub registry: Option<RegistrySettings>,
    /// Where the viewer's rollout outcomes are read from, when configured.
    pub rollouts: Option<RolloutsSettings>,
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
            max_connections,
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
        let registry = file.registry.map(RegistrySettings::from_file).transpose()?;
        if streams.is_empty() && registry.is_none() {
            return Err(invalid(
                "streams",
                "at least one stream is required (or a [registry])",
            ));
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
            max_connections,
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
            registry,
            rollouts: file.rollouts.map(RolloutsSettings::from_file).transpose()?,
        })
    }
}

impl RolloutsSettings {
    /// Validates `[rollouts]`: `url` is required, `http` or `https`.
    pub fn from_file(file: RolloutsFile) -> Result<RolloutsSettings, ConfigError> {
        let text = file
            .url
            .ok_or_else(|| invalid("rollouts.url", "is required"))?;
        let url = url::Url::parse(&text)
            .map_err(|e| invalid("rollouts.url", &format!("'{text}' is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                "rollouts.url",
                &format!("unsupported scheme '{}' (use http or https)", url.scheme()),
            ));
        }
        Ok(RolloutsSettings {
            url,
            refresh: positive_secs(
                "rollouts.refresh_secs",
                file.refresh_secs,
                DEFAULT_ROLLOUTS_REFRESH_SECS,
            )?,
        })
    }
}

impl RegistrySettings {
    /// Validates `[registry]`; the auth file is read now.
    pub fn from_file(file: RegistryFile) -> Result<RegistrySettings, ConfigError> {
        let repository = file
            .repository
            .ok_or_else(|| invalid("registry.repository", "is required"))?;
        commons::metadata::ReleaseIndex::check_oci_repository(&repository)
            .map_err(|message| invalid("registry.repository", &message))?;
        let (registry, name) = repository
            .split_once('/')
            .filter(|(host, name)| {
                (host.contains('.') || host.contains(':') || *host == "localhost")
                    && !name.is_empty()
            })
            .ok_or_else(|| {
                invalid(
                    "registry.repository",
                    &format!("'{repository}' does not start with a registry, as in registry.example.com/me/my-fcos"),
                )
            })?;
        let tags = match file.tags {
            None => None,
            Some(text) => Some(TagPattern(
                regex::Regex::new(&format!("^(?:{text})$")).map_err(|e| {
                    invalid("registry.tags", &format!("not a regular expression: {e}"))
                })?,
            )),
        };
        if let Some(template) = &file.updates_url {
            stream_url("registry.updates_url", template, "stream")?;
        }
        if let Some(stream) = &file.stream {
            if !commons::graph::is_well_formed_name(stream) {
                return Err(invalid(
                    "registry.stream",
                    "a stream name is letters, digits, '.', '_' or '-'",
                ));
            }
        }
        let credentials = match &file.auth_file {
            None => None,
            Some(path) => read_auth_file(path, registry)?,
        };
        let insecure = file.insecure.unwrap_or_default();
        let max_requests = file.max_requests.unwrap_or(DEFAULT_REGISTRY_MAX_REQUESTS);
        if max_requests == 0 {
            return Err(invalid("registry.max_requests", "must be at least 1"));
        }
        Ok(RegistrySettings {
            plain_http: is_loopback(registry) || insecure.iter().any(|host| host == registry),
            registry: registry.to_string(),
            name: name.to_string(),
            repository,
            tags,
            updates_url: file.updates_url,
            credentials,
            default_stream: file.stream,
            max_requests,
            state_dir: match file.state_dir {
                Some(dir) => Some(commons::config::writable_dir("registry.state_dir", dir)?),
                None => None,
            },
        })
    }

    /// The updates metadata URL of `stream`, when configured.
    pub fn updates_url(&self, stream: &str) -> Option<url::Url> {
        let template = self.updates_url.as_deref()?;
        stream_url("registry.updates_url", template, stream).ok()
    }
}

/// Whether `registry` (`host` or `host:port`) is on a loopback address.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The credentials for `registry` in an auth file in the format podman
/// and skopeo write (`{"auths": {"host": {"auth": base64("user:password")}}}`),
/// or `None` when it has none for that registry.
fn read_auth_file(path: &Path, registry: &str) -> Result<Option<Credentials>, ConfigError> {
    use base64::Engine;
    #[derive(Deserialize)]
    struct AuthFile {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        auth: Option<String>,
    }
    let key = "registry.auth_file";
    let bad = |message: String| invalid(key, &format!("{}: {message}", path.display()));
    let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let file: AuthFile = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let Some(entry) = file.auths.get(registry) else {
        return Ok(None);
    };
    let Some(auth) = &entry.auth else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            bad(format!(
                "the auth of {registry} is not base64 of user:password"
            ))
        })?;
    let (user, password) = decoded.split_once(':').ok_or_else(|| {
        bad(format!(
            "the auth of {registry} is not base64 of user:password"
        ))
    })?;
    Ok(Some(Credentials {
        user: user.to_string(),
        password: password.to_string(),
    }))
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
    fn registry_settings() {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("auth.json");
        std::fs::write(
            &auth,
            r#"{"auths": {"registry.example.com": {"auth": "bWU6c2VjcmV0"}}}"#,
        )
        .unwrap();
        let text = format!(
            "[streams]\n[registry]\nrepository = \"registry.example.com/me/my-fcos\"\ntags = \"4[0-9]\\\\..*|latest\"\nauth_file = \"{}\"\n",
            auth.display()
        );
        let file: FileConfig = commons::config::parse_toml(&text, "gb.toml").unwrap();
        let settings = Settings::from_file(file).unwrap();
        assert!(settings.streams.is_empty());
        let registry = settings.registry.unwrap();
        assert_eq!(registry.registry, "registry.example.com");
        assert_eq!(registry.name, "me/my-fcos");
        assert!(!registry.plain_http);
        let credentials = registry.credentials.unwrap();
        assert_eq!(
            (credentials.user.as_str(), credentials.password.as_str()),
            ("me", "secret")
        );
        assert!(!format!("{credentials:?}").contains("secret"));
        let tags = registry.tags.unwrap().0;
        assert!(tags.is_match("43.20260105.3.0") && tags.is_match("latest"));
        assert!(!tags.is_match("my-latest"), "anchored");
        assert_eq!(registry.max_requests, DEFAULT_REGISTRY_MAX_REQUESTS);

        let plain = |repository: &str, insecure: &str| {
            let text = format!(
                "[streams]\n[registry]\nrepository = \"{repository}\"\ninsecure = [{insecure}]\n"
            );
            let file: FileConfig = commons::config::parse_toml(&text, "gb.toml").unwrap();
            Settings::from_file(file)
                .unwrap()
                .registry
                .unwrap()
                .plain_http
        };
        assert!(plain("127.0.0.1:5000/a", ""));
        assert!(plain("localhost:5000/a", ""));
        assert!(!plain("quay.io/a", ""));
        assert!(plain("mirror.lan:5000/a", "\"mirror.lan:5000\""));
    }

    #[test]
    fn registry_errors_name_the_key() {
        let parse = |text: &str| {
            commons::config::parse_toml::<FileConfig>(text, "gb.toml")
                .and_then(Settings::from_file)
                .unwrap_err()
                .to_string()
        };
        assert!(parse("[streams]").contains("streams"));
        assert!(parse("[registry]\ntags = \"x\"").contains("registry.repository"));
        assert!(parse("[registry]\nrepository = \"my-fcos\"").contains("registry.repository"));
        assert!(
            parse("[registry]\nrepository = \"r.io/a\"\ntags = \"(\"").contains("registry.tags")
        );
        assert!(
            parse("[registry]\nrepository = \"r.io/a\"\nmax_requests = 0")
                .contains("registry.max_requests")
        );
        assert!(
            parse("[registry]\nrepository = \"r.io/a\"\nstream = \"a b\"")
                .contains("registry.stream")
        );
        assert!(
            parse("[registry]\nrepository = \"r.io/a\"\nupdates_url = \"ftp://x\"")
                .contains("registry.updates_url")
        );
        let missing =
            parse("[registry]\nrepository = \"r.io/a\"\nauth_file = \"/nonexistent/auth.json\"");
        assert!(
            missing.contains("registry.auth_file") && missing.contains("/nonexistent/auth.json"),
            "{missing}"
        );
    }

    #[test]
    fn rollouts_settings() {
        let parse = |text: &str| {
            commons::config::parse_toml::<FileConfig>(text, "gb.toml").and_then(Settings::from_file)
        };
        assert_eq!(Settings::default().rollouts, None);
        let settings = parse("[rollouts]\nurl = \"http://127.0.0.1:9081/v1/rollouts\"\n").unwrap();
        let rollouts = settings.rollouts.unwrap();
        assert_eq!(rollouts.url.as_str(), "http://127.0.0.1:9081/v1/rollouts");
        assert_eq!(
            rollouts.refresh,
            Duration::from_secs(DEFAULT_ROLLOUTS_REFRESH_SECS)
        );
        let error = |text: &str| parse(text).unwrap_err().to_string();
        assert!(error("[rollouts]\nrefresh_secs = 2").contains("rollouts.url"));
        assert!(error("[rollouts]\nurl = \"file:///x\"").contains("rollouts.url"));
        assert!(error("[rollouts]\nurl = \"not a url\"").contains("rollouts.url"));
        assert!(error("[rollouts]\nurl = \"http://a/\"\nrefresh_secs = 0")
            .contains("rollouts.refresh_secs"));
        assert!(error("[rollouts]\nurls = \"http://a/\"").contains("urls"));
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
