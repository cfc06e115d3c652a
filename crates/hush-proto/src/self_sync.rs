//! Self-sync: what one device of an account tells the account's other
//! devices so that they stay the same (decision 0025): which messages were
//! read, blocks, verification marks, the profile key, the presence setting,
//! device names and removals.
//!
//! A self-sync frame is signed by the device that sends it (Ed25519, its
//! certified MLS signature key, over a label of its own) and sealed to each
//! of the account's other devices with HPKE to the key [`crate::sealed`]
//! derives from their certificates, as receipts are
//! ([`crate::receipt`], decision 0017). It never enters a conversation: no
//! other member receives it, and it costs no MLS state. The recipient opens
//! it, checks that it names its own account, finds the signing device among
//! the devices certified by its own account key, and checks the signature.
//! The server can neither read nor forge one, nor move one to another
//! account.
//!
//! ```text
//! MAGIC (4) | n (1) | n × (device id (4) | kem output (32) | HPKE(K) (48)) | body
//! body   = AES-256-GCM(K, nonce 0, aad = MAGIC | n | headers, signed)
//! signed = version (1) | account | from device (4) | sent at ms (8)
//!          | ops count (2) | ops | Ed25519 signature (64)
//! op     = kind (1) | clock ms (8) | fields of the kind
//! ```
//!
//! Variable fields carry a `u32` length (see [`crate::codec`]). Every op
//! carries the logical clock of its change: last writer wins per field,
//! ties broken by the device id (see [`Stamp`]). `MAGIC` starts with `0xfe`
//! like a receipt's, and differs from it in its third byte.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Writer};
use crate::content::MessageId;
use crate::error::ProtoError;
use crate::identity::{DeviceCertificate, DeviceId, DeviceSigningKey, SIGNATURE_LEN, Username};
use crate::multi_seal;
use crate::sealed::OpenKey;

/// The first bytes of every self-sync frame.
pub const SELF_SYNC_MAGIC: [u8; 4] = [0xfe, b'H', b'Y', 1];
/// The most ops one frame carries.
pub const MAX_OPS: usize = 64;
/// The most message ids one read op covers.
pub const MAX_READ_IDS: usize = 1000;
/// The most devices one frame is sealed to.
pub const MAX_DEVICES: usize = multi_seal::MAX_DEVICES;
/// Longest group id in a read op.
const MAX_GROUP_ID: usize = 256;
/// Longest device name.
pub const MAX_NAME: usize = 64;
/// Longest contact display name (as a profile holds it).
pub const MAX_CONTACT_NAME: usize = 128;
const VERSION: u8 = 1;
/// How frames of this kind are sealed.
const SEALING: multi_seal::Kind = multi_seal::Kind {
    magic: SELF_SYNC_MAGIC,
    info: b"hush self-sync v1",
    field: "self-sync frame",
    no_magic: "no self-sync magic",
    not_for_me: "the self-sync frame is not sealed to this device",
    seal_failed: "sealing the self-sync frame failed",
    key_refused: "the self-sync key was refused",
};
const SIGN_LABEL: &[u8] = b"hush self-sync signature v1\0";

/// Who may see this account's presence, as the setting travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Everyone this account shares a conversation with.
    Everyone,
    /// 1:1 contacts only.
    Contacts,
    /// Nobody.
    Nobody,
}

/// One change made on a device, for the account's other devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOp {
    /// These received messages of a conversation were read (a read is never
    /// undone, so it needs no clock).
    Read {
        /// The conversation (MLS group id).
        group_id: Vec<u8>,
        /// The messages (1 to [`MAX_READ_IDS`]).
        ids: Vec<MessageId>,
    },
    /// A contact was blocked or unblocked.
    Blocked {
        /// The contact.
        user: Username,
        /// Blocked or not.
        blocked: bool,
    },
    /// A contact was marked verified with the account key shown here.
    Verified {
        /// The contact.
        user: Username,
        /// The account key the compared safety number was made from.
        account_key: [u8; 32],
    },
    /// The profile key under which this account's profile is sealed (the
    /// profile is set and shared with contacts).
    ProfileKey {
        /// The AES-256-GCM key.
        key: [u8; 32],
    },
    /// Who sees this account's presence.
    Presence(Presence),
    /// A device of the account was (re)named.
    DeviceName {
        /// The device.
        device: DeviceId,
        /// Its name (1 to [`MAX_NAME`] bytes).
        name: String,
    },
    /// A device of the account was removed (never undone).
    DeviceRemoved {
        /// The device.
        device: DeviceId,
    },
    /// A contact's display name, as this device last read it from their
    /// profile (empty: they show none).
    ContactName {
        /// The contact.
        user: Username,
        /// The name (0 to [`MAX_CONTACT_NAME`] bytes).
        name: String,
    },
}

/// A logical clock: a change made at `at_ms` by `device` wins over every
/// change with a smaller stamp. A device stamps a change with the larger of
/// its clock and one more than the newest stamp it holds for the field, so
/// a change made after seeing another always wins over it, whatever the
/// devices' clocks say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    /// Milliseconds since the Unix epoch (or past it, see above).
    pub at_ms: u64,
    /// The device that made the change: breaks ties.
    pub device: u32,
}

/// A change with its stamp's time (its device is the frame's sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedOp {
    /// The logical clock of the change.
    pub at_ms: u64,
    /// The change.
    pub op: SyncOp,
}

/// What one device tells the account's other devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSync {
    /// The account.
    pub account: Username,
    /// The device that signs it.
    pub from_device: DeviceId,
    /// When it was made, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// The changes (1 to [`MAX_OPS`]).
    pub ops: Vec<StampedOp>,
}

/// A frame as opened, its signature not yet checked: only
/// [`SignedSelfSync::verify`] with the sender's certificate yields a
/// [`SelfSync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSelfSync {
    sync: SelfSync,
    signature: [u8; SIGNATURE_LEN],
}

fn presence_byte(p: Presence) -> u8 {
    match p {
        Presence::Everyone => 1,
        Presence::Contacts => 2,
        Presence::Nobody => 3,
    }
}

fn invalid(field: &'static str, reason: &'static str) -> DecodeError {
    DecodeError::Invalid { field, reason }
}

fn username(bytes: &[u8], field: &'static str) -> Result<Username, DecodeError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| Username::new(s).ok())
        .ok_or(invalid(field, "not a username"))
}

impl SyncOp {
    fn kind(&self) -> u8 {
        match self {
            SyncOp::Read { .. } => 1,
            SyncOp::Blocked { .. } => 2,
            SyncOp::Verified { .. } => 3,
            SyncOp::ProfileKey { .. } => 4,
            SyncOp::Presence(_) => 5,
            SyncOp::DeviceName { .. } => 6,
            SyncOp::DeviceRemoved { .. } => 7,
            SyncOp::ContactName { .. } => 8,
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            SyncOp::Read { group_id, ids } => {
                let raw: Vec<u8> = ids.iter().flat_map(|id| id.0).collect();
                w.bytes(group_id).bytes(&raw);
            }
            SyncOp::Blocked { user, blocked } => {
                w.bytes(user.as_str().as_bytes()).bool(*blocked);
            }
            SyncOp::Verified { user, account_key } => {
                w.bytes(user.as_str().as_bytes()).raw(account_key);
            }
            SyncOp::ProfileKey { key } => {
                w.raw(key);
            }
            SyncOp::Presence(p) => {
                w.u8(presence_byte(*p));
            }
            SyncOp::DeviceName { device, name } => {
                w.u32(device.0).bytes(name.as_bytes());
            }
            SyncOp::DeviceRemoved { device } => {
                w.u32(device.0);
            }
            SyncOp::ContactName { user, name } => {
                w.bytes(user.as_str().as_bytes()).bytes(name.as_bytes());
            }
        }
    }

    fn read(kind: u8, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match kind {
            1 => {
                let group_id = r.bytes("group id", MAX_GROUP_ID)?.to_vec();
                if group_id.is_empty() {
                    return Err(invalid("group id", "empty"));
                }
                let raw = r.bytes("ids", MAX_READ_IDS * 16)?;
                if raw.is_empty() || raw.len() % 16 != 0 {
                    return Err(invalid("ids", "not 1 or more 16-byte ids"));
                }
                let ids = raw
                    .chunks_exact(16)
                    .map(|c| {
                        let mut id = [0u8; 16];
                        id.copy_from_slice(c);
                        MessageId(id)
                    })
                    .collect();
                SyncOp::Read { group_id, ids }
            }
            2 => SyncOp::Blocked {
                user: username(r.bytes("user", Username::MAX_LEN)?, "user")?,
                blocked: r.bool("blocked")?,
            },
            3 => SyncOp::Verified {
                user: username(r.bytes("user", Username::MAX_LEN)?, "user")?,
                account_key: r.array::<32>()?,
            },
            4 => SyncOp::ProfileKey {
                key: r.array::<32>()?,
            },
            5 => SyncOp::Presence(match r.u8()? {
                1 => Presence::Everyone,
                2 => Presence::Contacts,
                3 => Presence::Nobody,
                _ => return Err(invalid("presence", "unknown")),
            }),
            6 => {
                let device = DeviceId(r.u32()?);
                let name = r.string("device name", MAX_NAME)?;
                if name.trim().is_empty() {
                    return Err(invalid("device name", "empty"));
                }
                SyncOp::DeviceName {
                    device,
                    name: name.to_owned(),
                }
            }
            7 => SyncOp::DeviceRemoved {
                device: DeviceId(r.u32()?),
            },
            8 => SyncOp::ContactName {
                user: username(r.bytes("user", Username::MAX_LEN)?, "user")?,
                name: r.string("contact name", MAX_CONTACT_NAME)?.to_owned(),
            },
            _ => return Err(invalid("self-sync op", "unknown kind")),
        })
    }

    fn check(&self) -> Result<(), ProtoError> {
        match self {
            SyncOp::Read { group_id, ids } => {
                if ids.is_empty() || ids.len() > MAX_READ_IDS {
                    return Err(ProtoError::InvalidRequest(
                        "a read op covers 1 to 1000 messages",
                    ));
                }
                if group_id.is_empty() || group_id.len() > MAX_GROUP_ID {
                    return Err(ProtoError::InvalidRequest(
                        "a read op's group id is 1 to 256 bytes",
                    ));
                }
            }
            SyncOp::DeviceName { name, .. } if name.trim().is_empty() || name.len() > MAX_NAME => {
                return Err(ProtoError::InvalidRequest("a device name is 1 to 64 bytes"));
            }
            SyncOp::ContactName { name, .. } if name.len() > MAX_CONTACT_NAME => {
                return Err(ProtoError::InvalidRequest(
                    "a contact's display name is at most 128 bytes",
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

impl SelfSync {
    /// The bytes the signature covers, without the label.
    fn signed_fields(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION)
            .bytes(self.account.as_str().as_bytes())
            .u32(self.from_device.0)
            .u64(self.sent_at_ms)
            .u16(self.ops.len() as u16);
        for op in &self.ops {
            w.u8(op.op.kind()).u64(op.at_ms);
            op.op.write(&mut w);
        }
        w.into_bytes()
    }

    fn check_sizes(&self) -> Result<(), ProtoError> {
        if self.ops.is_empty() || self.ops.len() > MAX_OPS {
            return Err(ProtoError::InvalidRequest(
                "a self-sync frame carries 1 to 64 changes",
            ));
        }
        self.ops.iter().try_for_each(|o| o.op.check())
    }

    /// Signs the frame with `key` (the device `from_device`) and seals it to
    /// the devices `to` certifies (each one of [`SelfSync::account`], none
    /// the sender).
    pub fn seal(
        &self,
        key: &DeviceSigningKey,
        to: &[DeviceCertificate],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<u8>, ProtoError> {
        self.check_sizes()?;
        if to.is_empty() || to.len() > MAX_DEVICES {
            return Err(ProtoError::InvalidRequest(
                "a self-sync frame goes to 1 to 32 devices",
            ));
        }
        if to
            .iter()
            .any(|c| c.username() != &self.account || c.device_id() == self.from_device)
        {
            return Err(ProtoError::InvalidRequest(
                "a self-sync frame goes to the account's other devices only",
            ));
        }
        let fields = self.signed_fields();
        let mut to_sign = SIGN_LABEL.to_vec();
        to_sign.extend_from_slice(&fields);
        let signature = key.sign(&to_sign)?;
        let mut plain = Zeroizing::new(fields);
        plain.extend_from_slice(&signature);

        multi_seal::seal(&SEALING, &plain, to, rng)
    }
}

impl SignedSelfSync {
    /// Decodes the signed part of a frame (what its body holds). Strict:
    /// one frame has one encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let account = username(r.bytes("account", Username::MAX_LEN)?, "account")?;
        let from_device = DeviceId(r.u32()?);
        let sent_at_ms = r.u64()?;
        let count = usize::from(r.u16()?);
        if count == 0 || count > MAX_OPS {
            return Err(invalid("ops", "not 1 to 64 changes"));
        }
        let mut ops = Vec::with_capacity(count);
        for _ in 0..count {
            let kind = r.u8()?;
            let at_ms = r.u64()?;
            ops.push(StampedOp {
                at_ms,
                op: SyncOp::read(kind, &mut r)?,
            });
        }
        let signature = r.array::<SIGNATURE_LEN>()?;
        r.finish()?;
        Ok(Self {
            sync: SelfSync {
                account,
                from_device,
                sent_at_ms,
                ops,
            },
            signature,
        })
    }

    /// The encoding [`SignedSelfSync::decode`] reads.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.sync.signed_fields();
        out.extend_from_slice(&self.signature);
        out
    }

    /// The account and device it claims to come from (unverified).
    pub fn claimed_sender(&self) -> (&Username, DeviceId) {
        (&self.sync.account, self.sync.from_device)
    }

    /// Checks the frame against `sender`, the certificate of the device it
    /// claims to come from as the recipient knows it (certified by the
    /// recipient's own account key: the caller checks that), and that it is
    /// about `me`, the recipient's account.
    pub fn verify(self, sender: &DeviceCertificate, me: &Username) -> Result<SelfSync, ProtoError> {
        let s = &self.sync;
        if &s.account != me {
            return Err(ProtoError::InvalidRequest(
                "the self-sync frame is for another account",
            ));
        }
        if sender.username() != me || sender.device_id() != s.from_device {
            return Err(ProtoError::NotAMember(s.account.to_string()));
        }
        let mut signed = SIGN_LABEL.to_vec();
        signed.extend_from_slice(&s.signed_fields());
        UnparsedPublicKey::new(&ED25519, sender.signature_key())
            .verify(&signed, &self.signature)
            .map_err(|_| ProtoError::Tampered)?;
        Ok(self.sync)
    }
}

/// Whether `bytes` is a self-sync frame.
pub fn is_self_sync(bytes: &[u8]) -> bool {
    bytes.starts_with(&SELF_SYNC_MAGIC)
}

/// Opens a self-sync frame as device `device` with its key. Anything
/// altered, or not sealed to this device, is refused; the signature is
/// checked by [`SignedSelfSync::verify`].
pub fn open(key: &OpenKey, device: DeviceId, bytes: &[u8]) -> Result<SignedSelfSync, ProtoError> {
    let plain = multi_seal::open(&SEALING, key, device, bytes)?;
    Ok(SignedSelfSync::decode(&plain)?)
}

#[cfg(test)]
#[path = "self_sync_tests.rs"]
mod tests;
