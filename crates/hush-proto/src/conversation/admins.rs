//! Admins and the "only admins send" setting (decision 0032).
//!
//! A group's [`GroupPolicy`] travels in the MLS group context (extension
//! [`POLICY_EXTENSION`]), so the members of an epoch agree on it. Only an
//! admin adds an account, removes another account, changes the group
//! context (name, admins, settings) or commits such a proposal made by
//! someone else; any member adds devices of an account already in the group
//! (its new or restored devices, which key transparency vouches for),
//! removes its own devices, leaves, and updates its keys. A committer's
//! device refuses to build anything else ([`HushRules`](crate::big_group)
//! drops such proposals by reference and refuses them by value); every
//! member's device refuses a received commit that breaks the rules
//! ([`Authority::judge`]), the same way on every member.

use std::collections::BTreeMap;

use mls_rs::group::proposal::{BorrowedProposal, Proposal};
use mls_rs::group::{Roster, Sender};
use mls_rs::{Extension, ExtensionList};
use mls_rs_core::extension::ExtensionType;

use super::{Conversation, PendingCommit};
use crate::Timestamp;
use crate::codec::{DecodeError, Reader, Writer};
use crate::content::{Body, Content};
use crate::error::ProtoError;
use crate::identity::{DeviceCertificate, Username};

/// The group context extension that carries [`GroupPolicy`].
pub const POLICY_EXTENSION: ExtensionType = ExtensionType::new(0xF0A7);
/// Most admins a group lists.
pub const MAX_ADMINS: usize = 64;
const POLICY_VERSION: u8 = 1;
const ONLY_ADMINS_SEND: u8 = 1;

/// Who runs a group: its admins (the creator first) and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPolicy {
    /// The admin accounts, in the order they were made admins.
    pub admins: Vec<Username>,
    /// Only admins post (an announcement group).
    pub only_admins_send: bool,
}

impl GroupPolicy {
    /// A new group's policy: its creator is the one admin.
    pub fn new(creator: Username) -> Self {
        Self {
            admins: vec![creator],
            only_admins_send: false,
        }
    }

    /// The extension's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(POLICY_VERSION)
            .u8(if self.only_admins_send {
                ONLY_ADMINS_SEND
            } else {
                0
            })
            .u16(self.admins.len() as u16);
        for a in &self.admins {
            w.bytes(a.as_str().as_bytes());
        }
        w.into_bytes()
    }

    /// Parses [`GroupPolicy::encode`]: 1 to [`MAX_ADMINS`] distinct valid
    /// usernames, no unknown flag, nothing after.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let invalid = |reason| DecodeError::Invalid {
            field: "group policy",
            reason,
        };
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != POLICY_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let flags = r.u8()?;
        if flags & !ONLY_ADMINS_SEND != 0 {
            return Err(invalid("unknown flag"));
        }
        let count = usize::from(r.u16()?);
        if count == 0 || count > MAX_ADMINS {
            return Err(invalid("admin count"));
        }
        let mut admins: Vec<Username> = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.string("admin", Username::MAX_LEN)?;
            let name = Username::new(name).map_err(|_| invalid("admin name"))?;
            if admins.contains(&name) {
                return Err(invalid("duplicate admin"));
            }
            admins.push(name);
        }
        r.finish()?;
        Ok(Self {
            admins,
            only_admins_send: flags & ONLY_ADMINS_SEND != 0,
        })
    }

    pub(crate) fn to_extension(&self) -> Extension {
        Extension::new(POLICY_EXTENSION, self.encode())
    }

    /// The policy in a group context; `None` for a 1:1 chat or a group
    /// made before admins existed (there every member may do everything).
    pub(crate) fn from_extensions(list: &ExtensionList) -> Result<Option<Self>, DecodeError> {
        list.get(POLICY_EXTENSION)
            .map(|ext| Self::decode(&ext.extension_data))
            .transpose()
    }
}

/// One proposal, as far as the rules care.
enum Act {
    /// Adds a device of this account (`None`: no readable certificate).
    Add(Option<Username>),
    /// Removes the device at this leaf.
    Remove(u32),
    /// Refreshes the sender's own leaf.
    Update,
    /// Anything else (group context, pre-shared keys, reinit, external
    /// init): admins only.
    Admin,
}

impl Act {
    fn of_borrowed(p: &BorrowedProposal<'_>) -> Self {
        match p {
            BorrowedProposal::Add(a) => Act::add(a.signing_identity()),
            BorrowedProposal::Remove(r) => Act::Remove(r.to_remove()),
            BorrowedProposal::Update(_) => Act::Update,
            _ => Act::Admin,
        }
    }

    fn of(p: &Proposal) -> Self {
        match p {
            Proposal::Add(a) => Act::add(a.signing_identity()),
            Proposal::Remove(r) => Act::Remove(r.to_remove()),
            Proposal::Update(_) => Act::Update,
            _ => Act::Admin,
        }
    }

    fn add(identity: &mls_rs_core::identity::SigningIdentity) -> Self {
        Act::Add(
            DeviceCertificate::from_credential(&identity.credential)
                .ok()
                .map(|c| c.username().clone()),
        )
    }
}

/// Who may do what in one epoch: its policy and the account at each leaf.
#[derive(Debug, Clone)]
pub(crate) struct Authority {
    policy: Option<GroupPolicy>,
    leaves: BTreeMap<u32, Username>,
}

impl Authority {
    /// The authority of an epoch, from its context and roster. A policy that
    /// does not decode counts as none listed (never reached: a commit that
    /// sets one is refused).
    pub(crate) fn of(context: &ExtensionList, roster: &Roster<'_>) -> Self {
        let leaves = roster
            .members_iter()
            .filter_map(|m| {
                DeviceCertificate::from_credential(&m.signing_identity.credential)
                    .ok()
                    .map(|c| (m.index, c.username().clone()))
            })
            .collect();
        Self {
            policy: GroupPolicy::from_extensions(context).ok().flatten(),
            leaves,
        }
    }

    fn is_member(&self, who: &Username) -> bool {
        self.leaves.values().any(|u| u == who)
    }

    /// Whether `who` is an admin: listed, or every member when no listed
    /// admin is still a member (a group is never left without one) or the
    /// group has no policy.
    pub(crate) fn is_admin(&self, who: &Username) -> bool {
        match &self.policy {
            None => true,
            Some(p) if p.admins.iter().any(|a| self.is_member(a)) => p.admins.contains(who),
            Some(_) => true,
        }
    }

    fn account(&self, sender: &Sender) -> Option<&Username> {
        match sender {
            Sender::Member(leaf) => self.leaves.get(leaf),
            _ => None,
        }
    }

    /// Whether `sender` may make `act`.
    fn allows(&self, sender: &Sender, act: &Act) -> Result<(), &'static str> {
        let who = self
            .account(sender)
            .ok_or("a change from outside the group")?;
        let own = match act {
            Act::Update => true,
            Act::Add(Some(target)) => self.is_member(target),
            Act::Add(None) => false,
            Act::Remove(leaf) => self.leaves.get(leaf) == Some(who),
            Act::Admin => false,
        };
        if own || self.is_admin(who) {
            Ok(())
        } else {
            Err(match act {
                Act::Add(_) => "only admins add members",
                Act::Remove(_) => "only admins remove members",
                _ => "only admins change the group",
            })
        }
    }

    /// Drops the proposals by reference `committer`'s commit may not carry
    /// and refuses the commit when one by value breaks the rules: what a
    /// committing device applies to its own commits.
    pub(crate) fn filter(
        &self,
        committer: u32,
        mut proposals: mls_rs::mls_rules::ProposalBundle,
    ) -> Result<mls_rs::mls_rules::ProposalBundle, NotAllowed> {
        let mut refused = None;
        proposals
            .retain(|p| {
                let ok = self.allows(&p.sender, &Act::of_borrowed(&p.proposal));
                match ok {
                    Ok(()) => Ok::<_, std::convert::Infallible>(true),
                    Err(why) if p.is_by_value() => {
                        refused = Some(why);
                        Ok(false)
                    }
                    Err(_) => Ok(false),
                }
            })
            .map_err(|e| match e {})?;
        if let Some(why) = refused {
            return Err(NotAllowed(why));
        }
        self.allows(&Sender::Member(committer), &Act::Update)
            .map_err(NotAllowed)?;
        Ok(proposals)
    }

    /// Judges a received commit: every proposal it applied against this
    /// (the previous) epoch, and the policy it leaves behind.
    pub(crate) fn judge(
        &self,
        commit: &mls_rs::group::CommitMessageDescription,
        after: &ExtensionList,
    ) -> Result<(), &'static str> {
        let applied = match &commit.effect {
            mls_rs::group::CommitEffect::NewEpoch(e) => &e.applied_proposals,
            mls_rs::group::CommitEffect::Removed { new_epoch, .. } => &new_epoch.applied_proposals,
            mls_rs::group::CommitEffect::ReInit(_) => return Err("only admins change the group"),
        };
        if commit.is_external {
            return Err("a change from outside the group");
        }
        self.allows(&Sender::Member(commit.committer), &Act::Update)?;
        for p in applied {
            self.allows(&p.sender, &Act::of(&p.proposal))?;
        }
        match (&self.policy, GroupPolicy::from_extensions(after)) {
            (_, Err(_)) => Err("a group policy that does not decode"),
            (Some(_), Ok(None)) => Err("a group without its admins"),
            _ if crate::invite::GroupLinks::from_extensions(after).is_err() => {
                Err("invite links that do not decode")
            }
            _ => Ok(()),
        }
    }
}

/// A commit this device may not make (see [`Authority::filter`]).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{0}")]
pub struct NotAllowed(pub &'static str);

impl mls_rs_core::error::IntoAnyError for NotAllowed {
    fn into_dyn_error(self) -> Result<Box<dyn std::error::Error + Send + Sync>, Self> {
        Ok(Box::new(self))
    }
}

impl Conversation {
    pub(super) fn authority(&self) -> Authority {
        Authority::of(&self.group.context().extensions, &self.group.roster())
    }

    /// The group's admins and settings; `None` for a 1:1 chat or a group
    /// made before admins existed, where every member may do everything.
    pub fn policy(&self) -> Result<Option<GroupPolicy>, ProtoError> {
        Ok(GroupPolicy::from_extensions(
            &self.group.context().extensions,
        )?)
    }

    /// Whether `who` may do what only admins may (see [`Authority::is_admin`]).
    pub fn is_admin(&self, who: &Username) -> bool {
        self.authority().is_admin(who)
    }

    /// Replaces the group's admins and settings (admins only). Every admin
    /// must be a member.
    pub fn set_policy(
        &mut self,
        policy: &GroupPolicy,
        now: Timestamp,
    ) -> Result<PendingCommit, ProtoError> {
        GroupPolicy::decode(&policy.encode())?;
        let accounts = self.accounts();
        if !policy.admins.iter().all(|a| accounts.contains(a)) {
            return Err(ProtoError::InvalidRequest("every admin must be a member"));
        }
        let mut extensions = self.group.context().extensions.clone();
        extensions.set(policy.to_extension());
        let epoch = self.epoch();
        let out = self
            .group
            .commit_builder()
            .commit_time(now.mls())
            .set_group_context_ext(extensions)?
            .build()?;
        self.pending(epoch, out)
    }

    /// Refuses a post (text, file, edit, timer, pin, poll) from a non-admin
    /// in a group where only admins send.
    pub(super) fn check_post(
        &self,
        sender: &Username,
        content: &Content,
    ) -> Result<(), ProtoError> {
        let post = matches!(
            content.body,
            Body::Text { .. }
                | Body::Attachment { .. }
                | Body::Edit { .. }
                | Body::DisappearingTimer { .. }
                | Body::Pin { .. }
                | Body::Poll { .. }
        );
        let only_admins = matches!(self.policy(), Ok(Some(p)) if p.only_admins_send);
        if post && only_admins && !self.is_admin(sender) {
            return Err(ProtoError::NotAllowed(format!(
                "{sender}: only admins send in this group"
            )));
        }
        Ok(())
    }

    /// Judges a commit just processed (still only in memory) against the
    /// epoch before it. A refused commit is undone, like every refused
    /// message; but the server took it as the epoch's winner, so it is kept
    /// to derive the token the server now expects (see `token.rs`). Every
    /// member judges the same commit against the same epoch, so all refuse
    /// it or none does.
    pub(super) fn judge_commit(
        &mut self,
        authority: &Authority,
        commit: &mls_rs::group::CommitMessageDescription,
        bytes: &[u8],
    ) -> Result<(), ProtoError> {
        let Err(why) = authority.judge(commit, &self.group.context().extensions) else {
            return Ok(());
        };
        let by = authority
            .account(&Sender::Member(commit.committer))
            .map_or_else(|| "someone".to_owned(), |u| u.to_string());
        self.rollback()?;
        self.keep_refused(bytes);
        Err(ProtoError::NotAllowed(format!("{by}: {why}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: &str) -> Username {
        Username::new(n).unwrap()
    }

    #[test]
    fn a_policy_round_trips_and_bad_ones_are_refused() {
        let p = GroupPolicy {
            admins: vec![user("alice"), user("bob")],
            only_admins_send: true,
        };
        assert_eq!(GroupPolicy::decode(&p.encode()).unwrap(), p);
        let mut trailing = p.encode();
        trailing.push(0);
        assert!(GroupPolicy::decode(&trailing).is_err());
        let empty = GroupPolicy {
            admins: vec![],
            only_admins_send: false,
        };
        assert!(GroupPolicy::decode(&empty.encode()).is_err());
        let twice = GroupPolicy {
            admins: vec![user("alice"), user("alice")],
            only_admins_send: false,
        };
        assert!(GroupPolicy::decode(&twice.encode()).is_err());
        let mut flags = p.encode();
        flags[1] = 0x80;
        assert!(GroupPolicy::decode(&flags).is_err());
        for cut in 0..p.encode().len() {
            assert!(GroupPolicy::decode(&p.encode()[..cut]).is_err());
        }
    }
}
