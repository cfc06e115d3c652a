//! Key transparency: what the server's directory commits to, and the checks a
//! client runs on what it is shown.
//!
//! The server keeps an [`akd`](https://github.com/facebook/akd) directory that
//! maps each username to a [`KtValue`]: the account key and, for every device,
//! its id and the key that signs its KeyPackages and MLS messages. After each
//! batch of changes the server publishes a new *epoch*: a root hash over the
//! whole directory, signed with the server's key-transparency key
//! ([`SignedRoot`]). A client
//!
//! 1. pins that key on first contact ([`KtConfig`]),
//! 2. checks every signed root it is shown ([`SignedRoot::verify`]) and keeps
//!    the newest; roots only move forward, and a newer root must extend the
//!    one it had by an append-only proof (checked in `hush-client`, which may
//!    run the async auditor),
//! 3. checks a lookup proof for every account it encrypts to
//!    ([`verify_lookup`]): the value the proof opens must be exactly the keys
//!    the directory answer and the claimed KeyPackages carry,
//! 4. checks the history of its own account ([`verify_history`]) on every
//!    sync: a version it did not make is an alarm,
//! 5. tells its contacts which root it saw ([`KtCheckpoint`] rides inside
//!    every encrypted message), so a server that shows two people two
//!    different directories is caught by either of them.
//!
//! Everything here is pure: proofs come in as bytes (akd's protobuf encoding),
//! results go out as values.

use std::fmt;

use akd_core::configuration::{DomainLabel, ExperimentalConfiguration};
use akd_core::verify::history::{HistoryParams, HistoryVerificationParams};
use akd_core::{AkdLabel, AkdValue};
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use protobuf::Message;
use thiserror::Error;

use crate::codec::{DecodeError, Reader, Writer};
use crate::identity::{AccountPublicKey, DeviceCertificate, Username};
use crate::memo::{Memo, memo_key};

/// The akd domain label of Hush's directory: proofs from any other akd
/// deployment never verify against it.
#[derive(Debug, Clone, Copy)]
pub struct HushKtLabel;

impl DomainLabel for HushKtLabel {
    fn domain_label() -> &'static [u8] {
        b"hush key transparency v1"
    }
}

/// The akd configuration both sides use.
pub type KtConfiguration = ExperimentalConfiguration<HushKtLabel>;

/// Length of an epoch root hash.
pub const ROOT_HASH_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Most devices one value lists (the server allows fewer).
pub const MAX_VALUE_DEVICES: usize = 64;
/// Largest proof accepted, in bytes.
pub const MAX_PROOF_LEN: usize = 4 * 1024 * 1024;

const VALUE_VERSION: u8 = 1;
const ROOT_CONTEXT: &[u8] = b"hush kt root v1";

/// Why a key-transparency check failed. Each of these means the server showed
/// something it cannot prove: the client must not encrypt to the keys.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KtError {
    /// A root's signature does not verify under the pinned key.
    #[error("epoch {epoch}: the root is not signed by this server's key-transparency key")]
    BadRootSignature {
        /// The epoch claimed.
        epoch: u64,
    },
    /// A root is older than one already seen.
    #[error("the server showed epoch {got}, older than epoch {seen} already seen")]
    StaleRoot {
        /// The epoch shown.
        got: u64,
        /// The newest epoch seen before.
        seen: u64,
    },
    /// Two different roots, both signed by the server, for one epoch.
    #[error(
        "the server signed two different roots for epoch {epoch}: it is showing different people different directories"
    )]
    Fork {
        /// The epoch.
        epoch: u64,
    },
    /// The lookup proof does not verify against the root.
    #[error("the lookup proof for {username} does not verify: {reason}")]
    BadLookupProof {
        /// Whose proof.
        username: String,
        /// What akd said.
        reason: String,
    },
    /// The history proof does not verify against the root.
    #[error("the key history proof for {username} does not verify: {reason}")]
    BadHistoryProof {
        /// Whose proof.
        username: String,
        /// What akd said.
        reason: String,
    },
    /// An append-only proof between two epochs does not verify.
    #[error("the directory did not grow append-only from epoch {from} to {to}: {reason}")]
    BadAuditProof {
        /// Older epoch.
        from: u64,
        /// Newer epoch.
        to: u64,
        /// What the auditor said.
        reason: String,
    },
    /// The keys the server served differ from what the directory proves.
    #[error(
        "the keys the server sent for {username} are not the ones its directory proves: {what}"
    )]
    KeysNotInDirectory {
        /// Whose keys.
        username: String,
        /// What differs.
        what: String,
    },
    /// A proof or value did not decode.
    #[error("malformed key-transparency data: {0}")]
    Malformed(String),
}

impl From<DecodeError> for KtError {
    fn from(e: DecodeError) -> Self {
        Self::Malformed(e.to_string())
    }
}

/// One device as the directory lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KtDevice {
    /// Its id within the account.
    pub device_id: u32,
    /// The Ed25519 key that signs its KeyPackages and MLS messages.
    pub signature_key: [u8; 32],
}

/// What the directory maps a username to.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KtValue {
    /// The account key; `None` once the account is deleted.
    pub account_key: Option<AccountPublicKey>,
    /// Every device, ordered by id.
    pub devices: Vec<KtDevice>,
}

impl fmt::Debug for KtValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KtValue")
            .field("account_key", &self.account_key)
            .field(
                "devices",
                &self.devices.iter().map(|d| d.device_id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl KtValue {
    /// The value for an account with these device certificates (any order).
    pub fn from_certificates(
        account_key: AccountPublicKey,
        certificates: &[DeviceCertificate],
    ) -> Self {
        let mut devices: Vec<KtDevice> = certificates
            .iter()
            .map(|c| KtDevice {
                device_id: c.device_id().0,
                signature_key: *c.signature_key(),
            })
            .collect();
        devices.sort();
        devices.dedup();
        Self {
            account_key: Some(account_key),
            devices,
        }
    }

    /// The value of a deleted account.
    pub fn deleted() -> Self {
        Self {
            account_key: None,
            devices: Vec::new(),
        }
    }

    /// The device with this id.
    pub fn device(&self, device_id: u32) -> Option<&KtDevice> {
        self.devices.iter().find(|d| d.device_id == device_id)
    }

    /// Whether `cert` is one of this value's devices, under its account key.
    pub fn vouches_for(&self, cert: &DeviceCertificate) -> bool {
        self.account_key == Some(cert.account_key())
            && self
                .device(cert.device_id().0)
                .is_some_and(|d| &d.signature_key == cert.signature_key())
    }

    /// The canonical encoding (the bytes the directory commits to).
    ///
    /// ```text
    /// u8 version = 1 | u8 has_key | [32] account key if has_key
    /// u16 n | n x (u32 device id | [32] signature key), ascending ids
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VALUE_VERSION);
        match &self.account_key {
            Some(k) => w.u8(1).raw(k.as_bytes()),
            None => w.u8(0),
        };
        let mut devices = self.devices.clone();
        devices.sort();
        devices.dedup();
        w.u16(u16::try_from(devices.len()).unwrap_or(u16::MAX));
        for d in devices.iter().take(usize::from(u16::MAX)) {
            w.u32(d.device_id).raw(&d.signature_key);
        }
        w.into_bytes()
    }

    /// Decodes [`KtValue::encode`]; rejects anything not canonical.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VALUE_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let account_key = match r.bool("account key flag")? {
            true => Some(AccountPublicKey::from_bytes(r.array()?)),
            false => None,
        };
        let n = usize::from(r.u16()?);
        if n > MAX_VALUE_DEVICES {
            return Err(DecodeError::TooLong {
                field: "devices",
                len: n,
                max: MAX_VALUE_DEVICES,
            });
        }
        let mut devices: Vec<KtDevice> = Vec::with_capacity(n);
        for _ in 0..n {
            let d = KtDevice {
                device_id: r.u32()?,
                signature_key: r.array()?,
            };
            if devices.last().is_some_and(|p| p.device_id >= d.device_id) {
                return Err(DecodeError::Invalid {
                    field: "devices",
                    reason: "device ids not strictly ascending",
                });
            }
            devices.push(d);
        }
        r.finish()?;
        if account_key.is_none() && !devices.is_empty() {
            return Err(DecodeError::Invalid {
                field: "devices",
                reason: "a deleted account lists devices",
            });
        }
        Ok(Self {
            account_key,
            devices,
        })
    }
}

/// What a client pins on first contact with a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtConfig {
    /// The Ed25519 key that signs epoch roots.
    pub signing_key: [u8; 32],
    /// The directory's VRF public key (hides usernames in the tree).
    pub vrf_public_key: Vec<u8>,
}

/// An epoch root as the server signs it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignedRoot {
    /// The epoch.
    pub epoch: u64,
    /// akd's root hash of the directory at that epoch.
    pub root_hash: [u8; ROOT_HASH_LEN],
    /// Ed25519 over [`SignedRoot::signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

impl fmt::Debug for SignedRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignedRoot(epoch {}, ", self.epoch)?;
        for b in &self.root_hash[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// A signed root as one client saw it, carried inside its encrypted messages
/// so that the people it talks to can compare it with their own view.
pub type KtCheckpoint = SignedRoot;

impl SignedRoot {
    /// The bytes the server's key signs for `epoch` and `root_hash`.
    pub fn signed_bytes(epoch: u64, root_hash: &[u8; ROOT_HASH_LEN]) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(ROOT_CONTEXT).u64(epoch).raw(root_hash);
        w.into_bytes()
    }

    /// Checks the signature under the pinned key. A signature that passed
    /// once in this process, under the same key, over the same epoch and
    /// root, is not checked again (decision 0024).
    pub fn verify(&self, signing_key: &[u8; 32]) -> Result<(), KtError> {
        static SIGNED: Memo<()> = Memo::new(1 << 16);
        let key = memo_key(
            "hush kt root signature v1",
            &[
                &signing_key[..],
                &self.epoch.to_be_bytes()[..],
                &self.root_hash[..],
                &self.signature[..],
            ],
        );
        SIGNED.get_or_check(key, || self.check_signature(signing_key))
    }

    fn check_signature(&self, signing_key: &[u8; 32]) -> Result<(), KtError> {
        UnparsedPublicKey::new(&ED25519, signing_key)
            .verify(
                &Self::signed_bytes(self.epoch, &self.root_hash),
                &self.signature,
            )
            .map_err(|_| KtError::BadRootSignature { epoch: self.epoch })
    }

    /// `u64 epoch | [32] root | [64] signature`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.epoch).raw(&self.root_hash).raw(&self.signature);
        w.into_bytes()
    }

    /// Decodes [`SignedRoot::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let root = Self {
            epoch: r.u64()?,
            root_hash: r.array()?,
            signature: r.array()?,
        };
        r.finish()?;
        Ok(root)
    }

    /// Compares two signed roots of the same epoch: different hashes under
    /// valid signatures prove the server equivocated.
    pub fn check_consistent(&self, other: &SignedRoot) -> Result<(), KtError> {
        if self.epoch == other.epoch && self.root_hash != other.root_hash {
            return Err(KtError::Fork { epoch: self.epoch });
        }
        Ok(())
    }
}

/// The directory label of a username.
pub fn label(username: &Username) -> AkdLabel {
    AkdLabel::from(username.as_str())
}

/// What a verified lookup proof says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLookup {
    /// The epoch in which this value was published.
    pub published_epoch: u64,
    /// Its version (1 for the account's first value).
    pub version: u64,
    /// The value.
    pub value: KtValue,
}

fn parse<M: Message>(what: &str, bytes: &[u8]) -> Result<M, KtError> {
    if bytes.len() > MAX_PROOF_LEN {
        return Err(KtError::Malformed(format!(
            "{what} is {} bytes, over the limit of {MAX_PROOF_LEN}",
            bytes.len()
        )));
    }
    M::parse_from_bytes(bytes).map_err(|e| KtError::Malformed(format!("{what}: {e}")))
}

/// Verifies a lookup proof (akd protobuf `LookupProof`) for `username`
/// against `root`, whose signature the caller has checked.
///
/// A proof that passed once in this process, against the same VRF key, root
/// and username, is not checked again (decision 0024, [`crate::memo`]).
pub fn verify_lookup(
    config: &KtConfig,
    root: &SignedRoot,
    username: &Username,
    proof: &[u8],
) -> Result<VerifiedLookup, KtError> {
    static LOOKUPS: Memo<VerifiedLookup> = Memo::new(LOOKUP_MEMO_ENTRIES);
    let key = memo_key(
        "hush kt lookup v1",
        &[
            config.vrf_public_key.as_slice(),
            &root.epoch.to_be_bytes()[..],
            &root.root_hash[..],
            username.as_str().as_bytes(),
            proof,
        ],
    );
    LOOKUPS.get_or_check(key, || check_lookup(config, root, username, proof))
}

/// How many passed lookup checks a process remembers: the members of a few
/// groups of the largest size at one epoch (an entry is a few hundred bytes).
const LOOKUP_MEMO_ENTRIES: usize = 8192;

fn check_lookup(
    config: &KtConfig,
    root: &SignedRoot,
    username: &Username,
    proof: &[u8],
) -> Result<VerifiedLookup, KtError> {
    let bad = |reason: String| KtError::BadLookupProof {
        username: username.to_string(),
        reason,
    };
    let msg: akd_core::proto::specs::types::LookupProof = parse("lookup proof", proof)?;
    let proof = akd_core::LookupProof::try_from(&msg).map_err(|e| bad(e.to_string()))?;
    let result = akd_core::verify::lookup_verify::<KtConfiguration>(
        &config.vrf_public_key,
        root.root_hash,
        root.epoch,
        label(username),
        proof,
    )
    .map_err(|e| bad(e.to_string()))?;
    Ok(VerifiedLookup {
        published_epoch: result.epoch,
        version: result.version,
        value: KtValue::decode(&result.value.0).map_err(|e| bad(e.to_string()))?,
    })
}

/// Verifies a complete key-history proof (akd protobuf `HistoryProof`) for
/// `username` against `root`: every version the account ever had, newest
/// first.
pub fn verify_history(
    config: &KtConfig,
    root: &SignedRoot,
    username: &Username,
    proof: &[u8],
) -> Result<Vec<VerifiedLookup>, KtError> {
    let bad = |reason: String| KtError::BadHistoryProof {
        username: username.to_string(),
        reason,
    };
    let msg: akd_core::proto::specs::types::HistoryProof = parse("history proof", proof)?;
    let proof = akd_core::HistoryProof::try_from(&msg).map_err(|e| bad(e.to_string()))?;
    let results = akd_core::verify::key_history_verify::<KtConfiguration>(
        &config.vrf_public_key,
        root.root_hash,
        root.epoch,
        label(username),
        proof,
        HistoryVerificationParams::Default {
            history_params: HistoryParams::Complete,
        },
    )
    .map_err(|e| bad(e.to_string()))?;
    results
        .into_iter()
        .map(|r| {
            Ok(VerifiedLookup {
                published_epoch: r.epoch,
                version: r.version,
                value: KtValue::decode(&r.value.0).map_err(|e| bad(e.to_string()))?,
            })
        })
        .collect()
}

/// The akd value bytes of `value`.
pub fn akd_value(value: &KtValue) -> AkdValue {
    AkdValue(value.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: u32) -> KtValue {
        KtValue {
            account_key: Some(AccountPublicKey::from_bytes([7; 32])),
            devices: (1..=n)
                .map(|i| KtDevice {
                    device_id: i,
                    signature_key: [i as u8; 32],
                })
                .collect(),
        }
    }

    #[test]
    fn values_round_trip_and_are_canonical() {
        for v in [value(0), value(1), value(5), KtValue::deleted()] {
            assert_eq!(KtValue::decode(&v.encode()).unwrap(), v);
        }
        let mut unsorted = value(3);
        unsorted.devices.reverse();
        assert_eq!(unsorted.encode(), value(3).encode());
        // Descending ids are not canonical.
        let mut bytes = value(2).encode();
        let first = 1 + 1 + 32 + 2;
        let second = first + 36;
        let (a, b) = (
            bytes[first..first + 36].to_vec(),
            bytes[second..second + 36].to_vec(),
        );
        bytes[first..first + 36].copy_from_slice(&b);
        bytes[second..second + 36].copy_from_slice(&a);
        assert!(KtValue::decode(&bytes).is_err());
        let mut trailing = value(1).encode();
        trailing.push(0);
        assert!(KtValue::decode(&trailing).is_err());
    }

    #[test]
    fn a_root_signed_by_another_key_is_refused() {
        let key = crate::AccountKey::from_seed([3; 32]).unwrap();
        let other = crate::AccountKey::from_seed([4; 32]).unwrap();
        let hash = [9u8; 32];
        let sig = key.sign(&SignedRoot::signed_bytes(5, &hash)).unwrap();
        let root = SignedRoot {
            epoch: 5,
            root_hash: hash,
            signature: sig,
        };
        root.verify(key.public().as_bytes()).unwrap();
        assert_eq!(
            root.verify(other.public().as_bytes()),
            Err(KtError::BadRootSignature { epoch: 5 })
        );
        let mut moved = root;
        moved.epoch = 6;
        assert!(moved.verify(key.public().as_bytes()).is_err());
        assert_eq!(SignedRoot::decode(&root.encode()).unwrap(), root);
    }
}
