//! Forwarding (decision 0039): a text or file of one conversation sent to
//! another, marked forwarded (`PostMeta::forwarded`), without who wrote it
//! or what it answered. A file is not uploaded again: the new message
//! carries the same pointer (blob id, key, digest), which any device may
//! fetch while the server keeps the blob; so this device first asks the
//! server whether it still has the whole blob, and refuses to forward a
//! file the recipients could not download.

use hush_proto::{AttachmentPointer, Body};
use hush_wire::api::AttachmentStatus;
use reqwest::Method;

use crate::client::Client;
use crate::error::ClientError;
use crate::messages::AttachmentRecord;
use crate::model::{MessageView, Target};

fn corrupt(what: &str) -> ClientError {
    ClientError::Store(format!("stored attachment {what} is corrupt"))
}

/// The pointer a stored attachment record describes.
pub(crate) fn pointer_of(record: AttachmentRecord) -> Result<AttachmentPointer, ClientError> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let array = |s: &str, what: &str| -> Result<[u8; 32], ClientError> {
        b64.decode(s)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
            .ok_or_else(|| corrupt(what))
    };
    Ok(AttachmentPointer {
        key: array(&record.key, "key")?,
        digest: array(&record.digest, "digest")?,
        blob_id: record.blob_id,
        size: record.size,
        media_type: record.media_type,
        file_name: record.file_name,
    })
}

impl Client {
    /// Forwards message `id` (a text or a file, of any conversation) to
    /// `to`, marked forwarded; returns the new message.
    pub async fn forward(&mut self, id: &str, to: &Target) -> Result<MessageView, ClientError> {
        let (m, _, _) = self.live_message(id, "a deleted message cannot be forwarded")?;
        let body = if m.kind == "file" {
            let pointer = self.forwardable_pointer(id).await?;
            Body::Attachment {
                pointer,
                caption: m.text,
                reply_to: None,
            }
        } else {
            Body::Text {
                text: m.text.unwrap_or_default(),
                reply_to: None,
            }
        };
        self.send_post(to, body, true).await
    }

    /// The pointer of message `id`'s file, if the server still holds all of
    /// its blob.
    async fn forwardable_pointer(&mut self, id: &str) -> Result<AttachmentPointer, ClientError> {
        let json: Option<String> = self.store.conn.query_row(
            "SELECT attachment FROM messages WHERE id = ?1",
            rusqlite::params![id],
            |r| r.get(0),
        )?;
        let record: AttachmentRecord = json
            .and_then(|j| serde_json::from_str(&j).ok())
            .ok_or_else(|| ClientError::NotFound(format!("message {id} has no file")))?;
        let pointer = pointer_of(record)?;
        let status: Result<AttachmentStatus, _> = self
            .transport
            .json::<(), _>(
                Method::GET,
                &format!("/v1/attachments/{}/status", pointer.blob_id),
                None,
            )
            .await;
        match status {
            Ok(s) if s.complete => Ok(pointer),
            Err(e) if e.code() != Some(hush_wire::ErrorCode::NotFound) => Err(e),
            _ => Err(ClientError::NotFound(format!(
                "the server no longer holds the file of message {id} (it expired), \
                 so it cannot be forwarded"
            ))),
        }
    }
}
