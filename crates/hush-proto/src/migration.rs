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
        // The successor keeps the old group's context: its info and its
        // admins (or none, for a group made before admins), so that moving
        // makes nobody an admin.
        let mut context = mls_rs::ExtensionList::new();
        context.set(old.info()?.to_extension());
        if let Some(policy) = old.policy()? {
            context.set(policy.to_extension());
        }
        self.create_in_context(Suite::Hybrid, context, None, key_packages, now)
    }
}

/// What an announcing commit's authenticated data starts with.
const SUCCESSOR_TAG: &[u8] = b"hush-successor-1";
/// The exporter label of the pad that hides the successor's id from the
/// server (the authenticated data of a commit travels in the clear).
const SUCCESSOR_LABEL: &[u8] = b"hush successor";
/// Longest group id a successor may have (Hush's are 32 bytes).
pub const MAX_SUCCESSOR_ID: usize = 64;

/// Whether a (sealed) successor id of this length can be announced: 1 to
/// [`MAX_SUCCESSOR_ID`] bytes, and no longer than the pad.
fn id_fits(id: &[u8], pad: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_SUCCESSOR_ID.min(pad.len())
}

/// The authenticated data of a commit announcing `successor`, sealed with
/// the pad of the epoch the commit is made in; `None` for an id that is
/// empty or longer than [`MAX_SUCCESSOR_ID`] or the pad.
pub fn seal_successor(pad: &[u8], successor: &[u8]) -> Option<Vec<u8>> {
    if !id_fits(successor, pad) {
        return None;
    }
    let mut aad = SUCCESSOR_TAG.to_vec();
    aad.extend(successor.iter().zip(pad).map(|(a, b)| a ^ b));
    Some(aad)
}

/// Reads the successor out of a commit's authenticated data (untrusted: any
/// member writes it) with the pad of the epoch the commit was made in;
/// `None` for anything else.
pub fn open_successor(pad: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let sealed = aad.strip_prefix(SUCCESSOR_TAG)?;
    if !id_fits(sealed, pad) {
        return None;
    }
    Some(sealed.iter().zip(pad).map(|(a, b)| a ^ b).collect())
}

fn member_keys(conv: &Conversation) -> BTreeSet<(Username, DeviceId, [u8; 32])> {
    conv.members()
        .iter()
        .map(|c| (c.username().clone(), c.device_id(), *c.signature_key()))
        .collect()
}

/// Checks, on a member's device, that `new` is a faithful move of `old`
/// (decision 0031): the current suite, the same
/// [`ConversationInfo`](crate::ConversationInfo) and group policy (admins),
/// and exactly the same devices with the same keys. A member or a server that
/// announces a "migration" bringing in anyone else is refused here.
pub fn check_successor(old: &Conversation, new: &Conversation) -> Result<(), ProtoError> {
    if new.suite() != Some(Suite::Hybrid) {
        return Err(ProtoError::InvalidRequest(
            "a successor conversation is in the current suite",
        ));
    }
    if new.info()? != old.info()? {
        return Err(ProtoError::InvalidRequest(
            "a successor conversation keeps the name and kind",
        ));
    }
    if new.policy()? != old.policy()? {
        return Err(ProtoError::InvalidRequest(
            "a successor conversation keeps the admins and settings",
        ));
    }
    if member_keys(new) != member_keys(old) {
        return Err(ProtoError::InvalidRequest(
            "a successor conversation has exactly the old one's devices",
        ));
    }
    Ok(())
}

impl Conversation {
    /// This epoch's pad for a successor's id.
    pub(crate) fn successor_pad(&self) -> Result<Vec<u8>, ProtoError> {
        let secret = self
            .group
            .export_secret(SUCCESSOR_LABEL, b"", MAX_SUCCESSOR_ID)?;
        Ok(secret.as_bytes().to_vec())
    }

    /// A commit (a key update, with any proposals received so far) that
    /// tells every member this conversation moves to `successor` (made by
    /// [`Device::migrate_conversation`]). Members follow once the
    /// successor's Welcome passes [`check_successor`].
    pub fn announce_successor(
        &mut self,
        successor: &[u8],
        now: Timestamp,
    ) -> Result<PendingCommit, ProtoError> {
        let aad = seal_successor(&self.successor_pad()?, successor)
            .ok_or(ProtoError::InvalidRequest("a group id is 1 to 64 bytes"))?;
        let epoch = self.epoch();
        let out = self
            .group
            .commit_builder()
            .commit_time(now.mls())
            .authenticated_data(aad)
            .build()?;
        self.pending(epoch, out)
    }
}
