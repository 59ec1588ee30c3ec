//! Fleet control in force: the policy loaded from `[policy] path`, reloaded
//! on SIGHUP and when the file changes (an invalid file is refused and the
//! last good policy stays), its metrics, and `GET /v1/policy` on the status
//! port.

use crate::rules::{Policy, Reason, OTHER};
use actix_web::{web, HttpResponse};
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often the file is checked for changes.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The policy in force, if any, and its metrics.
pub struct Control {
    path: Option<PathBuf>,
    policy: RwLock<Option<Arc<Policy>>>,
    generation: AtomicU64,
    reloads: IntCounterVec,
    rejected: IntGauge,
    info: IntGaugeVec,
    withheld: IntCounterVec,
}

impl Control {
    /// The control of `policy` (loaded from `path` at start), registering
    /// its metrics.
    pub fn new(
        path: Option<PathBuf>,
        policy: Option<Policy>,
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
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(info.clone()))?;
        registry.register(Box::new(withheld.clone()))?;
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        let control = Control {
            path,
            policy: RwLock::new(None),
            generation: AtomicU64::new(policy.as_ref().map_or(0, |p| p.generation)),
            reloads,
            rejected,
            info,
            withheld,
        };
        if let Some(policy) = policy {
            control.install(policy);
        }
        Ok(control)
    }

    /// The policy in force.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn install(&self, policy: Policy) {
        self.info.reset();
        self.info.with_label_values(&[&policy.hash]).set(1);
        for group in policy.groups.keys().map(String::as_str).chain([OTHER]) {
            for reason in Reason::ALL {
                self.withheld.with_label_values(&[group, reason.as_str()]);
            }
        }
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(policy));
    }

    /// Counts a response whose update the policy withheld.
    pub fn record_withheld(&self, group: &str, reason: Reason) {
        self.withheld
            .with_label_values(&[group, reason.as_str()])
            .inc();
    }

    /// Loads the file from `bytes`, as just read (`None`: it could not be
    /// read, which loading it again reports); if it is valid and differs
    /// from the policy in force, it takes over. An invalid file is logged
    /// and counted, and the policy in force stays. `versions` are the
    /// versions being served, by stream, for warnings.
    fn reload(&self, bytes: Option<&[u8]>, versions: &HashMap<String, HashSet<String>>) {
        let Some(path) = &self.path else { return };
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let loaded = match bytes {
            Some(bytes) => Policy::from_bytes(bytes, path, generation),
            None => Policy::load(path, generation),
        };
        self.rejected.set(i64::from(loaded.is_err()));
        match loaded {
            Ok(policy) => {
                let current = self.policy();
                if current.as_ref().is_some_and(|c| c.hash == policy.hash) {
                    return;
                }
                for warning in policy.version_warnings(versions) {
                    tracing::warn!(file = %path.display(), "{warning}");
                }
                tracing::info!(file = %path.display(), hash = %policy.hash, groups = policy.groups.len(), fleet = policy.fleet.is_some(), "policy loaded");
                self.reloads.with_label_values(&["success"]).inc();
                self.install(policy);
            }
            Err(error) => {
                self.reloads.with_label_values(&["failure"]).inc();
                tracing::error!(
                    "the policy file was refused, the last good policy stays in force: {error}"
                );
            }
        }
    }

    /// Whether the file's bytes differ from the policy in force (or it
    /// cannot be read, which a reload then reports).
    fn file_changed(&self, last_seen: &mut Option<Vec<u8>>) -> bool {
        let Some(path) = &self.path else { return false };
        let bytes = std::fs::read(path).ok();
        let changed = *last_seen != bytes;
        *last_seen = bytes;
        changed
    }

    /// Reloads on SIGHUP and when the file changes, until cancelled.
    pub async fn watch(self: Arc<Self>, versions: impl Fn() -> HashMap<String, HashSet<String>>) {
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
        let mut last_seen = self.path.as_ref().and_then(|p| std::fs::read(p).ok());
        let mut ticker = tokio::time::interval(CHECK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if self.file_changed(&mut last_seen) {
                        self.reload(last_seen.as_deref(), &versions());
                    }
                }
                Some(()) = async { match hangup.as_mut() { Some(s) => s.recv().await, None => None } } => {
                    tracing::info!("SIGHUP: reloading the policy file");
                    self.file_changed(&mut last_seen);
                    self.reload(last_seen.as_deref(), &versions());
                }
            }
        }
    }
}

/// What `/v1/policy` reads.
#[derive(Clone)]
pub struct PolicyEndpoint {
    /// The policy in force.
    pub control: Arc<Control>,
    /// The graphs served (for warnings about versions they lack).
    pub replica: Arc<crate::replica::Replica>,
    /// The current time.
    pub clock: crate::Clock,
}

/// `GET /v1/policy` on the status port: the policy in force, its source,
/// hash, load time and warnings, and for each group whether it is closed
/// now and when its next window opens.
pub async fn serve_policy(state: web::Data<PolicyEndpoint>) -> HttpResponse {
    let now = (state.clock)();
    let control = &state.control;
    let Some(policy) = control.policy() else {
        return HttpResponse::Ok().json(serde_json::json!({"policy": null}));
    };
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .json(serde_json::json!({
            "policy": policy.describe(now, Some(&state.replica.versions_by_stream())),
            "now": jiff::Timestamp::from_second(now).map(|t| t.to_string()).unwrap_or_default(),
        }))
}
