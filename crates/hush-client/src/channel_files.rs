//! Files in channels (decision 0038): the owner's device posts a file as
//! it sends one to a conversation (encrypted under a fresh key, uploaded
//! as an opaque blob), and the post carries the pointer (blob id, key,
//! digest, size, name). A subscriber fetches the blob like a message's
//! file: the server serves a blob to any account that names its id, so a
//! subscriber on any account downloads it, and the digest in the signed
//! post is checked before anything is decrypted. The blob expires after
//! the server's retention period, as for messages (and as the post does).

use std::path::Path;

use hush_proto::{AttachmentPointer, Body, Content};
use rusqlite::params;

use crate::attachment::{OpenedFile, file_name_of};
use crate::channels::{ChannelPostView, check_body_size, content_of};
use crate::client::Client;
use crate::error::ClientError;

/// The longest caption of a file post (the post must also hold the
/// pointer and the file's name).
const MAX_CAPTION: usize = 4096;

impl Client {
    /// Posts the file at `path` to the channel `name`, with `caption`,
    /// reporting `(bytes uploaded, total)`. Only the owner's device can:
    /// on any other nothing is uploaded and nothing is posted.
    pub async fn post_file_to_channel(
        &mut self,
        name: &str,
        path: &Path,
        caption: Option<&str>,
        progress: impl FnMut(u64, u64),
    ) -> Result<ChannelPostView, ClientError> {
        let row = self.channel_by_name(name)?;
        row.poster()?;
        let caption = caption.filter(|c| !c.trim().is_empty()).map(str::to_owned);
        if caption.as_ref().is_some_and(|c| c.len() > MAX_CAPTION) {
            return Err(ClientError::InvalidInput(format!(
                "a file's caption is at most {MAX_CAPTION} bytes"
            )));
        }
        let attachment = |pointer| Body::Attachment {
            pointer,
            caption: caption.clone(),
            reply_to: None,
        };
        // Whether the post would fit, before anything is uploaded.
        let sample = AttachmentPointer {
            blob_id: "x".repeat(64),
            key: [0; 32],
            digest: [0; 32],
            size: u64::MAX,
            media_type: "application/octet-stream".into(),
            file_name: file_name_of(path)?,
        };
        check_body_size(content_of(attachment(sample)).encode().len())?;
        let pointer = self.upload_file(path, progress).await?;
        self.post_content(&row, attachment(pointer)).await
    }

    /// Downloads, checks and decrypts the file of the post `id` of the
    /// channel `channel` into memory.
    pub async fn open_channel_file(
        &mut self,
        channel: &str,
        id: &str,
    ) -> Result<OpenedFile, ClientError> {
        self.channel_by_name(channel)?;
        let pointer = match self.channel_post_files(Some(channel), id)?.pop() {
            Some((_, Some(pointer))) => pointer,
            Some(_) => {
                return Err(ClientError::NotFound(format!(
                    "the post {id} of ~{channel} has no file"
                )));
            }
            None => {
                return Err(ClientError::NotFound(format!(
                    "~{channel} has no post {id}"
                )));
            }
        };
        self.open_pointer(pointer).await
    }

    /// The posts with id `id` (hex) taken in, of the channel `channel` or
    /// of any: each with its channel's name and its file, if any.
    pub(crate) fn channel_post_files(
        &self,
        channel: Option<&str>,
        id: &str,
    ) -> Result<Vec<(String, Option<AttachmentPointer>)>, ClientError> {
        let Some(post_id) = hex::decode(id).ok().filter(|b| b.len() == 16) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String, Vec<u8>)> = self
            .store
            .conn
            .prepare(
                "SELECT c.name, p.content FROM channel_posts p JOIN channels c \
                 ON c.id = p.channel WHERE p.post_id = ?1 AND (?2 IS NULL OR c.name = ?2)",
            )?
            .query_map(params![post_id, channel], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows
            .into_iter()
            .map(|(name, content)| {
                let pointer = match Content::decode(&content).map(|c| c.body) {
                    Ok(Body::Attachment { pointer, .. }) => Some(pointer),
                    _ => None,
                };
                (name, pointer)
            })
            .collect())
    }
}
