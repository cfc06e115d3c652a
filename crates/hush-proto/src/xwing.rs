//! X-Wing, the hybrid KEM of Hush's post-quantum suite, as an HPKE KEM.
//!
//! X-Wing as draft-connolly-cfrg-xwing-kem-06 and later define it (the
//! label last in the combiner, the decapsulation key a 32-byte seed, raw
//! X25519), through RustCrypto's `x-wing` crate (decision 0031). This module
//! adds what HPKE (RFC 9180) and MLS need around it, as the draft's "Use in
//! HPKE" section says: the KEM id 0x647a, `DeriveKeyPair(ikm)` as
//! `GenerateKeyPairDerand(SHAKE256(ikm, 32 bytes))`, and errors instead of
//! panics for keys and ciphertexts of the wrong length.
//!
//! The official test vectors run in `tests/xwing_vectors.rs`.

use mls_rs_core::crypto::{HpkePublicKey, HpkeSecretKey};
use mls_rs_core::error::IntoAnyError;
use mls_rs_crypto_traits::{KemResult, KemType};
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use x_wing::{Decapsulate, Decapsulator, KeyExport, TryKeyInit};
use zeroize::Zeroizing;

/// The HPKE KEM identifier of X-Wing (draft-connolly-cfrg-xwing-kem, IANA
/// section: 0x647a).
pub const HPKE_KEM_ID: u16 = 0x647a;
/// Bytes of an X-Wing encapsulation (public) key.
pub const PUBLIC_KEY_SIZE: usize = x_wing::ENCAPSULATION_KEY_SIZE;
/// Bytes of an X-Wing decapsulation (secret) key: the seed.
pub const SECRET_KEY_SIZE: usize = x_wing::DECAPSULATION_KEY_SIZE;
/// Bytes of an X-Wing ciphertext.
pub const CIPHERTEXT_SIZE: usize = x_wing::CIPHERTEXT_SIZE;
/// Bytes of randomness one encapsulation consumes.
pub const ENCAPSULATION_SEED_SIZE: usize = x_wing::ENCAPSULATION_RANDOMNESS_SIZE;

/// Why an X-Wing operation failed. Every input is length- and
/// range-checked: nothing here panics on untrusted bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XWingError {
    /// A public key of the wrong length, or whose ML-KEM part fails the
    /// FIPS 203 modulus check.
    #[error("invalid X-Wing public key")]
    InvalidPublicKey,
    /// A secret key that is not a 32-byte seed.
    #[error("invalid X-Wing secret key")]
    InvalidSecretKey,
    /// A ciphertext of the wrong length.
    #[error("invalid X-Wing ciphertext")]
    InvalidCiphertext,
    /// The system random source failed.
    #[error("no randomness")]
    Randomness,
}

impl IntoAnyError for XWingError {
    fn into_dyn_error(self) -> Result<Box<dyn std::error::Error + Send + Sync>, Self> {
        Ok(self.into())
    }
}

/// X-Wing as an mls-rs [`KemType`] (HPKE KEM 0x647a).
#[derive(Debug, Clone, Copy, Default)]
pub struct XWing;

impl XWing {
    /// `GenerateKeyPairDerand(seed)`: the key pair of a 32-byte seed. The
    /// secret key is the seed itself.
    pub fn key_pair_from_seed(seed: &[u8]) -> Result<(HpkeSecretKey, HpkePublicKey), XWingError> {
        let seed: [u8; SECRET_KEY_SIZE] =
            seed.try_into().map_err(|_| XWingError::InvalidSecretKey)?;
        let dk = x_wing::DecapsulationKey::from(seed);
        let pk = dk.encapsulation_key().to_bytes().to_vec();
        Ok((HpkeSecretKey::from(dk.as_bytes().to_vec()), pk.into()))
    }

    /// HPKE `DeriveKeyPair(ikm)`: `GenerateKeyPairDerand(SHAKE256(ikm, 32))`.
    pub fn derive_key_pair(ikm: &[u8]) -> Result<(HpkeSecretKey, HpkePublicKey), XWingError> {
        let mut xof = Shake256::default();
        xof.update(ikm);
        let mut seed = Zeroizing::new([0u8; SECRET_KEY_SIZE]);
        xof.finalize_xof().read(seed.as_mut_slice());
        Self::key_pair_from_seed(seed.as_slice())
    }

    /// `EncapsulateDerand(pk, eseed)`: encapsulation with the caller's 64
    /// bytes of randomness (ML-KEM's `m`, then the X25519 ephemeral key).
    pub fn encapsulate_derand(pk: &[u8], eseed: &[u8]) -> Result<KemResult, XWingError> {
        let ek = encapsulation_key(pk)?;
        let eseed: [u8; ENCAPSULATION_SEED_SIZE] =
            eseed.try_into().map_err(|_| XWingError::Randomness)?;
        let (ct, ss) = ek.encapsulate_deterministic(&eseed.into());
        Ok(KemResult::new(ss.to_vec(), ct.to_vec()))
    }

    /// `Decapsulate(ct, sk)`.
    pub fn decapsulate(ct: &[u8], sk: &[u8]) -> Result<Zeroizing<Vec<u8>>, XWingError> {
        let seed: [u8; SECRET_KEY_SIZE] =
            sk.try_into().map_err(|_| XWingError::InvalidSecretKey)?;
        let dk = x_wing::DecapsulationKey::from(seed);
        let ct = x_wing::Ciphertext::try_from(ct).map_err(|_| XWingError::InvalidCiphertext)?;
        Ok(Zeroizing::new(dk.decapsulate(&ct).to_vec()))
    }
}

fn encapsulation_key(pk: &[u8]) -> Result<x_wing::EncapsulationKey, XWingError> {
    x_wing::EncapsulationKey::new_from_slice(pk).map_err(|_| XWingError::InvalidPublicKey)
}

fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, XWingError> {
    let mut out = Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::fill(out.as_mut_slice()).map_err(|_| XWingError::Randomness)?;
    Ok(out)
}

impl KemType for XWing {
    type Error = XWingError;

    fn kem_id(&self) -> u16 {
        HPKE_KEM_ID
    }

    fn generate_deterministic(
        &self,
        ikm: &[u8],
    ) -> Result<(HpkeSecretKey, HpkePublicKey), XWingError> {
        Self::derive_key_pair(ikm)
    }

    fn generate(&self) -> Result<(HpkeSecretKey, HpkePublicKey), XWingError> {
        Self::key_pair_from_seed(random::<SECRET_KEY_SIZE>()?.as_slice())
    }

    fn public_key_validate(&self, key: &HpkePublicKey) -> Result<(), XWingError> {
        encapsulation_key(key).map(|_| ())
    }

    fn encap(&self, remote_key: &HpkePublicKey) -> Result<KemResult, XWingError> {
        Self::encapsulate_derand(remote_key, random::<ENCAPSULATION_SEED_SIZE>()?.as_slice())
    }

    fn decap(
        &self,
        enc: &[u8],
        secret_key: &HpkeSecretKey,
        _local_public: &HpkePublicKey,
    ) -> Result<Vec<u8>, XWingError> {
        Self::decapsulate(enc, secret_key).map(|ss| ss.to_vec())
    }

    fn seed_length_for_derive(&self) -> usize {
        SECRET_KEY_SIZE
    }
}
