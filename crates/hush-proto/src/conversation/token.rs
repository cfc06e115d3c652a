//! The commit token of a conversation's epoch (see [`crate::commit_token`]),
//! and the commits the server ordered that this device refused.
//!
//! The server takes the first commit with the epoch's token as the winner,
//! and the winner names the next token; it cannot read commits, so it takes
//! one the members then refuse (a non-admin's, decision 0032) just the same.
//! The members stay in their epoch, and keep the refused commit (and any
//! commit ordered on top of it, made from the state it led to) to derive
//! the token the server now expects: their next commit claims their epoch
//! with that token, and wins. Every member sees the same commits in the
//! same order and judges them the same way, so they agree on the token.

use mls_rs::MlsMessage;
use mls_rs::group::{Group, ReceivedMessage};

use super::{Conversation, Incoming};
use crate::device::HushConfig;
use crate::error::ProtoError;

/// Most refused commits followed on top of each other; past this, the group's
/// commits stop (as when a member names a token nobody can match, decision
/// 0012) until one of those commits' own members, or a member that kept up,
/// commits.
pub const MAX_REFUSED: usize = 16;

pub(super) fn export_token(
    group: &Group<HushConfig>,
) -> Result<[u8; crate::commit_token::TOKEN_LEN], ProtoError> {
    let secret = group.export_secret(
        crate::commit_token::EXPORTER_LABEL.as_bytes(),
        b"",
        crate::commit_token::TOKEN_LEN,
    )?;
    <[u8; crate::commit_token::TOKEN_LEN]>::try_from(secret.as_bytes())
        .map_err(|_| ProtoError::InvalidRequest("the exporter returned a short secret"))
}

impl Conversation {
    /// The commit token the server expects from this group next: the
    /// current epoch's, known to its members only, or, after this device
    /// refused commits the server ordered, the token those led to.
    pub fn commit_token(&self) -> Result<[u8; crate::commit_token::TOKEN_LEN], ProtoError> {
        let refused = self.store.refused(self.id(), self.epoch());
        if !refused.is_empty() {
            // A device that a refused commit removed cannot follow it.
            if let Ok(shadow) = self.shadow(&refused) {
                return export_token(&shadow);
            }
        }
        export_token(&self.group)
    }

    /// The group as the refused `commits` left it (never stored).
    fn shadow(&self, commits: &[Vec<u8>]) -> Result<Group<HushConfig>, ProtoError> {
        let mut shadow = self.group.clone();
        // A commit this device is building is not part of it.
        shadow.clear_pending_commit();
        for c in commits {
            match shadow.process_incoming_message(MlsMessage::from_bytes(c)?)? {
                ReceivedMessage::Commit(_) => {}
                _ => {
                    return Err(ProtoError::InvalidRequest(
                        "a refused commit is not a commit",
                    ));
                }
            }
        }
        Ok(shadow)
    }

    /// Keeps a commit of this epoch that was just refused (and undone).
    pub(super) fn keep_refused(&mut self, commit: &[u8]) {
        self.store
            .put_refused(self.id(), self.epoch(), &[commit.to_vec()]);
    }

    /// A commit for an epoch ahead of this device's: one the server ordered
    /// on top of a refused commit. Followed (so the next token is known) if
    /// it applies to a state the refused commits led to, and refused too:
    /// the members never took the state it builds on.
    pub(super) fn follow_refused(
        &mut self,
        message: MlsMessage,
        bytes: &[u8],
        epoch: u64,
    ) -> Result<Incoming, ProtoError> {
        let current = self.epoch();
        let mut refused = self.store.refused(self.id(), current);
        let depth = usize::try_from(epoch - current).unwrap_or(usize::MAX);
        if !is_commit(&message) || depth > refused.len() || depth >= MAX_REFUSED {
            return Err(ProtoError::WrongEpoch {
                message_epoch: epoch,
                current_epoch: current,
            });
        }
        refused.truncate(depth);
        let mut shadow = self.shadow(&refused)?;
        match shadow.process_incoming_message(message)? {
            ReceivedMessage::Commit(_) => {}
            _ => return Err(ProtoError::InvalidRequest("not a commit")),
        }
        refused.push(bytes.to_vec());
        self.store.put_refused(self.id(), current, &refused);
        Err(ProtoError::NotAllowed(
            "a change built on one the group refused".into(),
        ))
    }
}

/// Whether `message` is a commit (read from its header or framing).
pub(super) fn is_commit(message: &MlsMessage) -> bool {
    matches!(
        message.description(),
        mls_rs::MlsMessageDescription::PrivateProtocolMessage {
            content_type: mls_rs::group::ContentType::Commit,
            ..
        } | mls_rs::MlsMessageDescription::PublicProtocolMessage {
            content_type: mls_rs::group::ContentType::Commit,
            ..
        }
    )
}
