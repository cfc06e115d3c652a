//! A frame sealed to several devices, as receipts and self-sync frames are:
//! a 4-byte magic, the number of devices, per device its id and the body
//! key sealed to its device key (HPKE, the magic as associated data), then
//! the body under AES-256-GCM with everything before it as associated data.
//! Each kind names its magic, its HPKE info and the words of its errors.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use mls_rs_core::crypto::{CipherSuiteProvider, HpkePublicKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader};
use crate::error::ProtoError;
use crate::identity::{DeviceCertificate, DeviceId};
use crate::sealed::{OpenKey, SealKey, hpke};

/// Most devices one frame is sealed to.
pub const MAX_DEVICES: usize = 32;
const KEY_LEN: usize = 32;
const KEM_OUTPUT_LEN: usize = 32;
const AEAD_TAG_LEN: usize = 16;
const SEALED_KEY_LEN: usize = KEY_LEN + AEAD_TAG_LEN;
pub(crate) const HEADER_LEN: usize = 4 + KEM_OUTPUT_LEN + SEALED_KEY_LEN;

/// One kind of frame: its magic, HPKE info and error words.
pub(crate) struct Kind {
    pub magic: [u8; 4],
    pub info: &'static [u8],
    /// The field named in decode errors ("receipt").
    pub field: &'static str,
    /// The decode error's reason when the magic is missing.
    pub no_magic: &'static str,
    /// The refusal of a frame not sealed to the opening device.
    pub not_for_me: &'static str,
    /// The error when the body cannot be sealed.
    pub seal_failed: &'static str,
    /// The error when the body key is refused.
    pub key_refused: &'static str,
}

/// Seals `plain` to the devices `to` certifies (1 to [`MAX_DEVICES`],
/// checked by the caller).
pub(crate) fn seal(
    kind: &Kind,
    plain: &[u8],
    to: &[DeviceCertificate],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<u8>, ProtoError> {
    let mut body_key = Zeroizing::new([0u8; KEY_LEN]);
    rng.fill_bytes(body_key.as_mut_slice());
    let mut out = kind.magic.to_vec();
    out.push(to.len() as u8);
    let suite = hpke()?;
    for cert in to {
        let seal_to = SealKey::of(cert)?;
        let sealed = suite
            .hpke_seal(
                &HpkePublicKey::from(seal_to.as_bytes().to_vec()),
                kind.info,
                Some(&kind.magic),
                body_key.as_slice(),
            )
            .map_err(|_| ProtoError::InvalidRequest("sealing to the device key failed"))?;
        if sealed.kem_output.len() != KEM_OUTPUT_LEN || sealed.ciphertext.len() != SEALED_KEY_LEN {
            return Err(ProtoError::InvalidRequest("unexpected HPKE output length"));
        }
        out.extend_from_slice(&cert.device_id().0.to_be_bytes());
        out.extend_from_slice(&sealed.kem_output);
        out.extend_from_slice(&sealed.ciphertext);
    }
    let mut body = plain.to_vec();
    cipher(kind, &body_key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(out.as_slice()),
            &mut body,
        )
        .map_err(|_| ProtoError::InvalidRequest(kind.seal_failed))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens a frame of `kind` as device `device` with its key: the body.
/// Anything altered, or not sealed to this device, is refused.
pub(crate) fn open(
    kind: &Kind,
    key: &OpenKey,
    device: DeviceId,
    bytes: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ProtoError> {
    let mut r = Reader::new(bytes);
    if r.array::<4>()? != kind.magic {
        return Err(invalid(kind.field, kind.no_magic).into());
    }
    let n = usize::from(r.u8()?);
    if n == 0 || n > MAX_DEVICES {
        return Err(invalid(kind.field, "sealed to 0 or too many devices").into());
    }
    let headers = r.take(n * HEADER_LEN)?;
    let aad_len = kind.magic.len() + 1 + n * HEADER_LEN;
    let body = r.take(r.remaining())?;
    if body.len() < AEAD_TAG_LEN {
        return Err(DecodeError::Incomplete {
            needed: AEAD_TAG_LEN - body.len(),
        }
        .into());
    }
    let header = headers
        .chunks_exact(HEADER_LEN)
        .find(|h| h[..4] == device.0.to_be_bytes())
        .ok_or(ProtoError::InvalidRequest(kind.not_for_me))?;
    let plain_key =
        crate::sealed::open_header(key, &header[4..], KEM_OUTPUT_LEN, kind.info, &kind.magic)?;
    let body_key: Zeroizing<[u8; KEY_LEN]> = Zeroizing::new(
        plain_key
            .as_slice()
            .try_into()
            .map_err(|_| ProtoError::Tampered)?,
    );
    let mut plain = Zeroizing::new(body.to_vec());
    let len = cipher(kind, &body_key)?
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(&bytes[..aad_len]),
            &mut plain,
        )
        .map_err(|_| ProtoError::Tampered)?
        .len();
    plain.truncate(len);
    Ok(plain)
}

fn cipher(kind: &Kind, key: &[u8; KEY_LEN]) -> Result<LessSafeKey, ProtoError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| ProtoError::InvalidRequest(kind.key_refused))
}

fn invalid(field: &'static str, reason: &'static str) -> DecodeError {
    DecodeError::Invalid { field, reason }
}
