//! Sealed envelopes: what the server stores of a message, so that a copy of
//! its database does not say who sent what to whom.
//!
//! The server reads a message's framing when it accepts the send (to take
//! the franking commitment, see [`crate::framing`]) but never stores it in the
//! clear. It encrypts the message once under a fresh key `K` (the *body*,
//! shared by every recipient device) and, for each recipient device, seals
//! `K` and its relay tag to that device with HPKE (RFC 9180, base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM: the suite of MLS
//! ciphersuite 1). Only the device can open it.
//!
//! A device's sealing key is its certified MLS signature key (Ed25519) mapped
//! to X25519 (the birational map of RFC 7748 section 4.1, as libsodium's
//! `crypto_sign_ed25519_pk_to_curve25519`): anyone holding the device
//! certificate derives it, so nothing new is registered or stored, and the
//! server cannot substitute a key of its own without substituting the
//! certificate, which key transparency catches. The device's X25519 secret is
//! the clamped first half of SHA-512 of its Ed25519 seed, the same scalar
//! Ed25519 signs with (decision 0013 discusses using one key pair for both).
//!
//! A sealed envelope as delivered:
//!
//! ```text
//! MAGIC (4) | kem output (32) | HPKE ciphertext of (K (32) | has_tag (1) | tag (32)) (81) | body
//! body = AES-256-GCM(K, nonce 0, aad MAGIC, MLS message)
//! ```
//!
//! `MAGIC` starts with `0xff`, which no RFC 9420 `MLSMessage` does (their
//! first two bytes are the protocol version, `0x0001`).

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest;
use curve25519_dalek::edwards::CompressedEdwardsY;
use mls_rs::CipherSuite;
use mls_rs_core::crypto::{
    CipherSuiteProvider, CryptoProvider, HpkeCiphertext, HpkePublicKey, HpkeSecretKey,
};
use mls_rs_crypto_awslc::AwsLcCryptoProvider;
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::codec::DecodeError;
use crate::error::ProtoError;
use crate::identity::{DeviceCertificate, DeviceSigningKey};

/// The first bytes of every sealed envelope.
pub const SEALED_MAGIC: [u8; 4] = [0xff, b'H', b'S', 1];
/// Length of a relay tag.
pub const RELAY_TAG_LEN: usize = 32;
const BODY_KEY_LEN: usize = 32;
const KEM_OUTPUT_LEN: usize = 32;
const SEALED_PLAIN_LEN: usize = BODY_KEY_LEN + 1 + RELAY_TAG_LEN;
const AEAD_TAG_LEN: usize = 16;
/// Length of one recipient's header: the HPKE encapsulation and the sealed
/// body key and relay tag.
pub const HEADER_LEN: usize = KEM_OUTPUT_LEN + SEALED_PLAIN_LEN + AEAD_TAG_LEN;
const INFO: &[u8] = b"hush sealed envelope v1";

pub(crate) fn hpke() -> Result<impl CipherSuiteProvider, ProtoError> {
    AwsLcCryptoProvider::new()
        .cipher_suite_provider(CipherSuite::CURVE25519_AES128)
        .ok_or(ProtoError::InvalidRequest(
            "the sealing suite is unavailable",
        ))
}

/// A device's public sealing key (X25519), derived from its certificate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SealKey([u8; 32]);

impl SealKey {
    /// The sealing key of the device `cert` certifies.
    pub fn of(cert: &DeviceCertificate) -> Result<Self, ProtoError> {
        let point = CompressedEdwardsY(*cert.signature_key())
            .decompress()
            .filter(|p| !p.is_small_order())
            .ok_or(DecodeError::Invalid {
                field: "device signature key",
                reason: "not a usable Ed25519 point",
            })?;
        Ok(Self(point.to_montgomery().to_bytes()))
    }

    /// The X25519 public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealKey({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// A device's secret for opening its sealed envelopes. Wiped on drop.
pub struct OpenKey {
    pub(crate) secret: HpkeSecretKey,
    pub(crate) public: HpkePublicKey,
}

impl OpenKey {
    /// The opening key of the device whose signing key is `key`.
    pub fn of(key: &DeviceSigningKey) -> Result<Self, ProtoError> {
        let hash = digest::digest(&digest::SHA512, key.to_seed().as_slice());
        let mut scalar = Zeroizing::new([0u8; 32]);
        scalar.copy_from_slice(&hash.as_ref()[..32]);
        scalar[0] &= 248;
        scalar[31] &= 127;
        scalar[31] |= 64;
        let public = CompressedEdwardsY(key.public())
            .decompress()
            .ok_or(DecodeError::Invalid {
                field: "device signature key",
                reason: "not an Ed25519 point",
            })?
            .to_montgomery()
            .to_bytes();
        Ok(Self {
            secret: HpkeSecretKey::from(scalar.to_vec()),
            public: HpkePublicKey::from(public.to_vec()),
        })
    }
}

impl fmt::Debug for OpenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpenKey(<redacted>)")
    }
}

/// A message encrypted under a fresh body key, ready to be sealed to each
/// recipient device.
pub struct SealedBody {
    key: Zeroizing<[u8; BODY_KEY_LEN]>,
    /// `AES-256-GCM(K, nonce 0, aad MAGIC, message)`: what is stored once per
    /// recipient row in place of the message.
    pub body: Vec<u8>,
}

impl fmt::Debug for SealedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedBody")
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

fn body_cipher(key: &[u8; BODY_KEY_LEN]) -> Result<LessSafeKey, ProtoError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| ProtoError::InvalidRequest("the body key was refused"))
}

/// Encrypts `message` under a fresh body key from `rng`.
pub fn seal_body(
    message: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<SealedBody, ProtoError> {
    let mut key = Zeroizing::new([0u8; BODY_KEY_LEN]);
    rng.fill_bytes(key.as_mut_slice());
    let mut body = message.to_vec();
    // The key is used for this one message only, so a fixed nonce is safe.
    body_cipher(&key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(SEALED_MAGIC),
            &mut body,
        )
        .map_err(|_| ProtoError::InvalidRequest("sealing the body failed"))?;
    Ok(SealedBody { key, body })
}

impl SealedBody {
    /// The header for one recipient device: the body key and `relay_tag`
    /// sealed to `to`.
    pub fn header(
        &self,
        to: &SealKey,
        relay_tag: Option<&[u8; RELAY_TAG_LEN]>,
    ) -> Result<[u8; HEADER_LEN], ProtoError> {
        let mut plain = Zeroizing::new([0u8; SEALED_PLAIN_LEN]);
        plain[..BODY_KEY_LEN].copy_from_slice(self.key.as_slice());
        if let Some(tag) = relay_tag {
            plain[BODY_KEY_LEN] = 1;
            plain[BODY_KEY_LEN + 1..].copy_from_slice(tag);
        }
        let sealed = hpke()?
            .hpke_seal(
                &HpkePublicKey::from(to.0.to_vec()),
                INFO,
                Some(&SEALED_MAGIC),
                plain.as_slice(),
            )
            .map_err(|_| ProtoError::InvalidRequest("sealing to the device key failed"))?;
        let mut out = [0u8; HEADER_LEN];
        if sealed.kem_output.len() + sealed.ciphertext.len() != HEADER_LEN {
            return Err(ProtoError::InvalidRequest("unexpected HPKE output length"));
        }
        out[..KEM_OUTPUT_LEN].copy_from_slice(&sealed.kem_output);
        out[KEM_OUTPUT_LEN..].copy_from_slice(&sealed.ciphertext);
        Ok(out)
    }
}

/// A sealed envelope as delivered: magic, one recipient's header, the body.
pub fn sealed_envelope(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEALED_MAGIC.len() + header.len() + body.len());
    out.extend_from_slice(&SEALED_MAGIC);
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    out
}

/// Whether `bytes` is a sealed envelope (rather than a bare MLS message).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(&SEALED_MAGIC)
}

/// What a device finds in a sealed envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The MLS message.
    pub message: Vec<u8>,
    /// The server's relay tag, if it sent one.
    pub relay_tag: Option<[u8; RELAY_TAG_LEN]>,
}

/// Opens a sealed envelope with this device's key. Anything altered, or
/// sealed to another device, is refused with [`ProtoError::Tampered`].
pub fn open_envelope(key: &OpenKey, bytes: &[u8]) -> Result<Opened, ProtoError> {
    let rest = bytes
        .strip_prefix(&SEALED_MAGIC)
        .ok_or(DecodeError::Invalid {
            field: "sealed envelope",
            reason: "no sealed-envelope magic",
        })?;
    if rest.len() < HEADER_LEN + AEAD_TAG_LEN {
        return Err(DecodeError::Incomplete {
            needed: HEADER_LEN + AEAD_TAG_LEN - rest.len(),
        }
        .into());
    }
    let (header, body) = rest.split_at(HEADER_LEN);
    let plain = open_header(key, header, KEM_OUTPUT_LEN, INFO, &SEALED_MAGIC)?;
    if plain.len() != SEALED_PLAIN_LEN {
        return Err(ProtoError::Tampered);
    }
    let mut body_key = Zeroizing::new([0u8; BODY_KEY_LEN]);
    body_key.copy_from_slice(&plain[..BODY_KEY_LEN]);
    let relay_tag = match plain[BODY_KEY_LEN] {
        0 => None,
        1 => {
            let mut tag = [0u8; RELAY_TAG_LEN];
            tag.copy_from_slice(&plain[BODY_KEY_LEN + 1..]);
            Some(tag)
        }
        _ => return Err(ProtoError::Tampered),
    };
    let mut message = body.to_vec();
    let len = body_cipher(&body_key)?
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(SEALED_MAGIC),
            &mut message,
        )
        .map_err(|_| ProtoError::Tampered)?
        .len();
    message.truncate(len);
    Ok(Opened { message, relay_tag })
}

/// Opens one HPKE header (`kem_output` of `kem_len` bytes, then the
/// ciphertext) sealed to `key` under `info` and `aad`; any failure reads as
/// tampering. Shared by sealed envelopes and receipts.
pub(crate) fn open_header(
    key: &OpenKey,
    header: &[u8],
    kem_len: usize,
    info: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ProtoError> {
    let (kem_output, ciphertext) = header
        .split_at_checked(kem_len)
        .ok_or(ProtoError::Tampered)?;
    hpke()?
        .hpke_open(
            &HpkeCiphertext {
                kem_output: kem_output.to_vec(),
                ciphertext: ciphertext.to_vec(),
            },
            &key.secret,
            &key.public,
            info,
            Some(aad),
        )
        .map_err(|_| ProtoError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{AccountKey, DeviceId, Username};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn device(seed: u64) -> (DeviceSigningKey, DeviceCertificate) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let account = AccountKey::generate(&mut rng).unwrap();
        let key = DeviceSigningKey::generate(&mut rng).unwrap();
        let user = Username::new("bob").unwrap();
        let cert = DeviceCertificate::issue(&account, &user, DeviceId(1), &key, 5).unwrap();
        (key, cert)
    }

    #[test]
    fn only_the_recipient_device_opens_its_envelope() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let (bob_key, bob_cert) = device(1);
        let (carol_key, carol_cert) = device(2);
        let sealed = seal_body(b"an MLS message", &mut rng).unwrap();
        let tag = [7u8; 32];
        let to_bob = sealed
            .header(&SealKey::of(&bob_cert).unwrap(), Some(&tag))
            .unwrap();
        let to_carol = sealed
            .header(&SealKey::of(&carol_cert).unwrap(), None)
            .unwrap();
        let bob = OpenKey::of(&bob_key).unwrap();
        let carol = OpenKey::of(&carol_key).unwrap();

        let env = sealed_envelope(&to_bob, &sealed.body);
        assert!(is_sealed(&env));
        let opened = open_envelope(&bob, &env).unwrap();
        assert_eq!(opened.message, b"an MLS message");
        assert_eq!(opened.relay_tag, Some(tag));
        let opened = open_envelope(&carol, &sealed_envelope(&to_carol, &sealed.body)).unwrap();
        assert_eq!(opened.relay_tag, None);

        // Carol cannot open Bob's header; nothing altered opens.
        assert!(matches!(
            open_envelope(&carol, &env),
            Err(ProtoError::Tampered)
        ));
        for i in [4, 40, 120, env.len() - 1] {
            let mut bad = env.clone();
            bad[i] ^= 1;
            assert!(open_envelope(&bob, &bad).is_err(), "byte {i}");
        }
        assert!(open_envelope(&bob, &env[..50]).is_err());
        assert!(!is_sealed(b"\x00\x01mls"));
    }
}
