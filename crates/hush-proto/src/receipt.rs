//! Receipts to the sender: delivery and read receipts sent to the devices of
//! the member who wrote the messages, outside the group's MLS ratchet.
//!
//! A receipt sent through the group would reach every member and make every
//! member decrypt it: N receipts per message, each opened N times. Here a
//! member sends one receipt frame per conversation and original sender,
//! covering many message ids, to that sender's devices only (decision 0017).
//!
//! A receipt is signed by the device that sends it (Ed25519, the device's
//! certified MLS signature key, over a label of its own) and sealed to each
//! of the recipient devices with HPKE to the key [`crate::sealed`] derives
//! from their certificates. The recipient opens it, finds the signing device
//! among the members of the conversation it names, and checks the signature
//! with that member's certificate: the server can neither read nor forge a
//! receipt, nor move it to another conversation or account; someone outside
//! the conversation cannot make one that is accepted.
//!
//! ```text
//! MAGIC (4) | n (1) | n × (device id (4) | kem output (32) | HPKE(K) (48)) | body
//! body   = AES-256-GCM(K, nonce 0, aad = MAGIC | n | headers, signed)
//! signed = version (1) | group id | from | from device (4) | to | kind (1)
//!          | sent at ms (8) | ids (16 each) | Ed25519 signature (64)
//! ```
//!
//! Variable fields carry a `u32` length (see [`crate::codec`]). The signature
//! covers `SIGN_LABEL` and every field before it. `MAGIC` starts with `0xfe`,
//! which neither an RFC 9420 message (`0x0001`) nor a sealed envelope
//! (`0xff`) does.

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Writer};
use crate::content::{MessageId, ReceiptKind};
use crate::error::ProtoError;
use crate::identity::{DeviceCertificate, DeviceId, DeviceSigningKey, SIGNATURE_LEN, Username};
use crate::multi_seal;
use crate::sealed::OpenKey;

/// The first bytes of every receipt frame.
pub const RECEIPT_MAGIC: [u8; 4] = [0xfe, b'H', b'R', 1];
/// The most message ids one receipt frame covers.
pub const MAX_IDS: usize = 1000;
/// The most devices one receipt frame is sealed to.
pub const MAX_DEVICES: usize = multi_seal::MAX_DEVICES;
/// Longest group id in a receipt.
const MAX_GROUP_ID: usize = 256;
const VERSION: u8 = 1;
/// How frames of this kind are sealed.
const SEALING: multi_seal::Kind = multi_seal::Kind {
    magic: RECEIPT_MAGIC,
    info: b"hush receipt v1",
    field: "receipt",
    no_magic: "no receipt magic",
    not_for_me: "the receipt is not sealed to this device",
    seal_failed: "sealing the receipt failed",
    key_refused: "the receipt key was refused",
};
const SIGN_LABEL: &[u8] = b"hush receipt signature v1\0";

/// A receipt: which messages of `to`'s, in which conversation, one device
/// of `from` received or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The conversation (MLS group id).
    pub group_id: Vec<u8>,
    /// The member sending the receipt.
    pub from: Username,
    /// The device of `from` that signs it.
    pub from_device: DeviceId,
    /// The member who wrote the messages (every device of it may get it).
    pub to: Username,
    /// Delivered or read.
    pub kind: ReceiptKind,
    /// When the receipt was made, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// The messages it covers (1 to [`MAX_IDS`]).
    pub ids: Vec<MessageId>,
}

/// A receipt as opened, its signature not yet checked: only
/// [`SignedReceipt::verify`] with the sender's certificate yields a
/// [`Receipt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReceipt {
    receipt: Receipt,
    signature: [u8; SIGNATURE_LEN],
}

fn kind_byte(kind: ReceiptKind) -> u8 {
    match kind {
        ReceiptKind::Delivered => 1,
        ReceiptKind::Read => 2,
    }
}

impl Receipt {
    /// The bytes the signature covers, without the label.
    fn signed_fields(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION)
            .bytes(&self.group_id)
            .bytes(self.from.as_str().as_bytes())
            .u32(self.from_device.0)
            .bytes(self.to.as_str().as_bytes())
            .u8(kind_byte(self.kind))
            .u64(self.sent_at_ms);
        let ids: Vec<u8> = self.ids.iter().flat_map(|id| id.0).collect();
        w.bytes(&ids);
        w.into_bytes()
    }

    fn check_sizes(&self) -> Result<(), ProtoError> {
        if self.ids.is_empty() || self.ids.len() > MAX_IDS {
            return Err(ProtoError::InvalidRequest(
                "a receipt covers 1 to 1000 messages",
            ));
        }
        if self.group_id.is_empty() || self.group_id.len() > MAX_GROUP_ID {
            return Err(ProtoError::InvalidRequest(
                "a receipt's group id is 1 to 256 bytes",
            ));
        }
        Ok(())
    }

    /// Signs the receipt with `key` (the device `from_device`) and seals it
    /// to the devices `to` certifies (each must belong to [`Receipt::to`]).
    pub fn seal(
        &self,
        key: &DeviceSigningKey,
        to: &[DeviceCertificate],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<u8>, ProtoError> {
        self.check_sizes()?;
        if to.is_empty() || to.len() > MAX_DEVICES {
            return Err(ProtoError::InvalidRequest(
                "a receipt goes to 1 to 32 devices",
            ));
        }
        if to.iter().any(|c| c.username() != &self.to) {
            return Err(ProtoError::InvalidRequest(
                "a receipt goes to the devices of one account",
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

fn invalid(field: &'static str, reason: &'static str) -> DecodeError {
    DecodeError::Invalid { field, reason }
}

fn username(bytes: &[u8], field: &'static str) -> Result<Username, DecodeError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| Username::new(s).ok())
        .ok_or(invalid(field, "not a username"))
}

impl SignedReceipt {
    /// Decodes the signed part of a receipt (what its body holds). Strict:
    /// one receipt has one encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let group_id = r.bytes("group id", MAX_GROUP_ID)?.to_vec();
        if group_id.is_empty() {
            return Err(invalid("group id", "empty"));
        }
        let from = username(r.bytes("from", Username::MAX_LEN)?, "from")?;
        let from_device = DeviceId(r.u32()?);
        let to = username(r.bytes("to", Username::MAX_LEN)?, "to")?;
        let kind = match r.u8()? {
            1 => ReceiptKind::Delivered,
            2 => ReceiptKind::Read,
            _ => return Err(invalid("receipt kind", "unknown")),
        };
        let sent_at_ms = r.u64()?;
        let raw = r.bytes("ids", MAX_IDS * 16)?;
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
        let signature = r.array::<SIGNATURE_LEN>()?;
        r.finish()?;
        Ok(Self {
            receipt: Receipt {
                group_id,
                from,
                from_device,
                to,
                kind,
                sent_at_ms,
                ids,
            },
            signature,
        })
    }

    /// The encoding [`SignedReceipt::decode`] reads.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.receipt.signed_fields();
        out.extend_from_slice(&self.signature);
        out
    }

    /// The conversation it claims to be about (unverified).
    pub fn group_id(&self) -> &[u8] {
        &self.receipt.group_id
    }

    /// The member and device it claims to come from (unverified).
    pub fn claimed_sender(&self) -> (&Username, DeviceId) {
        (&self.receipt.from, self.receipt.from_device)
    }

    /// Checks the receipt against `sender`, the certificate of the member
    /// device it claims to come from as the recipient's own view of the
    /// conversation lists it, and that it is addressed to `me`.
    pub fn verify(self, sender: &DeviceCertificate, me: &Username) -> Result<Receipt, ProtoError> {
        let r = &self.receipt;
        if sender.username() != &r.from || sender.device_id() != r.from_device {
            return Err(ProtoError::NotAMember(r.from.to_string()));
        }
        if &r.to != me {
            return Err(ProtoError::InvalidRequest(
                "the receipt is for another account",
            ));
        }
        let mut signed = SIGN_LABEL.to_vec();
        signed.extend_from_slice(&r.signed_fields());
        UnparsedPublicKey::new(&ED25519, sender.signature_key())
            .verify(&signed, &self.signature)
            .map_err(|_| ProtoError::Tampered)?;
        Ok(self.receipt)
    }
}

/// Whether `bytes` is a receipt frame.
pub fn is_receipt(bytes: &[u8]) -> bool {
    bytes.starts_with(&RECEIPT_MAGIC)
}

/// Opens a receipt frame as device `device` with its key. Anything altered,
/// or not sealed to this device, is refused; the signature is checked by
/// [`SignedReceipt::verify`].
pub fn open(key: &OpenKey, device: DeviceId, bytes: &[u8]) -> Result<SignedReceipt, ProtoError> {
    let plain = multi_seal::open(&SEALING, key, device, bytes)?;
    Ok(SignedReceipt::decode(&plain)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AccountKey;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn device(name: &str, id: u32, seed: u64) -> (DeviceSigningKey, DeviceCertificate) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let account = AccountKey::generate(&mut rng).unwrap();
        let key = DeviceSigningKey::generate(&mut rng).unwrap();
        let user = Username::new(name).unwrap();
        let cert = DeviceCertificate::issue(&account, &user, DeviceId(id), &key, 5).unwrap();
        (key, cert)
    }

    fn receipt(ids: usize) -> Receipt {
        Receipt {
            group_id: vec![3; 32],
            from: Username::new("bob").unwrap(),
            from_device: DeviceId(1),
            to: Username::new("alice").unwrap(),
            kind: ReceiptKind::Read,
            sent_at_ms: 77,
            ids: (0..ids).map(|i| MessageId([i as u8; 16])).collect(),
        }
    }

    #[test]
    fn every_device_of_the_sender_opens_it_and_only_the_signer_verifies() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (bob_key, bob_cert) = device("bob", 1, 1);
        let (a1_key, a1_cert) = device("alice", 1, 2);
        let (a2_key, a2_cert) = device("alice", 2, 3);
        let (_, mallory_cert) = device("bob", 1, 4);
        let r = receipt(3);
        let frame = r
            .seal(&bob_key, &[a1_cert.clone(), a2_cert.clone()], &mut rng)
            .unwrap();
        assert!(is_receipt(&frame));
        let alice = Username::new("alice").unwrap();
        for (key, id) in [(&a1_key, 1), (&a2_key, 2)] {
            let opened = open(&OpenKey::of(key).unwrap(), DeviceId(id), &frame).unwrap();
            assert_eq!(opened.group_id(), &[3; 32]);
            assert_eq!(SignedReceipt::decode(&opened.encode()).unwrap(), opened);
            assert_eq!(opened.clone().verify(&bob_cert, &alice).unwrap(), r);
            // A certificate with another key for the same name and device
            // (what a server substituting keys would hold) does not verify.
            assert!(matches!(
                opened.clone().verify(&mallory_cert, &alice),
                Err(ProtoError::Tampered)
            ));
            // Not addressed to carol.
            assert!(
                opened
                    .verify(&bob_cert, &Username::new("carol").unwrap())
                    .is_err()
            );
        }
        // The signer's own device is not among the recipients.
        assert!(open(&OpenKey::of(&bob_key).unwrap(), DeviceId(1), &frame).is_err());
        // Device 1's key does not open device 2's header.
        let mut swapped = frame.clone();
        swapped[5..9].copy_from_slice(&9u32.to_be_bytes());
        swapped[5 + multi_seal::HEADER_LEN..9 + multi_seal::HEADER_LEN]
            .copy_from_slice(&1u32.to_be_bytes());
        assert!(open(&OpenKey::of(&a1_key).unwrap(), DeviceId(1), &swapped).is_err());
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (bob_key, _) = device("bob", 1, 1);
        let (a1_key, a1_cert) = device("alice", 1, 2);
        let frame = receipt(2).seal(&bob_key, &[a1_cert], &mut rng).unwrap();
        let key = OpenKey::of(&a1_key).unwrap();
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x10;
            assert!(open(&key, DeviceId(1), &bad).is_err(), "byte {i}");
        }
        for len in 0..frame.len() {
            assert!(open(&key, DeviceId(1), &frame[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn a_signature_over_other_fields_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (bob_key, bob_cert) = device("bob", 1, 1);
        let (a1_key, a1_cert) = device("alice", 1, 2);
        let frame = receipt(1).seal(&bob_key, &[a1_cert], &mut rng).unwrap();
        let opened = open(&OpenKey::of(&a1_key).unwrap(), DeviceId(1), &frame).unwrap();
        // Re-label the signed receipt as a delivery receipt for another
        // message, keeping the signature: refused.
        let mut forged = opened.clone();
        forged.receipt.ids = vec![MessageId([9; 16])];
        let alice = Username::new("alice").unwrap();
        assert!(matches!(
            forged.verify(&bob_cert, &alice),
            Err(ProtoError::Tampered)
        ));
        let mut moved = opened;
        moved.receipt.group_id = vec![4; 32];
        assert!(moved.verify(&bob_cert, &alice).is_err());
    }

    #[test]
    fn sizes_are_bounded() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let (bob_key, _) = device("bob", 1, 1);
        let (_, a1_cert) = device("alice", 1, 2);
        let (_, carol_cert) = device("carol", 1, 5);
        assert!(
            receipt(0)
                .seal(&bob_key, std::slice::from_ref(&a1_cert), &mut rng)
                .is_err()
        );
        assert!(
            receipt(MAX_IDS + 1)
                .seal(&bob_key, std::slice::from_ref(&a1_cert), &mut rng)
                .is_err()
        );
        assert!(
            receipt(MAX_IDS)
                .seal(&bob_key, std::slice::from_ref(&a1_cert), &mut rng)
                .is_ok()
        );
        assert!(receipt(1).seal(&bob_key, &[], &mut rng).is_err());
        assert!(receipt(1).seal(&bob_key, &[carol_cert], &mut rng).is_err());
    }
}
