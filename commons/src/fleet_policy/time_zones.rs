//! The time zone database the windows of the policy are read with: the
//! system's when present (`$TZDIR`, else `/usr/share/zoneinfo`), so that a
//! time zone update of the host or image needs no rebuild, else the copy
//! built into the binary.

use jiff::tz::{TimeZone, TimeZoneDatabase};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where the system's time zone database is looked for without `TZDIR`.
pub const SYSTEM_DIR: &str = "/usr/share/zoneinfo";

/// Which time zone database is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeZoneSource {
    /// The system's, in this directory.
    System(PathBuf),
    /// The copy built into the binary: the system has none at this
    /// directory.
    Bundled(PathBuf),
}

impl std::fmt::Display for TimeZoneSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeZoneSource::System(dir) => write!(f, "the system's, {}", dir.display()),
            TimeZoneSource::Bundled(dir) => write!(
                f,
                "the copy built in (no time zone database at {})",
                dir.display()
            ),
        }
    }
}

/// The database, opened on first use.
fn database() -> &'static (TimeZoneDatabase, TimeZoneSource) {
    static DATABASE: OnceLock<(TimeZoneDatabase, TimeZoneSource)> = OnceLock::new();
    DATABASE.get_or_init(|| {
        let dir = std::env::var_os("TZDIR")
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| PathBuf::from(SYSTEM_DIR), PathBuf::from);
        match TimeZoneDatabase::from_dir(&dir) {
            Ok(db) if !db.is_definitively_empty() => (db, TimeZoneSource::System(dir)),
            _ => (TimeZoneDatabase::bundled(), TimeZoneSource::Bundled(dir)),
        }
    })
}

/// Which database is in use (opening it if not yet open), to be logged at
/// start.
pub fn source() -> &'static TimeZoneSource {
    &database().1
}

/// The time zone named `name` (an IANA name, matched without regard to
/// case), if the database has it.
pub fn get(name: &str) -> Option<TimeZone> {
    database().0.get(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zones_of_the_windows_are_found() {
        for name in ["Europe/Berlin", "America/New_York", "UTC"] {
            assert!(get(name).is_some(), "{name} in {}", source());
        }
        assert!(get("Mars/Olympus").is_none());
    }
}
