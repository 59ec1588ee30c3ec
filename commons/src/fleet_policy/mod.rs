//! The fleet policy: the operator's file of update rules, one table per
//! Zincati group (`identity.group`, sent as `group` on every poll) and
//! `[fleet]` for every client. Split by job:
//!
//! - reading the file safely (`read`),
//! - its schema and checks, from bytes to a [`Policy`] or an error naming
//!   the key and line (`schema`),
//! - evaluation: what the rules do to a client at a given time
//!   (`evaluation`),
//! - guards: the thresholds on a rollout's outcomes past which it is
//!   halted ([`Guard`]),
//! - rendering for `/v1/policy` ([`Page`]),
//! - the time zone database the windows are read with (`time_zones`).

mod evaluation;
mod guard;
mod page;
mod read;
mod schema;
pub mod time_zones;

pub use evaluation::{platform_label, Freeze, Group, Policy, Reason, Window, OTHER, PLATFORMS};
pub use guard::{Crossing, Guard, Halt};
pub use page::{rfc3339, summarize_warnings, Page, Versions, WARNINGS_LOGGED, WARNINGS_SHOWN};
pub use read::{read, MAX_BYTES};
