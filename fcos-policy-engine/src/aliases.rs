//! Known container digest aliases: releases whose boot images shipped with
//! a different digest ("bad") than the one published in the release index
//! ("good") for the same version and architecture. Nodes booted from such
//! an image ask with the bad pullspec; they are shown their own pullspec on
//! their release's node so that they find themselves and update normally.
//!
//! The table is JSON: `{"<version>": {"<arch>": {"good": "sha256:…", "bad": "sha256:…"}}}`.

use commons::config::ConfigError;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The good and bad digests of one release and architecture.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    /// The digest in the release index.
    pub good: String,
    /// The digest the boot images carry.
    pub bad: String,
}

/// The digest alias table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DigestAliases {
    /// version → arch → alias.
    table: HashMap<String, HashMap<String, Alias>>,
}

impl DigestAliases {
    /// Reads and checks the table; every error names the file and the entry.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and checks a table.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let table: HashMap<String, HashMap<String, Alias>> =
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        for (version, arches) in &table {
            for (arch, alias) in arches {
                for (name, digest) in [("good", &alias.good), ("bad", &alias.bad)] {
                    if !commons::metadata::is_sha256_digest(digest) {
                        return Err(format!(
                            "{version}.{arch}.{name}: '{digest}' is not a digest of the form sha256:<64 lowercase hex digits>"
                        ));
                    }
                }
                if alias.good == alias.bad {
                    return Err(format!(
                        "{version}.{arch}: the good and bad digests are the same"
                    ));
                }
            }
        }
        Ok(DigestAliases { table })
    }

    /// Number of (version, arch) entries.
    pub fn len(&self) -> usize {
        self.table.values().map(HashMap::len).sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a client on `version`/`arch` asking with `client_pullspec`
    /// booted from the bad image of the release whose published pullspec is
    /// `published`: same repository, the bad digest instead of the good one.
    pub fn is_bad_image(
        &self,
        version: &str,
        arch: &str,
        published: &str,
        client_pullspec: &str,
    ) -> bool {
        let Some(alias) = self.table.get(version).and_then(|a| a.get(arch)) else {
            return false;
        };
        let Some((repository, digest)) = published.rsplit_once('@') else {
            return false;
        };
        digest == alias.good
            && client_pullspec
                .strip_prefix(repository)
                .and_then(|rest| rest.strip_prefix('@'))
                == Some(alias.bad.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const BAD: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn table() -> DigestAliases {
        DigestAliases::parse(
            format!(r#"{{"41.1": {{"x86_64": {{"good": "{GOOD}", "bad": "{BAD}"}}}}}}"#).as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn recognizes_the_bad_image_only() {
        let aliases = table();
        assert_eq!(aliases.len(), 1);
        let published = format!("quay.io/fedora/fedora-coreos@{GOOD}");
        let bad = format!("quay.io/fedora/fedora-coreos@{BAD}");
        assert!(aliases.is_bad_image("41.1", "x86_64", &published, &bad));
        assert!(!aliases.is_bad_image("41.1", "x86_64", &published, &published));
        assert!(!aliases.is_bad_image("41.1", "aarch64", &published, &bad));
        assert!(!aliases.is_bad_image("41.2", "x86_64", &published, &bad));
        assert!(!aliases.is_bad_image(
            "41.1",
            "x86_64",
            &published,
            &format!("quay.io/other@{BAD}")
        ));
        // A table whose good digest is not the published one does not apply.
        let other = format!("quay.io/fedora/fedora-coreos@sha256:{}", "3".repeat(64));
        assert!(!aliases.is_bad_image("41.1", "x86_64", &other, &bad));
    }

    #[test]
    fn rejects_malformed_tables() {
        assert!(DigestAliases::parse(b"[]").is_err());
        let short = br#"{"41.1": {"x86_64": {"good": "sha256:12", "bad": "sha256:34"}}}"#;
        assert!(DigestAliases::parse(short)
            .unwrap_err()
            .contains("41.1.x86_64.good"));
        let extra =
            format!(r#"{{"41.1": {{"x86_64": {{"good": "{GOOD}", "bad": "{BAD}", "ugly": 1}}}}}}"#);
        assert!(DigestAliases::parse(extra.as_bytes())
            .unwrap_err()
            .contains("ugly"));
    }
}
