//! `Debug` for the servers' types, whose fields are mostly handles (the
//! server builder, tasks, timers, the connection): what each serves and
//! where, and what a head guard holds.

use crate::limits::HeadGuard;
use crate::server::{Listening, Running};
use std::fmt;

impl fmt::Debug for Listening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listening")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("service_addr", &self.service_addr)
            .field("status_addr", &self.status_addr)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for HeadGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadGuard")
            .field("buffered", &self.buffered())
            .finish_non_exhaustive()
    }
}
