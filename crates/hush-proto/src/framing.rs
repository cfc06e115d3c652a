//! What a relay can read of an MLS message without any key: its wire format,
//! its content type and, for an application message, the franking commitment
//! in its authenticated data.
//!
//! RFC 9420 leaves a `PrivateMessage`'s `group_id`, `epoch`, `content_type`
//! and `authenticated_data` in the clear (they are authenticated, not
//! encrypted). Hush puts the franking commitment in the authenticated data of
//! every application message, so the server can take the commitment from the
//! message itself instead of trusting what the send request says (see
//! `docs/abuse-reporting.md`). A message whose framing a member would accept
//! is framed as this module reads it: the content type and authenticated data
//! are bound to the ciphertext by its AEAD.

use mls_rs::MlsMessage;

use crate::codec::{DecodeError, Reader};
use crate::error::ProtoError;
use crate::franking::{COMMITMENT_LEN, Commitment};

/// The version byte that starts the authenticated data of a Hush application
/// message (and its plaintext).
pub(crate) const SEALED_VERSION: u8 = 1;
/// Length of that authenticated data: version and commitment.
pub(crate) const AAD_LEN: usize = 1 + COMMITMENT_LEN;

const WIRE_PRIVATE_MESSAGE: u16 = 2;
const CONTENT_APPLICATION: u8 = 1;
/// Longest group id the framing reader accepts (mls-rs accepts any; Hush
/// group ids are 32 bytes).
const MAX_GROUP_ID_LEN: usize = 1 << 16;

/// What the relay sees of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// An application message (a `PrivateMessage` of content type
    /// `application`). `commitment` is `None` when its authenticated data is
    /// not a Hush franking commitment: no member will open it.
    Application {
        /// The franking commitment in the authenticated data.
        commitment: Option<Commitment>,
    },
    /// Any other MLS message: a commit, proposal, Welcome, KeyPackage or
    /// group info. It carries no franking commitment.
    Handshake,
}

/// Reads the framing of `bytes`, which must be a whole RFC 9420 `MLSMessage`.
/// Never panics; refuses anything mls-rs does not decode.
pub fn read_framing(bytes: &[u8]) -> Result<Framing, ProtoError> {
    let message = MlsMessage::from_bytes(bytes)?;
    if message.wire_format() != mls_rs::WireFormat::PrivateMessage {
        return Ok(Framing::Handshake);
    }
    // mls-rs does not expose a PrivateMessage's authenticated data before
    // decryption; the header is short and fixed (RFC 9420 section 6.3), so
    // read it here from the bytes mls-rs has just accepted.
    let mut r = Reader::new(bytes);
    let _version = r.u16()?;
    if r.u16()? != WIRE_PRIVATE_MESSAGE {
        return Err(invalid("wire format", "not a private message"));
    }
    let group_id_len = varint(&mut r)?;
    if group_id_len > MAX_GROUP_ID_LEN {
        return Err(invalid("group id", "too long"));
    }
    r.take(group_id_len)?;
    let _epoch = r.u64()?;
    if r.u8()? != CONTENT_APPLICATION {
        return Ok(Framing::Handshake);
    }
    let aad_len = varint(&mut r)?;
    let aad = r.take(aad_len)?;
    Ok(Framing::Application {
        commitment: commitment_from_aad(aad).ok(),
    })
}

/// The franking commitment in a Hush application message's authenticated
/// data: the version byte, then the 32-byte commitment, nothing else.
pub(crate) fn commitment_from_aad(aad: &[u8]) -> Result<Commitment, ProtoError> {
    if aad.len() != AAD_LEN {
        return Err(invalid("authenticated data", "not a franking commitment"));
    }
    let mut a = Reader::new(aad);
    let version = a.u8()?;
    if version != SEALED_VERSION {
        return Err(DecodeError::UnsupportedVersion(version).into());
    }
    let commitment = Commitment(a.array()?);
    a.finish()?;
    Ok(commitment)
}

/// An RFC 9420 variable-length integer (section 2.1.2): the top two bits of
/// the first byte give its length (1, 2 or 4 bytes).
fn varint(r: &mut Reader<'_>) -> Result<usize, ProtoError> {
    let first = r.u8()?;
    let value = match first >> 6 {
        0 => u32::from(first),
        1 => (u32::from(first & 0x3f) << 8) | u32::from(r.u8()?),
        2 => {
            let rest: [u8; 3] = r.array()?;
            (u32::from(first & 0x3f) << 24)
                | (u32::from(rest[0]) << 16)
                | (u32::from(rest[1]) << 8)
                | u32::from(rest[2])
        }
        _ => return Err(invalid("length", "not an MLS variable-length integer")),
    };
    usize::try_from(value).map_err(|_| invalid("length", "too large"))
}

fn invalid(field: &'static str, reason: &'static str) -> ProtoError {
    DecodeError::Invalid { field, reason }.into()
}
