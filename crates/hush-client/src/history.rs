//! History on link (decision 0026): the approving device seals an archive
//! of the account under a fresh key, uploads it as an attachment blob, and
//! sends the new device a `History` link frame with the blob's id and key
//! (the frame is sealed under the link code's key, so the server sees
//! neither). The new device downloads, opens and imports it in one
//! transaction before it takes part in any conversation.

use std::time::{Duration, Instant};

use hush_proto::archive::{self, Purpose};
use hush_proto::device_link::{FrameKind, HistoryBlob, LinkHistory, LinkKeys, seal_frame};
use hush_wire::api::{CreateAttachmentRequest, CreateAttachmentResponse, SendRequest};
use hush_wire::{Bytes, DeviceAddress};
use reqwest::Method;

use crate::archive::{HistoryScope, import, random_key};
use crate::client::Client;
use crate::devices::sha256;
use crate::error::ClientError;

/// What a history transfer reports as it goes, on either device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The archive is packed and sealed.
    Packed {
        /// Messages in it.
        messages: u64,
        /// Its sealed size.
        bytes: u64,
    },
    /// Bytes uploaded so far (approving device).
    Uploaded {
        /// Done.
        done: u64,
        /// Of.
        total: u64,
    },
    /// The new device was told where the archive is.
    Sent,
    /// Bytes downloaded so far (new device).
    Downloaded {
        /// Done.
        done: u64,
        /// Of.
        total: u64,
    },
    /// The archive is in the store.
    Imported {
        /// Messages written.
        messages: u64,
        /// Conversations in it.
        conversations: u64,
    },
}

impl Client {
    /// Seals `archive` bytes into a scratch file and uploads them as an
    /// attachment blob; returns its id.
    pub(crate) async fn upload_archive(
        &mut self,
        sealed: &[u8],
        key: &[u8; 32],
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<String, ClientError> {
        let mut name = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut name);
        let path = self.scratch(&format!("archive-{}", hex::encode(name)))?;
        let result = async {
            std::fs::write(&path, sealed)?;
            // Whoever holds the archive key (the new device) may delete it.
            let body = serde_json::to_vec(&CreateAttachmentRequest {
                size: sealed.len() as u64,
            })
            .map_err(|e| ClientError::Store(e.to_string()))?;
            let headers = [
                ("content-type", "application/json".to_owned()),
                (
                    hush_wire::api::DELETE_TOKEN_HASH,
                    hex::encode(sha256(&delete_token(key))),
                ),
            ];
            let created: CreateAttachmentResponse = self
                .transport
                .raw(Method::POST, "/v1/attachments", &headers, Some(body))
                .await?
                .json()
                .await
                .map_err(|e| ClientError::Network(e.to_string()))?;
            self.upload(&created.id, &path, sealed.len() as u64, &mut |d, t| {
                progress(d, t)
            })
            .await?;
            Ok(created.id)
        }
        .await;
        let _ = std::fs::remove_file(&path);
        result
    }

    /// Sends device `id` (being linked) the account's history: `scope` of
    /// it, as a sealed archive blob and a `History` frame under `to_new`.
    pub(crate) async fn send_history(
        &mut self,
        id: u32,
        to_new: &[u8; 32],
        scope: HistoryScope,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), ClientError> {
        // Even without messages (`none`), the conversations, contacts and
        // settings go.
        let archive = self.export_archive(scope, false)?;
        let messages = archive.message_count() as u64;
        let key = random_key();
        let sealed = archive::seal(&key, Purpose::Link, &archive, &mut rand::rngs::OsRng);
        drop(archive);
        progress(Progress::Packed {
            messages,
            bytes: sealed.len() as u64,
        });
        let blob_id = self
            .upload_archive(&sealed, &key, &mut |done, total| {
                progress(Progress::Uploaded { done, total })
            })
            .await?;
        let history = LinkHistory {
            blob: Some(HistoryBlob {
                blob_id: blob_id.clone(),
                key: key.clone(),
                size: sealed.len() as u64,
                messages,
            }),
        };
        let frame = seal_frame(
            to_new,
            FrameKind::History,
            1,
            &history.encode(),
            &mut rand::rngs::OsRng,
        );
        let sent = self
            .transport
            .send_message(&SendRequest {
                recipients: vec![DeviceAddress {
                    username: self.username.to_string(),
                    device_id: id,
                }],
                payload: Bytes(frame),
                ephemeral: false,
                commit: None,
                franking_commitment: None,
            })
            .await;
        if let Err(e) = sent {
            // The new device will never fetch it.
            self.delete_blob(&blob_id, &key).await;
            return Err(e);
        }
        progress(Progress::Sent);
        Ok(())
    }

    /// Deletes the link history blob `id` sealed under `key` (decision
    /// 0035): once fetched, or once the link failed. Best effort: a blob
    /// left behind still expires with the server's retention.
    pub(crate) async fn delete_blob(&mut self, id: &str, key: &[u8; 32]) {
        let token = [(hush_wire::api::DELETE_TOKEN, hex::encode(delete_token(key)))];
        let gone = self
            .transport
            .raw(
                Method::DELETE,
                &format!("/v1/attachments/{id}"),
                &token,
                None,
            )
            .await;
        if let Err(e) = gone {
            tracing::warn!(error = %e, "could not delete a link's history blob");
        }
    }

    /// The new device's side: waits for the `History` frame, downloads the
    /// archive and imports it whole (or refuses it whole).
    pub(crate) async fn receive_history(
        &mut self,
        keys: &LinkKeys,
        timeout: Duration,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), ClientError> {
        // The send of the ready answer kept a socket open; a fresh one
        // replaces it on the server.
        drop(self.transport.take_kept_link().await);
        let deadline = Instant::now() + timeout;
        let seed = crate::client::seed(&crate::client::meta_required(&self.store, "device_seed")?)?;
        let open_key =
            hush_proto::sealed::OpenKey::of(&hush_proto::DeviceSigningKey::from_seed(seed)?)?;
        let (_, plain) = crate::linking::receive_frame(
            &self.transport,
            &open_key,
            &keys.to_new,
            FrameKind::History,
            deadline,
            timeout,
        )
        .await?;
        let history = LinkHistory::decode(&plain).map_err(|_| {
            crate::linking::tampered("the history message of the link is malformed")
        })?;
        let Some(blob) = history.blob else {
            return Ok(());
        };
        let downloaded = self
            .download_blob(&blob.blob_id, blob.size, &mut |done, total| {
                progress(Progress::Downloaded { done, total })
            })
            .await;
        // Fetched (or failed): nobody needs it on the server any more.
        self.delete_blob(&blob.blob_id, &blob.key).await;
        let sealed = downloaded?;
        let archive = archive::open(&blob.key, Purpose::Link, &sealed)?;
        if archive.username != self.username.as_str() {
            return Err(ClientError::InvalidInput(
                "the history archive is of another account; nothing was imported".into(),
            ));
        }
        let tx = self.store.conn.transaction()?;
        let messages = import(&tx, &archive)?;
        tx.commit()?;
        progress(Progress::Imported {
            messages: messages as u64,
            conversations: archive.conversations.len() as u64,
        });
        Ok(())
    }

    /// Downloads blob `id` of `size` bytes into memory; more or fewer
    /// bytes than announced are refused.
    pub(crate) async fn download_blob(
        &self,
        id: &str,
        size: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<u8>, ClientError> {
        use futures_util::StreamExt;
        let resp = self
            .transport
            .raw(Method::GET, &format!("/v1/attachments/{id}"), &[], None)
            .await?;
        let mut out = Vec::new();
        let mut stream = resp.bytes_stream();
        progress(0, size);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if out.len() as u64 + chunk.len() as u64 > size {
                return Err(hush_proto::archive::ArchiveError::Trailing(
                    out.len() as u64 + chunk.len() as u64 - size,
                )
                .into());
            }
            out.extend_from_slice(&chunk);
            progress(out.len() as u64, size);
        }
        if (out.len() as u64) < size {
            return Err(hush_proto::archive::ArchiveError::Truncated {
                have: out.len() as u64,
                need: size,
            }
            .into());
        }
        Ok(out)
    }
}

/// The token that deletes a link's history blob: derived from the archive
/// key, so the new device holds it and the server learns only its hash.
fn delete_token(key: &[u8; 32]) -> [u8; 32] {
    let mut input = b"hush link history delete v1".to_vec();
    input.extend_from_slice(key);
    sha256(&input)
}
