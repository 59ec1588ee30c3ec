//! What the fleet policy does to a client at a given time: the rules of
//! each group (`[groups.NAME]`, with those of `[fleet]` added), which
//! group's rules a client gets, whether a group is closed (paused, outside
//! every maintenance window, inside a freeze) and when its windows open.
//!
//! A rule only ever removes edges from the view a client would get without
//! it: it never adds an edge, a node or a payload, so a node always finds
//! itself in the graph. `paused`, being outside every maintenance window
//! and being inside a freeze remove every edge; `deny` and `max_version`
//! remove the edges into some releases; `wariness_min`/`wariness_max` clamp
//! the client's rollout wariness (which can only hide more or fewer of the
//! rollouts Fedora has in progress, as the wariness itself does).

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

/// Label of the groups the file does not name, in metrics.
pub const OTHER: &str = "other";

/// Why a policy withholds an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The group is paused.
    Paused,
    /// Outside every maintenance window.
    Window,
    /// Inside a freeze.
    Freeze,
    /// The target is newer than the group's maximum version.
    MaxVersion,
    /// The target is denied.
    Deny,
    /// The target's rollout was halted by a guard.
    Halted,
}

impl Reason {
    /// Every reason, in metric label order.
    pub const ALL: [Reason; 6] = [
        Reason::Paused,
        Reason::Window,
        Reason::Freeze,
        Reason::MaxVersion,
        Reason::Deny,
        Reason::Halted,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Paused => "paused",
            Reason::Window => "window",
            Reason::Freeze => "freeze",
            Reason::MaxVersion => "max_version",
            Reason::Deny => "deny",
            Reason::Halted => "halted",
        }
    }
}

/// A maintenance window: on `days`, from `start` to `end` (minutes after
/// local midnight in `timezone`; `end` before `start` wraps past
/// midnight into the next day).
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Days the window opens, Monday first.
    #[serde(serialize_with = "serialize_days")]
    pub days: [bool; 7],
    /// Opening, in minutes after midnight.
    #[serde(serialize_with = "serialize_minutes")]
    pub start: u16,
    /// Closing, in minutes after midnight.
    #[serde(serialize_with = "serialize_minutes")]
    pub end: u16,
    /// IANA time zone name.
    pub timezone: String,
    #[serde(skip)]
    pub(super) tz: TimeZone,
}

pub(super) const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn serialize_days<S: serde::Serializer>(days: &[bool; 7], s: S) -> Result<S::Ok, S::Error> {
    let names: Vec<&str> = DAY_NAMES
        .iter()
        .zip(days)
        .filter(|(_, on)| **on)
        .map(|(name, _)| *name)
        .collect();
    names.serialize(s)
}

fn serialize_minutes<S: serde::Serializer>(minutes: &u16, s: S) -> Result<S::Ok, S::Error> {
    format!("{:02}:{:02}", minutes / 60, minutes % 60).serialize(s)
}

fn day_index(day: Weekday) -> usize {
    day.to_monday_zero_offset() as usize
}

impl Window {
    /// Whether the window is open at `now` (seconds since the epoch): it
    /// opened on one of its days (today or, wrapping past midnight,
    /// yesterday, local time) at most its length ago. See
    /// [`Window::opening`] for days the clocks change.
    pub fn is_open(&self, now: i64) -> bool {
        #[cfg(test)]
        tests::OPEN_CHECKS.with(|checks| checks.set(checks.get() + 1));
        let Ok(timestamp) = jiff::Timestamp::from_second(now) else {
            return false;
        };
        let today = timestamp.to_zoned_datetime(self.tz.clone()).date();
        let length = self.length();
        [today.yesterday().ok(), Some(today)]
            .into_iter()
            .flatten()
            .filter(|date| self.days[day_index(date.weekday())])
            .filter_map(|date| self.opening(date))
            .any(|open| (open..open + length).contains(&now))
    }

    /// The local dates whose openings can matter between `from` and
    /// `until`: from the day before `from`'s to `until`'s.
    fn dates(&self, from: i64, until: i64) -> Vec<jiff::civil::Date> {
        let date = |t: i64| {
            jiff::Timestamp::from_second(t)
                .ok()
                .map(|t| t.to_zoned_datetime(self.tz.clone()).date())
        };
        let (Some(first), Some(last)) = (date(from).and_then(|d| d.yesterday().ok()), date(until))
        else {
            return Vec::new();
        };
        first
            .series(jiff::Span::new().days(1))
            .take_while(|d| *d <= last)
            .collect()
    }

    /// The window's openings between `from` and `until` (and a day around).
    fn openings(&self, from: i64, until: i64) -> Vec<i64> {
        self.dates(from, until)
            .into_iter()
            .filter(|date| self.days[day_index(date.weekday())])
            .filter_map(|date| self.opening(date))
            .collect()
    }

    /// The instants between `from` and `until` (and a day around) at which
    /// whether the window is open may change: its openings, its closings,
    /// local midnights and the clock changes of its time zone (the local
    /// date, which says which openings count, moves only at those).
    fn changes(&self, from: i64, until: i64) -> Vec<i64> {
        let length = self.length();
        let mut instants: Vec<i64> = jiff::Timestamp::from_second(from)
            .map(|from| {
                self.tz
                    .following(from)
                    .map(|change| change.timestamp().as_second())
                    .take_while(|t| *t < until)
                    .collect()
            })
            .unwrap_or_default();
        for date in self.dates(from, until) {
            if let Ok(midnight) = date.to_zoned_datetime(self.tz.clone()) {
                instants.push(midnight.timestamp().as_second());
            }
            if self.days[day_index(date.weekday())] {
                if let Some(open) = self.opening(date) {
                    instants.extend([open, open + length]);
                }
            }
        }
        instants
    }

    /// How long the window stays open, in seconds.
    fn length(&self) -> i64 {
        i64::from((self.end + 24 * 60 - self.start) % (24 * 60)) * 60
    }

    /// When the window opens on `date` (seconds since the epoch): at its
    /// start, local time. A window lasts its wall-clock length (`end`
    /// minus `start`) whatever the clocks do while it is open. On the day
    /// the clocks go forward, a start they skip (02:30 where 02:00 becomes
    /// 03:00) opens at the first instant after it, the change itself; on
    /// the day they go back, a start that happens twice opens the first
    /// time.
    fn opening(&self, date: jiff::civil::Date) -> Option<i64> {
        let start = date.at((self.start / 60) as i8, (self.start % 60) as i8, 0, 0);
        let ambiguous = self.tz.to_ambiguous_timestamp(start);
        let skipped = matches!(ambiguous.offset(), jiff::tz::AmbiguousOffset::Gap { .. });
        // In a gap, the instant after it; in a fold, the first.
        let at = ambiguous.compatible().ok()?.as_second();
        if !skipped {
            return Some(at);
        }
        let after = jiff::Timestamp::from_second(at + 1).ok()?;
        let change = self.tz.preceding(after).next()?.timestamp().as_second();
        Some(change)
    }
}

/// A freeze: from `from` (included) to `to` (excluded), seconds since the
/// epoch.
#[derive(Debug, Clone, Serialize)]
pub struct Freeze {
    /// Start, RFC 3339.
    pub from: String,
    /// End, RFC 3339.
    pub to: String,
    /// Why, for people.
    pub reason: String,
    #[serde(skip)]
    pub(super) from_secs: i64,
    #[serde(skip)]
    pub(super) to_secs: i64,
}

/// The rules of one group.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Group name, as Zincati sends it.
    pub name: String,
    /// Lowest wariness of the group's clients.
    pub wariness_min: f64,
    /// Highest wariness of the group's clients.
    pub wariness_max: f64,
    /// Stream → newest version the group may update to.
    pub max_version: BTreeMap<String, String>,
    /// Versions the group never updates to.
    pub deny: Vec<String>,
    /// No updates at all.
    pub paused: bool,
    /// Maintenance windows; `None`: always open.
    pub windows: Option<Vec<Window>>,
    /// Freezes.
    pub freezes: Vec<Freeze>,
    /// `[groups.NAME.guard]`: thresholds on the outcomes of the group's
    /// nodes that halt a rollout for the group.
    pub guard: Option<super::Guard>,
    #[serde(skip)]
    pub(super) deny_set: HashSet<String>,
    /// Position of the group in the policy (for cached views).
    #[serde(skip)]
    pub index: usize,
}

impl Group {
    /// The wariness of a client of `wariness` in this group.
    pub fn clamp(&self, wariness: f64) -> f64 {
        wariness.clamp(self.wariness_min, self.wariness_max)
    }

    /// Why the group gets no update at all at `now`, if it does not.
    pub fn closed_at(&self, now: i64) -> Option<Reason> {
        if self.paused {
            return Some(Reason::Paused);
        }
        if self
            .freezes
            .iter()
            .any(|f| (f.from_secs..f.to_secs).contains(&now))
        {
            return Some(Reason::Freeze);
        }
        match &self.windows {
            Some(windows) if !windows.iter().any(|w| w.is_open(now)) => Some(Reason::Window),
            _ => None,
        }
    }

    /// The freeze in force at `now`, if any.
    pub fn freeze_at(&self, now: i64) -> Option<&Freeze> {
        self.freezes
            .iter()
            .find(|f| (f.from_secs..f.to_secs).contains(&now))
    }

    /// Whether the group withholds releases of `stream` by version.
    pub fn has_targets(&self, stream: &str) -> bool {
        !self.deny_set.is_empty() || self.max_version.contains_key(stream)
    }

    /// The newest version of `stream` the group may update to.
    pub fn max_version(&self, stream: &str) -> Option<&str> {
        self.max_version.get(stream).map(String::as_str)
    }

    /// Whether `version` is denied.
    pub fn denies(&self, version: &str) -> bool {
        self.deny_set.contains(version)
    }

    /// Adds the rules of `[fleet]` to the group's own: its denied
    /// versions, its pause, its freezes.
    pub(super) fn add(&mut self, fleet: &Group) {
        self.paused |= fleet.paused;
        for version in &fleet.deny {
            if self.deny_set.insert(version.clone()) {
                self.deny.push(version.clone());
            }
        }
        for freeze in &fleet.freezes {
            let same = |f: &&Freeze| {
                (f.from_secs, f.to_secs, &f.reason)
                    == (freeze.from_secs, freeze.to_secs, &freeze.reason)
            };
            if !self.freezes.iter().any(|f| same(&f)) {
                self.freezes.push(freeze.clone());
            }
        }
    }

    /// The first minute after `now`, within a week, at which one of the
    /// group's windows is open (`None` without windows, or when none opens
    /// within a week).
    ///
    /// Computed from the windows' openings: a window that is closed at one
    /// minute and open at the next opened in between, so the answer is the
    /// first minute after `now`, or the first minute at or after an
    /// opening, at which a window is open. A few dozen instants are
    /// checked, not the 10,080 minutes of the week.
    pub fn next_window(&self, now: i64) -> Option<i64> {
        let windows = self.windows.as_ref()?;
        let open = |t: i64| windows.iter().any(|w| w.is_open(t));
        candidate_minutes(now, windows, Window::openings).find(|t| open(*t))
    }

    /// The first minute after `now`, within a week, when whether one of
    /// the group's windows is open changes (`None` without windows, or
    /// when nothing changes within a week).
    ///
    /// Computed as [`Group::next_window`] is: whether a window is open
    /// changes only at its openings, its closings and local midnights
    /// (when the days it may have opened on move on).
    pub fn window_change_after(&self, now: i64) -> Option<i64> {
        let windows = self.windows.as_ref()?;
        let open = |t: i64| windows.iter().any(|w| w.is_open(t));
        let open_now = open(now);
        candidate_minutes(now, windows, Window::changes).find(|t| open(*t) != open_now)
    }
}

/// Seconds in a week: how far [`Group::next_window`] and
/// [`Group::window_change_after`] look.
const WEEK: i64 = 7 * 24 * 3600;

/// The minutes at which something may happen after `now`, within a week,
/// in order: the first minute after `now`, and the first minute at or after
/// each instant `instants` gives for each of `windows` in that week.
fn candidate_minutes(
    now: i64,
    windows: &[Window],
    instants: fn(&Window, i64, i64) -> Vec<i64>,
) -> impl Iterator<Item = i64> {
    let start = now - now.rem_euclid(60) + 60;
    let end = start + WEEK;
    let mut minutes: Vec<i64> = windows
        .iter()
        .flat_map(|w| instants(w, start, end))
        .map(|t| t + (60 - t.rem_euclid(60)) % 60)
        .filter(|t| (start..end).contains(t))
        .chain([start])
        .collect();
    minutes.sort_unstable();
    minutes.dedup();
    minutes.into_iter()
}

/// A loaded policy: the groups, where it came from, and when.
#[derive(Debug, Serialize)]
pub struct Policy {
    /// The groups, by name, each with the rules of `[fleet]` added.
    pub groups: BTreeMap<String, Group>,
    /// `[fleet]`: the rules every client gets; alone, those of a client
    /// whose group has no table when there is no `[groups.default]`.
    pub fleet: Option<Group>,
    /// `[guard]`: thresholds on the outcomes of every node of a scope (and
    /// of each platform alone) that halt a rollout.
    pub guard: Option<super::Guard>,
    /// The file.
    pub source: PathBuf,
    /// Hash of the file's bytes (hex).
    pub hash: String,
    /// When it was loaded, seconds since the epoch.
    pub loaded_at: i64,
    /// Tells loads apart (for cached views).
    #[serde(skip)]
    pub generation: u64,
}

impl Policy {
    /// The rules of a client of `group`: its table, else `[groups.default]`
    /// (each with `[fleet]`'s added), else `[fleet]`'s, else none.
    pub fn rules_for(&self, group: Option<&str>) -> Option<&Group> {
        group
            .and_then(|g| self.groups.get(g))
            .or_else(|| self.groups.get("default"))
            .or(self.fleet.as_ref())
    }

    /// The bounded metric label of `group`: its name when the file has a
    /// table for it, else [`OTHER`].
    pub fn group_label<'a>(&'a self, group: Option<&str>) -> &'a str {
        match group.and_then(|g| self.groups.get_key_value(g)) {
            Some((name, _)) => name,
            None => OTHER,
        }
    }
}

/// Platforms Fedora CoreOS documents (Ignition platform IDs); others count
/// as [`OTHER`] in metrics.
pub const PLATFORMS: &[&str] = &[
    "akamai",
    "aliyun",
    "applehv",
    "aws",
    "azure",
    "azurestack",
    "digitalocean",
    "exoscale",
    "gcp",
    "hetzner",
    "hyperv",
    "ibmcloud",
    "kubevirt",
    "metal",
    "nutanix",
    "openstack",
    "oraclecloud",
    "powervs",
    "proxmoxve",
    "qemu",
    "scaleway",
    "upcloud",
    "virtualbox",
    "vmware",
    "vultr",
];

/// The bounded metric label of `platform`.
pub fn platform_label(platform: Option<&str>) -> &'static str {
    platform
        .and_then(|p| PLATFORMS.iter().find(|known| **known == p))
        .copied()
        .unwrap_or(OTHER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    thread_local! {
        /// Calls of [`Window::is_open`] on this thread.
        pub(super) static OPEN_CHECKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// The calls of [`Window::is_open`] that `f` makes.
    fn open_checks(f: impl FnOnce()) -> u64 {
        let before = OPEN_CHECKS.with(|c| c.get());
        f();
        OPEN_CHECKS.with(|c| c.get()) - before
    }

    fn parse(text: &str) -> Result<Policy, String> {
        Policy::parse(text, Path::new("policy.toml"), 1).map_err(|e| e.to_string())
    }

    /// Seconds since the epoch of an RFC 3339 time.
    fn at(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    #[test]
    fn the_documented_example_loads() {
        let policy = parse(
            r#"
[groups.canary]
wariness_max = 0.0

[groups.production]
wariness_min = 0.8
max_version = { stable = "44.20260621.3.1" }
deny = ["44.20260707.3.1"]
paused = false
windows = [ { days = ["sat", "sun"], start = "02:00", end = "06:00", timezone = "Europe/Berlin" } ]
freezes = [ { from = "2026-12-20T00:00:00Z", to = "2027-01-04T00:00:00Z", reason = "holiday freeze" } ]
"#,
        )
        .unwrap();
        let canary = policy.rules_for(Some("canary")).unwrap();
        assert_eq!(canary.clamp(0.7), 0.0);
        let production = policy.rules_for(Some("production")).unwrap();
        assert_eq!(production.clamp(0.1), 0.8);
        assert!(production.denies("44.20260707.3.1"));
        assert_eq!(production.max_version("stable"), Some("44.20260621.3.1"));
        assert!(policy.rules_for(Some("dev")).is_none());
        assert_eq!(policy.group_label(Some("dev")), OTHER);
        assert_eq!(policy.group_label(Some("canary")), "canary");
        // Saturday 2026-11-28, 03:00 in Berlin (UTC+1) is open; 07:00 is not.
        assert_eq!(production.closed_at(at("2026-11-28T02:00:00Z")), None);
        assert_eq!(
            production.closed_at(at("2026-11-28T06:00:00Z")),
            Some(Reason::Window)
        );
        // The freeze wins over an open window.
        assert_eq!(
            production.closed_at(at("2026-12-26T02:00:00Z")),
            Some(Reason::Freeze)
        );
        assert_eq!(
            production.next_window(at("2026-11-30T12:00:00Z")),
            Some(at("2026-12-05T01:00:00Z"))
        );
    }

    #[test]
    fn fleet_rules_apply_to_every_group() {
        let policy = parse(
            r#"
[fleet]
deny = ["44.20260707.3.1"]
freezes = [ { from = "2026-12-20T00:00:00Z", to = "2026-12-21T00:00:00Z", reason = "release pulled" } ]

[groups.canary]
deny = ["44.20260621.3.1", "44.20260707.3.1"]
freezes = [ { from = "2026-12-20T00:00:00Z", to = "2026-12-21T00:00:00Z", reason = "release pulled" } ]

[groups.production]
wariness_min = 0.8
"#,
        )
        .unwrap();
        let frozen = at("2026-12-20T12:00:00Z");
        for group in ["canary", "production", "a-group-without-a-table"] {
            let rules = policy.rules_for(Some(group)).unwrap();
            assert!(rules.denies("44.20260707.3.1"), "{group}");
            assert!(rules.has_targets("stable"), "{group}");
            assert_eq!(rules.closed_at(frozen), Some(Reason::Freeze), "{group}");
            assert_eq!(rules.freeze_at(frozen).unwrap().reason, "release pulled");
            assert_eq!(rules.closed_at(at("2026-12-21T00:00:00Z")), None, "{group}");
        }
        let canary = policy.rules_for(Some("canary")).unwrap();
        assert_eq!(canary.deny, ["44.20260621.3.1", "44.20260707.3.1"]);
        assert_eq!(canary.freezes.len(), 1, "the same freeze is listed once");
        let production = policy.rules_for(Some("production")).unwrap();
        assert_eq!(production.freezes.len(), 1);
        assert!(!production.denies("44.20260621.3.1"));
        assert_eq!(production.clamp(0.1), 0.8);
        // Clients of other groups get [fleet] alone: its own cache slot,
        // counted as "other".
        let other = policy.rules_for(Some("dev")).unwrap();
        assert_eq!((other.clamp(0.1), other.deny.len()), (0.1, 1));
        assert_eq!(other.index, 2);
        assert_eq!(policy.group_label(Some("dev")), OTHER);
        assert_eq!(
            [canary.index, production.index],
            [0, 1],
            "the groups keep their own slots"
        );
    }

    #[test]
    fn a_paused_fleet_pauses_every_group_and_the_default_gets_the_fleet_rules() {
        let policy =
            parse("[fleet]\npaused = true\n[groups.default]\ndeny = [\"1\"]\n[groups.canary]\n")
                .unwrap();
        for group in [Some("canary"), Some("dev"), None] {
            let rules = policy.rules_for(group).unwrap();
            assert_eq!(rules.closed_at(0), Some(Reason::Paused), "{group:?}");
        }
        // A group without a table gets [groups.default], with [fleet]'s.
        assert!(policy.rules_for(Some("dev")).unwrap().denies("1"));
        let described = policy.describe(0, None);
        assert_eq!(described["fleet"]["closed"], "paused");
        assert_eq!(described["groups"]["canary"]["closed"], "paused");
    }

    #[test]
    fn the_default_group_applies_to_groups_without_a_table() {
        let policy = parse("[groups.default]\npaused = true\n[groups.canary]\n").unwrap();
        assert!(policy.rules_for(Some("anything")).unwrap().paused);
        assert!(policy.rules_for(None).unwrap().paused);
        assert!(!policy.rules_for(Some("canary")).unwrap().paused);
    }

    #[test]
    fn windows_follow_daylight_saving_time_and_wrap_midnight() {
        let policy = parse(
            r#"[groups.g]
windows = [ { days = ["sun"], start = "22:00", end = "02:00", timezone = "America/New_York" } ]"#,
        )
        .unwrap();
        let g = &policy.groups["g"];
        let w = &g.windows.as_ref().unwrap()[0];
        // Sunday 2026-07-05 23:00 EDT (UTC-4) = 03:00Z Monday: open.
        assert!(w.is_open(at("2026-07-06T03:00:00Z")));
        // Monday 01:30 EDT, the wrapped part: open; 02:00 closed.
        assert!(w.is_open(at("2026-07-06T05:30:00Z")));
        assert!(!w.is_open(at("2026-07-06T06:00:00Z")));
        // In winter (EST, UTC-5) the same local time is an hour later in UTC.
        assert!(!w.is_open(at("2026-01-05T02:30:00Z")));
        assert!(w.is_open(at("2026-01-05T03:30:00Z")));
        // Saturday 23:00 local is not in a Sunday window.
        assert!(!w.is_open(at("2026-07-05T03:00:00Z")));
    }

    /// The minutes of the 24 hours from `day` at which the window of
    /// `policy`'s group `g` is open.
    fn open_minutes(policy: &Policy, day: &str) -> Vec<i64> {
        let window = &policy.groups["g"].windows.as_ref().unwrap()[0];
        let start = at(day);
        (0..24 * 60)
            .map(|m| start + m * 60)
            .filter(|t| window.is_open(*t))
            .collect()
    }

    #[test]
    fn a_window_lasts_its_length_on_the_days_the_clocks_change() {
        let window = |start: &str, end: &str| {
            parse(&format!(
                "[groups.g]\nwindows = [ {{ start = \"{start}\", end = \"{end}\", timezone = \"America/New_York\" }} ]\n"
            ))
            .unwrap()
        };
        // 2027-03-14: 02:00 EST becomes 03:00 EDT. A 02:00-03:00 window
        // opens at 03:00 EDT (07:00Z) and lasts an hour.
        let spring = window("02:00", "03:00");
        let open = open_minutes(&spring, "2027-03-14T00:00:00Z");
        assert_eq!(open.len(), 60, "it opens, for an hour");
        assert_eq!(open[0], at("2027-03-14T07:00:00Z"));
        assert_eq!(*open.last().unwrap(), at("2027-03-14T07:59:00Z"));
        // A start inside the skipped hour opens at the change too.
        let half = window("02:30", "03:30");
        let open = open_minutes(&half, "2027-03-14T00:00:00Z");
        assert_eq!((open[0], open.len()), (at("2027-03-14T07:00:00Z"), 60));
        // The day before, as usual: 02:00 EST = 07:00Z.
        let open = open_minutes(&spring, "2027-03-13T00:00:00Z");
        assert_eq!((open[0], open.len()), (at("2027-03-13T07:00:00Z"), 60));
        assert_eq!(
            spring.groups["g"].next_window(at("2027-03-14T06:30:00Z")),
            Some(at("2027-03-14T07:00:00Z"))
        );

        // 2027-11-07: 02:00 EDT becomes 01:00 EST, 01:00-02:00 happens
        // twice. The window opens the first time (05:00Z), for one hour.
        let autumn = window("01:00", "02:00");
        let open = open_minutes(&autumn, "2027-11-07T00:00:00Z");
        assert_eq!(open.len(), 60, "one hour, not two");
        assert_eq!(open[0], at("2027-11-07T05:00:00Z"));
        assert_eq!(*open.last().unwrap(), at("2027-11-07T05:59:00Z"));
        // A window across the change lasts its length too: 00:30-02:30 is
        // two hours, 04:30Z to 06:30Z (01:30 EST).
        let across = window("00:30", "02:30");
        let open = open_minutes(&across, "2027-11-07T00:00:00Z");
        assert_eq!((open[0], open.len()), (at("2027-11-07T04:30:00Z"), 120));
    }

    /// [`Group::next_window`] the slow way: minute by minute over a week.
    fn next_window_by_minutes(group: &Group, now: i64) -> Option<i64> {
        let windows = group.windows.as_ref()?;
        let start = now - now.rem_euclid(60) + 60;
        (0..7 * 24 * 60)
            .map(|m| start + m * 60)
            .find(|t| windows.iter().any(|w| w.is_open(*t)))
    }

    /// [`Group::window_change_after`] the slow way: minute by minute.
    fn window_change_by_minutes(group: &Group, now: i64) -> Option<i64> {
        let windows = group.windows.as_ref()?;
        let open = |t: i64| windows.iter().any(|w| w.is_open(t));
        let open_now = open(now);
        let start = now - now.rem_euclid(60) + 60;
        (0..7 * 24 * 60)
            .map(|m| start + m * 60)
            .find(|t| open(*t) != open_now)
    }

    /// A group with the windows of `windows` (`(days, start, end, zone)`).
    fn group_with(windows: &[(&str, &str, &str, &str)]) -> Group {
        let windows: Vec<String> = windows
            .iter()
            .map(|(days, start, end, tz)| {
                format!("{{ days = [{days}], start = \"{start}\", end = \"{end}\", timezone = \"{tz}\" }}")
            })
            .collect();
        let text = format!("[groups.g]\nwindows = [ {} ]\n", windows.join(", "));
        parse(&text).unwrap().groups.remove("g").unwrap()
    }

    /// The days the clocks change in America/New_York and Europe/Berlin,
    /// at 00:00Z.
    const CLOCK_CHANGES: [&str; 6] = [
        "2026-03-08T00:00:00Z",
        "2026-03-29T00:00:00Z",
        "2026-10-25T00:00:00Z",
        "2026-11-01T00:00:00Z",
        "2027-03-14T00:00:00Z",
        "2027-11-07T00:00:00Z",
    ];

    #[test]
    fn next_window_matches_the_minute_by_minute_search_on_the_days_the_clocks_change() {
        for tz in ["America/New_York", "Europe/Berlin"] {
            for (start, end) in [("02:30", "03:30"), ("23:30", "02:30")] {
                let group = group_with(&[("\"sun\"", start, end, tz)]);
                for day in CLOCK_CHANGES {
                    // Every five hours of the day before, the day and the
                    // day after, and a second off a minute.
                    for hour in (-24..48).step_by(5) {
                        let now = at(day) + hour * 3600 + 17;
                        assert_eq!(
                            group.next_window(now),
                            next_window_by_minutes(&group, now),
                            "{tz} {start}-{end} at {now}"
                        );
                        assert_eq!(
                            group.window_change_after(now),
                            window_change_by_minutes(&group, now),
                            "{tz} {start}-{end} at {now}"
                        );
                    }
                }
            }
        }
    }

    /// The next opening is computed, not searched for: a week away, it
    /// takes a few dozen checks of the windows, not one per minute.
    #[test]
    fn next_window_checks_a_few_instants_not_every_minute() {
        let group = group_with(&[("\"sat\"", "02:00", "06:00", "Europe/Berlin")]);
        let sunday = at("2026-11-29T12:00:00Z");
        let checks = open_checks(|| {
            assert_eq!(group.next_window(sunday), Some(at("2026-12-05T01:00:00Z")));
        });
        assert!(checks < 100, "{checks} checks");
        let checks = open_checks(|| {
            assert_eq!(
                group.window_change_after(sunday),
                Some(at("2026-12-05T01:00:00Z"))
            );
        });
        assert!(checks < 100, "{checks} checks");
    }

    fn window_strategy(
    ) -> impl proptest::strategy::Strategy<Value = (String, String, String, &'static str)> {
        use proptest::prelude::*;
        let zones = prop::sample::select(vec![
            "America/New_York",
            "Europe/Berlin",
            "UTC",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
        ]);
        let minute = (0u16..24 * 60).prop_map(|m| format!("{:02}:{:02}", m / 60, m % 60));
        let days = prop::sample::subsequence(DAY_NAMES.to_vec(), 1..=7).prop_map(|days| {
            days.iter()
                .map(|d| format!("\"{d}\""))
                .collect::<Vec<_>>()
                .join(", ")
        });
        (days, minute.clone(), minute, zones)
            .prop_filter("a window starts and ends apart", |(_, start, end, _)| {
                start != end
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]

        /// The direct computation equals the minute-by-minute search, for
        /// any windows at any time, around the clock changes of New York
        /// and Berlin (and Lord Howe's half-hour one) too.
        #[test]
        fn next_window_matches_the_minute_by_minute_search(
            windows in proptest::collection::vec(window_strategy(), 1..=2),
            day in proptest::sample::select(CLOCK_CHANGES.to_vec()),
            offset in -3 * 24 * 3600i64..3 * 24 * 3600,
        ) {
            let windows: Vec<(&str, &str, &str, &str)> = windows
                .iter()
                .map(|(days, start, end, tz)| (days.as_str(), start.as_str(), end.as_str(), *tz))
                .collect();
            let group = group_with(&windows);
            let now = at(day) + offset;
            proptest::prop_assert_eq!(group.next_window(now), next_window_by_minutes(&group, now));
            proptest::prop_assert_eq!(
                group.window_change_after(now),
                window_change_by_minutes(&group, now)
            );
        }
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(platform_label(Some("aws")), "aws");
        assert_eq!(platform_label(Some("my-cloud")), OTHER);
        assert_eq!(platform_label(None), OTHER);
    }
}
