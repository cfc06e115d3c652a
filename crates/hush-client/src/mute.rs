//! Muting a conversation on this device: its messages still arrive, are
//! stored and count as unread, but a front end shows no notification for
//! them until the mute ends, except for a message that mentions this
//! account. A mute is this device's own setting: other devices of the
//! account and the other members are not told, and the server never knows.

use rusqlite::params;

use crate::client::{Client, now_ms};
use crate::error::ClientError;
use crate::model::Target;

/// `muted_until` of a conversation muted until it is unmuted.
pub const FOREVER: u64 = i64::MAX as u64;

/// A stored mute's end, or `None` once it has passed.
pub(crate) fn still_muted(until: Option<u64>) -> Option<u64> {
    until.filter(|&t| t > now_ms())
}

impl Client {
    /// Mutes the conversation `target` until `until_ms` (ms since the Unix
    /// epoch; [`FOREVER`] until unmuted), or unmutes it with `None`. A 1:1
    /// chat is muted with every other chat this device has with the same
    /// person (they show as one).
    pub fn mute(&mut self, target: &Target, until_ms: Option<u64>) -> Result<(), ClientError> {
        if until_ms.is_some_and(|t| t <= now_ms()) {
            return Err(ClientError::InvalidInput(
                "a mute must end in the future".into(),
            ));
        }
        let until = until_ms.map(|t| t.min(FOREVER) as i64);
        for row in self.find(target)? {
            self.store.conn.execute(
                "UPDATE conversations SET muted_until = ?2 WHERE id = ?1",
                params![row.id, until],
            )?;
        }
        Ok(())
    }
}
