//! Big groups (see `hush_proto::big_group`): devices are added in batches
//! that fit the server's message limit, and when a group's ratchet tree no
//! longer fits in a Welcome, the committer uploads it sealed to the blob
//! store and the joiner fetches it from the location the Welcome names.

use hush_proto::big_group::{
    BIG_GROUP_LEAVES, MAX_TREE_BLOB_LEN, add_batches, self_updates_after_join,
};
use hush_proto::{MAX_GROUP_DEVICES, TreeRef, TreeSlot};
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
    /// Reserves a blob slot of `len` bytes (for a commit's tree, or for a
    /// commit too large for a message); returns its id.
    pub(crate) async fn reserve_blob_slot(&mut self, len: u64) -> Result<String, ClientError> {
        let created: CreateAttachmentResponse = self
            .transport
            .json(
                Method::POST,
                "/v1/attachments",
                Some(&CreateAttachmentRequest { size: len }),
            )
            .await?;
        Ok(created.id)
    }

    /// Uploads a sealed blob into its slot.
    pub(crate) async fn upload_blob(
        &mut self,
        blob_id: &str,
        bytes: &[u8],
    ) -> Result<(), ClientError> {
        let mut offset = 0;
        while offset < bytes.len() {
            let end = (offset + UPLOAD_PART).min(bytes.len());
            self.transport
                .raw(
                    Method::PATCH,
                    &format!("/v1/attachments/{blob_id}"),
                    &[("upload-offset", offset.to_string())],
                    Some(bytes[offset..end].to_vec()),
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
        self.fetch_blob(&at.blob_id, at.len, "the invitation's group tree is gone")
            .await
    }

    /// Fetches a sealed blob of at most `len` bytes (more is
    /// [`hush_proto::ProtoError::Tampered`]). A blob the server does not
    /// have is [`ClientError::NotFound`] with the text `gone`; any other
    /// failure is the transport's (network, or the server's refusal).
    pub(crate) async fn fetch_blob(
        &mut self,
        blob_id: &str,
        len: u64,
        gone: &str,
    ) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .transport
            .raw(
                Method::GET,
                &format!("/v1/attachments/{blob_id}"),
                &[],
                None,
            )
            .await
            .map_err(|e| match e.code() {
                Some(ErrorCode::NotFound) => ClientError::NotFound(gone.to_owned()),
                _ => e,
            })?;
        let mut out = Vec::new();
        let mut stream = resp.bytes_stream();
        use futures_util::StreamExt;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (out.len() + chunk.len()) as u64 > len {
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
    ) -> Result<usize, ClientError> {
        let members = self.conv(group_id)?.members().len();
        if members + key_packages.len() > MAX_GROUP_DEVICES {
            return Err(too_large(members + key_packages.len()));
        }
        let mut added = 0;
        for batch in add_batches(key_packages, members) {
            added += self.commit_adding(group_id, batch).await?;
        }
        Ok(added)
    }

    /// One add commit, reserving a fresh tree slot for each attempt when the
    /// tree goes out of band. Devices already in the group (another member
    /// added them first) are left out; returns how many were added.
    async fn commit_adding(
        &mut self,
        group_id: &[u8],
        key_packages: &[Vec<u8>],
    ) -> Result<usize, ClientError> {
        for _ in 0..crate::convs::COMMIT_ATTEMPTS {
            let fresh = self.not_yet_members(group_id, key_packages)?;
            if fresh.is_empty() {
                return Ok(0);
            }
            let key_packages = fresh.as_slice();
            let slot = match self.conv(group_id)?.tree_blob_len(key_packages)? {
                Some(len) => Some(TreeSlot {
                    blob_id: self.reserve_blob_slot(len).await?,
                    len,
                }),
                None => None,
            };
            let t = now();
            let mut build = |c: &mut hush_proto::Conversation| {
                c.add_devices_via(key_packages, t, slot.as_ref())
            };
            if let Some(change) = self.commit_once(group_id, &mut build).await? {
                return Ok(change.added.len());
            }
        }
        Err(ClientError::Network(
            "the group kept changing under this commit; try again".into(),
        ))
    }

    /// The KeyPackages of `key_packages` whose device is not a member of
    /// `group_id` (one that cannot be read is kept: the commit refuses it).
    fn not_yet_members(
        &mut self,
        group_id: &[u8],
        key_packages: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let members = self.conv(group_id)?.members();
        Ok(key_packages
            .iter()
            .filter(|kp| {
                hush_proto::inspect_key_package(kp).map_or(true, |i| {
                    !members.iter().any(|m| {
                        m.username() == i.certificate.username()
                            && m.device_id() == i.certificate.device_id()
                    })
                })
            })
            .cloned()
            .collect())
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

    /// A joiner's first commit in a big group, if its leaf is one of those
    /// that fill the tree (`self_updates_after_join`): one attempt at a
    /// self-update (out of band when the group is so sparse that the update
    /// path does not fit in a message, decision 0021). When another commit
    /// took the epoch, it is left for a later commit.
    pub(crate) async fn self_update_after_join(&mut self, group_id: &[u8]) {
        let due = self.conv(group_id).is_ok_and(|c| {
            let leaves = c.members().len();
            leaves > BIG_GROUP_LEAVES && self_updates_after_join(c.own_leaf(), leaves)
        });
        if !due {
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
