//! Request handlers, one module per resource.

pub mod accounts;
pub mod attachments;
pub mod keys;
pub mod kt;
pub mod messages;
pub mod ops;
pub mod reports;
pub mod ws;

use std::time::{SystemTime, UNIX_EPOCH};

/// The server's clock, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
