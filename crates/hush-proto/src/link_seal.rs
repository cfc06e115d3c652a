//! What invite links and channels both seal under a key derived from a
//! link's secret: AES-256-GCM under a fresh random 96-bit nonce that leads
//! the sealed bytes (`nonce || ciphertext || tag`), keys from HKDF-SHA256,
//! and the secret written in a link as lowercase hex.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use rand_core::{CryptoRng, RngCore};

use crate::error::ProtoError;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// 32 bytes of HKDF-SHA256 of `ikm` under `salt`, for `label`.
pub(crate) fn derive(ikm: &[u8], salt: &[u8], label: &[u8]) -> [u8; 32] {
    let prk = Salt::new(HKDF_SHA256, salt).extract(ikm);
    let mut out = [0u8; 32];
    // 32 bytes of HKDF-SHA256 output is always within HKDF's limit.
    if let Ok(okm) = prk.expand(&[label], HKDF_SHA256) {
        let _ = okm.fill(&mut out);
    }
    out
}

fn aead(key: &[u8; 32]) -> Result<LessSafeKey, ProtoError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| ProtoError::InvalidRequest("a link key was refused"))
}

/// Seals `plain` under `key` with `aad`; refuses a result over `max` bytes
/// with `too_large`.
pub(crate) fn seal(
    key: &[u8; 32],
    aad: &[u8],
    plain: &[u8],
    max: usize,
    too_large: &'static str,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<u8>, ProtoError> {
    if NONCE_LEN + plain.len() + TAG_LEN > max {
        return Err(ProtoError::InvalidRequest(too_large));
    }
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut buf = plain.to_vec();
    aead(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| ProtoError::InvalidRequest(too_large))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Opens what [`seal`] sealed under `key` with `aad`; anything shorter than
/// a nonce and a tag, over `max` bytes or not authentic is
/// [`ProtoError::Tampered`].
pub(crate) fn open(
    key: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
    max: usize,
) -> Result<Vec<u8>, ProtoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN || sealed.len() > max {
        return Err(ProtoError::Tampered);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| ProtoError::Tampered)?;
    let mut buf = body.to_vec();
    let plain = aead(key)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| ProtoError::Tampered)?;
    Ok(plain.to_vec())
}

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes written as `2 * N` hex digits, or `None`.
pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_only_with_their_key_and_aad() {
        use rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let key = derive(b"secret", b"salt", b"label");
        let sealed = seal(&key, b"aad", b"hello", 64, "too large", &mut rng).unwrap();
        assert_eq!(open(&key, b"aad", &sealed, 64).unwrap(), b"hello");
        assert!(matches!(
            open(&key, b"other", &sealed, 64),
            Err(ProtoError::Tampered)
        ));
        let other = derive(b"secret", b"salt", b"other label");
        assert!(matches!(
            open(&other, b"aad", &sealed, 64),
            Err(ProtoError::Tampered)
        ));
        assert!(matches!(
            open(&key, b"aad", &sealed, 20),
            Err(ProtoError::Tampered)
        ));
        assert!(matches!(
            seal(&key, b"aad", &[0; 40], 64, "too large", &mut rng),
            Err(ProtoError::InvalidRequest("too large"))
        ));
    }

    #[test]
    fn hex_round_trips_and_refuses_the_wrong_length() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(unhex::<4>("0001abff"), Some(bytes));
        assert_eq!(unhex::<4>("0001abf"), None);
        assert_eq!(unhex::<4>("0001abfg"), None);
    }
}
