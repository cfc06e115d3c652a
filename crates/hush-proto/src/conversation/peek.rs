//! Reading what an MLS message is without any key, to route it.

use mls_rs::MlsMessage;

use crate::error::ProtoError;

/// What kind of MLS message some bytes are, read without any key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageKind {
    /// A Welcome: join with [`crate::Device::join`].
    Welcome,
    /// A message of an existing group: process it in that conversation.
    Group {
        /// The group.
        group_id: Vec<u8>,
        /// The epoch in its header.
        epoch: u64,
    },
    /// A KeyPackage.
    KeyPackage,
    /// Anything else (group info and the like).
    Other,
}

/// Classifies an MLS message so the caller can route it.
pub fn peek_message(bytes: &[u8]) -> Result<MessageKind, ProtoError> {
    let message = MlsMessage::from_bytes(bytes)?;
    Ok(match message.wire_format() {
        mls_rs::WireFormat::Welcome => MessageKind::Welcome,
        mls_rs::WireFormat::KeyPackage => MessageKind::KeyPackage,
        mls_rs::WireFormat::PublicMessage | mls_rs::WireFormat::PrivateMessage => {
            match (message.group_id(), message.epoch()) {
                (Some(id), Some(epoch)) => MessageKind::Group {
                    group_id: id.to_vec(),
                    epoch,
                },
                _ => MessageKind::Other,
            }
        }
        _ => MessageKind::Other,
    })
}

/// Whether `bytes` are an application message (encrypted, of a group): what
/// [`Conversation::process_in_batch`] leaves unwritten until the flush. A
/// commit or proposal changes the group at once, so a caller batching
/// messages writes its batch before it processes one.
pub fn is_application_message(bytes: &[u8]) -> bool {
    MlsMessage::from_bytes(bytes).is_ok_and(|m| {
        matches!(
            m.description(),
            mls_rs::MlsMessageDescription::PrivateProtocolMessage {
                content_type: mls_rs::group::ContentType::Application,
                ..
            }
        )
    })
}
