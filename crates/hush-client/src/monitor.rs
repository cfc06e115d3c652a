//! Self-monitoring that a server cannot switch off quietly: a check of this
//! account's key history that keeps failing for longer than a grace period
//! (default 24 h) is an alarm for the user, not a debug line.

use std::time::Duration;

use crate::client::{Client, now_ms};
use crate::error::ClientError;
use crate::local::LocalStore;

/// How long self-monitoring may fail before the user is told.
pub const DEFAULT_KT_MONITOR_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

const LAST_OK: &str = "kt_monitor_ok_ms";
const GRACE: &str = "kt_monitor_grace_secs";

impl Client {
    /// How long self-monitoring may fail before it is an alarm.
    pub fn kt_monitor_grace(&self) -> Result<Duration, ClientError> {
        Ok(self
            .store
            .meta_str(GRACE)?
            .and_then(|s| s.parse().ok())
            .map_or(DEFAULT_KT_MONITOR_GRACE, Duration::from_secs))
    }

    /// Sets (and keeps) how long self-monitoring may fail before it is an
    /// alarm.
    pub fn set_kt_monitor_grace(&mut self, grace: Duration) -> Result<(), ClientError> {
        LocalStore::set_meta(
            &self.store.conn,
            GRACE,
            grace.as_secs().to_string().as_bytes(),
        )
    }

    /// Records that self-monitoring just completed.
    pub(crate) fn note_monitor_complete(&self) -> Result<(), ClientError> {
        LocalStore::set_meta(&self.store.conn, LAST_OK, now_ms().to_string().as_bytes())
    }

    /// Runs self-monitoring for a sync and returns the alarms to show: what
    /// it found, or that it has not completed for longer than the grace
    /// period. A failure within the grace period is only logged.
    pub(crate) async fn kt_monitor_alarms(&mut self) -> Result<Vec<String>, ClientError> {
        let error = match self.kt_monitor(false).await {
            Ok(alarms) => return Ok(alarms),
            Err(ClientError::KeyTransparency(e)) => {
                return Ok(vec![format!(
                    "SECURITY: the key directory's history of your account does not verify: {e}"
                )]);
            }
            Err(ClientError::Store(e)) => return Err(ClientError::Store(e)),
            Err(e) => e,
        };
        let now = now_ms();
        let last_ok = match self.store.meta_str(LAST_OK)?.and_then(|s| s.parse().ok()) {
            Some(t) => t,
            None => {
                // A store from before this was recorded: the grace period
                // starts with this failure.
                LocalStore::set_meta(&self.store.conn, LAST_OK, now.to_string().as_bytes())?;
                now
            }
        };
        let failing = Duration::from_millis(now.saturating_sub(last_ok));
        if failing <= self.kt_monitor_grace()? {
            tracing::info!(error = %error, "key-transparency monitor did not run; retrying next sync");
            return Ok(Vec::new());
        }
        Ok(vec![format!(
            "SECURITY: the key directory's history of your account could not be checked for {} \
             (last error: {error}). The server may be hiding a key added to your account: \
             tell your server's operator, and do not trust new keys until this clears",
            humanize(failing)
        )])
    }
}

/// `3 h`, `2 d`, `45 min`, `12 s`.
fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}
