//! Logging set-up for the binaries (`-v` flags raise the level, `RUST_LOG`
//! overrides it), and the notices of limits that clients can reach, kept
//! to a few lines however often they are reached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tracing_subscriber::EnvFilter;

/// Installs a global subscriber; `verbosity` is the number of `-v` flags
/// (0: warnings, 1: info, 2: debug, 3 or more: trace).
pub fn init(verbosity: u8) {
    let level = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // The level applies to the project's crates; libraries stay at warn
    // unless RUST_LOG says otherwise. The HTTP parser logs each request it
    // refuses as an error: those are client mistakes, logged at debug
    // level and counted by the servers (`service_kit::server`) instead.
    let default = format!(
        "warn,actix_http::h1::dispatcher=off,commons={level},service_kit={level},fcos_graph_builder={level},fcos_policy_engine={level},fcos_cincinnati={level}"
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Least time between two warnings of one [`LimitNotice`].
pub const NOTICE_INTERVAL: Duration = Duration::from_secs(60);

/// The log lines of a limit that clients can reach (connections, held
/// polls): a warning when it is reached, and a line when there is room
/// again after it. A client that makes the limit come and go as fast as
/// it can gets one warning a minute at most, the next one counting the
/// times it was reached in between; the metrics count every refusal.
#[derive(Debug, Default)]
pub struct LimitNotice {
    /// A warning was logged, and no line of room again since.
    warned: AtomicBool,
    state: Mutex<NoticeState>,
}

#[derive(Debug, Default)]
struct NoticeState {
    /// When the last warning was logged.
    last: Option<Instant>,
    /// Times the limit was reached since, without a warning.
    unsaid: u64,
}

impl LimitNotice {
    /// The limit is reached: `Some(n)` when a warning is to be logged now,
    /// `n` being the times it was reached since the last warning without
    /// one; `None` otherwise.
    pub fn reached(&self) -> Option<u64> {
        self.reached_at(Instant::now())
    }

    fn reached_at(&self, now: Instant) -> Option<u64> {
        if self.warned.load(Ordering::Relaxed) {
            return None;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if self.warned.load(Ordering::Relaxed) {
            return None;
        }
        if state
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < NOTICE_INTERVAL)
        {
            state.unsaid += 1;
            return None;
        }
        state.last = Some(now);
        self.warned.store(true, Ordering::Relaxed);
        Some(std::mem::take(&mut state.unsaid))
    }

    /// There is room again: whether to log it (a warning said it was
    /// reached).
    pub fn relieved(&self) -> bool {
        self.warned.load(Ordering::Relaxed) && self.warned.swap(false, Ordering::Relaxed)
    }
}

/// `" (reached N more times since the last warning)"` for `unsaid` = N
/// above zero, else nothing: the end of a [`LimitNotice`]'s warning.
pub fn unsaid(unsaid: u64) -> String {
    if unsaid == 0 {
        String::new()
    } else {
        format!(" (reached {unsaid} more times since the last warning)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_that_comes_and_goes_is_said_once_a_minute() {
        let notice = LimitNotice::default();
        let start = Instant::now();
        assert_eq!(notice.reached_at(start), Some(0));
        assert_eq!(notice.reached_at(start), None);
        assert!(notice.relieved());
        assert!(!notice.relieved());
        // Reached again and again within the minute: nothing logged, not
        // even the room again.
        for second in 1..60 {
            assert_eq!(notice.reached_at(start + Duration::from_secs(second)), None);
            assert!(!notice.relieved());
        }
        assert_eq!(notice.reached_at(start + NOTICE_INTERVAL), Some(59));
        assert!(notice.relieved());
        assert_eq!(
            notice.reached_at(start + 3 * NOTICE_INTERVAL),
            Some(0),
            "counted anew after a warning"
        );
    }
}
