//! The fleet policy the viewer shows on `/v1/policy`: the policy-engine's
//! file (`[policy] path`), loaded as the policy-engine loads it: checked
//! every [`CHECK_INTERVAL`] on a blocking thread, an unreadable or invalid
//! file refused and the last good policy kept, rendered once per load (and
//! again only when a group's state changes with time). The public port
//! shows neither the file's path nor why it was refused (that goes to the
//! log and to the policy-engine's status port), only since when.

use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, HttpResponse};
use commons::fleet_policy::{self, Page, Policy};
use prometheus::{IntCounter, IntGauge, Registry};
use service_kit::web::GraphError;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How often the file is checked for changes (and the rendering for a
/// group whose state changed with time).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The policy file the viewer shows, as last loaded and rendered.
#[derive(Debug)]
pub struct PolicyView {
    path: PathBuf,
    /// The rendering, and the file as last read: used on blocking threads.
    watched: Mutex<Watched>,
    shown: RwLock<Shown>,
    renders: IntCounter,
    rejected: IntGauge,
}

#[derive(Debug, Default)]
struct Watched {
    page: Option<Page>,
    last_seen: Option<Result<Vec<u8>, String>>,
}

/// What `/v1/policy` serves.
#[derive(Clone, Debug, Default)]
struct Shown {
    /// The `policy` member, as last rendered.
    body: Option<Bytes>,
    /// Since when the file as it is now is refused, and why (without its
    /// path).
    refused: Option<Refused>,
}

#[derive(Clone, Debug)]
struct Refused {
    since: i64,
    reason: String,
}

impl PolicyView {
    /// Loads the file at `path` (blocking: at start) and registers the
    /// metrics.
    pub fn load(path: PathBuf, registry: &Registry) -> prometheus::Result<Arc<PolicyView>> {
        let renders = IntCounter::new(
            "fcos_cincinnati_gb_policy_renders_total",
            "Renderings of /v1/policy: one per load of the policy file, then one per change of a group's state with time.",
        )?;
        let rejected = IntGauge::new(
            "fcos_cincinnati_gb_policy_file_rejected",
            "1 while the policy file as it is now was refused (/v1/policy shows the last good one), else 0.",
        )?;
        registry.register(Box::new(renders.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        let view = Arc::new(PolicyView {
            path,
            watched: Mutex::default(),
            shown: RwLock::default(),
            renders,
            rejected,
        });
        view.check();
        Ok(view)
    }

    /// Reads the file; when it changed, loads it (a refused file is
    /// logged, the last good policy stays); renders again what changed
    /// with time. Blocks: run on a blocking thread.
    fn check(&self) {
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        let read = fleet_policy::read(&self.path).map_err(|e| e.reason());
        let now = commons::unix_now();
        if watched.last_seen.as_ref() != Some(&read) {
            let loaded = match &read {
                Ok(bytes) => Policy::from_bytes(bytes, &self.path, 0).map_err(|e| e.reason()),
                Err(error) => Err(error.clone()),
            };
            watched.last_seen = Some(read);
            self.rejected.set(i64::from(loaded.is_err()));
            match loaded {
                Ok(policy) => {
                    let current = watched.page.as_ref().map(|p| p.policy().hash.as_str());
                    if current != Some(policy.hash.as_str()) {
                        tracing::info!(file = %self.path.display(), hash = %policy.hash, groups = policy.groups.len(), "policy loaded for the viewer");
                        let page = Page::new(Arc::new(policy), now, None, false);
                        self.publish(&page, None);
                        watched.page = Some(page);
                    } else {
                        self.write().refused = None;
                    }
                }
                Err(reason) => {
                    tracing::error!(file = %self.path.display(), "the policy file was refused, /v1/policy shows the last good policy: {reason}");
                    let mut shown = self.write();
                    let since = shown.refused.as_ref().map_or(now, |r| r.since);
                    shown.refused = Some(Refused { since, reason });
                }
            }
        }
        if let Some(page) = watched.page.as_mut() {
            if page.refresh(now, None) {
                let refused = self.shown().refused;
                self.publish(page, refused);
            }
        }
    }

    fn publish(&self, page: &Page, refused: Option<Refused>) {
        self.renders.inc();
        *self.write() = Shown {
            body: Some(Bytes::copy_from_slice(page.body().as_bytes())),
            refused,
        };
    }

    fn shown(&self) -> Shown {
        self.shown.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Shown> {
        self.shown.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the file every [`CHECK_INTERVAL`] on a blocking thread,
    /// until cancelled.
    pub async fn watch(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(CHECK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let view = Arc::clone(&self);
            if let Err(error) = tokio::task::spawn_blocking(move || view.check()).await {
                tracing::error!("checking the policy file failed: {error}");
            }
        }
    }
}

/// `GET /v1/policy`: the fleet policy as the viewer shows it
/// (`{"policy": null}` when none is configured), as rendered at its last
/// load or change, with `refused_since` and `refused_reason` set while the
/// file as it is now is refused. A 503 when no version of the file was ever
/// loaded.
pub async fn serve_policy(
    view: web::Data<Option<Arc<PolicyView>>>,
) -> Result<HttpResponse, GraphError> {
    let now = commons::unix_now();
    let Some(view) = view.as_ref() else {
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .json(serde_json::json!({"policy": null, "now": now})));
    };
    let shown = view.shown();
    let refused_since = shown
        .refused
        .as_ref()
        .and_then(|r| fleet_policy::rfc3339(r.since));
    let refused_reason = shown.refused.as_ref().map(|r| r.reason.as_str());
    let Some(policy) = shown.body else {
        return Err(GraphError::PolicyUnavailable(format!(
            "the policy file was refused at {}: {}",
            refused_since.unwrap_or_default(),
            refused_reason.unwrap_or_default()
        )));
    };
    let head = serde_json::json!({
        "now": now,
        "refused_since": refused_since,
        "refused_reason": refused_reason,
    })
    .to_string();
    // The rendered policy goes in as it is: `{…head…,"policy":…}`.
    let mut body = BytesMut::with_capacity(head.len() + policy.len() + 16);
    body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    body.extend_from_slice(b",\"policy\":");
    body.extend_from_slice(&policy);
    body.extend_from_slice(b"}");
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body.freeze()))
}
