//! Accounts, devices and the chain of trust between them.
//!
//! An account is a [`Username`] with an Ed25519 [`AccountKey`]. Each device of the
//! account has its own MLS signature key, and the account key signs a
//! [`DeviceCertificate`] binding (username, account key, device id, device
//! signature key). That certificate is the device's MLS credential, and
//! [`HushIdentityProvider`] admits a leaf into a group only when the certificate
//! verifies and names the leaf's own signature key.
//!
//! The identity provider checks the chain device -> account. Whether an account
//! key really belongs to a username is the job of key transparency and of the
//! user's own verification (safety numbers), one layer up.

use std::fmt;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use mls_rs_core::crypto::{SignaturePublicKey, SignatureSecretKey};
use mls_rs_core::error::IntoAnyError;
use mls_rs_core::extension::ExtensionList;
use mls_rs_core::identity::{
    Credential, CredentialType, CustomCredential, IdentityProvider, MemberValidationContext,
    SigningIdentity,
};
use mls_rs_core::time::MlsTime;
use rand_core::{CryptoRng, RngCore};
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec::{DecodeError, Reader, Writer};

/// The MLS credential type of a Hush device certificate (private-use range).
pub const HUSH_CREDENTIAL_TYPE: CredentialType = CredentialType::new(0xF0A5);

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

const CERT_VERSION: u8 = 1;
const CERT_CONTEXT: &[u8] = b"hush device certificate v1";

/// Why an identity, key or certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The username breaks the naming rules.
    #[error("invalid username: {0}")]
    InvalidUsername(&'static str),
    /// The bytes are not an Ed25519 public key.
    #[error("not an Ed25519 public key")]
    InvalidPublicKey,
    /// The certificate bytes do not decode.
    #[error("malformed device certificate: {0}")]
    MalformedCertificate(#[from] DecodeError),
    /// The certificate is not signed by the account key it names.
    #[error("device certificate is not signed by its account key")]
    BadCertificateSignature,
    /// The MLS leaf uses a signature key other than the one the certificate vouches for.
    #[error("MLS signature key does not match the device certificate")]
    SignatureKeyMismatch,
    /// The MLS credential is not a Hush device certificate.
    #[error("credential type {0} is not a Hush device certificate")]
    UnsupportedCredential(u16),
    /// A leaf tried to replace its credential with one for another device.
    #[error("a device may not change its account, username or device id")]
    InvalidSuccessor,
}

impl IntoAnyError for IdentityError {
    fn into_dyn_error(self) -> Result<Box<dyn std::error::Error + Send + Sync>, Self> {
        Ok(Box::new(self))
    }
}

/// An account's name on its server: 3 to 32 characters of `a-z`, `0-9`, `_`, `.`
/// and `-`, starting with a letter.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// Longest username accepted.
    pub const MAX_LEN: usize = 32;

    /// Checks `name` against the naming rules.
    pub fn new(name: &str) -> Result<Self, IdentityError> {
        if name.len() < 3 {
            return Err(IdentityError::InvalidUsername("shorter than 3 characters"));
        }
        if name.len() > Self::MAX_LEN {
            return Err(IdentityError::InvalidUsername("longer than 32 characters"));
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(IdentityError::InvalidUsername(
                "must start with a lowercase letter",
            ));
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
        if !name.chars().all(allowed) {
            return Err(IdentityError::InvalidUsername(
                "only a-z, 0-9, '_', '.' and '-' are allowed",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({})", self.0)
    }
}

/// A device's number within its account, assigned by the server at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub u32);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The public half of an account identity key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountPublicKey([u8; PUBLIC_KEY_LEN]);

impl AccountPublicKey {
    /// Wraps 32 bytes. Validity as a curve point is checked on verification.
    pub fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// From a slice that must be exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, IdentityError> {
        <[u8; PUBLIC_KEY_LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| IdentityError::InvalidPublicKey)
    }

    /// The raw key.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// Checks an Ed25519 signature by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for AccountPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountPublicKey(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// An Ed25519 key pair kept as its 32-byte seed, wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct Ed25519Seed([u8; 32]);

impl Ed25519Seed {
    fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Self(seed)
    }

    /// The key pair and its public key. aws-lc accepts any 32-byte seed, so
    /// failure here is impossible in practice; it still surfaces as an error.
    fn key_pair(&self) -> Result<Ed25519KeyPair, IdentityError> {
        Ed25519KeyPair::from_seed_unchecked(&self.0).map_err(|_| IdentityError::InvalidPublicKey)
    }

    fn public(&self) -> Result<[u8; PUBLIC_KEY_LEN], IdentityError> {
        let pair = self.key_pair()?;
        <[u8; PUBLIC_KEY_LEN]>::try_from(pair.public_key().as_ref())
            .map_err(|_| IdentityError::InvalidPublicKey)
    }
}

/// An account's identity key (Ed25519). It signs device certificates and is
/// the root of the safety number.
#[derive(Clone)]
pub struct AccountKey {
    seed: Ed25519Seed,
    public: AccountPublicKey,
}

impl AccountKey {
    /// A fresh key from `rng`.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Result<Self, IdentityError> {
        Self::from_seed_inner(Ed25519Seed::generate(rng))
    }

    /// Restores a key from the seed returned by [`AccountKey::to_seed`].
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, IdentityError> {
        Self::from_seed_inner(Ed25519Seed(seed))
    }

    fn from_seed_inner(seed: Ed25519Seed) -> Result<Self, IdentityError> {
        let public = AccountPublicKey(seed.public()?);
        Ok(Self { seed, public })
    }

    /// The secret seed, for the caller's encrypted storage.
    pub fn to_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.seed.0)
    }

    /// The public key.
    pub fn public(&self) -> AccountPublicKey {
        self.public
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], IdentityError> {
        let sig = self.seed.key_pair()?.sign(message);
        <[u8; SIGNATURE_LEN]>::try_from(sig.as_ref()).map_err(|_| IdentityError::InvalidPublicKey)
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKey")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A device's MLS signature key (Ed25519), used by both Hush ciphersuites.
#[derive(Clone)]
pub struct DeviceSigningKey {
    seed: Ed25519Seed,
    public: [u8; PUBLIC_KEY_LEN],
}

impl DeviceSigningKey {
    /// A fresh key from `rng`.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Result<Self, IdentityError> {
        Self::from_seed_inner(Ed25519Seed::generate(rng))
    }

    /// Restores a key from the seed returned by [`DeviceSigningKey::to_seed`].
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, IdentityError> {
        Self::from_seed_inner(Ed25519Seed(seed))
    }

    fn from_seed_inner(seed: Ed25519Seed) -> Result<Self, IdentityError> {
        let public = seed.public()?;
        Ok(Self { seed, public })
    }

    /// The secret seed, for the caller's encrypted storage.
    pub fn to_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.seed.0)
    }

    /// The public key.
    pub fn public(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public
    }

    /// Signs `message` with the device key (outside MLS: receipts, see
    /// [`crate::receipt`]; the caller puts a label of its own in `message`).
    pub fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], IdentityError> {
        let sig = self.seed.key_pair()?.sign(message);
        <[u8; SIGNATURE_LEN]>::try_from(sig.as_ref()).map_err(|_| IdentityError::InvalidPublicKey)
    }

    /// The MLS form of the public key.
    #[cfg(test)]
    pub(crate) fn mls_public(&self) -> SignaturePublicKey {
        SignaturePublicKey::new(self.public.to_vec())
    }

    /// The MLS form of the secret key: aws-lc's 64-byte `seed || public`.
    pub(crate) fn mls_secret(&self) -> SignatureSecretKey {
        let mut raw = Vec::with_capacity(64);
        raw.extend_from_slice(&self.seed.0);
        raw.extend_from_slice(&self.public);
        SignatureSecretKey::new(raw)
    }
}

impl fmt::Debug for DeviceSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSigningKey")
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The account key's signature over one device's MLS signature key.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCertificate {
    username: Username,
    account_key: AccountPublicKey,
    device_id: DeviceId,
    signature_key: [u8; PUBLIC_KEY_LEN],
    issued_at_ms: u64,
    signature: [u8; SIGNATURE_LEN],
}

impl DeviceCertificate {
    /// Largest encoded certificate: version, username, keys, ids, signature.
    pub const MAX_ENCODED_LEN: usize = 1 + 4 + Username::MAX_LEN + 32 + 4 + 32 + 8 + 64;

    /// The account key signs `device`'s signature key for `username`.
    pub fn issue(
        account: &AccountKey,
        username: &Username,
        device_id: DeviceId,
        device: &DeviceSigningKey,
        issued_at_ms: u64,
    ) -> Result<Self, IdentityError> {
        Self::issue_for_key(account, username, device_id, device.public(), issued_at_ms)
    }

    /// The account key signs another device's public MLS signature key (a
    /// device being linked, whose secret never leaves it).
    pub fn issue_for_key(
        account: &AccountKey,
        username: &Username,
        device_id: DeviceId,
        signature_key: [u8; PUBLIC_KEY_LEN],
        issued_at_ms: u64,
    ) -> Result<Self, IdentityError> {
        let mut cert = Self {
            username: username.clone(),
            account_key: account.public(),
            device_id,
            signature_key,
            issued_at_ms,
            signature: [0; SIGNATURE_LEN],
        };
        cert.signature = account.sign(&cert.to_be_signed())?;
        Ok(cert)
    }

    /// The account's username.
    pub fn username(&self) -> &Username {
        &self.username
    }

    /// The account key that signed this certificate.
    pub fn account_key(&self) -> AccountPublicKey {
        self.account_key
    }

    /// The device's id within its account.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The device's MLS signature key.
    pub fn signature_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.signature_key
    }

    /// When the account signed it, in milliseconds since the Unix epoch.
    pub fn issued_at_ms(&self) -> u64 {
        self.issued_at_ms
    }

    /// Checks the account key's signature.
    pub fn verify(&self) -> Result<(), IdentityError> {
        if self
            .account_key
            .verify(&self.to_be_signed(), &self.signature)
        {
            Ok(())
        } else {
            Err(IdentityError::BadCertificateSignature)
        }
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(CERT_VERSION);
        self.write_signed_fields(&mut w);
        w.raw(&self.signature);
        w.into_bytes()
    }

    /// Decodes a certificate without verifying it; see [`DeviceCertificate::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentityError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != CERT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version).into());
        }
        let username = r.string("username", Username::MAX_LEN)?;
        let username = Username::new(username).map_err(|_| DecodeError::Invalid {
            field: "username",
            reason: "breaks the naming rules",
        })?;
        let cert = Self {
            username,
            account_key: AccountPublicKey(r.array()?),
            device_id: DeviceId(r.u32()?),
            signature_key: r.array()?,
            issued_at_ms: r.u64()?,
            signature: r.array()?,
        };
        r.finish()?;
        Ok(cert)
    }

    /// The MLS credential carrying this certificate.
    pub fn to_credential(&self) -> Credential {
        Credential::Custom(CustomCredential::new(HUSH_CREDENTIAL_TYPE, self.encode()))
    }

    /// Reads the certificate out of an MLS credential.
    pub fn from_credential(credential: &Credential) -> Result<Self, IdentityError> {
        match credential {
            Credential::Custom(c) if c.credential_type() == HUSH_CREDENTIAL_TYPE => {
                Self::decode(c.data())
            }
            other => Err(IdentityError::UnsupportedCredential(
                other.credential_type().raw_value(),
            )),
        }
    }

    /// The MLS signing identity of the device.
    pub fn signing_identity(&self) -> SigningIdentity {
        SigningIdentity::new(
            self.to_credential(),
            SignaturePublicKey::new(self.signature_key.to_vec()),
        )
    }

    fn write_signed_fields(&self, w: &mut Writer) {
        w.bytes(self.username.as_str().as_bytes())
            .raw(self.account_key.as_bytes())
            .u32(self.device_id.0)
            .raw(&self.signature_key)
            .u64(self.issued_at_ms);
    }

    fn to_be_signed(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(CERT_CONTEXT);
        self.write_signed_fields(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for DeviceCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCertificate")
            .field("username", &self.username)
            .field("device_id", &self.device_id)
            .field("account_key", &self.account_key)
            .finish_non_exhaustive()
    }
}

/// Admits an MLS leaf only when its credential is a Hush device certificate,
/// signed by the account key it names, for the leaf's own signature key.
#[derive(Debug, Clone, Copy, Default)]
pub struct HushIdentityProvider;

impl HushIdentityProvider {
    /// Verifies the chain for one signing identity and returns its certificate.
    pub fn check(signing_identity: &SigningIdentity) -> Result<DeviceCertificate, IdentityError> {
        let cert = DeviceCertificate::from_credential(&signing_identity.credential)?;
        cert.verify()?;
        if signing_identity.signature_key.as_bytes() != cert.signature_key.as_slice() {
            return Err(IdentityError::SignatureKeyMismatch);
        }
        Ok(cert)
    }
}

impl IdentityProvider for HushIdentityProvider {
    type Error = IdentityError;

    fn validate_member(
        &self,
        signing_identity: &SigningIdentity,
        _timestamp: Option<MlsTime>,
        _context: MemberValidationContext<'_>,
    ) -> Result<(), Self::Error> {
        Self::check(signing_identity).map(|_| ())
    }

    fn validate_external_sender(
        &self,
        signing_identity: &SigningIdentity,
        _timestamp: Option<MlsTime>,
        _extensions: Option<&ExtensionList>,
    ) -> Result<(), Self::Error> {
        Self::check(signing_identity).map(|_| ())
    }

    /// A device's identity is (username, device id): one leaf per device.
    ///
    /// mls-rs asks for identities only of leaves that already passed
    /// `validate_member` (when they entered the tree, or just before, for an
    /// update), so this decodes without verifying the signature again: the
    /// verification costs an Ed25519 check per call and mls-rs calls this
    /// several times per commit and once per leaf when a group loads.
    fn identity(
        &self,
        signing_identity: &SigningIdentity,
        _extensions: &ExtensionList,
    ) -> Result<Vec<u8>, Self::Error> {
        let cert = DeviceCertificate::from_credential(&signing_identity.credential)?;
        Ok(device_identity(cert.username(), cert.device_id()))
    }

    /// A leaf may rotate its signature key but stays the same device of the
    /// same account. Both sides were validated by `validate_member` before
    /// mls-rs asks (the predecessor when it joined, the successor just
    /// before), so only the fields are compared here.
    fn valid_successor(
        &self,
        predecessor: &SigningIdentity,
        successor: &SigningIdentity,
        _extensions: &ExtensionList,
    ) -> Result<bool, Self::Error> {
        let old = DeviceCertificate::from_credential(&predecessor.credential)?;
        let new = DeviceCertificate::from_credential(&successor.credential)?;
        Ok(old.username == new.username
            && old.account_key == new.account_key
            && old.device_id == new.device_id)
    }

    fn supported_types(&self) -> Vec<CredentialType> {
        vec![HUSH_CREDENTIAL_TYPE]
    }
}

/// The MLS identity bytes of a device: `username 0x00 device_id`.
pub fn device_identity(username: &Username, device: DeviceId) -> Vec<u8> {
    let mut out = Vec::with_capacity(username.as_str().len() + 5);
    out.extend_from_slice(username.as_str().as_bytes());
    out.push(0);
    out.extend_from_slice(&device.0.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(7)
    }

    #[test]
    fn usernames_follow_the_rules() {
        assert!(Username::new("alice").is_ok());
        assert!(Username::new("a.b-c_9").is_ok());
        for bad in ["al", "Alice", "9lives", "bob!", "", &"x".repeat(33)] {
            assert!(Username::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn certificate_round_trips_and_verifies() {
        let mut rng = rng();
        let account = AccountKey::generate(&mut rng).unwrap();
        let device = DeviceSigningKey::generate(&mut rng).unwrap();
        let alice = Username::new("alice").unwrap();
        let cert = DeviceCertificate::issue(&account, &alice, DeviceId(3), &device, 1000).unwrap();
        let bytes = cert.encode();
        assert!(bytes.len() <= DeviceCertificate::MAX_ENCODED_LEN);
        let back = DeviceCertificate::decode(&bytes).unwrap();
        assert_eq!(back, cert);
        back.verify().unwrap();
        assert!(HushIdentityProvider::check(&cert.signing_identity()).is_ok());
    }

    #[test]
    fn certificate_signed_by_another_key_is_rejected() {
        let mut rng = rng();
        let account = AccountKey::generate(&mut rng).unwrap();
        let mallory = AccountKey::generate(&mut rng).unwrap();
        let device = DeviceSigningKey::generate(&mut rng).unwrap();
        let alice = Username::new("alice").unwrap();
        let mut cert = DeviceCertificate::issue(&mallory, &alice, DeviceId(1), &device, 0).unwrap();
        cert.account_key = account.public();
        assert_eq!(cert.verify(), Err(IdentityError::BadCertificateSignature));
        assert_eq!(
            HushIdentityProvider::check(&cert.signing_identity()),
            Err(IdentityError::BadCertificateSignature)
        );
    }

    #[test]
    fn certificate_for_another_signature_key_is_rejected() {
        let mut rng = rng();
        let account = AccountKey::generate(&mut rng).unwrap();
        let device = DeviceSigningKey::generate(&mut rng).unwrap();
        let other = DeviceSigningKey::generate(&mut rng).unwrap();
        let alice = Username::new("alice").unwrap();
        let cert = DeviceCertificate::issue(&account, &alice, DeviceId(1), &device, 0).unwrap();
        let identity = SigningIdentity::new(cert.to_credential(), other.mls_public());
        assert_eq!(
            HushIdentityProvider::check(&identity),
            Err(IdentityError::SignatureKeyMismatch)
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let key = AccountKey::generate(&mut rng()).unwrap();
        let seed_hex: String = key.to_seed().iter().map(|b| format!("{b:02x}")).collect();
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&seed_hex[..16]));
    }
}
