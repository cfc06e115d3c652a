//! Encrypted attachments as opaque blobs in an `object_store` (a local
//! directory by default; any S3-compatible bucket in a cluster).
//!
//! Layout per blob id (128 random bits, base64url):
//!
//! ```text
//! blobs/<id>/meta                  {"size": N, "created_at_ms": T[, "delete_hash": H]}
//! blobs/<id>/part-<offset:020>     the bytes from <offset>, up to 1 MiB per object
//! ```
//!
//! Uploads are resumable: the offset is the sum of the parts, and a request
//! continues at that offset. No assembly step is needed, so the layout works
//! the same on a local disk and on S3. Downloads honour HTTP ranges.

use std::ops::Range;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The most bytes of an upload held in memory: each this many are stored
/// as one part (S3 needs no multipart upload for them, and a local file is
/// written in one go).
pub const PART_LEN: usize = 1 << 20;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// No such blob.
    #[error("no such attachment")]
    NotFound,
    /// The upload does not continue where the blob ends.
    #[error("upload offset {given} does not match the stored {stored}")]
    OffsetMismatch {
        /// What the client sent.
        given: u64,
        /// What the server holds.
        stored: u64,
    },
    /// The upload would exceed the announced size.
    #[error("upload goes past the announced size")]
    PastEnd,
    /// The blob is not completely uploaded yet.
    #[error("attachment upload is incomplete")]
    Incomplete,
    /// The range is outside the blob.
    #[error("range outside the attachment")]
    BadRange,
    /// The object store failed.
    #[error("blob storage error: {0}")]
    Backend(String),
    /// The request body failed before its end (cut off or too slow); the
    /// parts stored before stay.
    #[error("the upload was cut off: {0}")]
    Body(String),
}

impl From<axum::Error> for BlobError {
    fn from(e: axum::Error) -> Self {
        BlobError::Body(e.to_string())
    }
}

fn backend(e: impl std::fmt::Display) -> BlobError {
    BlobError::Backend(e.to_string())
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    size: u64,
    created_at_ms: u64,
    /// SHA-256 of the token that deletes it before it expires, in hex (the
    /// uploader chose the token; absent: the blob only expires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delete_hash: Option<String>,
}

/// A blob's upload state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobStatus {
    /// Announced size.
    pub size: u64,
    /// Bytes received.
    pub offset: u64,
}

/// The blob store.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Where, for operators (`s3://bucket/prefix`, a directory, ...).
    location: String,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blobs({}: {})", self.location, self.store)
    }
}

fn hex32(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` looks like an id this server issued (and is safe in a path).
pub fn valid_id(id: &str) -> bool {
    id.len() == 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Blobs {
    /// Blobs in a local directory.
    pub fn local(dir: &std::path::Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(backend)?;
        Ok(Self {
            store: Arc::new(fs),
            location: dir.display().to_string(),
        })
    }

    /// Blobs in any object store.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            location: store.to_string(),
            store,
        }
    }

    /// Blobs where `location` says: `s3://BUCKET[/PREFIX]` for an
    /// S3-compatible bucket (credentials, region and, for MinIO, Ceph, R2 and
    /// the like, `AWS_ENDPOINT` come from the usual `AWS_*` environment
    /// variables), or `file:///PATH` or a plain path for a directory (on a
    /// shared file system when several nodes serve the same users).
    pub fn open(location: &str) -> Result<Self, BlobError> {
        let Some(rest) = location.strip_prefix("s3://") else {
            let dir = location.strip_prefix("file://").unwrap_or(location);
            if dir.is_empty() {
                return Err(BlobError::Backend(
                    "the attachment location is empty: give s3://BUCKET or a directory".into(),
                ));
            }
            return Self::local(std::path::Path::new(dir));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlobError::Backend(format!(
                "{location:?} names no bucket: use s3://BUCKET or s3://BUCKET/PREFIX"
            )));
        }
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| BlobError::Backend(format!("S3 bucket {bucket:?}: {e}")))?;
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        };
        Ok(Self {
            store,
            location: format!("s3://{bucket}/{prefix}"),
        })
    }

    fn meta_path(id: &str) -> Path {
        Path::from(format!("blobs/{id}/meta"))
    }

    fn part_path(id: &str, offset: u64) -> Path {
        Path::from(format!("blobs/{id}/part-{offset:020}"))
    }

    /// Starts a blob of `size` bytes; returns its id.
    pub async fn create(&self, size: u64, now_ms: u64) -> Result<String, BlobError> {
        self.create_owned(size, now_ms, None).await
    }

    /// Starts a blob of `size` bytes that whoever holds the token hashing
    /// to `delete_hash` may delete; returns its id.
    pub async fn create_owned(
        &self,
        size: u64,
        now_ms: u64,
        delete_hash: Option<[u8; 32]>,
    ) -> Result<String, BlobError> {
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let id = URL_SAFE_NO_PAD.encode(raw);
        let meta = serde_json::to_vec(&Meta {
            size,
            created_at_ms: now_ms,
            delete_hash: delete_hash.map(hex32),
        })
        .map_err(backend)?;
        self.store
            .put(&Self::meta_path(&id), PutPayload::from(meta))
            .await
            .map_err(backend)?;
        Ok(id)
    }

    async fn meta(&self, id: &str) -> Result<Meta, BlobError> {
        let bytes = match self.store.get(&Self::meta_path(id)).await {
            Ok(r) => r.bytes().await.map_err(backend)?,
            Err(object_store::Error::NotFound { .. }) => return Err(BlobError::NotFound),
            Err(e) => return Err(backend(e)),
        };
        serde_json::from_slice(&bytes).map_err(backend)
    }

    /// The parts as (offset, length), in order.
    async fn parts(&self, id: &str) -> Result<Vec<(u64, u64)>, BlobError> {
        let prefix = Path::from(format!("blobs/{id}"));
        let mut listing = self.store.list(Some(&prefix));
        let mut parts = Vec::new();
        while let Some(item) = listing.next().await {
            let meta = item.map_err(backend)?;
            let name = meta.location.filename().unwrap_or_default();
            if let Some(offset) = name
                .strip_prefix("part-")
                .and_then(|o| o.parse::<u64>().ok())
            {
                parts.push((offset, meta.size));
            }
        }
        parts.sort_unstable();
        Ok(parts)
    }

    /// Upload progress.
    pub async fn status(&self, id: &str) -> Result<BlobStatus, BlobError> {
        let meta = self.meta(id).await?;
        let offset = self.parts(id).await?.iter().map(|(_, len)| len).sum();
        Ok(BlobStatus {
            size: meta.size,
            offset,
        })
    }

    /// Appends `data` at `offset`, which must be where the blob ends.
    pub async fn append(
        &self,
        id: &str,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<BlobStatus, BlobError> {
        let chunks = futures_util::stream::iter([Ok::<_, BlobError>(Bytes::from(data))]);
        self.append_stream(id, offset, chunks).await
    }

    /// Appends the bytes of `body` at `offset`, which must be where the blob
    /// ends, as it arrives: each [`PART_LEN`] bytes are stored as one part,
    /// so memory stays at one part whatever the size of the upload. If the
    /// body fails midway the parts stored so far stay (the upload resumes
    /// after them) and its error is returned.
    pub async fn append_stream<E>(
        &self,
        id: &str,
        offset: u64,
        body: impl futures_util::Stream<Item = Result<Bytes, E>>,
    ) -> Result<BlobStatus, BlobError>
    where
        BlobError: From<E>,
    {
        let status = self.status(id).await?;
        if offset != status.offset {
            return Err(BlobError::OffsetMismatch {
                given: offset,
                stored: status.offset,
            });
        }
        let mut body = std::pin::pin!(body);
        let mut at = offset;
        let mut part = BytesMut::new();
        loop {
            let chunk = body.next().await.transpose()?;
            let ended = chunk.is_none();
            if let Some(chunk) = chunk {
                let len = chunk.len() as u64;
                if at.saturating_add(part.len() as u64).saturating_add(len) > status.size {
                    return Err(BlobError::PastEnd);
                }
                part.extend_from_slice(&chunk);
            }
            while part.len() >= PART_LEN || (ended && !part.is_empty()) {
                let piece = part.split_to(part.len().min(PART_LEN)).freeze();
                let len = piece.len() as u64;
                self.store
                    .put(&Self::part_path(id, at), PutPayload::from(piece))
                    .await
                    .map_err(backend)?;
                at += len;
            }
            if ended {
                return Ok(BlobStatus {
                    size: status.size,
                    offset: at,
                });
            }
        }
    }

    /// The bytes of `range` (or all) of a complete blob as a stream read
    /// from the store as it is sent (memory stays at one read buffer), and
    /// the blob's total size.
    pub async fn read_stream(
        &self,
        id: &str,
        range: Option<Range<u64>>,
    ) -> Result<(BoxStream<'static, Result<Bytes, BlobError>>, u64), BlobError> {
        let meta = self.meta(id).await?;
        let parts = self.parts(id).await?;
        let have: u64 = parts.iter().map(|(_, l)| l).sum();
        if have != meta.size {
            return Err(BlobError::Incomplete);
        }
        let range = range.unwrap_or(0..meta.size);
        if range.start > range.end || range.end > meta.size {
            return Err(BlobError::BadRange);
        }
        let mut pieces = Vec::new();
        for (offset, len) in parts {
            let part_end = offset + len;
            if part_end <= range.start || offset >= range.end {
                continue;
            }
            let from = range.start.max(offset) - offset;
            let to = range.end.min(part_end) - offset;
            if from < to {
                pieces.push((Self::part_path(id, offset), from..to));
            }
        }
        let store = self.store.clone();
        let stream = futures_util::stream::iter(pieces)
            .then(move |(path, r)| {
                let store = store.clone();
                async move {
                    let opts = GetOptions {
                        range: Some(GetRange::Bounded(r)),
                        ..GetOptions::default()
                    };
                    let got = store.get_opts(&path, opts).await.map_err(backend)?;
                    Ok::<_, BlobError>(got.into_stream().map_err(backend))
                }
            })
            .try_flatten()
            .boxed();
        Ok((stream, meta.size))
    }

    /// The bytes of `range` (or all) of a complete blob, and its total size,
    /// in memory (for tests and small blobs).
    pub async fn read(
        &self,
        id: &str,
        range: Option<Range<u64>>,
    ) -> Result<(Vec<u8>, u64), BlobError> {
        let (mut stream, size) = self.read_stream(id, range).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok((out, size))
    }

    /// Deletes blobs created before `cutoff_ms`; returns how many.
    pub async fn expire(&self, cutoff_ms: u64) -> Result<u64, BlobError> {
        let mut listing = self.store.list(Some(&Path::from("blobs")));
        let mut expired_ids = Vec::new();
        while let Some(item) = listing.next().await {
            let meta = item.map_err(backend)?;
            if meta.location.filename() != Some("meta") {
                continue;
            }
            let Some(id) = meta.location.parts().nth(1).map(|p| p.as_ref().to_owned()) else {
                continue;
            };
            if let Ok(m) = self.meta(&id).await
                && m.created_at_ms < cutoff_ms
            {
                expired_ids.push(id);
            }
        }
        drop(listing);
        for id in &expired_ids {
            self.remove(id).await?;
        }
        Ok(expired_ids.len() as u64)
    }

    /// Deletes blob `id` now, if `token` is its delete token; otherwise (or
    /// if there is none) [`BlobError::NotFound`], and nothing changes.
    pub async fn delete(&self, id: &str, token: &[u8; 32]) -> Result<(), BlobError> {
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
        let held = self.meta(id).await?.delete_hash;
        if held.as_deref() != Some(hex32(hash.as_ref()).as_str()) {
            return Err(BlobError::NotFound);
        }
        self.remove(id).await
    }

    /// Deletes every object of blob `id`, its meta last.
    async fn remove(&self, id: &str) -> Result<(), BlobError> {
        let prefix = Path::from(format!("blobs/{id}"));
        let mut objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .filter_map(|m| async move { m.ok().map(|m| m.location) })
            .collect()
            .await;
        // The meta last: a delete cut short leaves a blob that still expires.
        objects.sort_by_key(|l| l.filename() == Some("meta"));
        for location in objects {
            self.store.delete(&location).await.map_err(backend)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("shared").display());
        let blobs = Blobs::open(&url).unwrap();
        assert!(
            format!("{blobs:?}").contains("LocalFileSystem"),
            "{blobs:?}"
        );
        assert!(dir.path().join("shared").is_dir());
        // Without a network the S3 path is checked as far as its
        // configuration: the bucket and the prefix are taken from the URL.
        let s3 = Blobs::open("s3://hush-attachments/node-files/").unwrap();
        let shown = format!("{s3:?}");
        assert!(shown.contains("hush-attachments"), "{shown}");
        assert!(shown.contains("node-files"), "{shown}");
        let plain = format!("{:?}", Blobs::open("s3://hush-attachments").unwrap());
        assert!(plain.contains("AmazonS3(hush-attachments)"), "{plain}");
        assert!(!plain.contains("Prefix"), "{plain}");
        for bad in ["", "file://", "s3://", "s3:///prefix"] {
            assert!(
                matches!(Blobs::open(bad), Err(BlobError::Backend(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[tokio::test]
    async fn two_handles_on_one_directory_see_each_others_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let a = Blobs::open(&dir.path().display().to_string()).unwrap();
        let b = Blobs::open(&format!("file://{}", dir.path().display())).unwrap();
        let id = a.create(6, 1).await.unwrap();
        b.append(&id, 0, b"abc".to_vec()).await.unwrap();
        a.append(&id, 3, b"def".to_vec()).await.unwrap();
        assert_eq!(b.read(&id, None).await.unwrap(), (b"abcdef".to_vec(), 6));
    }

    #[tokio::test]
    async fn only_the_delete_token_deletes_a_blob() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path()).unwrap();
        let token = [7u8; 32];
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &token);
        let hash: [u8; 32] = hash.as_ref().try_into().unwrap();
        let id = blobs.create_owned(3, 1, Some(hash)).await.unwrap();
        blobs.append(&id, 0, b"abc".to_vec()).await.unwrap();
        assert!(matches!(
            blobs.delete(&id, &[8; 32]).await,
            Err(BlobError::NotFound)
        ));
        assert!(matches!(
            blobs.delete(&id, &hash).await,
            Err(BlobError::NotFound)
        ));
        assert_eq!(blobs.read(&id, None).await.unwrap().0, b"abc");
        blobs.delete(&id, &token).await.unwrap();
        assert!(matches!(blobs.status(&id).await, Err(BlobError::NotFound)));
        // A blob without a delete token (an attachment, or an earlier
        // release's) only expires.
        let old = blobs.create(1, 1).await.unwrap();
        assert!(matches!(
            blobs.delete(&old, &token).await,
            Err(BlobError::NotFound)
        ));
    }
}
