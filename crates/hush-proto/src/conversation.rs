//! A conversation is one MLS group whose leaves are every device of every
//! member account. A 1:1 chat is a group of two accounts.
//!
//! Every call that changes state persists it into the device's store before it
//! returns (see [`crate::storage`]): encrypting advances the sender ratchet and
//! decrypting deletes the used key, so both are state changes. A client that
//! receives or sends many messages at once uses the `_in_batch` variants and
//! calls [`Conversation::flush`] once before it takes the changes
//! (decision 0018): the state is then written once per batch. Commits follow a
//! two-step flow because the server orders them: build one (state unchanged,
//! commit pending), send it, then [`Conversation::confirm_commit`] when the
//! server accepted it or [`Conversation::discard_commit`] when another commit
//! won the epoch.

use std::collections::BTreeSet;
use std::fmt;

use mls_rs::group::{CommitEffect, Group, ReceivedMessage};
use mls_rs::{Extension, ExtensionList, MlsMessage};
use mls_rs_core::extension::ExtensionType;
use rand_core::{CryptoRng, RngCore};

use crate::Timestamp;
use crate::codec::{DecodeError, Reader, Writer};
use crate::content::Content;
use crate::device::{HushConfig, Suite};
use crate::error::ProtoError;
use crate::framing::{SEALED_VERSION, commitment_from_aad};
use crate::franking::{Commitment, FrankingKey, FrankingOpening, verify_opening};
use crate::identity::{DeviceCertificate, Username};
use crate::storage::MemoryStore;

mod admins;
mod links;
mod peek;
mod token;
pub(crate) use admins::Authority;
pub use admins::{GroupPolicy, MAX_ADMINS, NotAllowed, POLICY_EXTENSION};
pub use peek::{MessageKind, is_application_message, peek_message};
pub use token::MAX_REFUSED;
use token::export_token;

/// The group context extension that carries [`ConversationInfo`].
pub const INFO_EXTENSION: ExtensionType = ExtensionType::new(0xF0A6);
/// Longest conversation name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// A 1:1 chat or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKind {
    /// Two accounts.
    Direct,
    /// A named group of any size.
    Group,
}

/// What the members agree the conversation is, carried encrypted in the MLS
/// group context; only members see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationInfo {
    /// Direct or group.
    pub kind: ConversationKind,
    /// The group's name; `None` for a 1:1 chat.
    pub name: Option<String>,
}

impl ConversationInfo {
    /// A 1:1 chat.
    pub fn direct() -> Self {
        Self {
            kind: ConversationKind::Direct,
            name: None,
        }
    }

    /// A group called `name`.
    pub fn group(name: &str) -> Self {
        Self {
            kind: ConversationKind::Group,
            name: Some(name.to_owned()),
        }
    }

    pub(crate) fn to_extension(&self) -> Extension {
        let mut w = Writer::new();
        w.u8(match self.kind {
            ConversationKind::Direct => 1,
            ConversationKind::Group => 2,
        });
        w.bytes(self.name.as_deref().unwrap_or("").as_bytes());
        Extension::new(INFO_EXTENSION, w.into_bytes())
    }

    fn from_extensions(list: &ExtensionList) -> Result<Self, DecodeError> {
        let ext = list.get(INFO_EXTENSION).ok_or(DecodeError::Invalid {
            field: "conversation info",
            reason: "missing",
        })?;
        let mut r = Reader::new(&ext.extension_data);
        let kind = match r.u8()? {
            1 => ConversationKind::Direct,
            2 => ConversationKind::Group,
            _ => {
                return Err(DecodeError::Invalid {
                    field: "conversation kind",
                    reason: "unknown",
                });
            }
        };
        let name = r.string("conversation name", MAX_NAME_LEN)?;
        r.finish()?;
        Ok(Self {
            kind,
            name: (!name.is_empty()).then(|| name.to_owned()),
        })
    }
}

/// A commit waiting for the server to order it.
#[derive(Debug, Clone)]
pub struct PendingCommit {
    /// The epoch the commit applies to: the server accepts only the first
    /// commit for each epoch of a group.
    pub epoch: u64,
    /// The MLS commit for the current members.
    pub commit: Vec<u8>,
    /// The Welcome for added devices, if any.
    pub welcome: Option<Vec<u8>>,
    /// The commit token of `epoch`: shows the server the committer is a
    /// member of it (see [`crate::commit_token`]).
    pub token: [u8; crate::commit_token::TOKEN_LEN],
    /// The hash of the commit token of the epoch this commit leads to.
    pub next_token_hash: [u8; crate::commit_token::TOKEN_LEN],
    /// The sealed ratchet tree to upload before the Welcome is sent, when
    /// it travels out of band (see [`crate::big_group`]).
    pub tree_blob: Option<crate::big_group::TreeBlob>,
}

/// An encrypted message ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The MLS `PrivateMessage`.
    pub message: Vec<u8>,
    /// The franking commitment, also inside `message`'s authenticated data.
    pub commitment: Commitment,
}

/// A decrypted message.
#[derive(Debug, Clone)]
pub struct Received {
    /// The sending device.
    pub sender: DeviceCertificate,
    /// What it said.
    pub content: Content,
    /// What the recipient would reveal to report it.
    pub opening: FrankingOpening,
}

/// What a commit changed.
#[derive(Debug, Clone)]
pub struct MembershipChange {
    /// The new epoch.
    pub epoch: u64,
    /// The device that made the commit.
    pub committer: Option<DeviceCertificate>,
    /// Devices that joined.
    pub added: Vec<DeviceCertificate>,
    /// Devices that left or were removed.
    pub removed: Vec<DeviceCertificate>,
    /// The new conversation info, when it changed.
    pub info: Option<ConversationInfo>,
    /// This device was removed: the conversation is over for it.
    pub removed_self: bool,
    /// The group id of the conversation that replaces this one, when the
    /// commit announced a move to the current suite (decision 0031; see
    /// [`Conversation::announce_successor`]).
    pub successor: Option<Vec<u8>>,
}

/// What processing an incoming MLS message produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Incoming {
    /// An application message.
    Message(Box<Received>),
    /// A commit moved the group to a new epoch.
    Commit(MembershipChange),
    /// A proposal (such as a member leaving) waits for someone's commit.
    Proposal {
        /// The proposing device.
        sender: Option<DeviceCertificate>,
    },
}

/// One MLS group, as seen by this device.
pub struct Conversation {
    pub(crate) group: Group<HushConfig>,
    /// Reloads the group from the store to undo a failed operation.
    client: mls_rs::Client<HushConfig>,
    store: MemoryStore,
    me: DeviceCertificate,
    /// Whether this device holds its own posts and commits to the group's
    /// rules (see `Device::play_modified_client`).
    check_own: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tree_epoch: Option<u64>,
    /// Application messages processed since the last flush, replayed after a
    /// rollback so a refused message does not undo them.
    unflushed: Vec<(Vec<u8>, Timestamp)>,
    /// State changed since the last flush.
    dirty: bool,
    /// A message was encrypted since the last flush: a rollback must not
    /// undo its ratchet step, so anything that may roll back flushes first.
    sealed_unflushed: bool,
}

impl fmt::Debug for Conversation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conversation")
            .field("epoch", &self.group.current_epoch())
            .field("members", &self.group.roster().members_iter().count())
            .finish_non_exhaustive()
    }
}

impl Conversation {
    pub(crate) fn new(
        group: Group<HushConfig>,
        client: mls_rs::Client<HushConfig>,
        store: MemoryStore,
        me: DeviceCertificate,
        check_own: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        Self {
            group,
            client,
            store,
            me,
            check_own,
            tree_epoch: None,
            unflushed: Vec::new(),
            dirty: false,
            sealed_unflushed: false,
        }
    }

    /// The opaque group id (what the server orders commits by).
    pub fn id(&self) -> &[u8] {
        self.group.group_id()
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.group.current_epoch()
    }

    /// The ciphersuite chosen when the conversation was created.
    pub fn suite(&self) -> Option<Suite> {
        Suite::from_cipher_suite(self.group.cipher_suite())
    }

    /// Direct or group, and the name.
    pub fn info(&self) -> Result<ConversationInfo, ProtoError> {
        Ok(ConversationInfo::from_extensions(
            &self.group.context().extensions,
        )?)
    }

    /// Every device in the conversation, this one included.
    pub fn members(&self) -> Vec<DeviceCertificate> {
        self.group
            .roster()
            .members_iter()
            .filter_map(|m| DeviceCertificate::from_credential(&m.signing_identity.credential).ok())
            .collect()
    }

    /// This device's leaf index in the ratchet tree.
    pub fn own_leaf(&self) -> u32 {
        self.group.current_member_index()
    }

    /// The member accounts.
    pub fn accounts(&self) -> BTreeSet<Username> {
        self.members()
            .into_iter()
            .map(|c| c.username().clone())
            .collect()
    }

    /// Whether a commit is waiting for confirmation.
    pub fn has_pending_commit(&self) -> bool {
        self.group.has_pending_commit()
    }

    /// Encrypts `content` with a fresh franking key.
    pub fn encrypt(
        &mut self,
        content: &Content,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Outgoing, ProtoError> {
        let out = self.encrypt_in_batch(content, rng)?;
        self.persist()?;
        Ok(out)
    }

    /// [`Conversation::encrypt`] without writing the state: the caller must
    /// [`Conversation::flush`] and persist the changes before the message
    /// leaves the device (or a restart would reuse its key).
    pub fn encrypt_in_batch(
        &mut self,
        content: &Content,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Outgoing, ProtoError> {
        if self.check_own.load(std::sync::atomic::Ordering::Relaxed) {
            self.check_post(self.me.username(), content)?;
        }
        let encoded = content.encode();
        let key = FrankingKey::generate(rng);
        let commitment = key.commit(&encoded);
        let mut plaintext = Writer::new();
        plaintext
            .u8(SEALED_VERSION)
            .raw(key.as_bytes())
            .raw(&encoded);
        let mut aad = Writer::new();
        aad.u8(SEALED_VERSION).raw(&commitment.0);
        let message = self
            .group
            .encrypt_application_message(&plaintext.into_bytes(), aad.into_bytes())?;
        self.dirty = true;
        self.sealed_unflushed = true;
        Ok(Outgoing {
            message: message.to_bytes()?,
            commitment,
        })
    }

    /// Adds devices by their KeyPackages (RFC 9420 `MLSMessage` bytes) to a
    /// group whose tree fits in the Welcome; see
    /// [`Conversation::add_devices_via`] for big groups.
    pub fn add_devices(
        &mut self,
        key_packages: &[Vec<u8>],
        now: Timestamp,
    ) -> Result<PendingCommit, ProtoError> {
        self.add_devices_via(key_packages, now, None)
    }

    /// Removes every device of `account`.
    pub fn remove_account(
        &mut self,
        account: &Username,
        now: Timestamp,
    ) -> Result<PendingCommit, ProtoError> {
        let leaves = self.leaves_of(|c| c.username() == account);
        if leaves.is_empty() {
            return Err(ProtoError::NotAMember(account.to_string()));
        }
        self.remove_leaves(leaves, now)
    }

    /// Removes the devices for which `which` is true (another device of a
    /// member that was unlinked, say). This device cannot be among them.
    pub fn remove_devices(
        &mut self,
        which: impl Fn(&DeviceCertificate) -> bool,
        now: Timestamp,
    ) -> Result<PendingCommit, ProtoError> {
        let leaves = self.leaves_of(which);
        if leaves.is_empty() {
            return Err(ProtoError::InvalidRequest("no such device"));
        }
        self.remove_leaves(leaves, now)
    }

    fn remove_leaves(
        &mut self,
        leaves: Vec<u32>,
        now: Timestamp,
    ) -> Result<PendingCommit, ProtoError> {
        if leaves.contains(&self.group.current_member_index()) {
            return Err(ProtoError::InvalidRequest(
                "a device cannot commit its own removal; use leave",
            ));
        }
        let epoch = self.epoch();
        let mut builder = self.group.commit_builder().commit_time(now.mls());
        for leaf in leaves {
            builder = builder.remove_member(leaf)?;
        }
        let out = builder.build()?;
        self.pending(epoch, out)
    }

    /// Refreshes this device's leaf and path keys (post-compromise security),
    /// and commits any proposals received so far (such as members leaving).
    pub fn self_update(&mut self, now: Timestamp) -> Result<PendingCommit, ProtoError> {
        let epoch = self.epoch();
        let out = self.group.commit_builder().commit_time(now.mls()).build()?;
        self.pending(epoch, out)
    }

    /// Renames a group.
    pub fn rename(&mut self, name: &str, now: Timestamp) -> Result<PendingCommit, ProtoError> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(ProtoError::InvalidRequest("a group name is 1 to 128 bytes"));
        }
        let mut info = self.info()?;
        if info.kind != ConversationKind::Group {
            return Err(ProtoError::InvalidRequest("a 1:1 chat has no name"));
        }
        info.name = Some(name.to_owned());
        let mut extensions = self.group.context().extensions.clone();
        extensions.set(info.to_extension());
        let epoch = self.epoch();
        let out = self
            .group
            .commit_builder()
            .commit_time(now.mls())
            .set_group_context_ext(extensions)?
            .build()?;
        self.pending(epoch, out)
    }

    /// Proposes removing every device of this account. A member cannot commit
    /// its own removal, so the remaining members commit these proposals (any
    /// commit includes them). Returns one proposal message per device; the
    /// caller sends them and then forgets the conversation.
    pub fn leave(&mut self) -> Result<Vec<Vec<u8>>, ProtoError> {
        let me = self.me.username().clone();
        let mut leaves = self.leaves_of(|c| c.username() == &me);
        // Propose the siblings first and this device last, so a partial send
        // never leaves this device out of a conversation its siblings are in.
        let own = self.group.current_member_index();
        leaves.sort_by_key(|l| *l == own);
        let mut out = Vec::with_capacity(leaves.len());
        for leaf in leaves {
            out.push(self.group.propose_remove(leaf, Vec::new())?.to_bytes()?);
        }
        self.persist()?;
        Ok(out)
    }

    /// Applies the pending commit after the server accepted it.
    pub fn confirm_commit(&mut self) -> Result<MembershipChange, ProtoError> {
        let before = self.members();
        let info_before = self.info().ok();
        self.group.apply_pending_commit()?;
        self.persist()?;
        Ok(self.change(before, info_before, Some(self.me.clone()), false))
    }

    /// Drops the pending commit after the server refused it (another commit
    /// won the epoch); process that commit, then try again.
    pub fn discard_commit(&mut self) -> Result<(), ProtoError> {
        self.group.clear_pending_commit();
        self.persist()
    }

    /// Processes an MLS message from the server: an application message, a
    /// commit or a proposal. State is persisted before it returns.
    pub fn process(&mut self, message: &[u8], now: Timestamp) -> Result<Incoming, ProtoError> {
        let incoming = self.process_in_batch(message, now)?;
        self.flush()?;
        Ok(incoming)
    }

    /// [`Conversation::process`] that leaves an application message's state
    /// change in memory until [`Conversation::flush`] (commits and proposals
    /// are still written at once). A refused message rolls back to the last
    /// flush and replays the messages processed since, so it changes nothing.
    pub fn process_in_batch(
        &mut self,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<Incoming, ProtoError> {
        if self.sealed_unflushed {
            self.persist()?;
        }
        let message = MlsMessage::from_bytes(bytes)?;
        if let Some(epoch) = message.epoch()
            && epoch > self.epoch()
        {
            return self.follow_refused(message, bytes, epoch);
        }
        // Only a commit changes membership; skip the roster for the rest
        // (decoding every member's certificate per message adds up in large
        // groups).
        let is_commit = token::is_commit(&message);
        let is_application = matches!(
            message.description(),
            mls_rs::MlsMessageDescription::PrivateProtocolMessage {
                content_type: mls_rs::group::ContentType::Application,
                ..
            }
        );
        let (before, info_before, authority) = if is_commit {
            (self.members(), self.info().ok(), Some(self.authority()))
        } else {
            (Vec::new(), None, None)
        };
        // A commit may announce a successor, sealed under this epoch.
        let successor_pad = if is_commit {
            self.successor_pad().ok()
        } else {
            None
        };
        let result = match self
            .group
            .process_incoming_message_with_time(message, now.mls())
        {
            Ok(r) => {
                if is_application {
                    self.dirty = true;
                    self.unflushed.push((bytes.to_vec(), now));
                } else {
                    if let (ReceivedMessage::Commit(c), Some(a)) = (&r, &authority) {
                        self.judge_commit(a, c, bytes)?;
                    }
                    self.persist()?;
                }
                r
            }
            Err(e) => {
                // A refused message changes nothing. mls-rs may already have
                // consumed state (a ciphertext that fails authentication after
                // its sender data decrypted has used up the message key), so
                // go back to the state before this call (the last flush plus
                // the messages processed since): the genuine message, if it
                // comes, still opens.
                self.rollback()?;
                return Err(e.into());
            }
        };
        match result {
            ReceivedMessage::ApplicationMessage(app) => {
                let sender = self
                    .member_at(app.sender_index)
                    .ok_or(ProtoError::Tampered)?;
                let (content, opening) = open(app.data(), &app.authenticated_data)?;
                self.check_post(sender.username(), &content)?;
                Ok(Incoming::Message(Box::new(Received {
                    sender,
                    content,
                    opening,
                })))
            }
            ReceivedMessage::Commit(commit) => {
                let removed_self = matches!(commit.effect, CommitEffect::Removed { .. });
                // Members that stay keep their leaf index, and a committer
                // always stays (it cannot commit its own removal).
                let committer = self.member_at(commit.committer);
                let mut change = self.change(before, info_before, committer, removed_self);
                change.successor = successor_pad.and_then(|pad| {
                    crate::migration::open_successor(&pad, &commit.authenticated_data)
                });
                Ok(Incoming::Commit(change))
            }
            ReceivedMessage::Proposal(p) => Ok(Incoming::Proposal {
                sender: match p.sender {
                    mls_rs::group::ProposalSender::Member(i) => self.member_at(i),
                    _ => None,
                },
            }),
            _ => Err(ProtoError::InvalidRequest(
                "not a message for an established conversation",
            )),
        }
    }

    pub(crate) fn pending(
        &mut self,
        epoch: u64,
        out: mls_rs::group::CommitOutput,
    ) -> Result<PendingCommit, ProtoError> {
        self.persist()?;
        let token = self.commit_token()?;
        // The next epoch's token, from a copy with the commit applied: the
        // copy is never written, so the group itself stays in this epoch.
        let mut next = self.group.clone();
        next.apply_pending_commit()?;
        let next_token = export_token(&next)?;
        Ok(PendingCommit {
            epoch,
            token,
            next_token_hash: crate::commit_token::token_hash(&next_token),
            commit: out.commit_message().to_bytes()?,
            welcome: out
                .welcome_messages()
                .first()
                .map(|w| w.to_bytes())
                .transpose()?,
            tree_blob: None,
        })
    }

    fn member_at(&self, index: u32) -> Option<DeviceCertificate> {
        let member = self.group.member_at_index(index)?;
        DeviceCertificate::from_credential(&member.signing_identity.credential).ok()
    }

    fn leaves_of(&self, which: impl Fn(&DeviceCertificate) -> bool) -> Vec<u32> {
        self.group
            .roster()
            .members_iter()
            .filter(|m| {
                DeviceCertificate::from_credential(&m.signing_identity.credential)
                    .is_ok_and(|c| which(&c))
            })
            .map(|m| m.index)
            .collect()
    }

    fn change(
        &self,
        before: Vec<DeviceCertificate>,
        info_before: Option<ConversationInfo>,
        committer: Option<DeviceCertificate>,
        removed_self: bool,
    ) -> MembershipChange {
        let after = self.members();
        let key = |c: &DeviceCertificate| (c.username().clone(), c.device_id(), *c.signature_key());
        let before_keys: BTreeSet<_> = before.iter().map(key).collect();
        let after_keys: BTreeSet<_> = after.iter().map(key).collect();
        let info = self.info().ok();
        MembershipChange {
            epoch: self.epoch(),
            committer,
            added: after
                .iter()
                .filter(|c| !before_keys.contains(&key(c)))
                .cloned()
                .collect(),
            removed: before
                .iter()
                .filter(|c| !after_keys.contains(&key(c)))
                .cloned()
                .collect(),
            info: if info != info_before { info } else { None },
            removed_self,
            successor: None,
        }
    }

    /// Replaces the in-memory group with the last persisted state, then
    /// processes again the application messages processed since.
    fn rollback(&mut self) -> Result<(), ProtoError> {
        let id = self.group.group_id().to_vec();
        let tree = self
            .store
            .tree(&id)
            .ok_or(ProtoError::UnknownConversation)?;
        let tree = mls_rs::group::ExportedTree::from_bytes(&tree)?;
        self.group = self.client.load_group_with_ratchet_tree(&id, tree)?;
        for (bytes, at) in &self.unflushed {
            let message = MlsMessage::from_bytes(bytes)?;
            self.group
                .process_incoming_message_with_time(message, at.mls())?;
        }
        Ok(())
    }

    /// Whether state changed by `_in_batch` calls waits for a flush.
    pub fn has_unflushed(&self) -> bool {
        self.dirty
    }

    /// Writes the state changed by `_in_batch` calls to the device's store
    /// (once, however many messages there were); the caller then takes the
    /// changes and persists them before it acknowledges or sends anything.
    pub fn flush(&mut self) -> Result<(), ProtoError> {
        if self.dirty {
            self.persist()?;
        }
        Ok(())
    }

    pub(crate) fn mark_tree_persisted(&mut self) {
        self.tree_epoch = Some(self.epoch());
    }

    /// Writes the group state, and the ratchet tree when the epoch moved. The
    /// tree is large (a hybrid-suite leaf carries a 1216-byte key) and changes
    /// only with the epoch, so per-message writes leave it out.
    pub(crate) fn persist(&mut self) -> Result<(), ProtoError> {
        self.group.write_to_storage_without_ratchet_tree()?;
        self.unflushed.clear();
        self.dirty = false;
        self.sealed_unflushed = false;
        let epoch = self.epoch();
        if self.tree_epoch != Some(epoch) {
            let tree = self.group.export_tree().to_bytes()?;
            self.store.put_tree(self.group.group_id(), tree);
            self.tree_epoch = Some(epoch);
        }
        Ok(())
    }
}

/// Opens a sealed application message: checks the franking commitment in the
/// authenticated data against the key and content inside, then decodes.
fn open(plaintext: &[u8], aad: &[u8]) -> Result<(Content, FrankingOpening), ProtoError> {
    let commitment = commitment_from_aad(aad)?;

    let mut r = Reader::new(plaintext);
    let version = r.u8()?;
    if version != SEALED_VERSION {
        return Err(DecodeError::UnsupportedVersion(version).into());
    }
    let key = FrankingKey::from_bytes(r.array()?);
    let encoded = r.take(r.remaining())?.to_vec();
    let opening = FrankingOpening {
        content: encoded,
        key,
        commitment,
    };
    verify_opening(&opening)?;
    let content = Content::decode(&opening.content)?;
    Ok((content, opening))
}

impl Conversation {
    fn ephemeral_key(&self) -> Result<Vec<u8>, ProtoError> {
        let secret =
            self.group
                .export_secret(crate::ephemeral::EXPORTER_LABEL.as_bytes(), b"", 32)?;
        Ok(secret.as_bytes().to_vec())
    }

    /// Seals typing or presence for the current members without touching the
    /// MLS ratchet (see [`crate::ephemeral`]).
    pub fn seal_ephemeral(
        &self,
        content: &Content,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<u8>, ProtoError> {
        let mut plain = Writer::new();
        plain
            .u32(self.group.current_member_index())
            .raw(&content.encode());
        crate::ephemeral::seal(
            &self.ephemeral_key()?,
            self.id(),
            self.epoch(),
            &plain.into_bytes(),
            rng,
        )
        .ok_or(ProtoError::InvalidRequest("sealing failed"))
    }

    /// Opens an ephemeral message of the current epoch.
    pub fn open_ephemeral(&self, bytes: &[u8]) -> Result<(DeviceCertificate, Content), ProtoError> {
        let header = crate::ephemeral::ephemeral_header(bytes)?;
        if header.group_id != self.id() || header.epoch != self.epoch() {
            return Err(ProtoError::WrongEpoch {
                message_epoch: header.epoch,
                current_epoch: self.epoch(),
            });
        }
        let plain = crate::ephemeral::open(&self.ephemeral_key()?, bytes)?;
        let mut r = Reader::new(&plain);
        let sender = r.u32()?;
        let content = Content::decode(r.take(r.remaining())?)?;
        let sender = self.member_at(sender).ok_or(ProtoError::Tampered)?;
        Ok((sender, content))
    }
}
