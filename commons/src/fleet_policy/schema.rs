//! The fleet policy file as written (every key checked, unknown keys
//! refused) and its checks: a file is turned into a [`Policy`] whole, or
//! refused with a message naming the file, the key and the line.

use super::evaluation::{Freeze, Group, Policy, Window, DAY_NAMES};
use super::guard::Guard;
use crate::config::ConfigError;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use toml::Spanned;

/// The policy file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    fleet: Option<FleetFile>,
    guard: Option<GuardFile>,
    #[serde(default)]
    groups: BTreeMap<String, GroupFile>,
}

/// `[fleet]`: rules for every client, whatever its group: only the rules
/// that remove updates for everyone at once.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    freezes: Vec<Spanned<FreezeFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    wariness_min: Option<Spanned<f64>>,
    wariness_max: Option<Spanned<f64>>,
    #[serde(default)]
    max_version: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    paused: bool,
    windows: Option<Vec<Spanned<WindowFile>>>,
    #[serde(default)]
    freezes: Vec<Spanned<FreezeFile>>,
    guard: Option<GuardFile>,
}

/// `[guard]` or `[groups.NAME.guard]`: thresholds that halt a rollout.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardFile {
    min_nodes: Option<Spanned<u64>>,
    max_rolled_back: Option<Spanned<f64>>,
    max_lost: Option<Spanned<f64>>,
    max_stuck: Option<Spanned<f64>>,
    stuck_after: Option<Spanned<String>>,
    lost_after: Option<Spanned<String>>,
    #[serde(default)]
    resume: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    days: Option<Vec<Spanned<String>>>,
    start: Spanned<String>,
    end: Spanned<String>,
    timezone: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeFile {
    from: Spanned<String>,
    to: Spanned<String>,
    reason: Option<String>,
}

impl Policy {
    /// Reads (see [`super::read`]) and checks a policy file.
    pub fn load(path: &Path, generation: u64) -> Result<Policy, ConfigError> {
        let bytes = super::read(path)?;
        Policy::from_bytes(&bytes, path, generation)
    }

    /// Checks the bytes of a policy file read from `path`.
    pub fn from_bytes(bytes: &[u8], path: &Path, generation: u64) -> Result<Policy, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::Parse {
            path: path.display().to_string(),
            message: "the file is not UTF-8".to_string(),
        })?;
        Policy::parse(text, path, generation)
    }

    /// Parses and checks policy text read from `path`.
    pub fn parse(text: &str, path: &Path, generation: u64) -> Result<Policy, ConfigError> {
        let origin = path.display().to_string();
        let file: PolicyFile = crate::config::parse_toml(text, &origin)?;
        let invalid = |key: String, span: Option<std::ops::Range<usize>>, message: String| {
            let line = span.map(|s| crate::config::line_of(text, s.start));
            ConfigError::Parse {
                path: origin.clone(),
                message: match line {
                    Some(line) => format!("line {line}: {key}: {message}"),
                    None => format!("{key}: {message}"),
                },
            }
        };
        let mut groups = BTreeMap::new();
        // Lower-cased name → the table's name, for tables that differ only
        // in case.
        let mut folded: HashMap<String, String> = HashMap::new();
        for (name, g) in file.groups {
            if let Err(message) = check_group_name(&name) {
                return Err(invalid(format!("groups.{name}"), None, message));
            }
            if let Some(other) = folded.insert(name.to_ascii_lowercase(), name.clone()) {
                return Err(invalid(
                    format!("groups.{name}"),
                    None,
                    format!(
                        "differs from groups.{other} only in case: Zincati sends its group as configured and it is matched exactly, so one of the two tables would apply to nodes that meant the other; keep one spelling"
                    ),
                ));
            }
            let table = format!("groups.{name}");
            groups.insert(name.clone(), check_group(name, &table, g, &invalid)?);
        }
        let fleet = match file.fleet {
            None => None,
            Some(f) => {
                let rules = GroupFile {
                    deny: f.deny,
                    paused: f.paused,
                    freezes: f.freezes,
                    ..GroupFile::default()
                };
                Some(check_group("fleet".into(), "fleet", rules, &invalid)?)
            }
        };
        for (index, group) in groups.values_mut().enumerate() {
            group.index = index;
            if let Some(fleet) = &fleet {
                group.add(fleet);
            }
        }
        let fleet = fleet.map(|fleet| Group {
            index: groups.len(),
            ..fleet
        });
        let guard = match file.guard {
            Some(guard) => Some(check_guard("guard", guard, &invalid)?),
            None => None,
        };
        let mut hasher = siphasher::sip128::SipHasher13::new_with_keys(0, 0);
        std::hash::Hasher::write(&mut hasher, text.as_bytes());
        let hash = siphasher::sip128::Hasher128::finish128(&hasher).as_u128();
        Ok(Policy {
            groups,
            fleet,
            guard,
            source: path.to_path_buf(),
            hash: format!("{:016x}", (hash >> 64) as u64),
            loaded_at: crate::unix_now(),
            generation,
        })
    }

    /// Warnings about versions the graphs being served do not hold (the
    /// rules are kept: the release may not be published yet).
    pub fn version_warnings(&self, versions: &HashMap<String, HashSet<String>>) -> Vec<String> {
        let mut warnings = Vec::new();
        let all: HashSet<&String> = versions.values().flatten().collect();
        for version in self.fleet.iter().flat_map(|fleet| &fleet.deny) {
            if !all.contains(version) {
                warnings.push(format!(
                    "fleet.deny: '{version}' is not in the graphs being served; the rule is kept"
                ));
            }
        }
        let from_fleet = |version: &str| self.fleet.as_ref().is_some_and(|f| f.denies(version));
        for group in self.groups.values() {
            for (stream, version) in &group.max_version {
                if !versions.get(stream).is_some_and(|v| v.contains(version)) {
                    warnings.push(format!(
                        "groups.{}.max_version.{stream}: '{version}' is not in the {stream} graphs being served; the rule is kept, and the group's nodes are held where they are (no update offered) until that release is published",
                        group.name
                    ));
                }
            }
            for version in &group.deny {
                if !all.contains(version) && !from_fleet(version) {
                    warnings.push(format!(
                        "groups.{}.deny: '{version}' is not in the graphs being served; the rule is kept",
                        group.name
                    ));
                }
            }
        }
        warnings
    }
}

/// Checks the rules of one table of the policy file (`table` names it in
/// messages: `groups.NAME` or `fleet`).
fn check_group(
    name: String,
    table: &str,
    g: GroupFile,
    invalid: &dyn Fn(String, Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<Group, ConfigError> {
    let key = |field: &str| format!("{table}.{field}");
    let wariness = |value: &Option<Spanned<f64>>, field: &str, default: f64| match value {
        None => Ok(default),
        Some(v) if (0.0..=1.0).contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err(invalid(
            key(field),
            Some(v.span()),
            format!("{} is not between 0 and 1", v.get_ref()),
        )),
    };
    let wariness_min = wariness(&g.wariness_min, "wariness_min", 0.0)?;
    let wariness_max = wariness(&g.wariness_max, "wariness_max", 1.0)?;
    if wariness_min > wariness_max {
        let span = g.wariness_min.as_ref().map(Spanned::span);
        return Err(invalid(
            key("wariness_min"),
            span,
            format!("{wariness_min} is above wariness_max {wariness_max}"),
        ));
    }
    let mut max_version = BTreeMap::new();
    for (stream, version) in g.max_version {
        if !crate::graph::is_well_formed_name(&stream) || version.get_ref().is_empty() {
            return Err(invalid(
                key(&format!("max_version.{stream}")),
                Some(version.span()),
                "expected stream = \"version\"".into(),
            ));
        }
        max_version.insert(stream, version.into_inner());
    }
    let mut deny = Vec::new();
    for (i, version) in g.deny.into_iter().enumerate() {
        if version.get_ref().is_empty() {
            return Err(invalid(
                key(&format!("deny[{i}]")),
                Some(version.span()),
                "an empty version".into(),
            ));
        }
        deny.push(version.into_inner());
    }
    let windows = match g.windows {
        None => None,
        Some(list) => {
            if list.is_empty() {
                return Err(invalid(
                    key("windows"),
                    None,
                    "an empty list of windows would never open: remove the key, or set paused = true".into(),
                ));
            }
            let mut windows = Vec::new();
            for (i, w) in list.into_iter().enumerate() {
                let at = |field: &str| key(&format!("windows[{i}].{field}"));
                let w = w.into_inner();
                let tz = super::time_zones::get(w.timezone.get_ref()).ok_or_else(|| {
                    invalid(
                        at("timezone"),
                        Some(w.timezone.span()),
                        format!("'{}' is not an IANA time zone", w.timezone.get_ref()),
                    )
                })?;
                let minutes = |t: &Spanned<String>, field: &str| {
                    parse_hh_mm(t.get_ref()).ok_or_else(|| {
                        invalid(
                            at(field),
                            Some(t.span()),
                            format!("'{}' is not a time HH:MM", t.get_ref()),
                        )
                    })
                };
                let (start, end) = (minutes(&w.start, "start")?, minutes(&w.end, "end")?);
                if start == end {
                    return Err(invalid(
                        at("end"),
                        Some(w.end.span()),
                        "a window must not start and end at the same time".into(),
                    ));
                }
                let days = match &w.days {
                    None => [true; 7],
                    Some(names) if names.is_empty() => {
                        return Err(invalid(
                            at("days"),
                            None,
                            "an empty list of days would never open".into(),
                        ))
                    }
                    Some(names) => {
                        let mut days = [false; 7];
                        for day in names {
                            let Some(index) = DAY_NAMES.iter().position(|d| *d == day.get_ref())
                            else {
                                return Err(invalid(
                                    at("days"),
                                    Some(day.span()),
                                    format!(
                                        "'{}' is not one of mon, tue, wed, thu, fri, sat, sun",
                                        day.get_ref()
                                    ),
                                ));
                            };
                            if days[index] {
                                return Err(invalid(
                                    at("days"),
                                    Some(day.span()),
                                    format!("'{}' is listed twice", day.get_ref()),
                                ));
                            }
                            days[index] = true;
                        }
                        days
                    }
                };
                windows.push(Window {
                    days,
                    start,
                    end,
                    timezone: w.timezone.into_inner(),
                    tz,
                });
            }
            Some(windows)
        }
    };
    let mut freezes = Vec::new();
    for (i, f) in g.freezes.into_iter().enumerate() {
        let at = |field: &str| key(&format!("freezes[{i}].{field}"));
        let f = f.into_inner();
        let time = |t: &Spanned<String>, field: &str| {
            t.get_ref()
                .parse::<jiff::Timestamp>()
                .map(|t| t.as_second())
                .map_err(|_| {
                    invalid(
                        at(field),
                        Some(t.span()),
                        format!(
                            "'{}' is not an RFC 3339 time such as 2026-12-20T00:00:00Z",
                            t.get_ref()
                        ),
                    )
                })
        };
        let (from_secs, to_secs) = (time(&f.from, "from")?, time(&f.to, "to")?);
        if from_secs >= to_secs {
            return Err(invalid(
                at("to"),
                Some(f.to.span()),
                "a freeze must end after it starts".into(),
            ));
        }
        freezes.push(Freeze {
            from: f.from.into_inner(),
            to: f.to.into_inner(),
            reason: f.reason.unwrap_or_default(),
            from_secs,
            to_secs,
        });
    }
    let deny_set = deny.iter().cloned().collect();
    let guard = match g.guard {
        Some(guard) => Some(check_guard(&key("guard"), guard, invalid)?),
        None => None,
    };
    Ok(Group {
        name,
        wariness_min,
        wariness_max,
        max_version,
        deny,
        paused: g.paused,
        windows,
        freezes,
        guard,
        deny_set,
        index: 0,
    })
}

/// Checks a guard table (`table` names it in messages: `guard` or
/// `groups.NAME.guard`).
fn check_guard(
    table: &str,
    g: GuardFile,
    invalid: &dyn Fn(String, Option<std::ops::Range<usize>>, String) -> ConfigError,
) -> Result<Guard, ConfigError> {
    let key = |field: &str| format!("{table}.{field}");
    let defaults = Guard::default();
    let fraction = |value: Option<Spanned<f64>>, field: &str, default: f64| match value {
        None => Ok(default),
        Some(v) if (0.0..=1.0).contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err(invalid(
            key(field),
            Some(v.span()),
            format!("{} is not a fraction between 0 and 1", v.get_ref()),
        )),
    };
    let duration = |value: Option<Spanned<String>>, field: &str, default: i64| match value {
        None => Ok(default),
        Some(v) => match v.get_ref().parse::<jiff::SignedDuration>() {
            Ok(d) if d.as_secs() > 0 => Ok(d.as_secs()),
            _ => Err(invalid(
                key(field),
                Some(v.span()),
                format!(
                    "'{}' is not a positive duration such as \"24h\" or \"90m\"",
                    v.get_ref()
                ),
            )),
        },
    };
    let min_nodes = match g.min_nodes {
        None => defaults.min_nodes,
        Some(v) if *v.get_ref() >= 1 => *v.get_ref(),
        Some(v) => {
            return Err(invalid(
                key("min_nodes"),
                Some(v.span()),
                "must be at least 1".into(),
            ))
        }
    };
    let mut resume = Vec::new();
    for (i, version) in g.resume.into_iter().enumerate() {
        if version.get_ref().is_empty() {
            return Err(invalid(
                key(&format!("resume[{i}]")),
                Some(version.span()),
                "an empty version".into(),
            ));
        }
        resume.push(version.into_inner());
    }
    Ok(Guard {
        min_nodes,
        max_rolled_back: fraction(
            g.max_rolled_back,
            "max_rolled_back",
            defaults.max_rolled_back,
        )?,
        max_lost: fraction(g.max_lost, "max_lost", defaults.max_lost)?,
        max_stuck: fraction(g.max_stuck, "max_stuck", defaults.max_stuck)?,
        stuck_after: duration(g.stuck_after, "stuck_after", defaults.stuck_after)?,
        lost_after: duration(g.lost_after, "lost_after", defaults.lost_after)?,
        resume,
    })
}

/// Longest group name.
const MAX_GROUP_NAME: usize = 64;

/// Whether `name` is a group Zincati can send: it accepts only
/// `^[a-zA-Z0-9.-]+$` as `identity.group`, so a table of another name
/// would never apply to any node.
fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_GROUP_NAME {
        return Err(format!("a group name has 1 to {MAX_GROUP_NAME} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(format!(
            "'{name}' is not a group Zincati can send: it accepts only ASCII letters, digits, '.' and '-' (^[a-zA-Z0-9.-]+$)"
        ));
    }
    Ok(())
}

/// Minutes after midnight of `HH:MM`.
fn parse_hh_mm(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet_policy::OTHER;

    fn parse(text: &str) -> Result<Policy, String> {
        Policy::parse(text, Path::new("policy.toml"), 1).map_err(|e| e.to_string())
    }

    #[test]
    fn fleet_takes_only_the_rules_that_hold_everyone_back() {
        for (text, expected) in [
            ("[fleet]\nwariness_min = 0.5\n", "unknown field `wariness_min`"),
            ("[fleet]\nmax_version = { stable = \"1\" }\n", "unknown field `max_version`"),
            (
                "[fleet]\nwindows = [ { start = \"01:00\", end = \"02:00\", timezone = \"UTC\" } ]\n",
                "unknown field `windows`",
            ),
            ("[fleet]\ndeny = [\"\"]\n", "line 2: fleet.deny[0]: an empty version"),
            (
                "[fleet]\nfreezes = [ { from = \"2026-12-21T00:00:00Z\", to = \"2026-12-20T00:00:00Z\" } ]\n",
                "fleet.freezes[0].to: a freeze must end after it starts",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_fleet_version_not_served_is_warned_about_once() {
        let policy =
            parse("[fleet]\ndeny = [\"9\"]\n[groups.a]\n[groups.b]\ndeny = [\"8\"]\n").unwrap();
        let versions = HashMap::from([("stable".to_string(), HashSet::from(["1".to_string()]))]);
        let warnings = policy.version_warnings(&versions);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("fleet.deny: '9'"), "{warnings:?}");
        assert!(
            warnings[1].starts_with("groups.b.deny: '8'"),
            "{warnings:?}"
        );
    }

    #[test]
    fn invalid_files_are_refused_naming_the_key_and_line() {
        for (text, expected) in [
            ("[groups.a]\nwariness_min = 0.9\nwariness_max = 0.1\n", "line 2: groups.a.wariness_min"),
            ("[groups.a]\nwariness_max = 2.0\n", "line 2: groups.a.wariness_max"),
            (
                "[groups.a]\nwindows = [ { start = \"02:00\", end = \"06:00\", timezone = \"Mars/Olympus\" } ]\n",
                "line 2: groups.a.windows[0].timezone",
            ),
            (
                "[groups.a]\nwindows = [ { start = \"2:00\", end = \"06:00\", timezone = \"UTC\" } ]\n",
                "groups.a.windows[0].start",
            ),
            (
                "[groups.a]\nwindows = [ { days = [\"sat\", \"sat\"], start = \"02:00\", end = \"06:00\", timezone = \"UTC\" } ]\n",
                "groups.a.windows[0].days",
            ),
            (
                "[groups.a]\nwindows = [ { days = [\"saturday\"], start = \"02:00\", end = \"06:00\", timezone = \"UTC\" } ]\n",
                "groups.a.windows[0].days",
            ),
            (
                "[groups.a]\nwindows = [ { start = \"02:00\", end = \"02:00\", timezone = \"UTC\" } ]\n",
                "groups.a.windows[0].end",
            ),
            ("[groups.a]\nwindows = []\n", "groups.a.windows"),
            (
                "[groups.a]\n\nfreezes = [ { from = \"2027-01-04T00:00:00Z\", to = \"2026-12-20T00:00:00Z\" } ]\n",
                "line 3: groups.a.freezes[0].to",
            ),
            (
                "[groups.a]\nfreezes = [ { from = \"tomorrow\", to = \"2026-12-20T00:00:00Z\" } ]\n",
                "groups.a.freezes[0].from",
            ),
            ("[groups.a]\npasued = true\n", "unknown field `pasued`"),
            ("[groups.a]\npaused = \"yes\"\n", "line 2"),
            ("[group.a]\n", "unknown field `group`"),
            ("[groups.a]\ndeny = [\"\"]\n", "groups.a.deny[0]"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(
                error.contains(expected) && error.contains("policy.toml"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn group_names_zincati_cannot_send_are_refused_naming_the_table() {
        for (text, expected) in [
            (
                "[groups.\"prod team\"]\npaused = true\n",
                "groups.prod team: 'prod team' is not a group Zincati can send",
            ),
            (
                "[groups.prod_team]\n",
                "groups.prod_team: 'prod_team' is not a group Zincati can send",
            ),
            ("[groups.\"canary/1\"]\n", "groups.canary/1:"),
            ("[groups.\"wé\"]\n", "groups.wé:"),
            ("[groups.\"\"]\n", "a group name has 1 to 64 characters"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(
                error.contains(expected) && error.contains("policy.toml"),
                "{text}: {error}"
            );
        }
        let long = "a".repeat(65);
        assert!(parse(&format!("[groups.{long}]\n"))
            .unwrap_err()
            .contains("1 to 64"));
        // What Zincati accepts loads.
        let policy = parse("[groups.\"web-1.eu\"]\n[groups.A9]\n").unwrap();
        assert!(policy.groups.contains_key("web-1.eu") && policy.groups.contains_key("A9"));
    }

    #[test]
    fn group_tables_that_differ_only_in_case_are_refused() {
        let error = parse("[groups.Production]\npaused = true\n[groups.production]\n").unwrap_err();
        assert!(
            error.contains("groups.production: differs from groups.Production only in case"),
            "{error}"
        );
        // Matching is exact: a group sent in another case gets the default.
        let policy = parse("[groups.production]\npaused = true\n").unwrap();
        assert!(policy.rules_for(Some("Production")).is_none());
        assert_eq!(policy.group_label(Some("Production")), OTHER);
    }

    #[test]
    fn guards_are_read_with_their_defaults_and_checked() {
        let policy = parse(
            "[guard]\nmin_nodes = 50\nstuck_after = \"12h\"\nresume = [\"40.1\"]\n[groups.canary.guard]\nmax_lost = 0.5\nlost_after = \"90m\"\n",
        )
        .unwrap();
        let fleet = policy.guard.unwrap();
        assert_eq!(
            (fleet.min_nodes, fleet.stuck_after, fleet.lost_after),
            (50, 12 * 3600, 3600)
        );
        assert_eq!(fleet.max_rolled_back, 0.02);
        assert!(fleet.resumes("40.1") && !fleet.resumes("40.2"));
        let canary = policy.groups["canary"].guard.clone().unwrap();
        assert_eq!((canary.max_lost, canary.lost_after), (0.5, 5400));
        assert_eq!(parse("").unwrap().guard, None);
        for (text, expected) in [
            (
                "[guard]\nmax_lost = 1.5\n",
                "line 2: guard.max_lost: 1.5 is not a fraction",
            ),
            (
                "[guard]\nstuck_after = \"soon\"\n",
                "line 2: guard.stuck_after: 'soon' is not a positive duration",
            ),
            ("[guard]\nlost_after = \"0s\"\n", "guard.lost_after"),
            (
                "[guard]\nmin_nodes = 0\n",
                "guard.min_nodes: must be at least 1",
            ),
            (
                "[guard]\nresume = [\"\"]\n",
                "guard.resume[0]: an empty version",
            ),
            (
                "[groups.a.guard]\nmax_stuck = -1\n",
                "groups.a.guard.max_stuck",
            ),
            ("[guard]\nmax_stuk = 0.1\n", "unknown field `max_stuk`"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
