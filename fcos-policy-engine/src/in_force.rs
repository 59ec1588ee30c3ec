//! The fleet policy in force: the policy loaded from `[policy] path`, reloaded
//! on SIGHUP and when the file changes (an unreadable or invalid file is
//! refused and the last good policy stays), its metrics, and
//! `GET /v1/policy` on the status port.
//!
//! The file is read and checked, and `/v1/policy` rendered, on a blocking
//! thread: neither the servers nor the replica's sync wait on it. The
//! handler serves the body rendered at the last load or change.

use crate::Clock;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, HttpResponse};
use commons::fleet_policy::{self, Page, Policy, Reason, Versions, OTHER};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How often the file is checked for changes (and `/v1/policy` for a
/// group whose state changed with time).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The policy in force, if any, and its metrics.
pub struct PolicyInForce {
    path: Option<PathBuf>,
    clock: Clock,
    policy: RwLock<Option<Arc<Policy>>>,
    /// `/v1/policy` as rendered, and the file as last read (its bytes, or
    /// why it could not be read): used on blocking threads only.
    watched: Mutex<Watched>,
    /// The `policy` member of `/v1/policy`, as last rendered.
    body: RwLock<Option<Bytes>>,
    generation: AtomicU64,
    reloads: IntCounterVec,
    rejected: IntGauge,
    info: IntGaugeVec,
    withheld: IntCounterVec,
    renders: IntCounter,
    loaded: IntGauge,
}

/// The file, the policy in force and its load count (the clock is code).
impl std::fmt::Debug for PolicyInForce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyInForce")
            .field("path", &self.path)
            .field("policy", &self.policy())
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Watched {
    page: Option<Page>,
    last_seen: Option<Result<Vec<u8>, String>>,
}

impl PolicyInForce {
    /// Puts `policy` (loaded from `path` at start) in force, registering
    /// its metrics; `/v1/policy` shows it as of the times `clock` gives.
    pub fn new(
        path: Option<PathBuf>,
        policy: Option<Policy>,
        clock: Clock,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let reloads = IntCounterVec::new(
            Opts::new(
                "fcos_cincinnati_pe_policy_reloads_total",
                "Loads of the policy file after start, by result (success, failure: the last good policy stays).",
            ),
            &["result"],
        )?;
        let rejected = IntGauge::new(
            "fcos_cincinnati_pe_policy_file_rejected",
            "1 while the policy file as it is now was refused (an older policy stays in force), else 0.",
        )?;
        let info = IntGaugeVec::new(
            Opts::new(
                "fcos_cincinnati_pe_policy_info",
                "1 for the hash of the policy file in force.",
            ),
            &["hash"],
        )?;
        let withheld = IntCounterVec::new(
            Opts::new(
                "fcos_cincinnati_pe_policy_withheld_total",
                "Responses in which the policy removed the update the client would have taken, by group and reason.",
            ),
            &["group", "reason"],
        )?;
        let renders = IntCounter::new(
            "fcos_cincinnati_pe_policy_renders_total",
            "Renderings of /v1/policy: one per load, then one per change of a group's state with time or of the versions served.",
        )?;
        let loaded = IntGauge::new(
            "fcos_cincinnati_pe_policy_loaded_timestamp_seconds",
            "When the policy in force was loaded, seconds since the Unix epoch (0: no policy).",
        )?;
        registry.register(Box::new(loaded.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(info.clone()))?;
        registry.register(Box::new(withheld.clone()))?;
        registry.register(Box::new(renders.clone()))?;
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        let in_force = PolicyInForce {
            path,
            clock,
            policy: RwLock::new(None),
            watched: Mutex::default(),
            body: RwLock::new(None),
            generation: AtomicU64::new(policy.as_ref().map_or(0, |p| p.generation)),
            reloads,
            rejected,
            info,
            withheld,
            renders,
            loaded,
        };
        if let Some(policy) = policy {
            in_force.install(policy, None, &mut in_force.watched());
        }
        Ok(in_force)
    }

    /// The policy in force.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The `policy` member of `/v1/policy`, as last rendered.
    pub fn rendered(&self) -> Option<Bytes> {
        self.body.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `policy` in force: its metrics (the withheld series of groups
    /// it no longer names are removed) and `/v1/policy` rendered.
    fn install(&self, policy: Policy, versions: Option<&Versions>, watched: &mut Watched) {
        self.info.reset();
        self.info.with_label_values(&[&policy.hash]).set(1);
        if let Some(old) = self.policy() {
            for group in old.groups.keys() {
                if !policy.groups.contains_key(group) {
                    for reason in Reason::ALL {
                        let _ = self
                            .withheld
                            .remove_label_values(&[group.as_str(), reason.as_str()]);
                    }
                }
            }
        }
        for group in policy.groups.keys().map(String::as_str).chain([OTHER]) {
            for reason in Reason::ALL {
                self.withheld.with_label_values(&[group, reason.as_str()]);
            }
        }
        self.loaded.set((self.clock)());
        let policy = Arc::new(policy);
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&policy));
        let page = Page::new(policy, (self.clock)(), versions, true);
        self.publish(&page);
        watched.page = Some(page);
    }

    fn publish(&self, page: &Page) {
        self.renders.inc();
        let body = Bytes::copy_from_slice(page.body().as_bytes());
        *self.body.write().unwrap_or_else(|e| e.into_inner()) = Some(body);
    }

    /// Counts a response whose update the policy withheld.
    pub fn record_withheld(&self, group: &str, reason: Reason) {
        self.withheld
            .with_label_values(&[group, reason.as_str()])
            .inc();
    }

    /// Reads the file; when it differs from what was last read (or
    /// `forced`), loads it: if it is valid and differs from the policy in
    /// force, it takes over; an unreadable or invalid file is logged and
    /// counted, and the policy in force stays. Then renders `/v1/policy`
    /// again if a group's state changed with time or `versions` (served,
    /// by stream) changed. Blocks: run on a blocking thread.
    fn check(&self, forced: bool, versions: &Versions) {
        let Some(path) = &self.path else { return };
        let mut watched = self.watched();
        let read = fleet_policy::read(path).map_err(|e| e.to_string());
        if forced || watched.last_seen.as_ref() != Some(&read) {
            self.reload(&read, versions, &mut watched);
            watched.last_seen = Some(read);
        }
        let now = (self.clock)();
        if let Some(page) = watched.page.as_mut() {
            if page.refresh(now, Some(versions)) {
                self.publish(page);
            }
        }
    }

    fn reload(&self, read: &Result<Vec<u8>, String>, versions: &Versions, watched: &mut Watched) {
        let Some(path) = &self.path else { return };
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let loaded = match read {
            Ok(bytes) => Policy::from_bytes(bytes, path, generation).map_err(|e| e.to_string()),
            Err(error) => Err(error.clone()),
        };
        self.rejected.set(i64::from(loaded.is_err()));
        match loaded {
            Ok(policy) => {
                let current = self.policy();
                if current.as_ref().is_some_and(|c| c.hash == policy.hash) {
                    return;
                }
                let warnings = policy.version_warnings(versions);
                if let Some(summary) = fleet_policy::summarize_warnings(&warnings) {
                    tracing::warn!(file = %path.display(), count = warnings.len(), "{summary}");
                }
                tracing::info!(file = %path.display(), hash = %policy.hash, groups = policy.groups.len(), fleet = policy.fleet.is_some(), "policy loaded");
                self.reloads.with_label_values(&["success"]).inc();
                self.install(policy, Some(versions), watched);
            }
            Err(error) => {
                self.reloads.with_label_values(&["failure"]).inc();
                tracing::error!(
                    "the policy file was refused, the last good policy stays in force: {error}"
                );
            }
        }
    }

    /// [`PolicyInForce::check`] on a blocking thread.
    async fn check_off_thread(self: &Arc<Self>, forced: bool, versions: Versions) {
        let in_force = Arc::clone(self);
        let checked = tokio::task::spawn_blocking(move || in_force.check(forced, &versions));
        if let Err(error) = checked.await {
            tracing::error!("checking the policy file failed: {error}");
        }
    }

    /// Reloads on SIGHUP and when the file changes, until cancelled.
    pub async fn watch(self: Arc<Self>, versions: impl Fn() -> Versions) {
        if self.path.is_none() {
            return std::future::pending().await;
        }
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!("cannot listen for SIGHUP, reloading on file changes only: {error}");
                None
            }
        };
        let mut ticker = tokio::time::interval(CHECK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.check_off_thread(false, versions()).await,
                Some(()) = async { match hangup.as_mut() { Some(s) => s.recv().await, None => None } } => {
                    tracing::info!("SIGHUP: reloading the policy file");
                    self.check_off_thread(true, versions()).await;
                }
            }
        }
    }
}

/// What `/v1/policy` reads.
#[derive(Clone)]
pub struct PolicyEndpoint {
    /// The policy in force.
    pub in_force: Arc<PolicyInForce>,
    /// The halts in force.
    pub rollouts: Arc<crate::rollouts::Rollouts>,
    /// The current time.
    pub clock: Clock,
}

/// The policy in force (the clock is code).
impl std::fmt::Debug for PolicyEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEndpoint")
            .field("in_force", &self.in_force)
            .finish_non_exhaustive()
    }
}

/// `GET /v1/policy` on the status port: the policy in force, its source,
/// hash, load time and warnings, and for each group whether it is closed
/// and when its next window opens, as rendered at the last load or change
/// (within [`CHECK_INTERVAL`]); and the rollouts its guards halted.
pub async fn serve_policy(state: web::Data<PolicyEndpoint>) -> HttpResponse {
    let halts = serde_json::to_string(&*state.rollouts.halts()).unwrap_or_else(|_| "[]".into());
    let Some(policy) = state.in_force.rendered() else {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(format!("{{\"policy\":null,\"halts\":{halts}}}"));
    };
    let now = jiff::Timestamp::from_second((state.clock)())
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut body = BytesMut::with_capacity(policy.len() + halts.len() + 64);
    body.extend_from_slice(
        format!(
            "{{\"now\":{},\"halts\":{halts},\"policy\":",
            serde_json::json!(now)
        )
        .as_bytes(),
    );
    body.extend_from_slice(&policy);
    body.extend_from_slice(b"}");
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .body(body.freeze())
}
