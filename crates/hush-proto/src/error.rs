//! The crate's error type, sorted by what the caller should do about it.

use mls_rs::error::MlsError;
use thiserror::Error;

use crate::codec::DecodeError;
use crate::franking::FrankingError;
use crate::identity::IdentityError;
use crate::storage::StoreError;

/// Everything that can go wrong in `hush-proto`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// An identity, key or device certificate was refused.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Bytes from the network or disk did not decode.
    #[error("malformed input: {0}")]
    Decode(#[from] DecodeError),
    /// The franking commitment does not match the content.
    #[error(transparent)]
    Franking(#[from] FrankingError),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The message was altered in transit or is not for this group: drop it.
    #[error("message failed authentication (tampered, or not for this conversation)")]
    Tampered,
    /// The message was already processed once; a replay is dropped.
    #[error("message was already processed (replay) or its key is gone")]
    Replayed,
    /// The message belongs to an epoch this device no longer (or not yet) has.
    #[error("message is for epoch {message_epoch}, this device is at {current_epoch}")]
    WrongEpoch {
        /// The epoch in the message header.
        message_epoch: u64,
        /// This device's epoch.
        current_epoch: u64,
    },
    /// This device sent the message; its own copy needs no processing.
    #[error("message is this device's own")]
    OwnMessage,
    /// A commit is waiting for the server's answer; confirm or discard it first.
    #[error("a commit is already pending for this conversation")]
    CommitPending,
    /// No commit is pending.
    #[error("no commit is pending for this conversation")]
    NoPendingCommit,
    /// The conversation is not in this device's state.
    #[error("unknown conversation")]
    UnknownConversation,
    /// The named account has no device in the conversation.
    #[error("{0} is not a member of this conversation")]
    NotAMember(String),
    /// No Welcome in the message matched a KeyPackage of this device.
    #[error("the welcome is not addressed to this device")]
    NotInvited,
    /// The request makes no sense here (documented per call).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The group would hold more devices than Hush supports.
    #[error("a group holds at most {limit} devices; this would make {requested}")]
    GroupTooLarge {
        /// [`crate::big_group::MAX_GROUP_DEVICES`].
        limit: usize,
        /// How many it would hold.
        requested: usize,
    },
    /// An out-of-band commit blob opened, but what is inside is not a
    /// commit of the group and epoch its pointer names: a member of the
    /// epoch sealed something else (see [`crate::commit_blob`]).
    #[error("the commit blob holds no commit of this group and epoch")]
    MisdirectedCommit,
    /// Only a group's admins may do this (decision 0032): a received commit
    /// or post that breaks the group's rules was refused, or this device
    /// may not make it.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// Any other MLS failure, with mls-rs's own description.
    #[error("MLS error: {0}")]
    Mls(MlsError),
}

impl From<MlsError> for ProtoError {
    fn from(err: MlsError) -> Self {
        match err {
            MlsError::IdentityProviderError(any) => {
                match any.inner_dyn_error().downcast_ref::<IdentityError>() {
                    Some(id) => ProtoError::Identity(id.clone()),
                    None => ProtoError::Mls(MlsError::IdentityProviderError(any)),
                }
            }
            MlsError::MlsRulesError(any) => {
                match any
                    .inner_dyn_error()
                    .downcast_ref::<crate::conversation::NotAllowed>()
                {
                    Some(n) => ProtoError::NotAllowed(n.0.to_owned()),
                    None => ProtoError::Mls(MlsError::MlsRulesError(any)),
                }
            }
            MlsError::CryptoProviderError(_)
            | MlsError::InvalidSignature
            | MlsError::InvalidMembershipTag
            | MlsError::InvalidConfirmationTag
            | MlsError::GroupIdMismatch => ProtoError::Tampered,
            MlsError::KeyMissing(_) => ProtoError::Replayed,
            MlsError::CantProcessMessageFromSelf => ProtoError::OwnMessage,
            MlsError::ExistingPendingCommit => ProtoError::CommitPending,
            MlsError::PendingCommitNotFound => ProtoError::NoPendingCommit,
            MlsError::GroupNotFound => ProtoError::UnknownConversation,
            MlsError::WelcomeKeyPackageNotFound => ProtoError::NotInvited,
            other => ProtoError::Mls(other),
        }
    }
}

impl From<mls_rs::mls_rs_codec::Error> for ProtoError {
    fn from(_: mls_rs::mls_rs_codec::Error) -> Self {
        ProtoError::Decode(DecodeError::Invalid {
            field: "MLS message",
            reason: "does not decode",
        })
    }
}
