//! Attachments: encrypted on the client with a fresh key, in chunks, uploaded
//! resumably, and checked against their digest before anything is written to
//! the destination.
//!
//! Format (v1): the plaintext is cut into 64 KiB chunks (an empty file is one
//! empty chunk); chunk `i` is sealed with AES-256-GCM under the file key with
//! nonce `00 00 00 | last | i (u64 BE)`, where `last` is 1 for the final
//! chunk, so chunks cannot be reordered, dropped or the file truncated. The
//! blob is the concatenation of sealed chunks; its SHA-256 is the digest the
//! message carries along with the key, size, media type and file name.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest::{Context, SHA256};
use hush_proto::{AttachmentPointer, Body};
use hush_wire::api::{AttachmentStatus, CreateAttachmentRequest, CreateAttachmentResponse};
use rand::RngCore;
use reqwest::Method;
use rusqlite::OptionalExtension;

use crate::client::Client;
use crate::error::ClientError;
use crate::forward::pointer_of;
use crate::messages::AttachmentRecord;
use crate::model::{MessageView, Target};

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const AAD: &[u8] = b"hush attachment v1";
/// Bytes per upload request.
const UPLOAD_PART: usize = 1024 * 1024;
/// Upload attempts after a network failure.
const UPLOAD_RETRIES: usize = 5;

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3] = u8::from(last);
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn key(raw: &[u8; 32]) -> Result<LessSafeKey, ClientError> {
    UnboundKey::new(&AES_256_GCM, raw)
        .map(LessSafeKey::new)
        .map_err(|_| ClientError::Store("attachment key".into()))
}

/// Encrypts `input` to `output`; returns (plaintext size, SHA-256 of output).
pub fn encrypt_file(
    raw_key: &[u8; 32],
    input: &Path,
    output: &Path,
) -> Result<(u64, [u8; 32]), ClientError> {
    let k = key(raw_key)?;
    let mut src = std::fs::File::open(input)?;
    let total = src.metadata()?.len();
    let mut dst = std::io::BufWriter::new(std::fs::File::create(output)?);
    let mut digest = Context::new(&SHA256);
    let mut index = 0u64;
    let mut done = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0;
        while n < CHUNK {
            let r = src.read(&mut buf[n..])?;
            if r == 0 {
                break;
            }
            n += r;
        }
        buf.truncate(n);
        done += n as u64;
        let last = done >= total;
        k.seal_in_place_append_tag(nonce(index, last), Aad::from(AAD), &mut buf)
            .map_err(|_| ClientError::Store("cannot encrypt the file".into()))?;
        digest.update(&buf);
        dst.write_all(&buf)?;
        if last {
            break;
        }
        index += 1;
    }
    dst.flush()?;
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.finish().as_ref());
    Ok((done, out))
}

/// SHA-256 of a file.
pub fn digest_file(path: &Path) -> Result<[u8; 32], ClientError> {
    let mut f = std::fs::File::open(path)?;
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

/// Decrypts `input` (already checked against its digest) to `output`,
/// expecting `size` plaintext bytes.
pub fn decrypt_file(
    raw_key: &[u8; 32],
    input: &Path,
    output: &Path,
    size: u64,
) -> Result<(), ClientError> {
    let mut dst = std::io::BufWriter::new(std::fs::File::create(output)?);
    decrypt_into(raw_key, input, &mut dst, size)
}

/// [`decrypt_file`] into any writer (memory, for a file shown at once).
pub fn decrypt_into(
    raw_key: &[u8; 32],
    input: &Path,
    dst: &mut impl Write,
    size: u64,
) -> Result<(), ClientError> {
    let k = key(raw_key)?;
    let mut src = std::io::BufReader::new(std::fs::File::open(input)?);
    let chunks = if size == 0 {
        1
    } else {
        size.div_ceil(CHUNK as u64)
    };
    let mut written = 0u64;
    for index in 0..chunks {
        let last = index + 1 == chunks;
        let plain_len = if last { size - written } else { CHUNK as u64 } as usize;
        let mut buf = vec![0u8; plain_len + TAG];
        src.read_exact(&mut buf)
            .map_err(|_| ClientError::AttachmentTampered)?;
        let plain = k
            .open_in_place(nonce(index, last), Aad::from(AAD), &mut buf)
            .map_err(|_| ClientError::AttachmentTampered)?;
        dst.write_all(plain)?;
        written += plain.len() as u64;
    }
    let mut rest = [0u8; 1];
    if src.read(&mut rest)? != 0 {
        return Err(ClientError::AttachmentTampered);
    }
    dst.flush()?;
    Ok(())
}

fn media_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("txt") => "text/plain",
        Some("pdf") => "application/pdf",
        Some("mp4") => "video/mp4",
        Some("mp3") => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// The name of the file at `path`, which must be a file.
pub(crate) fn file_name_of(path: &Path) -> Result<String, ClientError> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ClientError::InvalidInput(format!("{} is not a file name", path.display())))?
        .to_owned();
    if !path.is_file() {
        return Err(ClientError::InvalidInput(format!(
            "{} is not a file",
            path.display()
        )));
    }
    Ok(file_name)
}

/// A message's file, decrypted ([`Client::open_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedFile {
    /// The name the sender gave it.
    pub file_name: String,
    /// The media type the sender declared (not checked against the bytes).
    pub media_type: String,
    /// The plaintext.
    pub bytes: Vec<u8>,
}

impl Client {
    pub(crate) fn scratch(&self, name: &str) -> Result<PathBuf, ClientError> {
        let dir = self.data_dir().join("tmp");
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(name))
    }

    /// Encrypts and uploads `path`, reporting `(bytes uploaded, total)`, then
    /// sends the message that points to it.
    pub async fn send_file(
        &mut self,
        target: &Target,
        path: &Path,
        progress: impl FnMut(u64, u64),
    ) -> Result<MessageView, ClientError> {
        let pointer = self.upload_file(path, progress).await?;
        self.send_shown(
            target,
            Body::Attachment {
                pointer,
                caption: None,
                reply_to: None,
            },
        )
        .await
    }

    /// Encrypts `path` under a fresh key and uploads it as a blob,
    /// reporting `(bytes uploaded, total)`; returns the pointer a message
    /// or a channel post carries.
    pub(crate) async fn upload_file(
        &mut self,
        path: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<AttachmentPointer, ClientError> {
        let file_name = file_name_of(path)?;
        let mut raw_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw_key);
        let mut nonce_name = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut nonce_name);
        let sealed = self.scratch(&format!("up-{}", hex::encode(nonce_name)))?;
        let result = async {
            let (size, digest) = encrypt_file(&raw_key, path, &sealed)?;
            let blob_len = std::fs::metadata(&sealed)?.len();
            let created: CreateAttachmentResponse = self
                .transport
                .json(
                    Method::POST,
                    "/v1/attachments",
                    Some(&CreateAttachmentRequest { size: blob_len }),
                )
                .await?;
            self.upload(&created.id, &sealed, blob_len, &mut progress)
                .await?;
            Ok::<_, ClientError>(AttachmentPointer {
                blob_id: created.id,
                key: raw_key,
                digest,
                size,
                media_type: media_type(path).to_owned(),
                file_name,
            })
        }
        .await;
        let _ = std::fs::remove_file(&sealed);
        result
    }

    /// Uploads the sealed file to blob `id`, resuming after failures.
    /// `&mut self`, so that a front end's task can hold the future across
    /// threads (`Client` is not `Sync`).
    pub(crate) async fn upload(
        &mut self,
        id: &str,
        sealed: &Path,
        total: u64,
        progress: &mut impl FnMut(u64, u64),
    ) -> Result<(), ClientError> {
        let mut file = std::fs::File::open(sealed)?;
        let mut offset = 0u64;
        let mut failures = 0;
        progress(0, total);
        while offset < total {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(offset))?;
            let len = UPLOAD_PART.min((total - offset) as usize);
            let mut buf = vec![0u8; len];
            file.read_exact(&mut buf)?;
            let sent = self
                .transport
                .raw(
                    Method::PATCH,
                    &format!("/v1/attachments/{id}"),
                    &[("upload-offset", offset.to_string())],
                    Some(buf),
                )
                .await;
            match sent {
                Ok(_) => {
                    offset += len as u64;
                    progress(offset, total);
                }
                Err(e)
                    if failures < UPLOAD_RETRIES
                        && e.code()
                            .is_none_or(|c| c == hush_wire::ErrorCode::OffsetMismatch) =>
                {
                    // Resume where the server says the blob ends.
                    failures += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 * failures as u64))
                        .await;
                    let status: AttachmentStatus = self
                        .transport
                        .json::<(), _>(Method::GET, &format!("/v1/attachments/{id}/status"), None)
                        .await?;
                    offset = status.offset;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Downloads the file of message `id`, or of the channel post `id`, to
    /// `out`. The blob's digest is checked before anything is written to
    /// `out`.
    pub async fn download(
        &mut self,
        id: &str,
        out: &Path,
        progress: impl FnMut(u64, u64),
    ) -> Result<u64, ClientError> {
        let pointer = self.file_pointer(id)?;
        let sealed = self.fetch_sealed(&pointer, progress).await?;
        let result = (|| {
            let partial = out.with_extension("hush-partial");
            decrypt_file(&pointer.key, &sealed, &partial, pointer.size).inspect_err(|_| {
                let _ = std::fs::remove_file(&partial);
            })?;
            std::fs::rename(&partial, out)?;
            Ok(pointer.size)
        })();
        let _ = std::fs::remove_file(&sealed);
        result
    }

    /// Downloads, checks and decrypts the file of message `id` (or of the
    /// channel post `id`) into memory (for a front end that shows it at
    /// once: no plaintext on disk).
    pub async fn open_file(&mut self, id: &str) -> Result<OpenedFile, ClientError> {
        let pointer = self.file_pointer(id)?;
        self.open_pointer(pointer).await
    }

    /// [`Client::open_file`] of a pointer already looked up.
    pub(crate) async fn open_pointer(
        &mut self,
        pointer: AttachmentPointer,
    ) -> Result<OpenedFile, ClientError> {
        let sealed = self.fetch_sealed(&pointer, |_, _| {}).await?;
        let mut bytes = Vec::with_capacity(usize::try_from(pointer.size).unwrap_or(0).min(1 << 27));
        let result = decrypt_into(&pointer.key, &sealed, &mut bytes, pointer.size);
        let _ = std::fs::remove_file(&sealed);
        result?;
        Ok(OpenedFile {
            file_name: pointer.file_name,
            media_type: pointer.media_type,
            bytes,
        })
    }

    /// The file of message `id`: `None` when no message has that id,
    /// `Some(None)` when the message has no file.
    fn message_file(&self, id: &str) -> Result<Option<Option<AttachmentPointer>>, ClientError> {
        let row: Option<Option<String>> = self
            .store
            .conn
            .query_row(
                "SELECT attachment FROM messages WHERE id = ?1",
                rusqlite::params![id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(json) = row else {
            return Ok(None);
        };
        let record = json.and_then(|j| serde_json::from_str::<AttachmentRecord>(&j).ok());
        Ok(Some(record.map(pointer_of).transpose()?))
    }

    /// The file of message `id`, or else of the channel post `id`. An id
    /// that names more than one (a sender or a channel's owner may choose
    /// an id another already has) is refused rather than guessed at.
    fn file_pointer(&self, id: &str) -> Result<AttachmentPointer, ClientError> {
        let message = self.message_file(id)?;
        let mut posts = self.channel_post_files(None, id)?;
        match (message, posts.pop()) {
            (None, None) => Err(ClientError::NotFound(format!(
                "no message or channel post {id}"
            ))),
            (Some(m), None) => {
                m.ok_or_else(|| ClientError::NotFound(format!("message {id} has no file")))
            }
            (None, Some(p)) if posts.is_empty() => p.1.ok_or_else(|| {
                ClientError::NotFound(format!("the post {id} of ~{} has no file", p.0))
            }),
            _ => Err(ClientError::InvalidInput(format!(
                "{id} names more than one message or channel post; nothing was downloaded"
            ))),
        }
    }

    /// The sealed blob of `pointer`'s file in a scratch file, checked
    /// against the pointer's digest.
    async fn fetch_sealed(
        &mut self,
        pointer: &AttachmentPointer,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<PathBuf, ClientError> {
        let mut nonce_name = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut nonce_name);
        let sealed = self.scratch(&format!("down-{}", hex::encode(nonce_name)))?;
        let resp = self
            .transport
            .raw(
                Method::GET,
                &format!("/v1/attachments/{}", pointer.blob_id),
                &[],
                None,
            )
            .await?;
        let total = resp.content_length().unwrap_or(0);
        let written = async {
            let mut f = std::fs::File::create(&sealed)?;
            let mut stream = resp.bytes_stream();
            let mut done = 0u64;
            use futures_util::StreamExt;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                f.write_all(&chunk)?;
                done += chunk.len() as u64;
                progress(done, total);
            }
            f.flush()?;
            if digest_file(&sealed)? != pointer.digest {
                return Err(ClientError::AttachmentTampered);
            }
            Ok(())
        }
        .await;
        if let Err(e) = written {
            let _ = std::fs::remove_file(&sealed);
            return Err(e);
        }
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(size: usize) {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 256) as u8).collect();
        std::fs::write(&input, &data).unwrap();
        let key = [9u8; 32];
        let sealed = dir.path().join("sealed");
        let (n, digest) = encrypt_file(&key, &input, &sealed).unwrap();
        assert_eq!(n, size as u64);
        assert_eq!(digest_file(&sealed).unwrap(), digest);
        let out = dir.path().join("out");
        decrypt_file(&key, &sealed, &out, n).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), data);
    }

    #[test]
    fn files_of_every_shape_round_trip() {
        for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            round_trip(size);
        }
    }

    #[test]
    fn truncation_and_tampering_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        std::fs::write(&input, vec![5u8; 3 * CHUNK]).unwrap();
        let key = [1u8; 32];
        let sealed = dir.path().join("sealed");
        let (n, _) = encrypt_file(&key, &input, &sealed).unwrap();
        let blob = std::fs::read(&sealed).unwrap();
        // Drop the last chunk: the previous one is not marked last.
        std::fs::write(&sealed, &blob[..2 * (CHUNK + TAG)]).unwrap();
        let out = dir.path().join("out");
        assert!(decrypt_file(&key, &sealed, &out, 2 * CHUNK as u64).is_err());
        let mut flipped = blob.clone();
        flipped[10] ^= 1;
        std::fs::write(&sealed, &flipped).unwrap();
        assert!(matches!(
            decrypt_file(&key, &sealed, &out, n),
            Err(ClientError::AttachmentTampered)
        ));
    }
}
