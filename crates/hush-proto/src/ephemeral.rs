//! Ephemeral messages (typing, presence) outside the MLS message ratchet.
//!
//! MLS lets a member fall at most 1024 messages behind a sender. Typing and
//! presence reach only online devices, so sending them as MLS application
//! messages would push offline members towards that limit and make them store
//! a skipped key for every indicator they missed. Instead they are sealed with
//! AES-256-GCM under a key exported from the current epoch
//! (`MLS-Exporter("hush ephemeral v1")`): only members of the epoch can open
//! them, and they consume no MLS state. The sender's leaf index travels inside
//! the ciphertext; a member of the group could forge another member's typing
//! indicator, which is the price of not signing each one (see
//! docs/decisions/0005-ephemeral-outside-the-ratchet.md).
//!
//! Layout: `u8 version | u32 group id length | group id | u64 epoch | [12] nonce | ciphertext`.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use rand_core::{CryptoRng, RngCore};

use crate::codec::{DecodeError, Reader, Writer};

const VERSION: u8 = 1;
const LABEL: &str = "hush ephemeral v1";
/// Longest group id in an ephemeral frame.
const MAX_GROUP_ID: usize = 256;

/// The routing part of an ephemeral frame, readable without keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralHeader {
    /// The conversation.
    pub group_id: Vec<u8>,
    /// The epoch whose exporter key sealed it.
    pub epoch: u64,
}

/// Reads the header of an ephemeral frame.
pub fn ephemeral_header(bytes: &[u8]) -> Result<EphemeralHeader, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let group_id = r.bytes("group id", MAX_GROUP_ID)?.to_vec();
    let epoch = r.u64()?;
    Ok(EphemeralHeader { group_id, epoch })
}

pub(crate) const EXPORTER_LABEL: &str = LABEL;

pub(crate) fn seal(
    key: &[u8],
    group_id: &[u8],
    epoch: u64,
    plaintext: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Option<Vec<u8>> {
    let mut header = Writer::new();
    header.u8(VERSION).bytes(group_id).u64(epoch);
    let header = header.into_bytes();
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let sealing = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
    let mut in_out = plaintext.to_vec();
    sealing
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&header),
            &mut in_out,
        )
        .ok()?;
    let mut out = header;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&in_out);
    Some(out)
}

pub(crate) fn open(key: &[u8], bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let header = ephemeral_header(bytes)?;
    let header_len = 1 + 4 + header.group_id.len() + 8;
    let (aad, rest) = bytes
        .split_at_checked(header_len)
        .ok_or(DecodeError::Incomplete { needed: header_len })?;
    let (nonce, ciphertext) = rest
        .split_at_checked(12)
        .ok_or(DecodeError::Incomplete { needed: 12 })?;
    let nonce = <[u8; 12]>::try_from(nonce).map_err(|_| DecodeError::Incomplete { needed: 12 })?;
    let opening =
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key).map_err(|_| DecodeError::Invalid {
                field: "ephemeral key",
                reason: "wrong length",
            })?,
        );
    let mut in_out = ciphertext.to_vec();
    let plain = opening
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut in_out,
        )
        .map_err(|_| DecodeError::Invalid {
            field: "ephemeral message",
            reason: "does not authenticate",
        })?;
    Ok(plain.to_vec())
}
