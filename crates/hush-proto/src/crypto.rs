//! The MLS crypto provider of every Hush device: aws-lc for the RFC 9420
//! suite and the legacy hybrid suite, plus the X-Wing suite of OpenMLS and
//! draft-ietf-mls-pq-ciphersuites (decision 0031).
//!
//! `MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519` (0x004D) is suite 0x0003
//! (`MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519`) with its KEM
//! replaced by X-Wing: SHA-256, HMAC-SHA256, HKDF-SHA256, ChaCha20-Poly1305
//! and Ed25519 come from aws-lc's suite 0x0003; HPKE is RFC 9180 over the
//! X-Wing KEM (id 0x647a) with HKDF-SHA256 and ChaCha20-Poly1305, and a tree
//! node's key pair is X-Wing's `DeriveKeyPair(node_secret)`.
//! See docs/cryptography.md.

use mls_rs_core::crypto::{
    CipherSuite, CipherSuiteProvider, CryptoProvider, HpkeCiphertext, HpkePsk, HpkePublicKey,
    HpkeSecretKey, SignaturePublicKey, SignatureSecretKey,
};
use mls_rs_core::error::IntoAnyError;
use mls_rs_crypto_awslc::AwsLcHkdf;
use mls_rs_crypto_awslc::{AwsLcAead, AwsLcCipherSuite, AwsLcCryptoError, AwsLcCryptoProvider};
use mls_rs_crypto_hpke::context::{ContextR, ContextS};
use mls_rs_crypto_hpke::hpke::{Hpke, HpkeError};
use zeroize::Zeroizing;

use crate::xwing::{XWing, XWingError};

/// `MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519`, the code point OpenMLS
/// uses for its X-Wing suite.
pub const XWING_CHACHA20POLY1305_SHA256_ED25519: CipherSuite = CipherSuite::new(0x004D);

/// The suite 0x004D borrows everything but its KEM from.
const XWING_BASE: CipherSuite = CipherSuite::CURVE25519_CHACHA;

/// The suites a Hush device runs MLS in.
const SUITES: [CipherSuite; 3] = [
    CipherSuite::CURVE25519_AES128,
    XWING_CHACHA20POLY1305_SHA256_ED25519,
    CipherSuite::ML_KEM_768_X25519,
];

/// Why a crypto operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HushCryptoError {
    /// From aws-lc.
    #[error(transparent)]
    AwsLc(#[from] AwsLcCryptoError),
    /// From HPKE.
    #[error(transparent)]
    Hpke(#[from] HpkeError),
    /// From X-Wing.
    #[error(transparent)]
    XWing(#[from] XWingError),
}

impl IntoAnyError for HushCryptoError {
    fn into_dyn_error(self) -> Result<Box<dyn std::error::Error + Send + Sync>, Self> {
        Ok(self.into())
    }
}

/// The MLS [`CryptoProvider`] of a Hush device.
#[derive(Debug, Clone, Default)]
pub struct HushCryptoProvider;

impl CryptoProvider for HushCryptoProvider {
    type CipherSuiteProvider = HushSuite;

    fn supported_cipher_suites(&self) -> Vec<CipherSuite> {
        SUITES.to_vec()
    }

    fn cipher_suite_provider(&self, cipher_suite: CipherSuite) -> Option<HushSuite> {
        HushSuite::new(cipher_suite)
    }
}

type XWingHpke = Hpke<XWing, AwsLcHkdf, AwsLcAead>;

/// One suite's operations: aws-lc's, with X-Wing's HPKE in suite 0x004D.
#[derive(Clone)]
pub struct HushSuite {
    cipher_suite: CipherSuite,
    base: AwsLcCipherSuite,
    xwing: Option<XWingHpke>,
}

impl std::fmt::Debug for HushSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HushSuite")
            .field("cipher_suite", &self.cipher_suite)
            .finish_non_exhaustive()
    }
}

impl HushSuite {
    /// The operations of `cipher_suite`, if Hush runs MLS in it.
    pub fn new(cipher_suite: CipherSuite) -> Option<Self> {
        if !SUITES.contains(&cipher_suite) {
            return None;
        }
        let aws = AwsLcCryptoProvider::with_enabled_cipher_suites(vec![cipher_suite]);
        if cipher_suite != XWING_CHACHA20POLY1305_SHA256_ED25519 {
            return Some(Self {
                cipher_suite,
                base: aws.cipher_suite_provider(cipher_suite)?,
                xwing: None,
            });
        }
        let hpke = Hpke::new(
            XWing,
            AwsLcHkdf::new(XWING_BASE)?,
            Some(AwsLcAead::new(XWING_BASE)?),
        );
        Some(Self {
            cipher_suite,
            base: aws.cipher_suite_provider(XWING_BASE)?,
            xwing: Some(hpke),
        })
    }
}

impl CipherSuiteProvider for HushSuite {
    type Error = HushCryptoError;
    type HpkeContextS = ContextS<AwsLcHkdf, AwsLcAead>;
    type HpkeContextR = ContextR<AwsLcHkdf, AwsLcAead>;

    fn cipher_suite(&self) -> CipherSuite {
        self.cipher_suite
    }

    fn hash(&self, data: &[u8]) -> Result<Vec<u8>, Self::Error> {
        Ok(self.base.hash(data)?)
    }

    fn mac(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, Self::Error> {
        Ok(self.base.mac(key, data)?)
    }

    fn aead_seal(
        &self,
        key: &[u8],
        data: &[u8],
        aad: Option<&[u8]>,
        nonce: &[u8],
    ) -> Result<Vec<u8>, Self::Error> {
        Ok(self.base.aead_seal(key, data, aad, nonce)?)
    }

    fn aead_open(
        &self,
        key: &[u8],
        ciphertext: &[u8],
        aad: Option<&[u8]>,
        nonce: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        Ok(self.base.aead_open(key, ciphertext, aad, nonce)?)
    }

    fn aead_key_size(&self) -> usize {
        self.base.aead_key_size()
    }

    fn aead_nonce_size(&self) -> usize {
        self.base.aead_nonce_size()
    }

    fn kdf_extract(&self, salt: &[u8], ikm: &[u8]) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        Ok(self.base.kdf_extract(salt, ikm)?)
    }

    fn kdf_expand(
        &self,
        prk: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        Ok(self.base.kdf_expand(prk, info, len)?)
    }

    fn kdf_extract_size(&self) -> usize {
        self.base.kdf_extract_size()
    }

    fn hpke_seal(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        pt: &[u8],
    ) -> Result<HpkeCiphertext, Self::Error> {
        match &self.xwing {
            Some(hpke) => Ok(hpke.seal(remote_key, info, None, aad, pt)?),
            None => Ok(self.base.hpke_seal(remote_key, info, aad, pt)?),
        }
    }

    fn hpke_seal_psk(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        pt: &[u8],
        psk: HpkePsk<'_>,
    ) -> Result<HpkeCiphertext, Self::Error> {
        match &self.xwing {
            Some(hpke) => Ok(hpke.seal(remote_key, info, Some(psk), aad, pt)?),
            None => Ok(self.base.hpke_seal_psk(remote_key, info, aad, pt, psk)?),
        }
    }

    fn hpke_open(
        &self,
        ciphertext: &HpkeCiphertext,
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        match &self.xwing {
            Some(hpke) => Ok(hpke.open(ciphertext, local_secret, local_public, info, None, aad)?),
            None => Ok(self
                .base
                .hpke_open(ciphertext, local_secret, local_public, info, aad)?),
        }
    }

    fn hpke_open_psk(
        &self,
        ciphertext: &HpkeCiphertext,
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        psk: HpkePsk<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        match &self.xwing {
            Some(hpke) => {
                Ok(hpke.open(ciphertext, local_secret, local_public, info, Some(psk), aad)?)
            }
            None => Ok(self.base.hpke_open_psk(
                ciphertext,
                local_secret,
                local_public,
                info,
                aad,
                psk,
            )?),
        }
    }

    fn hpke_setup_s(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
    ) -> Result<(Vec<u8>, Self::HpkeContextS), Self::Error> {
        match &self.xwing {
            Some(hpke) => Ok(hpke.setup_sender(remote_key, info, None)?),
            None => Ok(self.base.hpke_setup_s(remote_key, info)?),
        }
    }

    fn hpke_setup_r(
        &self,
        kem_output: &[u8],
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
    ) -> Result<Self::HpkeContextR, Self::Error> {
        match &self.xwing {
            Some(hpke) => {
                Ok(hpke.setup_receiver(kem_output, local_secret, local_public, info, None)?)
            }
            None => Ok(self
                .base
                .hpke_setup_r(kem_output, local_secret, local_public, info)?),
        }
    }

    fn kem_derive(&self, ikm: &[u8]) -> Result<(HpkeSecretKey, HpkePublicKey), Self::Error> {
        // X-Wing's DeriveKeyPair, not mls-rs's DHKEM-style labeled extract
        // in front of it: the tree's keys must match other implementations'.
        match &self.xwing {
            Some(_) => Ok(XWing::derive_key_pair(ikm)?),
            None => Ok(self.base.kem_derive(ikm)?),
        }
    }

    fn kem_generate(&self) -> Result<(HpkeSecretKey, HpkePublicKey), Self::Error> {
        match &self.xwing {
            Some(hpke) => Ok(hpke.generate()?),
            None => Ok(self.base.kem_generate()?),
        }
    }

    fn kem_public_key_validate(&self, key: &HpkePublicKey) -> Result<(), Self::Error> {
        match &self.xwing {
            Some(hpke) => Ok(hpke.public_key_validate(key)?),
            None => Ok(self.base.kem_public_key_validate(key)?),
        }
    }

    fn random_bytes(&self, out: &mut [u8]) -> Result<(), Self::Error> {
        Ok(self.base.random_bytes(out)?)
    }

    fn signature_key_generate(
        &self,
    ) -> Result<(SignatureSecretKey, SignaturePublicKey), Self::Error> {
        Ok(self.base.signature_key_generate()?)
    }

    fn signature_key_derive_public(
        &self,
        secret_key: &SignatureSecretKey,
    ) -> Result<SignaturePublicKey, Self::Error> {
        Ok(self.base.signature_key_derive_public(secret_key)?)
    }

    fn sign(&self, secret_key: &SignatureSecretKey, data: &[u8]) -> Result<Vec<u8>, Self::Error> {
        Ok(self.base.sign(secret_key, data)?)
    }

    fn verify(
        &self,
        public_key: &SignaturePublicKey,
        signature: &[u8],
        data: &[u8],
    ) -> Result<(), Self::Error> {
        Ok(self.base.verify(public_key, signature, data)?)
    }
}
