//! Commits larger than a message travel out of band (decision 0021).
//!
//! In a freshly built big group most of the ratchet tree is blank, so a
//! commit with an update path (a joiner's first self-update, a remove) is
//! encrypted to nearly every leaf: in a group of 1000 hybrid devices that is
//! well over the server's 512 KiB message limit. RFC 9420 lets the Delivery
//! Service carry messages any way it likes, so such a commit goes into a
//! blob, and the send that claims the epoch carries a small pointer to it.
//!
//! - **The blob**: the MLS commit (a `PrivateMessage`, as every Hush commit)
//!   sealed with AES-256-GCM under a fresh random key; the authenticated data
//!   binds the group id and epoch; the plaintext is padded with zeros to a
//!   multiple of [`BLOB_STEP`] bytes.
//! - **The pointer**: what a member needs to find and check the blob (the
//!   blob id, its size, its SHA-256 and the key), sealed with AES-256-GCM
//!   under `MLS-Exporter("hush commit pointer v1", "", 32)` of the epoch the
//!   commit applies to. Only members of that epoch can open it: the server
//!   reads neither the key nor the commit, and cannot make a pointer a member
//!   accepts. Layout:
//!
//! ```text
//! MAGIC (4) | group id (u32 length + bytes) | epoch (8) | nonce (12) | AEAD(body)
//! body = version (1) | blob id (u32 length + bytes) | size (8) | SHA-256 (32) | key (32)
//! ```
//!
//! `MAGIC` starts with `0xfe` like a receipt's (and unlike an RFC 9420
//! message, `0x0001`, or a sealed envelope, `0xff`); the header before the
//! nonce is the authenticated data. A member fetches exactly `size` bytes,
//! checks the hash, opens the blob, checks that what is inside is an MLS
//! commit of this group and epoch, and processes it through MLS as usual:
//! MLS authenticates the committer.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use mls_rs::MlsMessage;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::big_group::read_blob_id;
use crate::codec::{DecodeError, Reader, Writer};
use crate::conversation::Conversation;
use crate::error::ProtoError;

/// The first bytes of every commit pointer.
pub const COMMIT_POINTER_MAGIC: [u8; 4] = [0xfe, b'H', b'C', 1];
/// Blobs grow in steps of this many bytes, so their size says little more
/// than the recipient count of the send already does.
pub const BLOB_STEP: u64 = 64 * 1024;
/// The largest commit blob a member fetches. A path encrypted to all of
/// [`crate::MAX_GROUP_DEVICES`] hybrid leaves is about 5.6 MB.
pub const MAX_COMMIT_BLOB_LEN: u64 = 16 * 1024 * 1024;
const EXPORTER_LABEL: &[u8] = b"hush commit pointer v1";
const BLOB_AAD_LABEL: &[u8] = b"hush commit blob v1";
const VERSION: u8 = 1;
const MAX_GROUP_ID: usize = 256;
const TAG_LEN: u64 = 16;
const NONCE_LEN: usize = 12;

/// Whether `bytes` are a commit pointer (rather than an MLS message, a
/// receipt or a sealed envelope).
pub fn is_commit_pointer(bytes: &[u8]) -> bool {
    bytes.starts_with(&COMMIT_POINTER_MAGIC)
}

/// The routing part of a commit pointer, readable without keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPointerHeader {
    /// The conversation.
    pub group_id: Vec<u8>,
    /// The epoch the commit applies to (whose exporter sealed the pointer).
    pub epoch: u64,
}

/// Reads the header of a commit pointer.
pub fn commit_pointer_header(bytes: &[u8]) -> Result<CommitPointerHeader, DecodeError> {
    Ok(split(bytes)?.0)
}

/// The header, the authenticated data (the bytes of the header) and the
/// rest (nonce and ciphertext).
fn split(bytes: &[u8]) -> Result<(CommitPointerHeader, &[u8], &[u8]), DecodeError> {
    let mut r = Reader::new(bytes);
    if r.array::<4>()? != COMMIT_POINTER_MAGIC {
        return Err(DecodeError::Invalid {
            field: "commit pointer",
            reason: "no commit pointer magic",
        });
    }
    let group_id = r.bytes("group id", MAX_GROUP_ID)?.to_vec();
    let epoch = r.u64()?;
    let header_len = bytes.len() - r.remaining();
    let (aad, rest) = bytes.split_at(header_len);
    Ok((CommitPointerHeader { group_id, epoch }, aad, rest))
}

/// Where a commit is and how to check it, from an authentic pointer.
#[derive(Clone, PartialEq, Eq)]
pub struct CommitBlobRef {
    /// The server's blob id (letters, digits, `-` and `_`).
    pub blob_id: String,
    /// The blob's exact size in bytes.
    pub len: u64,
    /// SHA-256 of the blob.
    pub hash: [u8; 32],
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for CommitBlobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitBlobRef")
            .field("blob_id", &self.blob_id)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl CommitBlobRef {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION)
            .bytes(self.blob_id.as_bytes())
            .u64(self.len)
            .raw(&self.hash)
            .raw(self.key.as_slice());
        w.into_bytes()
    }

    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let blob_id = read_blob_id(&mut r, "commit blob id")?;
        let len = r.u64()?;
        let hash = r.array::<32>()?;
        let key = Zeroizing::new(r.array::<32>()?);
        r.finish()?;
        if len % BLOB_STEP != 0 || !(BLOB_STEP..=MAX_COMMIT_BLOB_LEN).contains(&len) {
            return Err(DecodeError::Invalid {
                field: "commit blob size",
                reason: "out of range",
            });
        }
        Ok(Self {
            blob_id,
            len,
            hash,
            key,
        })
    }
}

/// What a committer uploads and what it sends instead of the commit.
#[derive(Clone)]
pub struct OutOfBandCommit {
    /// The sealed commit, to upload into the slot before the pointer is sent.
    pub blob: Vec<u8>,
    /// The pointer: the payload of the send that claims the epoch.
    pub pointer: Vec<u8>,
}

impl std::fmt::Debug for OutOfBandCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutOfBandCommit")
            .field("blob", &self.blob.len())
            .field("pointer", &self.pointer.len())
            .finish()
    }
}

/// The size of the blob slot to reserve for a commit of `commit_len` bytes.
pub fn commit_blob_len(commit_len: usize) -> u64 {
    let needed = commit_len as u64 + 4 + TAG_LEN;
    needed.div_ceil(BLOB_STEP).max(1) * BLOB_STEP
}

fn aead(key: &[u8; 32]) -> Result<LessSafeKey, ProtoError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| ProtoError::InvalidRequest("commit blob key"))
}

fn blob_aad(group_id: &[u8], epoch: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(BLOB_AAD_LABEL).bytes(group_id).u64(epoch);
    w.into_bytes()
}

/// Seals `commit` into a blob of `len` bytes under `key` (used once, so a
/// fixed nonce is safe).
fn seal_blob(
    key: &[u8; 32],
    len: u64,
    group_id: &[u8],
    epoch: u64,
    commit: &[u8],
) -> Result<Vec<u8>, ProtoError> {
    let commit_len =
        u32::try_from(commit.len()).map_err(|_| ProtoError::InvalidRequest("commit too large"))?;
    if len > MAX_COMMIT_BLOB_LEN || commit_blob_len(commit.len()) > len {
        return Err(ProtoError::InvalidRequest(
            "the commit does not fit the blob slot",
        ));
    }
    let plain_len = usize::try_from(len - TAG_LEN)
        .map_err(|_| ProtoError::InvalidRequest("commit blob too large"))?;
    let mut buf = Vec::with_capacity(plain_len + TAG_LEN as usize);
    buf.extend_from_slice(&commit_len.to_be_bytes());
    buf.extend_from_slice(commit);
    buf.resize(plain_len, 0);
    aead(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; NONCE_LEN]),
            Aad::from(blob_aad(group_id, epoch)),
            &mut buf,
        )
        .map_err(|_| ProtoError::InvalidRequest("cannot seal the commit"))?;
    Ok(buf)
}

/// Opens a commit blob: exactly the size and hash the pointer names,
/// authentic under its key for this group and epoch, padded with zeros.
/// Anything else is [`ProtoError::Tampered`]. Returns the bytes inside,
/// not yet checked to be a commit (see [`check_commit`]).
pub fn open_commit_blob(
    at: &CommitBlobRef,
    group_id: &[u8],
    epoch: u64,
    blob: &[u8],
) -> Result<Vec<u8>, ProtoError> {
    if blob.len() as u64 != at.len || digest(&SHA256, blob).as_ref() != at.hash {
        return Err(ProtoError::Tampered);
    }
    let mut buf = blob.to_vec();
    let plain = aead(&at.key)?
        .open_in_place(
            Nonce::assume_unique_for_key([0; NONCE_LEN]),
            Aad::from(blob_aad(group_id, epoch)),
            &mut buf,
        )
        .map_err(|_| ProtoError::Tampered)?;
    let mut r = Reader::new(plain);
    let commit_len = r.u32().map_err(|_| ProtoError::Tampered)? as usize;
    let commit = r.take(commit_len).map_err(|_| ProtoError::Tampered)?;
    if plain[4 + commit_len..].iter().any(|b| *b != 0) {
        return Err(ProtoError::Tampered);
    }
    Ok(commit.to_vec())
}

/// Checks that `bytes` are an MLS commit of `group_id` at `epoch`: what a
/// pointer for that group and epoch may name. A member who sealed a commit
/// of another group or epoch behind a valid pointer gets
/// [`ProtoError::MisdirectedCommit`].
pub fn check_commit(bytes: &[u8], group_id: &[u8], epoch: u64) -> Result<(), ProtoError> {
    let misdirected = |_| ProtoError::MisdirectedCommit;
    let message = MlsMessage::from_bytes(bytes).map_err(misdirected)?;
    let is_commit = matches!(
        message.description(),
        mls_rs::MlsMessageDescription::PrivateProtocolMessage {
            content_type: mls_rs::group::ContentType::Commit,
            ..
        } | mls_rs::MlsMessageDescription::PublicProtocolMessage {
            content_type: mls_rs::group::ContentType::Commit,
            ..
        }
    );
    if !is_commit || message.group_id() != Some(group_id) || message.epoch() != Some(epoch) {
        return Err(ProtoError::MisdirectedCommit);
    }
    Ok(())
}

/// Seals a pointer under the epoch's exporter `key`.
fn seal_pointer(
    key: &[u8; 32],
    group_id: &[u8],
    epoch: u64,
    at: &CommitBlobRef,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<u8>, ProtoError> {
    let mut w = Writer::new();
    w.raw(&COMMIT_POINTER_MAGIC).bytes(group_id).u64(epoch);
    let mut out = w.into_bytes();
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut body = at.encode();
    aead(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(out.as_slice()),
            &mut body,
        )
        .map_err(|_| ProtoError::InvalidRequest("cannot seal the commit pointer"))?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens a pointer with the exporter `key` of its epoch: its header and
/// where the commit is. A pointer not sealed with that key (forged or
/// altered by the server, or of another epoch) is [`ProtoError::Tampered`];
/// one that does not decode is [`ProtoError::Decode`]. Public for the
/// `commit_blob_open` fuzz target.
pub fn open_commit_pointer_with(
    key: &[u8; 32],
    bytes: &[u8],
) -> Result<(CommitPointerHeader, CommitBlobRef), ProtoError> {
    let (header, aad, rest) = split(bytes)?;
    let (nonce, ciphertext) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or(DecodeError::Incomplete { needed: NONCE_LEN })?;
    let nonce = <[u8; NONCE_LEN]>::try_from(nonce)
        .map_err(|_| DecodeError::Incomplete { needed: NONCE_LEN })?;
    let mut buf = ciphertext.to_vec();
    let body = aead(key)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| ProtoError::Tampered)?;
    Ok((header, CommitBlobRef::decode(body)?))
}

/// Seals `commit` into a blob under `blob_key` and a pointer to it under the
/// exporter key `pointer_key`, as a committer does. Public for the fuzz
/// seeds; a client uses [`Conversation::seal_commit_out_of_band`].
#[allow(clippy::too_many_arguments)]
pub fn seal_commit_with(
    pointer_key: &[u8; 32],
    blob_key: [u8; 32],
    blob_id: &str,
    len: u64,
    group_id: &[u8],
    epoch: u64,
    commit: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<OutOfBandCommit, ProtoError> {
    let blob = seal_blob(&blob_key, len, group_id, epoch, commit)?;
    let at = CommitBlobRef {
        blob_id: blob_id.to_owned(),
        len,
        hash: digest(&SHA256, &blob)
            .as_ref()
            .try_into()
            .map_err(|_| ProtoError::InvalidRequest("SHA-256 is 32 bytes"))?,
        key: Zeroizing::new(blob_key),
    };
    // The pointer must decode as a member will decode it.
    CommitBlobRef::decode(&at.encode())?;
    let pointer = seal_pointer(pointer_key, group_id, epoch, &at, rng)?;
    Ok(OutOfBandCommit { blob, pointer })
}

impl Conversation {
    fn pointer_key(&self) -> Result<Zeroizing<[u8; 32]>, ProtoError> {
        let secret = self.group.export_secret(EXPORTER_LABEL, b"", 32)?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(
            secret
                .as_bytes()
                .get(..32)
                .ok_or(ProtoError::InvalidRequest("short exporter secret"))?,
        );
        Ok(key)
    }

    /// Seals `commit` (the pending commit of this epoch) for a blob slot of
    /// `len` bytes ([`commit_blob_len`]) called `blob_id`, under a fresh key,
    /// and the pointer to send instead of it.
    pub fn seal_commit_out_of_band(
        &self,
        commit: &[u8],
        blob_id: &str,
        len: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<OutOfBandCommit, ProtoError> {
        let mut blob_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(blob_key.as_mut_slice());
        seal_commit_with(
            &*self.pointer_key()?,
            *blob_key,
            blob_id,
            len,
            self.id(),
            self.epoch(),
            commit,
            rng,
        )
    }

    /// Opens a commit pointer for this conversation's current epoch. One
    /// for another group or epoch is [`ProtoError::WrongEpoch`] (or
    /// [`ProtoError::Tampered`] for another group); one that does not open
    /// under this epoch's key is [`ProtoError::Tampered`].
    pub fn open_commit_pointer(&self, bytes: &[u8]) -> Result<CommitBlobRef, ProtoError> {
        let header = commit_pointer_header(bytes)?;
        if header.group_id != self.id() {
            return Err(ProtoError::Tampered);
        }
        if header.epoch != self.epoch() {
            return Err(ProtoError::WrongEpoch {
                message_epoch: header.epoch,
                current_epoch: self.epoch(),
            });
        }
        Ok(open_commit_pointer_with(&*self.pointer_key()?, bytes)?.1)
    }

    /// Opens the blob an authentic pointer named and checks that it holds a
    /// commit of this group and epoch; returns the commit, to process with
    /// [`Conversation::process`].
    pub fn open_commit_blob(&self, at: &CommitBlobRef, blob: &[u8]) -> Result<Vec<u8>, ProtoError> {
        let commit = open_commit_blob(at, self.id(), self.epoch(), blob)?;
        check_commit(&commit, self.id(), self.epoch())?;
        Ok(commit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn sealed(commit: &[u8]) -> OutOfBandCommit {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        seal_commit_with(
            &[1; 32],
            [2; 32],
            "blob_1-x",
            commit_blob_len(commit.len()),
            b"group",
            7,
            commit,
            &mut rng,
        )
        .unwrap()
    }

    #[test]
    fn blob_sizes_step() {
        assert_eq!(commit_blob_len(0), BLOB_STEP);
        assert_eq!(commit_blob_len(BLOB_STEP as usize - 20), BLOB_STEP);
        assert_eq!(commit_blob_len(BLOB_STEP as usize - 19), 2 * BLOB_STEP);
        assert_eq!(commit_blob_len(600_000), 10 * BLOB_STEP);
    }

    #[test]
    fn a_pointer_and_its_blob_open_only_unchanged() {
        let commit = vec![9u8; 70_000];
        let out = sealed(&commit);
        assert!(is_commit_pointer(&out.pointer));
        assert_eq!(out.blob.len() as u64, 2 * BLOB_STEP);
        let (header, at) = open_commit_pointer_with(&[1; 32], &out.pointer).unwrap();
        assert_eq!(
            header,
            CommitPointerHeader {
                group_id: b"group".to_vec(),
                epoch: 7
            }
        );
        assert_eq!(at.blob_id, "blob_1-x");
        assert_eq!(
            open_commit_blob(&at, b"group", 7, &out.blob).unwrap(),
            commit
        );
        // Another key, or a pointer the server altered.
        assert!(matches!(
            open_commit_pointer_with(&[3; 32], &out.pointer),
            Err(ProtoError::Tampered)
        ));
        for i in [5, out.pointer.len() - 1] {
            let mut p = out.pointer.clone();
            p[i] ^= 1;
            assert!(open_commit_pointer_with(&[1; 32], &p).is_err());
        }
        // A blob truncated, flipped, swapped, or opened for another epoch.
        let mut flipped = out.blob.clone();
        flipped[100] ^= 1;
        let other = sealed(&[8u8; 70_000]).blob;
        for bad in [&out.blob[..out.blob.len() - 1], &flipped, &other, &[][..]] {
            assert!(matches!(
                open_commit_blob(&at, b"group", 7, bad),
                Err(ProtoError::Tampered)
            ));
        }
        assert!(matches!(
            open_commit_blob(&at, b"group", 8, &out.blob),
            Err(ProtoError::Tampered)
        ));
        // What is inside must be a commit of this group and epoch.
        assert!(matches!(
            check_commit(&commit, b"group", 7),
            Err(ProtoError::MisdirectedCommit)
        ));
    }

    #[test]
    fn pointers_refuse_odd_ids_and_sizes() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let bad_id = seal_commit_with(
            &[1; 32], [2; 32], "../x", BLOB_STEP, b"g", 1, b"c", &mut rng,
        );
        assert!(bad_id.is_err());
        let too_big = seal_commit_with(
            &[1; 32],
            [2; 32],
            "id",
            MAX_COMMIT_BLOB_LEN + BLOB_STEP,
            b"g",
            1,
            b"c",
            &mut rng,
        );
        assert!(too_big.is_err());
        assert!(
            seal_commit_with(
                &[1; 32],
                [2; 32],
                "id",
                BLOB_STEP,
                b"g",
                1,
                &[0; 70_000],
                &mut rng
            )
            .is_err()
        );
    }
}
