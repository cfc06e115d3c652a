//! Moving a conversation to the current post-quantum suite (decision 0031).
//!
//! A conversation of an older suite (mls-rs's private 65100, or the
//! classical suite) keeps working where it is: it loads, sends, receives and
//! commits. To move it, one member starts a conversation in
//! [`Suite::Hybrid`] with the same [`ConversationInfo`] and exactly the
//! conversation's other devices, from their 0x004D KeyPackages; they join by
//! the Welcome, and the old conversation stays readable for its history.
//! A migration can bring no one in: KeyPackages of any device that is not a
//! member of the old conversation, or that leave a member out, are refused.

use std::collections::BTreeSet;

use crate::Timestamp;
use crate::conversation::{Conversation, PendingCommit};
use crate::device::{Device, Suite, inspect_key_package};
use crate::error::ProtoError;
use crate::identity::{DeviceCertificate, DeviceId, Username};

fn device_key(cert: &DeviceCertificate) -> (Username, DeviceId) {
    (cert.username().clone(), cert.device_id())
}

impl Device {
    /// Starts the [`Suite::Hybrid`] successor of `old` with the devices of
    /// `key_packages`, which must be 0x004D KeyPackages of exactly `old`'s
    /// other member devices. Returns it, at its first epoch, and the Welcome.
    pub fn migrate_conversation(
        &self,
        old: &Conversation,
        key_packages: &[Vec<u8>],
        now: Timestamp,
    ) -> Result<(Conversation, Option<PendingCommit>), ProtoError> {
        if old.suite() == Some(Suite::Hybrid) {
            return Err(ProtoError::InvalidRequest(
                "the conversation is already in the current suite",
            ));
        }
        let me = device_key(self.certificate());
        let members: BTreeSet<_> = old
            .members()
            .iter()
            .map(device_key)
            .filter(|d| *d != me)
            .collect();
        let mut offered = BTreeSet::new();
        for kp in key_packages {
            let info = inspect_key_package(kp)?;
            if info.suite != Suite::Hybrid {
                return Err(ProtoError::InvalidRequest(
                    "a migration takes KeyPackages of the current suite",
                ));
            }
            if !offered.insert(device_key(&info.certificate)) {
                return Err(ProtoError::InvalidRequest("two KeyPackages of one device"));
            }
        }
        if offered != members {
            return Err(ProtoError::InvalidRequest(
                "the KeyPackages are not exactly the conversation's other devices",
            ));
        }
        self.create_conversation(Suite::Hybrid, &old.info()?, key_packages, now)
    }
}
