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
use crate::big_group::{MAX_ADDS_PER_COMMIT, MAX_GROUP_DEVICES, TreeSlot};
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
    /// Only for a successor whose tree fits in the Welcome; a bigger one goes
    /// through [`Device::start_successor`].
    pub fn migrate_conversation(
        &self,
        old: &Conversation,
        key_packages: &[Vec<u8>],
        now: Timestamp,
    ) -> Result<(Conversation, Option<PendingCommit>), ProtoError> {
        let moved = self
            .start_successor(old, key_packages, now)?
            .commit(now, None)?;
        Ok((moved.conversation, moved.commit))
    }

    /// Checks `key_packages` (0x004D KeyPackages of exactly `old`'s other
    /// member devices, each once) and creates the successor alone, with
    /// `old`'s context: [`Successor::commit`] then adds them all in one
    /// commit, so that the successor has every device from its first
    /// epoch on, as [`check_successor`] requires of it. A successor of more
    /// than [`BIG_GROUP_LEAVES`](crate::big_group::BIG_GROUP_LEAVES) devices
    /// needs a tree slot ([`Successor::tree_blob_len`]) for that commit.
    pub fn start_successor(
        &self,
        old: &Conversation,
        key_packages: &[Vec<u8>],
        now: Timestamp,
    ) -> Result<Successor, ProtoError> {
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
        if members.len() + 1 > MAX_GROUP_DEVICES {
            return Err(ProtoError::GroupTooLarge {
                limit: MAX_GROUP_DEVICES,
                requested: members.len() + 1,
            });
        }
        // The successor keeps the old group's context: its info and its
        // admins (or none, for a group made before admins), so that moving
        // makes nobody an admin.
        let mut context = mls_rs::ExtensionList::new();
        context.set(old.info()?.to_extension());
        if let Some(policy) = old.policy()? {
            context.set(policy.to_extension());
        }
        let (conversation, _) = self.create_in_context(Suite::Hybrid, context, None, &[], now)?;
        Ok(Successor {
            conversation,
            key_packages: key_packages.to_vec(),
            devices: member_keys(old),
        })
    }
}

/// A successor [`Device::start_successor`] made, with only this device in
/// it yet, and the checked KeyPackages of everyone else.
#[derive(Debug)]
pub struct Successor {
    conversation: Conversation,
    key_packages: Vec<Vec<u8>>,
    devices: BTreeSet<(Username, DeviceId, [u8; 32])>,
}

/// A successor with every device in it, at its first epoch.
#[derive(Debug)]
pub struct Moved {
    /// The successor.
    pub conversation: Conversation,
    /// The commit that added the devices (sent to no one: it only
    /// registers the epoch with the server) and the whole Welcome; `None`
    /// when this device was alone.
    pub commit: Option<PendingCommit>,
    /// The Welcome in parts of at most [`WELCOME_PART_DEVICES`] devices
    /// each, with the devices each part is for.
    pub welcomes: Vec<WelcomePart>,
}

/// One part of a successor's Welcome and the devices it is for.
#[derive(Debug, Clone)]
pub struct WelcomePart {
    /// An RFC 9420 Welcome with the group secrets of `devices` only.
    pub welcome: Vec<u8>,
    /// The devices that join from it.
    pub devices: Vec<DeviceCertificate>,
}

/// Most devices one part of a successor's Welcome is for: one HPKE
/// ciphertext each (about 1.2 KB with X-Wing), like the Welcome of one
/// batch of adds ([`MAX_ADDS_PER_COMMIT`]), well under the message limit.
pub const WELCOME_PART_DEVICES: usize = MAX_ADDS_PER_COMMIT;

impl Successor {
    /// The successor's group id.
    pub fn id(&self) -> &[u8] {
        self.conversation.id()
    }

    /// The size of the tree slot to reserve for [`Successor::commit`], or
    /// `None` when the tree fits in the Welcome.
    pub fn tree_blob_len(&self) -> Result<Option<u64>, ProtoError> {
        if self.key_packages.is_empty() {
            return Ok(None);
        }
        self.conversation.tree_blob_len(&self.key_packages)
    }

    /// Adds every other device in one commit (adds by reference, so the
    /// commit stays small: nobody receives it), with the tree in `slot`
    /// when [`Successor::tree_blob_len`] asked for one, and checks that the
    /// successor holds exactly the old conversation's devices.
    pub fn commit(mut self, now: Timestamp, slot: Option<&TreeSlot>) -> Result<Moved, ProtoError> {
        if self.key_packages.is_empty() {
            return Ok(Moved {
                conversation: self.conversation,
                commit: None,
                welcomes: Vec::new(),
            });
        }
        let conv = &mut self.conversation;
        let pending = conv.add_devices_as(&self.key_packages, now, slot, true)?;
        // Nobody else is in the group yet, so no other commit can race this one.
        conv.confirm_commit()?;
        if member_keys(conv) != self.devices {
            return Err(ProtoError::InvalidRequest(
                "the successor did not take exactly the conversation's devices",
            ));
        }
        let welcomes = match &pending.welcome {
            Some(w) => welcome_parts(w, &self.key_packages, WELCOME_PART_DEVICES)?,
            None => Vec::new(),
        };
        Ok(Moved {
            conversation: self.conversation,
            commit: Some(pending),
            welcomes,
        })
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

mod welcome_split;
pub use welcome_split::welcome_parts;
