//! Commits larger than a message (decision 0021, `hush_proto::commit_blob`):
//! the committer uploads the commit sealed into a blob and sends, with its
//! claim on the epoch, a pointer the members of the epoch can open; a member
//! fetches the blob, checks it, and processes the commit through MLS.

use hush_proto::PendingCommit;
use hush_proto::commit_blob::{MAX_COMMIT_BLOB_LEN, commit_blob_len, commit_pointer_header};
use hush_wire::limits::MAX_MESSAGE_LEN;

use crate::client::Client;
use crate::error::ClientError;

/// What a member got for a commit pointer.
pub(crate) enum Fetched {
    /// The commit, checked to be of this group and epoch: process it.
    Commit {
        /// The conversation.
        group_id: Vec<u8>,
        /// The MLS commit.
        commit: Vec<u8>,
    },
    /// Refused: what to say in the security alarm.
    Refused(String),
}

impl Client {
    /// Test hook: commits larger than `bytes` (at most the server's message
    /// limit) travel out of band, so a test can exercise that path without
    /// building a group of a thousand devices.
    #[doc(hidden)]
    pub fn set_inline_commit_limit(&mut self, bytes: usize) {
        self.inline_commit_limit = bytes.min(MAX_MESSAGE_LEN);
    }

    /// Uploads what must be on the server before `pending` is sent: the
    /// sealed tree of a big group's Welcome and, for a commit larger than a
    /// message, the sealed commit, whose pointer then replaces
    /// `pending.commit` as the payload of the send.
    pub(crate) async fn upload_commit_parts(
        &mut self,
        group_id: &[u8],
        pending: &mut PendingCommit,
    ) -> Result<(), ClientError> {
        if let Some(tree) = &pending.tree_blob {
            self.upload_blob(&tree.blob_id, &tree.bytes).await?;
        }
        if pending.commit.len() <= self.inline_commit_limit {
            return Ok(());
        }
        let len = commit_blob_len(pending.commit.len());
        if len > MAX_COMMIT_BLOB_LEN {
            return Err(ClientError::InvalidInput(format!(
                "this commit is {} bytes, more than a group change may be ({MAX_COMMIT_BLOB_LEN})",
                pending.commit.len()
            )));
        }
        let blob_id = self.reserve_blob_slot(len).await?;
        let sealed = self.conv(group_id)?.seal_commit_out_of_band(
            &pending.commit,
            &blob_id,
            len,
            &mut rand::rngs::OsRng,
        )?;
        self.upload_blob(&blob_id, &sealed.blob).await?;
        tracing::debug!(
            commit = pending.commit.len(),
            blob = sealed.blob.len(),
            "commit sent out of band"
        );
        pending.commit = sealed.pointer;
        Ok(())
    }

    /// Fetches and checks the commit a pointer names. A pointer of another
    /// epoch, or for a conversation this device is not in, is an error like
    /// an MLS message of the kind (the caller drops it). A failure to reach
    /// the blob (network, a server error) is returned as it is: the pointer
    /// stays queued and is tried again on the next sync. A pointer that does
    /// not open, a blob that is gone or not the one the pointer names, or a
    /// commit of another group or epoch, is refused.
    pub(crate) async fn fetch_commit(&mut self, payload: &[u8]) -> Result<Fetched, ClientError> {
        let header = commit_pointer_header(payload).map_err(hush_proto::ProtoError::from)?;
        let group_id = header.group_id;
        if self.conv_by_group_id(&group_id)?.is_none() {
            return Err(ClientError::NotFound(
                "a group change for a conversation this device is not in".into(),
            ));
        }
        let at = match self.conv(&group_id)?.open_commit_pointer(payload) {
            Ok(at) => at,
            Err(e @ hush_proto::ProtoError::WrongEpoch { .. }) => return Err(e.into()),
            Err(_) => {
                return Ok(Fetched::Refused(
                    "a group change whose pointer was forged or altered on the server".into(),
                ));
            }
        };
        let gone = "the server no longer has this group change";
        let blob = match self.fetch_blob(&at.blob_id, at.len, gone).await {
            Ok(blob) => blob,
            Err(ClientError::NotFound(_)) => {
                return Ok(Fetched::Refused(format!(
                    "to go on in a group whose change (epoch {}) the server no longer has \
                     (expired, or withheld): this device cannot follow the group from here",
                    header.epoch
                )));
            }
            Err(ClientError::Proto(hush_proto::ProtoError::Tampered)) => {
                return Ok(Fetched::Refused(altered()));
            }
            Err(e) => return Err(e),
        };
        match self.conv(&group_id)?.open_commit_blob(&at, &blob) {
            Ok(commit) => Ok(Fetched::Commit { group_id, commit }),
            Err(hush_proto::ProtoError::MisdirectedCommit) => Ok(Fetched::Refused(
                "a group change a member sealed for another group or epoch".into(),
            )),
            Err(_) => Ok(Fetched::Refused(altered())),
        }
    }
}

fn altered() -> String {
    "a group change whose out-of-band commit was altered on the server".into()
}
