//! The two upstream documents a stream is built from: the release index
//! (`releases.json`) and the updates metadata (`updates/<stream>.json`).
//!
//! Both are parsed leniently where the format grows (unknown fields are
//! ignored) and strictly where a mistake would publish a wrong graph (a
//! missing `stream`, an empty or duplicate version, a document for another
//! stream).

use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// Node metadata key: position of the release in the whole release index.
pub const AGE_INDEX: &str = "org.fedoraproject.coreos.releases.age_index";
/// Node metadata key: payload scheme of the node (`checksum` or `oci`).
pub const SCHEME: &str = "org.fedoraproject.coreos.scheme";
/// Node metadata key: the release is an update barrier.
pub const BARRIER: &str = "org.fedoraproject.coreos.updates.barrier";
/// Node metadata key: why the release is a barrier.
pub const BARRIER_REASON: &str = "org.fedoraproject.coreos.updates.barrier_reason";
/// Node metadata key: the release is a dead-end.
pub const DEADEND: &str = "org.fedoraproject.coreos.updates.deadend";
/// Node metadata key: why the release is a dead-end.
pub const DEADEND_REASON: &str = "org.fedoraproject.coreos.updates.deadend_reason";
/// Node metadata key: the release is being rolled out.
pub const ROLLOUT: &str = "org.fedoraproject.coreos.updates.rollout";
/// Node metadata key: rollout start, seconds since the Unix epoch.
pub const START_EPOCH: &str = "org.fedoraproject.coreos.updates.start_epoch";
/// Node metadata key: rollout share at its start, in [0, 1].
pub const START_VALUE: &str = "org.fedoraproject.coreos.updates.start_value";
/// Node metadata key: rollout duration in minutes.
pub const DURATION: &str = "org.fedoraproject.coreos.updates.duration_minutes";

/// Why an upstream document was rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetadataError {
    /// The document is not JSON of the expected shape.
    #[error("{document} is not valid: {reason}")]
    Malformed {
        /// Which document (`release index` or `updates metadata`).
        document: &'static str,
        /// What the parser reported, with line and column.
        reason: String,
    },
    /// The document describes another stream than the one it was fetched for.
    #[error("{document} is for stream '{found}', expected '{expected}'")]
    WrongStream {
        /// Which document.
        document: &'static str,
        /// The stream the document was fetched for.
        expected: String,
        /// The stream the document names.
        found: String,
    },
    /// A release with an empty version string.
    #[error("release index entry {position} has an empty version")]
    EmptyVersion {
        /// Position of the entry in `releases`.
        position: usize,
    },
    /// The same version twice in the release index.
    #[error("release index lists version '{version}' twice (entries {first} and {second})")]
    DuplicateVersion {
        /// The repeated version.
        version: String,
        /// Position of its first entry.
        first: usize,
        /// Position of its second entry.
        second: usize,
    },
}

impl MetadataError {
    /// A stable machine word for this error, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            MetadataError::Malformed { .. } => "invalid_document",
            MetadataError::WrongStream { .. } => "wrong_stream",
            MetadataError::EmptyVersion { .. } => "empty_version",
            MetadataError::DuplicateVersion { .. } => "duplicate_version",
        }
    }
}

/// The release index of one stream, oldest release first.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ReleaseIndex {
    /// The stream this index describes, when the document says.
    #[serde(default)]
    pub stream: Option<String>,
    /// Releases, oldest first.
    pub releases: Vec<Release>,
}

/// One release of the release index.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Release {
    /// Release version, e.g. `41.20241109.3.0`.
    pub version: String,
    /// OSTree commits, one per architecture; absent on OCI-only releases.
    #[serde(default)]
    pub commits: Option<Vec<Commit>>,
    /// Container images, one per architecture; absent on older releases.
    #[serde(default, rename = "oci-images")]
    pub oci_images: Option<Vec<OciImage>>,
}

/// An OSTree commit of a release for one architecture.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Commit {
    /// Architecture, e.g. `x86_64`.
    pub architecture: String,
    /// OSTree commit checksum.
    #[serde(default)]
    pub checksum: String,
}

/// A container image of a release for one architecture.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct OciImage {
    /// Architecture, e.g. `x86_64`.
    pub architecture: String,
    /// Pullspec by digest, e.g. `quay.io/fedora/fedora-coreos@sha256:…`.
    #[serde(default, rename = "digest-ref")]
    pub digest_ref: String,
}

impl ReleaseIndex {
    /// Parses and validates a release index.
    ///
    /// `expected_stream`, when given, must match the document's own `stream`
    /// (a document without one is accepted).
    pub fn parse(bytes: &[u8], expected_stream: Option<&str>) -> Result<Self, MetadataError> {
        const DOC: &str = "release index";
        let index: ReleaseIndex =
            serde_json::from_slice(bytes).map_err(|e| MetadataError::Malformed {
                document: DOC,
                reason: e.to_string(),
            })?;
        if let (Some(expected), Some(found)) = (expected_stream, index.stream.as_deref()) {
            if expected != found {
                return Err(MetadataError::WrongStream {
                    document: DOC,
                    expected: expected.to_string(),
                    found: found.to_string(),
                });
            }
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(index.releases.len());
        for (position, release) in index.releases.iter().enumerate() {
            if release.version.is_empty() {
                return Err(MetadataError::EmptyVersion { position });
            }
            if let Some(first) = seen.insert(&release.version, position) {
                return Err(MetadataError::DuplicateVersion {
                    version: release.version.clone(),
                    first,
                    second: position,
                });
            }
        }
        Ok(index)
    }

    /// Checks that `repository` names a container repository that
    /// [`Self::replace_oci_repository`] can put in pullspecs, such as
    /// `registry.example.com/fedora-coreos`: lowercase, no scheme, no tag
    /// or digest, no trailing `/`. The error says so.
    pub fn check_oci_repository(repository: &str) -> Result<(), String> {
        let valid = !repository.is_empty()
            && !repository.contains("://")
            && !repository.ends_with('/')
            && repository.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'.' | b'-' | b'_' | b'/' | b':')
            });
        if valid {
            Ok(())
        } else {
            Err(format!(
                "'{repository}' is not a repository such as registry.example.com/fedora-coreos (lowercase, no scheme, no tag or digest)"
            ))
        }
    }

    /// Replaces the repository of every container image by `repository`
    /// (a mirror), keeping its digest: `quay.io/fedora/fedora-coreos@sha256:…`
    /// becomes `<repository>@sha256:…`. A pullspec without a digest is left
    /// as it is.
    pub fn replace_oci_repository(&mut self, repository: &str) {
        for release in &mut self.releases {
            for image in release.oci_images.iter_mut().flatten() {
                if let Some((_, digest)) = image.digest_ref.rsplit_once('@') {
                    image.digest_ref = format!("{repository}@{digest}");
                }
            }
        }
    }

    /// The architectures that appear anywhere in the index, sorted.
    pub fn architectures(&self) -> Vec<String> {
        let mut arches: HashSet<&str> = HashSet::new();
        for release in &self.releases {
            for commit in release.commits.iter().flatten() {
                arches.insert(&commit.architecture);
            }
            for image in release.oci_images.iter().flatten() {
                arches.insert(&image.architecture);
            }
        }
        let mut arches: Vec<String> = arches.into_iter().map(String::from).collect();
        arches.sort();
        arches
    }
}

/// One release read from a container registry rather than from a release
/// index: its version, when it was built, and its image by architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRelease {
    /// Release version (the `org.opencontainers.image.version` label).
    pub version: String,
    /// When the image was built (`org.opencontainers.image.created`, RFC
    /// 3339), when known: orders releases whose versions are not Fedora
    /// CoreOS versions.
    pub created: Option<String>,
    /// Architecture → pullspec by digest.
    pub images: std::collections::BTreeMap<String, String>,
}

/// Whether `digest` is a container image digest as `sha256:` and 64
/// lowercase hexadecimal digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The four numbers of a Fedora CoreOS version, `X.YYYYMMDD.S.N`
/// (`43.20260105.3.0`), when `version` is one.
pub fn fedora_coreos_version(version: &str) -> Option<[u64; 4]> {
    let mut numbers = [0u64; 4];
    let mut parts = version.split('.');
    for (position, slot) in numbers.iter_mut().enumerate() {
        let part = parts.next()?;
        let digits_ok = !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && (position != 1 || part.len() == 8);
        if !digits_ok {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    parts.next().is_none().then_some(numbers)
}

impl ReleaseIndex {
    /// The release index of one stream made from releases read from a
    /// registry, oldest first: by version when every version follows
    /// Fedora CoreOS's `X.YYYYMMDD.S.N`, otherwise by creation time
    /// (releases without one first), then by version.
    pub fn from_image_releases(stream: &str, mut releases: Vec<ImageRelease>) -> ReleaseIndex {
        if releases
            .iter()
            .all(|r| fedora_coreos_version(&r.version).is_some())
        {
            releases.sort_by_key(|r| fedora_coreos_version(&r.version));
        } else {
            let created = |r: &ImageRelease| {
                r.created
                    .as_deref()
                    .and_then(|c| c.parse::<jiff::Timestamp>().ok())
            };
            releases.sort_by(|a, b| {
                created(a)
                    .cmp(&created(b))
                    .then_with(|| a.version.cmp(&b.version))
            });
        }
        ReleaseIndex {
            stream: Some(stream.to_string()),
            releases: releases
                .into_iter()
                .map(|r| Release {
                    version: r.version,
                    commits: None,
                    oci_images: Some(
                        r.images
                            .into_iter()
                            .map(|(architecture, digest_ref)| OciImage {
                                architecture,
                                digest_ref,
                            })
                            .collect(),
                    ),
                })
                .collect(),
        }
    }
}

/// The updates metadata of one stream: barriers, dead-ends and rollouts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct UpdatesMetadata {
    /// The stream this document is for; required (older documents without
    /// it are in a retired format).
    pub stream: String,
    /// Per-release update metadata.
    pub releases: Vec<UpdateEntry>,
}

/// Update metadata of one release.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct UpdateEntry {
    /// The release version this entry applies to.
    pub version: String,
    /// Barrier, dead-end and rollout of the release.
    #[serde(default)]
    pub metadata: UpdateMetadata,
}

/// Barrier, dead-end and rollout of one release; each optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct UpdateMetadata {
    /// Every node must pass through this release.
    #[serde(default)]
    pub barrier: Option<Reason>,
    /// Nodes on this release get no update.
    #[serde(default)]
    pub deadend: Option<Reason>,
    /// The release is offered progressively.
    #[serde(default)]
    pub rollout: Option<Rollout>,
}

/// A reason attached to a barrier or a dead-end, usually a link.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Reason {
    /// Free text or URL; may be empty.
    #[serde(default)]
    pub reason: String,
}

/// Parameters of a progressive rollout; each optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Rollout {
    /// Start, seconds since the Unix epoch.
    #[serde(default)]
    pub start_epoch: Option<i64>,
    /// Share of the fleet offered the release at the start, in [0, 1].
    #[serde(default)]
    pub start_percentage: Option<f64>,
    /// Time to reach the whole fleet.
    #[serde(default)]
    pub duration_minutes: Option<u64>,
}

impl UpdatesMetadata {
    /// Parses and validates an updates metadata document for `expected_stream`
    /// (when given).
    pub fn parse(bytes: &[u8], expected_stream: Option<&str>) -> Result<Self, MetadataError> {
        const DOC: &str = "updates metadata";
        let updates: UpdatesMetadata =
            serde_json::from_slice(bytes).map_err(|e| MetadataError::Malformed {
                document: DOC,
                reason: e.to_string(),
            })?;
        if let Some(expected) = expected_stream {
            if updates.stream != expected {
                return Err(MetadataError::WrongStream {
                    document: DOC,
                    expected: expected.to_string(),
                    found: updates.stream.clone(),
                });
            }
        }
        Ok(updates)
    }

    /// Updates metadata that makes every release of `index` an update
    /// target from every older release: each a rollout that starts fully
    /// rolled out (`start_percentage` 1), no barriers, no dead-ends.
    pub fn fully_rolled_out(index: &ReleaseIndex) -> UpdatesMetadata {
        UpdatesMetadata {
            stream: index.stream.clone().unwrap_or_default(),
            releases: index
                .releases
                .iter()
                .map(|release| UpdateEntry {
                    version: release.version.clone(),
                    metadata: UpdateMetadata {
                        rollout: Some(Rollout {
                            start_percentage: Some(1.0),
                            ..Rollout::default()
                        }),
                        ..UpdateMetadata::default()
                    },
                })
                .collect(),
        }
    }

    /// The update metadata of every version, entries for the same version
    /// merged in document order (a later field replaces an earlier one).
    pub fn by_version(&self) -> HashMap<&str, UpdateMetadata> {
        let mut map: HashMap<&str, UpdateMetadata> = HashMap::with_capacity(self.releases.len());
        for entry in &self.releases {
            let merged = map.entry(entry.version.as_str()).or_default();
            if let Some(barrier) = &entry.metadata.barrier {
                merged.barrier = Some(barrier.clone());
            }
            if let Some(deadend) = &entry.metadata.deadend {
                merged.deadend = Some(deadend.clone());
            }
            if let Some(rollout) = &entry.metadata.rollout {
                merged.rollout = Some(rollout.clone());
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_index_accepts_unknown_fields_and_missing_lists() {
        let doc = br#"{"stream":"stable","note":"x","metadata":{"last-modified":"now"},
            "releases":[{"version":"1","metadata":"u"},
                        {"version":"2","commits":[{"architecture":"x86_64","checksum":"c"}],
                         "oci-images":[{"architecture":"x86_64","image":"q","digest-ref":"q@sha256:1"}]}]}"#;
        let index = ReleaseIndex::parse(doc, Some("stable")).unwrap();
        assert_eq!(index.releases.len(), 2);
        assert_eq!(index.releases[0].commits, None);
        assert_eq!(index.architectures(), vec!["x86_64".to_string()]);
    }

    #[test]
    fn release_index_rejects_duplicate_and_empty_versions() {
        let dup = br#"{"releases":[{"version":"1"},{"version":"2"},{"version":"1"}]}"#;
        let err = ReleaseIndex::parse(dup, None).unwrap_err();
        assert_eq!(err.kind(), "duplicate_version");
        assert!(
            err.to_string().contains("'1' twice (entries 0 and 2)"),
            "{err}"
        );
        let empty = br#"{"releases":[{"version":""}]}"#;
        assert_eq!(
            ReleaseIndex::parse(empty, None).unwrap_err(),
            MetadataError::EmptyVersion { position: 0 }
        );
    }

    #[test]
    fn release_index_rejects_another_stream() {
        let doc = br#"{"stream":"next","releases":[]}"#;
        let err = ReleaseIndex::parse(doc, Some("stable")).unwrap_err();
        assert_eq!(err.kind(), "wrong_stream");
    }

    #[test]
    fn updates_require_stream_and_reject_old_format() {
        let old = br#"{"updates":{"barriers":[],"deadends":[],"rollouts":[]}}"#;
        let err = UpdatesMetadata::parse(old, Some("testing")).unwrap_err();
        assert_eq!(err.kind(), "invalid_document");
        assert!(err.to_string().contains("missing field `stream`"), "{err}");
        let other = br#"{"stream":"next","releases":[]}"#;
        assert_eq!(
            UpdatesMetadata::parse(other, Some("stable"))
                .unwrap_err()
                .kind(),
            "wrong_stream"
        );
    }

    fn image_release(version: &str, created: Option<&str>) -> ImageRelease {
        ImageRelease {
            version: version.to_string(),
            created: created.map(String::from),
            images: [("x86_64".to_string(), format!("r@sha256:{version}"))].into(),
        }
    }

    #[test]
    fn image_releases_order_by_fedora_coreos_version_then_by_creation() {
        assert_eq!(
            fedora_coreos_version("43.20260105.3.10"),
            Some([43, 20260105, 3, 10])
        );
        for not_one in [
            "43.2026015.3.0",
            "43.20260105.3",
            "43.20260105.3.0.1",
            "v43.20260105.3.0",
            "latest",
        ] {
            assert_eq!(fedora_coreos_version(not_one), None, "{not_one}");
        }
        // 9 < 10 as numbers, not as text; creation times are ignored.
        let index = ReleaseIndex::from_image_releases(
            "s",
            vec![
                image_release("43.20260105.3.10", Some("2020-01-01T00:00:00Z")),
                image_release("43.20260105.3.9", Some("2030-01-01T00:00:00Z")),
            ],
        );
        let versions: Vec<&str> = index.releases.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(versions, ["43.20260105.3.9", "43.20260105.3.10"]);
        // One version outside the scheme: all by creation time.
        let index = ReleaseIndex::from_image_releases(
            "s",
            vec![
                image_release("b", Some("2026-01-02T00:00:00Z")),
                image_release("43.20260105.3.0", Some("2026-01-03T00:00:00+01:00")),
                image_release("a", Some("2026-01-02T23:30:00Z")),
            ],
        );
        let versions: Vec<&str> = index.releases.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(versions, ["b", "43.20260105.3.0", "a"]);
        assert_eq!(
            index.releases[0].oci_images.as_ref().unwrap()[0].digest_ref,
            "r@sha256:b"
        );
    }

    #[test]
    fn fully_rolled_out_makes_every_release_a_complete_rollout() {
        let index = ReleaseIndex::from_image_releases(
            "s",
            vec![image_release("1", None), image_release("2", None)],
        );
        let updates = UpdatesMetadata::fully_rolled_out(&index);
        assert_eq!(updates.stream, "s");
        let merged = updates.by_version();
        for version in ["1", "2"] {
            let rollout = merged[version].rollout.as_ref().unwrap();
            assert_eq!(rollout.start_percentage, Some(1.0));
            assert!(merged[version].barrier.is_none() && merged[version].deadend.is_none());
        }
    }

    #[test]
    fn updates_merge_repeated_versions() {
        let doc = br#"{"stream":"s","releases":[
            {"version":"1","metadata":{"barrier":{"reason":"a"}}},
            {"version":"1","metadata":{"deadend":{}}},
            {"version":"2","metadata":{"rollout":{"start_percentage":0}}}]}"#;
        let updates = UpdatesMetadata::parse(doc, Some("s")).unwrap();
        let merged = updates.by_version();
        assert_eq!(merged["1"].barrier.as_ref().unwrap().reason, "a");
        assert_eq!(merged["1"].deadend.as_ref().unwrap().reason, "");
        assert_eq!(
            merged["2"].rollout.as_ref().unwrap().start_percentage,
            Some(0.0)
        );
    }
}
