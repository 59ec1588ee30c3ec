//! Configuration pieces both services share: the stages a configuration
//! goes through ([`ServiceSettings`]: the TOML file as written, unknown keys
//! rejected, then defaults applied and values checked), the
//! `[service]`/`[status]` listener sections ([`Ports`]), and checks of
//! single values that name their key.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// A service's validated settings, made from its configuration file.
pub trait ServiceSettings: Sized {
    /// The file as written: every key optional, unknown keys rejected.
    type File: DeserializeOwned + Default;

    /// Applies defaults and validates; an error names the key.
    fn from_file(file: Self::File) -> Result<Self, ConfigError>;

    /// Reads, defaults and validates a configuration file.
    fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_file(read_toml(path)?)
    }

    /// The production defaults: the settings without a file.
    fn production() -> Self {
        Self::from_file(Self::File::default()).expect("the defaults are valid")
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read configuration file {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape (the message names
    /// the key and line).
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A file that is read while serving cannot be used: the message says
    /// why (the operating system's error, not a regular file, too large).
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A value is out of its allowed range.
    #[error("invalid configuration: {key}: {message}")]
    Invalid {
        /// Dotted key, e.g. `upstream.refresh_secs`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// What is wrong, without the file's path: for a page that may show
    /// why a file was refused but not where it lives.
    pub fn reason(&self) -> String {
        match self {
            ConfigError::Read { source, .. } => format!("cannot read the file: {source}"),
            ConfigError::Parse { message, .. } => message.clone(),
            ConfigError::Unreadable { reason, .. } => format!("cannot read the file: {reason}"),
            ConfigError::Invalid { key, message } => format!("{key}: {message}"),
        }
    }
}

/// Reads and parses a TOML configuration file.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_toml(&text, &path.display().to_string())
}

/// The line (from 1) of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses TOML text; `origin` names it in errors.
pub fn parse_toml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map(|span| line_of(text, span.start));
        ConfigError::Parse {
            path: origin.to_string(),
            message: match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_string(),
            },
        }
    })
}

/// A `[service]` or `[status]` section as written in the file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    /// Address to listen on.
    pub address: Option<IpAddr>,
    /// Port to listen on.
    pub port: Option<u16>,
    /// Origins allowed by CORS (service section only).
    pub origin_allowlist: Option<Vec<String>>,
    /// Connections kept open at most (service section only); absent: from
    /// the process's descriptor and memory limits.
    pub max_connections: Option<usize>,
}

impl ListenerFile {
    /// The socket address, with `0.0.0.0` and `default_port` as defaults.
    pub fn socket_addr(&self, default_port: u16) -> SocketAddr {
        SocketAddr::new(
            self.address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            self.port.unwrap_or(default_port),
        )
    }

    /// The `origin_allowlist`, each entry checked to be an origin
    /// (`scheme://host[:port]`, as browsers send it).
    pub fn checked_allowlist(&self, section: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(origins) = &self.origin_allowlist else {
            return Ok(None);
        };
        for (i, origin) in origins.iter().enumerate() {
            let valid = url::Url::parse(origin).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.origin().ascii_serialization() == *origin
            });
            if !valid {
                return Err(ConfigError::Invalid {
                    key: format!("{section}.origin_allowlist[{i}]"),
                    message: format!(
                        "'{origin}' is not an origin: expected scheme://host[:port], with no path or trailing slash"
                    ),
                });
            }
        }
        Ok(Some(origins.clone()))
    }

    /// Rejects the keys only the `[service]` section takes
    /// (`origin_allowlist`, `max_connections`) in `section`.
    pub fn reject_service_keys(&self, section: &str) -> Result<(), ConfigError> {
        let only_service = |key: &str| {
            Err(ConfigError::Invalid {
                key: format!("{section}.{key}"),
                message: format!("only the [service] section takes {key}"),
            })
        };
        if self.origin_allowlist.is_some() {
            return only_service("origin_allowlist");
        }
        if self.max_connections.is_some() {
            return only_service("max_connections");
        }
        Ok(())
    }
}

/// The two ports of a service, from its `[service]` and `[status]`
/// sections.
#[derive(Debug, Clone, PartialEq)]
pub struct Ports {
    /// The service port.
    pub service_addr: SocketAddr,
    /// CORS origins of the service port; `None` allows any.
    pub origin_allowlist: Option<Vec<String>>,
    /// The status port (metrics, health).
    pub status_addr: SocketAddr,
    /// Connections the service port keeps open at most, when set.
    pub max_connections: Option<usize>,
}

impl Ports {
    /// The ports of `service` and `status` (absent: every default), on
    /// `0.0.0.0` and the default ports unless set. Only `[service]` takes
    /// an origin allowlist.
    pub fn from_sections(
        service: &ListenerFile,
        status: Option<&ListenerFile>,
        default_service_port: u16,
        default_status_port: u16,
    ) -> Result<Ports, ConfigError> {
        let status = status.cloned().unwrap_or_default();
        status.reject_service_keys("status")?;
        let max_connections = service
            .max_connections
            .map(|max| at_least_one("service.max_connections", Some(max), max))
            .transpose()?;
        Ok(Ports {
            service_addr: service.socket_addr(default_service_port),
            origin_allowlist: service.checked_allowlist("service")?,
            status_addr: status.socket_addr(default_status_port),
            max_connections,
        })
    }
}

/// A count or size that must be at least 1.
pub fn at_least_one<T>(key: &str, value: Option<T>, default: T) -> Result<T, ConfigError>
where
    T: Copy + PartialEq + From<u8>,
{
    match value.unwrap_or(default) {
        zero if zero == T::from(0) => Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "must be at least 1".to_string(),
        }),
        value => Ok(value),
    }
}

/// A number of seconds that must be at least 1.
pub fn positive_secs(
    key: &str,
    value: Option<u64>,
    default: u64,
) -> Result<std::time::Duration, ConfigError> {
    match value.unwrap_or(default) {
        0 => Err(ConfigError::Invalid {
            key: key.to_string(),
            message: "must be at least 1 second".to_string(),
        }),
        secs => Ok(std::time::Duration::from_secs(secs)),
    }
}

/// A directory the service can write to: it must exist (the service does
/// not create it) and accept a new file.
pub fn writable_dir(key: &str, dir: std::path::PathBuf) -> Result<std::path::PathBuf, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        key: key.to_string(),
        message,
    };
    if !dir.is_dir() {
        return Err(invalid(format!(
            "{} does not exist or is not a directory",
            dir.display()
        )));
    }
    let probe = dir.join(format!(".write-check-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| invalid(format!("cannot write in {}: {e}", dir.display())))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        service: Option<ListenerFile>,
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse_toml::<Sample>("[service]\nprot = 1\n", "x.toml").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("x.toml") && text.contains("prot"), "{text}");
    }

    #[test]
    fn defaults_apply() {
        let listener = ListenerFile::default();
        assert_eq!(listener.socket_addr(8080).to_string(), "0.0.0.0:8080");
        assert!(positive_secs("a.b", Some(0), 3).is_err());
        assert_eq!(at_least_one("a.b", None, 7u64).unwrap(), 7);
        assert_eq!(at_least_one("a.b", Some(2usize), 7).unwrap(), 2);
        let zero = at_least_one("a.b", Some(0u64), 7).unwrap_err().to_string();
        assert_eq!(zero, "invalid configuration: a.b: must be at least 1");
    }

    #[test]
    fn ports_take_defaults_and_name_the_key() {
        let ports = Ports::from_sections(&ListenerFile::default(), None, 8080, 9080).unwrap();
        assert_eq!(ports.service_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(ports.status_addr.to_string(), "0.0.0.0:9080");
        assert_eq!(ports.origin_allowlist, None);
        let sample: Sample =
            parse_toml("[service]\naddress = \"127.0.0.1\"\nport = 1\norigin_allowlist = [\"https://a.example\"]\n", "x.toml")
                .unwrap();
        let service = sample.service.unwrap();
        let ports = Ports::from_sections(&service, None, 8080, 9080).unwrap();
        assert_eq!(ports.service_addr.to_string(), "127.0.0.1:1");
        assert_eq!(
            ports.origin_allowlist.as_deref(),
            Some(&["https://a.example".to_string()][..])
        );
        // The status port takes no allowlist; the service port's are origins.
        let refused = Ports::from_sections(&ListenerFile::default(), Some(&service), 8080, 9080);
        assert!(refused
            .unwrap_err()
            .to_string()
            .contains("status.origin_allowlist"));
        let path = ListenerFile {
            origin_allowlist: Some(vec!["https://a.example/x".to_string()]),
            ..ListenerFile::default()
        };
        let refused = Ports::from_sections(&path, None, 8080, 9080);
        assert!(refused
            .unwrap_err()
            .to_string()
            .contains("service.origin_allowlist[0]"));
    }

    #[test]
    fn max_connections_is_the_service_ports_and_at_least_one() {
        let set = |max| ListenerFile {
            max_connections: Some(max),
            ..ListenerFile::default()
        };
        let ports = Ports::from_sections(&set(300), None, 8080, 9080).unwrap();
        assert_eq!(ports.max_connections, Some(300));
        let unset = Ports::from_sections(&ListenerFile::default(), None, 8080, 9080).unwrap();
        assert_eq!(unset.max_connections, None);
        let zero = Ports::from_sections(&set(0), None, 8080, 9080).unwrap_err();
        assert!(
            zero.to_string().contains("service.max_connections"),
            "{zero}"
        );
        let status = Ports::from_sections(&ListenerFile::default(), Some(&set(10)), 8080, 9080);
        assert!(status
            .unwrap_err()
            .to_string()
            .contains("status.max_connections"));
    }
}
