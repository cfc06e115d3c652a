//! Big groups (see `hush_proto::big_group`): devices are added in batches
//! that fit the server's message limit, and when a group's ratchet tree no
//! longer fits in a Welcome, the committer uploads it sealed to the blob
//! store and the joiner fetches it from the location the Welcome names.

use hush_proto::big_group::{BIG_GROUP_LEAVES, MAX_TREE_BLOB_LEN, add_batches};
use hush_proto::{MAX_GROUP_DEVICES, TreeBlob, TreeRef, TreeSlot};
use hush_wire::ErrorCode;
use hush_wire::api::{CreateAttachmentRequest, CreateAttachmentResponse};
use reqwest::Method;

use crate::client::{Client, now};
use crate::error::ClientError;

/// Bytes per upload request.
const UPLOAD_PART: usize = 1024 * 1024;

/// The error for a group that would exceed [`MAX_GROUP_DEVICES`].
pub(crate) fn too_large(devices: usize) -> ClientError {
    ClientError::InvalidInput(format!(
        "a group holds at most {MAX_GROUP_DEVICES} devices (for example 1000 members with up \
         to 5 devices each); this would make {devices}"
    ))
}

impl Client {
    /// Reserves a blob slot of `len` bytes for a commit's tree.
    async fn reserve_tree_slot(&mut self, len: u64) -> Result<TreeSlot, ClientError> {
        let created: CreateAttachmentResponse = self
            .transport
            .json(
                Method::POST,
                "/v1/attachments",
                Some(&CreateAttachmentRequest { size: len }),
            )
            .await?;
        Ok(TreeSlot {
            blob_id: created.id,
            len,
        })
    }

    /// Uploads a commit's sealed tree into its slot.
    pub(crate) async fn upload_tree(&mut self, blob: &TreeBlob) -> Result<(), ClientError> {
        let mut offset = 0;
        while offset < blob.bytes.len() {
            let end = (offset + UPLOAD_PART).min(blob.bytes.len());
            self.transport
                .raw(
                    Method::PATCH,
                    &format!("/v1/attachments/{}", blob.blob_id),
                    &[("upload-offset", offset.to_string())],
                    Some(blob.bytes[offset..end].to_vec()),
                )
                .await?;
            offset = end;
        }
        Ok(())
    }

    /// Fetches the tree blob a Welcome names: exactly `at.len` bytes, or
    /// [`hush_proto::ProtoError::Tampered`]. A blob the server no longer
    /// has is [`ClientError::NotFound`].
    pub(crate) async fn fetch_tree(&mut self, at: &TreeRef) -> Result<Vec<u8>, ClientError> {
        if at.len > MAX_TREE_BLOB_LEN {
            return Err(hush_proto::ProtoError::Tampered.into());
        }
        let resp = self
            .transport
            .raw(
                Method::GET,
                &format!("/v1/attachments/{}", at.blob_id),
                &[],
                None,
            )
            .await
            .map_err(|e| match e.code() {
                Some(ErrorCode::NotFound) => {
                    ClientError::NotFound("the invitation's group tree is gone".into())
                }
                _ => e,
            })?;
        let mut out = Vec::new();
        let mut stream = resp.bytes_stream();
        use futures_util::StreamExt;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (out.len() + chunk.len()) as u64 > at.len {
                return Err(hush_proto::ProtoError::Tampered.into());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Adds devices to a group in batches that each fit in one commit and
    /// one Welcome, with the tree out of band when the group is big.
    pub(crate) async fn add_in_batches(
        &mut self,
        group_id: &[u8],
        key_packages: &[Vec<u8>],
    ) -> Result<(), ClientError> {
        let members = self.conv(group_id)?.members().len();
        if members + key_packages.len() > MAX_GROUP_DEVICES {
            return Err(too_large(members + key_packages.len()));
        }
        for batch in add_batches(key_packages, members) {
            self.commit_adding(group_id, batch).await?;
        }
        Ok(())
    }

    /// One add commit, reserving a fresh tree slot for each attempt when the
    /// tree goes out of band.
    async fn commit_adding(
        &mut self,
        group_id: &[u8],
        key_packages: &[Vec<u8>],
    ) -> Result<hush_proto::MembershipChange, ClientError> {
        for _ in 0..crate::convs::COMMIT_ATTEMPTS {
            let slot = match self.conv(group_id)?.tree_blob_len(key_packages)? {
                Some(len) => Some(self.reserve_tree_slot(len).await?),
                None => None,
            };
            let t = now();
            let mut build = |c: &mut hush_proto::Conversation| {
                c.add_devices_via(key_packages, t, slot.as_ref())
            };
            if let Some(change) = self.commit_once(group_id, &mut build).await? {
                return Ok(change);
            }
        }
        Err(ClientError::Network(
            "the group kept changing under this commit; try again".into(),
        ))
    }

    /// Joins from a Welcome, fetching its tree first when it travels out of
    /// band.
    pub(crate) async fn join_welcome(
        &mut self,
        welcome: &[u8],
    ) -> Result<hush_proto::Conversation, ClientError> {
        let blob = match self.device.welcome_tree(welcome)? {
            Some(at) => Some(self.fetch_tree(&at).await?),
            None => None,
        };
        Ok(self
            .device
            .join_with_tree(welcome, blob.as_deref(), now())?)
    }

    /// A joiner's first commit in a big group: one attempt at a self-update. When another
    /// commit took the epoch, or the group is so sparse that the update path
    /// would not fit in a message, it is left for a later commit.
    pub(crate) async fn self_update_after_join(&mut self, group_id: &[u8]) {
        let big = self
            .conv(group_id)
            .is_ok_and(|c| c.members().len() > BIG_GROUP_LEAVES);
        if !big {
            return;
        }
        let t = now();
        let mut build = |c: &mut hush_proto::Conversation| c.self_update(t);
        match self.commit_once(group_id, &mut build).await {
            Ok(Some(_)) => tracing::debug!("self-updated after joining"),
            Ok(None) => tracing::debug!("another commit came first; self-update left for later"),
            Err(e) => tracing::debug!(error = %e, "no self-update after joining"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_limit_error_says_the_limit_and_the_count() {
        let msg = too_large(MAX_GROUP_DEVICES + 7).to_string();
        assert!(msg.contains("at most 5000 devices"), "{msg}");
        assert!(msg.contains("5007"), "{msg}");
    }
}
