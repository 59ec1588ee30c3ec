//! The fleet policy rendered for `/v1/policy`: once per load ([`Page`]), a
//! group being rendered again only when what it shows changes with time,
//! and the version warnings when the versions served change.

use super::evaluation::{Group, Policy, Reason};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Version warnings listed in `/v1/policy` (`warnings_total` counts all).
pub const WARNINGS_SHOWN: usize = 100;

/// Version warnings quoted in the log line that counts them.
pub const WARNINGS_LOGGED: usize = 5;

/// The versions being served, by stream.
pub type Versions = HashMap<String, HashSet<String>>;

/// One log line for many version warnings: how many, and the first
/// [`WARNINGS_LOGGED`] (`None` without warnings).
pub fn summarize_warnings(warnings: &[String]) -> Option<String> {
    let first = warnings.first()?;
    if warnings.len() == 1 {
        return Some(first.clone());
    }
    let shown = warnings.len().min(WARNINGS_LOGGED);
    Some(format!(
        "{} rules name versions the graphs being served do not hold (the rules are kept); the first {shown}: {}",
        warnings.len(),
        warnings[..shown].join("; ")
    ))
}

/// A group (or `[fleet]`) as rendered, and until when that holds.
#[derive(Debug)]
struct Rendered {
    json: String,
    until: i64,
}

/// The policy as `/v1/policy` shows it, rendered once: [`Page::refresh`]
/// renders again only the groups whose state (closed or not, the freeze,
/// the next window) has changed since, and the warnings when the versions
/// served change.
#[derive(Debug)]
pub struct Page {
    policy: Arc<Policy>,
    show_source: bool,
    versions: Option<Versions>,
    warnings: String,
    fleet: Option<Rendered>,
    groups: Vec<Rendered>,
    body: String,
    renders: u64,
}

impl Page {
    /// Renders `policy` at `now`, with warnings about `versions` when
    /// known; `show_source` includes the file's path.
    pub fn new(
        policy: Arc<Policy>,
        now: i64,
        versions: Option<&Versions>,
        show_source: bool,
    ) -> Page {
        let mut page = Page {
            policy,
            show_source,
            versions: None,
            warnings: String::new(),
            fleet: None,
            groups: Vec::new(),
            body: String::new(),
            renders: 0,
        };
        page.render_warnings(versions);
        let mut scans = HashMap::new();
        page.fleet = page
            .policy
            .fleet
            .as_ref()
            .map(|fleet| render(fleet, now, &mut scans));
        page.groups = page
            .policy
            .groups
            .values()
            .map(|group| render(group, now, &mut scans))
            .collect();
        page.assemble();
        page
    }

    /// Renders again what changed by `now` and the warnings if `versions`
    /// differ; whether the body changed.
    pub fn refresh(&mut self, now: i64, versions: Option<&Versions>) -> bool {
        let mut changed = false;
        if versions != self.versions.as_ref() {
            self.render_warnings(versions);
            changed = true;
        }
        if self.next_change() <= now {
            let mut scans = HashMap::new();
            if let (Some(fleet), Some(rendered)) = (&self.policy.fleet, &mut self.fleet) {
                if rendered.until <= now {
                    *rendered = render(fleet, now, &mut scans);
                }
            }
            for (group, rendered) in self.policy.groups.values().zip(&mut self.groups) {
                if rendered.until <= now {
                    *rendered = render(group, now, &mut scans);
                }
            }
            changed = true;
        }
        if changed {
            self.assemble();
        }
        changed
    }

    /// When the first group's state may change (then call
    /// [`Page::refresh`]).
    pub fn next_change(&self) -> i64 {
        self.fleet
            .iter()
            .chain(&self.groups)
            .map(|r| r.until)
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The policy rendered: the `policy` member of `/v1/policy`.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The policy shown.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// How many times the body was put together (once per load, once per
    /// change with time or of the versions served).
    pub fn renders(&self) -> u64 {
        self.renders
    }

    fn render_warnings(&mut self, versions: Option<&Versions>) {
        let warnings = versions
            .map(|v| self.policy.version_warnings(v))
            .unwrap_or_default();
        let shown = &warnings[..warnings.len().min(WARNINGS_SHOWN)];
        self.warnings = format!(
            "\"warnings\":{},\"warnings_total\":{}",
            serde_json::to_string(shown).unwrap_or_else(|_| "[]".into()),
            warnings.len()
        );
        self.versions = versions.cloned();
    }

    fn assemble(&mut self) {
        let mut body = String::with_capacity(
            self.body
                .len()
                .max(self.groups.iter().map(|g| g.json.len() + 32).sum()),
        );
        body.push('{');
        if self.show_source {
            body.push_str(&format!("\"source\":{},", json(&self.policy.source)));
        }
        body.push_str(&format!(
            "\"hash\":{},\"loaded_at\":{},{},\"fleet\":{},\"groups\":{{",
            json(&self.policy.hash),
            json(&rfc3339(self.policy.loaded_at)),
            self.warnings,
            self.fleet.as_ref().map_or("null", |f| f.json.as_str()),
        ));
        for (i, (name, rendered)) in self.policy.groups.keys().zip(&self.groups).enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&json(name));
            body.push(':');
            body.push_str(&rendered.json);
        }
        body.push_str("}}");
        self.body = body;
        self.renders += 1;
    }
}

/// `t` (seconds since the epoch) as an RFC 3339 time.
pub fn rfc3339(t: i64) -> Option<String> {
    jiff::Timestamp::from_second(t).map(|t| t.to_string()).ok()
}

/// JSON of one of the plain values the body is put together from.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Renders `group` at `now`; `scans` keeps the window changes found for
/// the windows of groups already rendered (many groups share theirs).
fn render(group: &Group, now: i64, scans: &mut HashMap<String, Option<i64>>) -> Rendered {
    let window_change = match &group.windows {
        None => None,
        Some(windows) => {
            let key = serde_json::to_string(windows).unwrap_or_default();
            *scans
                .entry(key)
                .or_insert_with(|| group.window_change_after(now))
        }
    };
    let (value, until) = group.describe_until(now, window_change);
    Rendered {
        json: serde_json::to_string(&value).unwrap_or_else(|_| "null".into()),
        until,
    }
}

impl Policy {
    /// The policy as JSON for people and the viewer: source, hash, load
    /// time, warnings about `versions` (the versions served, by stream,
    /// when known), and for `[fleet]` and each group (with `[fleet]`'s
    /// rules added) its rules, whether it is closed at `now` and why, the
    /// freeze's reason, and when its next window opens.
    pub fn describe(
        &self,
        now: i64,
        versions: Option<&HashMap<String, HashSet<String>>>,
    ) -> serde_json::Value {
        let groups: serde_json::Map<String, serde_json::Value> = self
            .groups
            .iter()
            .map(|(name, group)| (name.clone(), group.describe(now)))
            .collect();
        serde_json::json!({
            "source": self.source,
            "hash": self.hash,
            "loaded_at": rfc3339(self.loaded_at),
            "warnings": versions.map(|v| self.version_warnings(v)).unwrap_or_default(),
            "fleet": self.fleet.as_ref().map(|fleet| fleet.describe(now)),
            "groups": groups,
        })
    }
}

impl Group {
    /// The group as JSON: its rules, whether it is closed at `now` and why,
    /// the freeze's reason, and when its next window opens.
    fn describe(&self, now: i64) -> serde_json::Value {
        self.describe_until(now, self.window_change_after(now)).0
    }

    /// [`Group::describe`] at `now`, given `window_change`
    /// ([`Group::window_change_after`] at `now`), and the time until which
    /// that description holds: the next freeze boundary or window change
    /// (a week on without one).
    pub fn describe_until(&self, now: i64, window_change: Option<i64>) -> (serde_json::Value, i64) {
        let closed = self.closed_at(now);
        let mut value = serde_json::to_value(self).unwrap_or_default();
        value["closed"] = serde_json::to_value(closed).unwrap_or_default();
        value["freeze_reason"] =
            serde_json::to_value(self.freeze_at(now).map(|f| &f.reason)).unwrap_or_default();
        // Closed for want of a window: no window is open, so the next
        // change is the next opening.
        value["next_window"] = serde_json::to_value(
            closed
                .filter(|r| *r == Reason::Window)
                .and(window_change)
                .and_then(rfc3339),
        )
        .unwrap_or_default();
        let windows_until = match &self.windows {
            None => i64::MAX,
            Some(_) => window_change.unwrap_or(now.saturating_add(7 * 24 * 3600)),
        };
        let until = self
            .freezes
            .iter()
            .flat_map(|f| [f.from_secs, f.to_secs])
            .filter(|t| *t > now)
            .fold(windows_until, i64::min);
        (value, until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn warnings_are_summarized_in_one_line() {
        assert_eq!(summarize_warnings(&[]), None);
        let warnings: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
        let line = summarize_warnings(&warnings).unwrap();
        assert!(
            line.starts_with("1000 rules") && line.ends_with("the first 5: w0; w1; w2; w3; w4"),
            "{line}"
        );
    }

    fn at(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    #[test]
    fn the_page_equals_describe_and_renders_again_only_at_a_change() {
        let text = r#"
[fleet]
freezes = [ { from = "2026-12-20T00:00:00Z", to = "2026-12-21T00:00:00Z", reason = "holidays" } ]
[groups.weekend]
windows = [ { days = ["sat"], start = "02:00", end = "06:00", timezone = "Europe/Berlin" } ]
[groups.also-weekend]
windows = [ { days = ["sat"], start = "02:00", end = "06:00", timezone = "Europe/Berlin" } ]
[groups.paused]
paused = true
deny = ["1"]
"#;
        let policy = Arc::new(Policy::parse(text, Path::new("p.toml"), 1).unwrap());
        let versions = Versions::from([("stable".into(), HashSet::from(["2".to_string()]))]);
        let described = |now: i64| {
            let mut value = policy.describe(now, Some(&versions));
            value["warnings_total"] = value["warnings"].as_array().unwrap().len().into();
            value
        };
        let body = |page: &Page| serde_json::from_str::<serde_json::Value>(page.body()).unwrap();
        // Friday noon: the windows open Saturday 02:00 Berlin (01:00Z).
        let friday = at("2026-11-27T12:00:00Z");
        let mut page = Page::new(Arc::clone(&policy), friday, Some(&versions), true);
        assert_eq!(body(&page), described(friday));
        assert_eq!(page.next_change(), at("2026-11-28T01:00:00Z"));
        assert_eq!(page.renders(), 1);
        // Nothing changed: nothing rendered.
        assert!(!page.refresh(friday + 3600, Some(&versions)));
        assert_eq!(page.renders(), 1);
        // The windows open: rendered again, equal to describe then.
        let saturday = at("2026-11-28T01:00:00Z");
        assert!(page.refresh(saturday, Some(&versions)));
        assert_eq!(body(&page), described(saturday));
        assert_eq!(page.next_change(), at("2026-11-28T05:00:00Z"));
        // Into the freeze, and out of it.
        for now in [at("2026-12-20T00:00:00Z"), at("2026-12-21T00:00:00Z")] {
            assert!(page.refresh(now, Some(&versions)));
            assert_eq!(body(&page), described(now));
        }
        // The path is not shown when not asked for.
        let page = Page::new(policy, friday, None, false);
        assert!(body(&page).get("source").is_none());
        assert_eq!(body(&page)["warnings_total"], 0);
    }
}
