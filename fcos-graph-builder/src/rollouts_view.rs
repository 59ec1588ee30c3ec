//! The rollout outcomes the viewer shows on `/v1/rollouts`: the
//! policy-engine's `/v1/rollouts` (on its status port, `[rollouts] url`),
//! read every [`RolloutsSettings::refresh`], checked (every name well
//! formed, every number a count or a finite fraction) and rendered again
//! from what was checked, so that the public port serves nothing the
//! policy-engine did not promise. The last good answer is kept: when the
//! policy-engine cannot be read, `/v1/rollouts` serves it with its age and
//! since when the reads fail. The public port never shows the URL nor the
//! errors (those go to the log and to
//! `fcos_cincinnati_gb_rollouts_read_errors_total`).

use crate::config::{DocumentSource, RolloutsSettings};
use crate::fetch::{FetchError, Fetched, Fetcher};
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, HttpResponse};
use commons::fleet_policy::Halt;
use commons::outcomes::page::{Counts, Document};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use service_kit::web::GraphError;
use std::sync::{Arc, RwLock};

/// Largest answer of the policy-engine read.
pub const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

/// Why a read failed, as a metric label: the [`FetchError`] kinds, and
/// `invalid_document` for an answer that is not the promised document
/// (see [`crate::fetch::FetchError::kind`]).
pub const ERROR_KINDS: [&str; 7] = crate::fetch::kinds(&FetchError::KINDS, &["invalid_document"]);

/// Why a document is refused (for the log).
fn check_name(what: &str, name: &str) -> Result<(), String> {
    if commons::graph::is_well_formed_name(name) {
        Ok(())
    } else {
        Err(format!(
            "{what} '{}' is not a name",
            name.chars().take(40).collect::<String>()
        ))
    }
}

fn check_time(what: &str, time: Option<&str>) -> Result<(), String> {
    match time {
        Some(t)
            if t.is_empty()
                || t.len() > 40
                || !t.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'+' | b'-')
                }) =>
        {
            Err(format!("{what} is not a time"))
        }
        _ => Ok(()),
    }
}

fn check_scope(stream: &str, basearch: &str, scheme: &str, release: &str) -> Result<(), String> {
    check_name("stream", stream)?;
    check_name("basearch", basearch)?;
    check_name("release", release)?;
    if !matches!(scheme, "checksum" | "oci") {
        return Err("scheme is neither checksum nor oci".into());
    }
    Ok(())
}

fn check_counts(counts: &Counts) -> Result<(), String> {
    let arrival = [counts.arrival_seconds.p50, counts.arrival_seconds.p90];
    if arrival
        .into_iter()
        .flatten()
        .any(|s| !s.is_finite() || s < 0.0)
    {
        return Err("an arrival time is not a number of seconds".into());
    }
    Ok(())
}

fn check_halt(halt: &Halt) -> Result<(), String> {
    check_scope(&halt.stream, &halt.basearch, &halt.scheme, &halt.release)?;
    for (what, name) in [("group", &halt.group), ("platform", &halt.platform)] {
        if let Some(name) = name {
            check_name(what, name)?;
        }
    }
    if !matches!(
        halt.key.as_str(),
        "max_rolled_back" | "max_lost" | "max_stuck"
    ) {
        return Err("a halt's key is not a guard's threshold".into());
    }
    if ![halt.value, halt.limit]
        .iter()
        .all(|f| f.is_finite() && (0.0..=1.0).contains(f))
    {
        return Err("a halt's value or limit is not a fraction".into());
    }
    if halt.count > halt.of {
        return Err("a halt counts more nodes than it counts them of".into());
    }
    Ok(())
}

/// Parses and checks the policy-engine's answer.
pub fn parse(body: &[u8]) -> Result<Document, String> {
    let document: Document = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    check_time("at", document.at.as_deref())?;
    for release in &document.releases {
        check_scope(
            &release.stream,
            &release.basearch,
            &release.scheme,
            &release.release,
        )?;
        check_time("last_offered", release.last_offered.as_deref())?;
        check_counts(&release.counts)?;
        for (what, list) in [
            ("group", &release.by_group),
            ("platform", &release.by_platform),
        ] {
            for (name, counts) in list {
                check_name(what, name)?;
                check_counts(counts)?;
            }
        }
        release.halted.iter().try_for_each(check_halt)?;
    }
    document.halts.iter().try_for_each(check_halt)?;
    Ok(document)
}

/// What `/v1/rollouts` serves.
#[derive(Debug, Default)]
struct Shown {
    /// The last good document, rendered again.
    document: Option<Bytes>,
    /// When it was read.
    read_at: i64,
    /// Since when the reads fail, and why (a metric label).
    failing: Option<(i64, &'static str)>,
}

/// The policy-engine's rollouts as last read.
#[derive(Debug)]
pub struct RolloutsView {
    settings: RolloutsSettings,
    fetcher: Fetcher,
    shown: RwLock<Shown>,
    errors: IntCounterVec,
    last_success: IntGauge,
}

impl RolloutsView {
    /// A view that has read nothing yet, reading with `timeout`; registers
    /// the metrics.
    pub fn new(
        settings: RolloutsSettings,
        timeout: std::time::Duration,
        registry: &Registry,
    ) -> anyhow::Result<Arc<RolloutsView>> {
        let errors = IntCounterVec::new(
            Opts::new(
                "fcos_cincinnati_gb_rollouts_read_errors_total",
                "Failed reads of the policy-engine's /v1/rollouts ([rollouts] url), by kind.",
            ),
            &["kind"],
        )?;
        let last_success = IntGauge::new(
            "fcos_cincinnati_gb_rollouts_last_read_timestamp_seconds",
            "When the policy-engine's /v1/rollouts was last read ([rollouts] url), Unix seconds; 0 before the first read.",
        )?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        for kind in ERROR_KINDS {
            errors.with_label_values(&[kind]);
        }
        Ok(Arc::new(RolloutsView {
            fetcher: Fetcher::new(timeout, MAX_BODY_BYTES)?,
            settings,
            shown: RwLock::default(),
            errors,
            last_success,
        }))
    }

    /// Reads the policy-engine once: a good answer replaces the one
    /// shown, a failure is logged (once when the reads start failing, at
    /// debug level after that) and counted, and the last good one stays.
    pub async fn read(&self) {
        let source = DocumentSource::Url(self.settings.url.clone());
        let read = match self.fetcher.fetch(&source, None).await {
            Ok(Fetched::Document(document)) => {
                parse(&document.body).map_err(|reason| ("invalid_document", reason))
            }
            Ok(Fetched::NotModified) => {
                Err(("http_status", "304 to an unconditional request".into()))
            }
            Err(error) => Err((error.kind(), error.to_string())),
        };
        let now = commons::unix_now();
        let mut shown = self.shown.write().unwrap_or_else(|e| e.into_inner());
        match read {
            Ok(document) => {
                if shown.failing.is_some() {
                    tracing::info!(url = %self.settings.url, "the policy-engine's rollouts are read again");
                }
                shown.document = Some(Bytes::from(
                    serde_json::to_vec(&document).unwrap_or_default(),
                ));
                shown.read_at = now;
                shown.failing = None;
                self.last_success.set(now);
            }
            Err((kind, reason)) => {
                self.errors.with_label_values(&[kind]).inc();
                if shown.failing.is_none() {
                    tracing::warn!(url = %self.settings.url, kind, "cannot read the policy-engine's rollouts, the viewer shows the last read: {reason}");
                    shown.failing = Some((now, kind));
                } else {
                    tracing::debug!(url = %self.settings.url, kind, "cannot read the policy-engine's rollouts: {reason}");
                    shown.failing = shown.failing.map(|(since, _)| (since, kind));
                }
            }
        }
    }

    /// Reads every [`RolloutsSettings::refresh`], until cancelled.
    pub async fn watch(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.settings.refresh);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.read().await;
        }
    }

    /// The body of `/v1/rollouts` at `now`.
    fn body(&self, now: i64) -> Result<Bytes, GraphError> {
        let shown = self.shown.read().unwrap_or_else(|e| e.into_inner());
        let failing_since = shown
            .failing
            .and_then(|(since, _)| commons::fleet_policy::rfc3339(since));
        let failing_kind = shown.failing.map(|(_, kind)| kind);
        let Some(document) = &shown.document else {
            return Err(GraphError::RolloutsUnavailable(match failing_since {
                Some(since) => format!(
                    "the policy-engine could not be read since {since} ({})",
                    failing_kind.unwrap_or_default()
                ),
                None => "the policy-engine has not been read yet".into(),
            }));
        };
        let head = serde_json::json!({
            "now": now,
            "read_at": commons::fleet_policy::rfc3339(shown.read_at),
            "age_seconds": (now - shown.read_at).max(0),
            "failing_since": failing_since,
            "failing_kind": failing_kind,
        })
        .to_string();
        // The document goes in as rendered: `{…head…,"rollouts":…}`.
        let mut body = BytesMut::with_capacity(head.len() + document.len() + 16);
        body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        body.extend_from_slice(b",\"rollouts\":");
        body.extend_from_slice(document);
        body.extend_from_slice(b"}");
        Ok(body.freeze())
    }
}

/// `GET /v1/rollouts`: the policy-engine's rollout outcomes and halts as
/// last read (`{"rollouts": null}` without `[rollouts] url`), with when
/// they were read, their age, and since when the reads fail (while they
/// do). A 503 `rollouts_unavailable` while nothing was ever read.
pub async fn serve_rollouts(
    view: web::Data<Option<Arc<RolloutsView>>>,
) -> Result<HttpResponse, GraphError> {
    let now = commons::unix_now();
    let body = match view.as_ref() {
        None => Bytes::from_static(b"{\"rollouts\":null}"),
        Some(view) => view.body(now)?,
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"at":"2027-01-15T08:50:00Z","tracked_nodes":6,"max_nodes":1000,"evicted":0,
        "releases":[{"offered":3,"arrived":3,"stuck":0,"rolled_back":2,"lost":0,
            "arrival_seconds":{"p50":1.0,"p90":null},"stream":"stable","basearch":"x86_64",
            "scheme":"checksum","release":"31.2.0","last_offered":"2027-01-15T08:50:00Z",
            "by_group":{"production":{"offered":3,"arrived":3,"stuck":0,"rolled_back":2,"lost":0,"arrival_seconds":{"p50":1.0,"p90":1.0}}},
            "by_platform":{},"halted":[],"later":"ignored"}],
        "halts":[{"stream":"stable","basearch":"x86_64","scheme":"checksum","release":"31.2.0",
            "group":null,"platform":"metal","key":"max_rolled_back","value":0.6667,"limit":0.5,
            "count":2,"of":3,"since":1800003000}]}"#;

    #[test]
    fn a_good_document_is_rendered_again_from_what_was_checked() {
        let document = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(document.releases[0].counts.rolled_back, 2);
        assert_eq!(document.halts[0].platform.as_deref(), Some("metal"));
        let text = serde_json::to_string(&document).unwrap();
        assert!(!text.contains("later"), "{text}");
        assert_eq!(parse(text.as_bytes()).unwrap(), document);
        // Before its first evaluation, the policy-engine has this.
        let empty = parse(br#"{"releases":[],"halts":[]}"#).unwrap();
        assert_eq!(empty.at, None);
    }

    #[test]
    fn what_was_not_promised_is_refused() {
        for (from, to) in [
            ("\"scheme\":\"checksum\"", "\"scheme\":\"zip\""),
            (
                "\"release\":\"31.2.0\",\"last",
                "\"release\":\"<b>\",\"last",
            ),
            ("\"platform\":\"metal\"", "\"platform\":\"a b\""),
            ("\"key\":\"max_rolled_back\"", "\"key\":\"x\""),
            ("\"value\":0.6667", "\"value\":7"),
            ("\"count\":2", "\"count\":9"),
            (
                "\"offered\":3,\"arrived\":3,\"stuck\":0,\"rolled_back\":2,\"lost\":0,\n",
                "\"offered\":-1,",
            ),
            ("\"at\":\"2027-01-15T08:50:00Z\"", "\"at\":\"<script>\""),
            ("\"p50\":1.0,\"p90\":null", "\"p50\":-1.0,\"p90\":null"),
            ("\"halts\":[", "\"halts\":{\"a\":["),
        ] {
            assert!(GOOD.contains(from), "{from}");
            let bad = GOOD.replacen(from, to, 1);
            assert!(parse(bad.as_bytes()).is_err(), "{to}");
        }
        assert!(parse(b"<html>").is_err());
    }

    #[actix_web::test]
    async fn never_read_is_a_503_without_the_url() {
        let settings = RolloutsSettings {
            url: "http://127.0.0.1:1/secret-path/v1/rollouts"
                .parse()
                .unwrap(),
            refresh: std::time::Duration::from_secs(1),
        };
        let view = RolloutsView::new(
            settings,
            std::time::Duration::from_secs(2),
            &Registry::new(),
        )
        .unwrap();
        let error = view.body(0).unwrap_err();
        assert_eq!(error.kind(), "rollouts_unavailable");
        view.read().await;
        let error = view.body(0).unwrap_err();
        assert_eq!(error.kind(), "rollouts_unavailable");
        let text = error.body();
        assert!(text.contains("(connect)"), "{text}");
        assert!(
            !text.contains("127.0.0.1") && !text.contains("secret"),
            "{text}"
        );
    }
}
