//! Property tests for the decoders of untrusted bytes: the content codec,
//! device certificates and state keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_proto::content::{
    MAX_BLOB_ID_LEN, MAX_FILE_NAME_LEN, MAX_MEDIA_TYPE_LEN, MAX_RECEIPT_IDS, MAX_TEXT_LEN,
};
use hush_proto::*;
use proptest::prelude::*;
use proptest::sample::Index;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// Length of the content header: version, id, sent_at, kind.
const HEADER_LEN: usize = 1 + 16 + 8 + 2;

// ---- strategies ---------------------------------------------------------

fn message_id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 16]>().prop_map(MessageId)
}

/// The longest prefix of `s` that fits in `max` bytes, cut at a char boundary.
fn truncate(mut s: String, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

/// Strings of at most `max` bytes: mostly short and of any Unicode, sometimes
/// long, sometimes exactly at the limit (with multi-byte characters too).
fn string(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        12 => ".{0,24}".prop_map(move |s| truncate(s, max)),
        1 => (0..=max).prop_map(|n| "a".repeat(n)),
        1 => Just("a".repeat(max)),
        1 => Just(truncate("é".repeat(max), max)),
        1 => Just(truncate("😀".repeat(max), max)),
    ]
}

fn receipt_ids() -> impl Strategy<Value = Vec<MessageId>> {
    prop_oneof![
        4 => prop::collection::vec(message_id(), 0..=4),
        1 => prop::collection::vec(message_id(), 0..=MAX_RECEIPT_IDS),
        1 => prop::collection::vec(message_id(), MAX_RECEIPT_IDS),
    ]
}

fn pointer() -> impl Strategy<Value = AttachmentPointer> {
    (
        string(MAX_BLOB_ID_LEN),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        string(MAX_MEDIA_TYPE_LEN),
        string(MAX_FILE_NAME_LEN),
    )
        .prop_map(
            |(blob_id, key, digest, size, media_type, file_name)| AttachmentPointer {
                blob_id,
                key,
                digest,
                size,
                media_type,
                file_name,
            },
        )
}

/// Kinds this build does not know.
fn unknown_kind() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0u16), 10..=u16::MAX]
}

/// Every variant of [`Body`], each field set and unset.
fn body() -> impl Strategy<Value = Body> {
    let receipt_kind = prop_oneof![Just(ReceiptKind::Delivered), Just(ReceiptKind::Read)];
    prop_oneof![
        (string(MAX_TEXT_LEN), prop::option::of(message_id()))
            .prop_map(|(text, reply_to)| Body::Text { text, reply_to }),
        (
            pointer(),
            prop::option::of(string(MAX_TEXT_LEN)),
            prop::option::of(message_id())
        )
            .prop_map(|(pointer, caption, reply_to)| Body::Attachment {
                pointer,
                caption,
                reply_to
            }),
        (receipt_kind, receipt_ids()).prop_map(|(kind, ids)| Body::Receipt { kind, ids }),
        any::<bool>().prop_map(|started| Body::Typing { started }),
        (any::<bool>(), prop::option::of(any::<u64>())).prop_map(|(online, last_seen_ms)| {
            Body::Presence {
                online,
                last_seen_ms,
            }
        }),
        // The decoder reads a zero timer as "off", so Some(0) is not generated.
        prop::option::of(1..=u32::MAX).prop_map(|seconds| Body::DisappearingTimer { seconds }),
        (message_id(), string(MAX_TEXT_LEN)).prop_map(|(target, text)| Body::Edit { target, text }),
        message_id().prop_map(|target| Body::Delete { target }),
        any::<[u8; 32]>().prop_map(|key| Body::ProfileKey { key }),
        unknown_kind().prop_map(|kind| Body::Unsupported { kind }),
    ]
}

fn content() -> impl Strategy<Value = Content> {
    (
        message_id(),
        any::<u64>(),
        prop::option::of(any::<u32>()),
        body(),
        prop::option::of(checkpoint()),
    )
        .prop_map(
            |(id, sent_at_ms, expire_timer_secs, body, kt_checkpoint)| Content {
                id,
                sent_at_ms,
                expire_timer_secs,
                body,
                kt_checkpoint,
                meta: Default::default(),
            },
        )
}

fn checkpoint() -> impl Strategy<Value = hush_proto::kt::KtCheckpoint> {
    (
        any::<u64>(),
        any::<[u8; 32]>(),
        prop::collection::vec(any::<u8>(), 64),
    )
        .prop_map(|(epoch, root_hash, sig)| hush_proto::kt::SignedRoot {
            epoch,
            root_hash,
            signature: sig.try_into().unwrap(),
        })
}

/// Some prefix lengths of a `len`-byte encoding: all of them when it is short,
/// otherwise both ends and the sampled middles.
fn cuts(len: usize, samples: &[Index]) -> Vec<usize> {
    if len <= 512 {
        return (0..len).collect();
    }
    let mut cuts: Vec<usize> = (0..64).chain(len - 64..len).collect();
    cuts.extend(samples.iter().map(|i| i.index(len)));
    cuts
}

fn state_key() -> impl Strategy<Value = StateKey> {
    let id = || prop::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        id().prop_map(StateKey::Group),
        id().prop_map(StateKey::Tree),
        (id(), any::<u64>()).prop_map(|(id, e)| StateKey::Epoch(id, e)),
        id().prop_map(StateKey::KeyPackage),
    ]
}

// ---- content ------------------------------------------------------------

proptest! {
    #[test]
    fn content_round_trips(c in content()) {
        let bytes = c.encode();
        prop_assert!(bytes.len() <= content::MAX_CONTENT_LEN);
        prop_assert_eq!(Content::decode(&bytes), Ok(c));
    }

    /// No strict prefix decodes to the original. A prefix that decodes at all
    /// ends on a field boundary and drops only optional fields, and is then
    /// itself the canonical encoding of what it decodes to; a prefix cut
    /// anywhere else fails.
    #[test]
    fn truncated_content_never_decodes_to_the_original(
        c in content(),
        samples in prop::collection::vec(any::<Index>(), 32),
    ) {
        let bytes = c.encode();
        for cut in cuts(bytes.len(), &samples) {
            let prefix = &bytes[..cut];
            if let Ok(d) = Content::decode(prefix) {
                prop_assert!(cut >= HEADER_LEN);
                prop_assert_ne!(&d, &c, "a {}-byte prefix decodes to the original", cut);
                prop_assert_eq!(d.encode(), prefix);
            }
        }
    }

    /// After the last field the decoder expects another field header (u16 tag,
    /// u32 length): 1 to 5 more bytes are always an incomplete input.
    #[test]
    fn content_with_a_partial_field_appended_is_incomplete(
        c in content(),
        tail in prop::collection::vec(any::<u8>(), 1..=5),
    ) {
        let mut bytes = c.encode();
        bytes.extend_from_slice(&tail);
        let decoded = Content::decode(&bytes);
        prop_assert!(
            matches!(decoded, Err(DecodeError::Incomplete { .. })),
            "{:?}", decoded
        );
    }

    /// Newer senders may add fields: an unknown optional one (high tag bit) is
    /// skipped; an unknown mandatory one rejects known kinds. Appended after
    /// the last field, the tag is the highest, so the order stays valid unless
    /// the content already ends with an optional field (the expire timer or
    /// the key-transparency checkpoint).
    #[test]
    fn unknown_fields_appended(
        c in content(),
        optional_tag in 0x8003u16..=u16::MAX,
        mandatory_tag in 0x0100u16..0x8000,
        value in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let field = |tag: u16| {
            let mut f = tag.to_be_bytes().to_vec();
            f.extend_from_slice(&u32::try_from(value.len()).unwrap().to_be_bytes());
            f.extend_from_slice(&value);
            f
        };
        let mut bytes = c.encode();
        bytes.extend_from_slice(&field(optional_tag));
        prop_assert_eq!(Content::decode(&bytes), Ok(c.clone()));

        let mut bytes = c.encode();
        bytes.extend_from_slice(&field(mandatory_tag));
        let decoded = Content::decode(&bytes);
        let ends_optional = c.expire_timer_secs.is_some() || c.kt_checkpoint.is_some();
        match (&c.body, ends_optional) {
            (_, true) => prop_assert!(
                matches!(decoded, Err(DecodeError::Invalid { field: "field order", .. })),
                "{:?}", decoded
            ),
            (Body::Unsupported { .. }, false) => prop_assert_eq!(decoded, Ok(c.clone())),
            (_, false) => prop_assert!(
                matches!(decoded, Err(DecodeError::UnknownMandatoryField { tag, .. }) if tag == mandatory_tag),
                "{:?}", decoded
            ),
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Content::decode(&bytes);
    }

    /// Arbitrary fields behind a valid header reach the per-kind decoders,
    /// which random bytes rarely do. Whatever decodes survives a round trip.
    #[test]
    fn decoding_arbitrary_fields_never_panics(
        kind in 0u16..=10,
        mut fields in prop::collection::vec(
            (
                prop_oneof![0u16..=10, Just(0x8001), any::<u16>()],
                prop::collection::vec(any::<u8>(), 0..40),
            ),
            0..6,
        ),
        sorted in any::<bool>(),
    ) {
        if sorted {
            fields.sort_by_key(|(tag, _)| *tag);
        }
        let mut bytes = vec![content::CONTENT_VERSION];
        bytes.extend_from_slice(&[7; 16]);
        bytes.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        bytes.extend_from_slice(&kind.to_be_bytes());
        for (tag, value) in &fields {
            bytes.extend_from_slice(&tag.to_be_bytes());
            bytes.extend_from_slice(&u32::try_from(value.len()).unwrap().to_be_bytes());
            bytes.extend_from_slice(value);
        }
        if let Ok(c) = Content::decode(&bytes) {
            prop_assert_eq!(Content::decode(&c.encode()), Ok(c));
        }
    }
}

// ---- certificates and state keys ----------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn certificate_round_trips_and_verifies(
        seed in any::<u64>(),
        name in "[a-z][a-z0-9_.-]{2,31}",
        device_id in any::<u32>(),
        issued_at_ms in any::<u64>(),
        flips in prop::collection::vec(any::<Index>(), 4),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut account_seed = [0u8; 32];
        let mut device_seed = [0u8; 32];
        rng.fill_bytes(&mut account_seed);
        rng.fill_bytes(&mut device_seed);
        let account = AccountKey::from_seed(account_seed).unwrap();
        let device = DeviceSigningKey::from_seed(device_seed).unwrap();
        prop_assert_eq!(*account.to_seed(), account_seed);
        prop_assert_eq!(*device.to_seed(), device_seed);

        let user = Username::new(&name).unwrap();
        let cert = DeviceCertificate::issue(&account, &user, DeviceId(device_id), &device, issued_at_ms)
            .unwrap();
        let bytes = cert.encode();
        prop_assert!(bytes.len() <= DeviceCertificate::MAX_ENCODED_LEN);
        let back = DeviceCertificate::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &cert);
        back.verify().unwrap();
        prop_assert_eq!(back.username(), &user);
        prop_assert_eq!(back.account_key(), account.public());
        prop_assert_eq!(back.device_id(), DeviceId(device_id));
        prop_assert_eq!(back.signature_key(), &device.public());
        prop_assert_eq!(back.issued_at_ms(), issued_at_ms);

        // Any single flipped bit is refused, by the decoder or by the signature.
        for flip in &flips {
            let bit = flip.index(bytes.len() * 8);
            let mut forged = bytes.clone();
            forged[bit / 8] ^= 1 << (bit % 8);
            if let Ok(c) = DeviceCertificate::decode(&forged) {
                prop_assert!(c.verify().is_err(), "bit {} flipped and still verifies", bit);
            }
        }
        for cut in 0..bytes.len() {
            prop_assert!(DeviceCertificate::decode(&bytes[..cut]).is_err());
        }
    }
}

proptest! {
    #[test]
    fn certificate_decode_of_arbitrary_bytes_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..=DeviceCertificate::MAX_ENCODED_LEN + 8),
    ) {
        if let Ok(c) = DeviceCertificate::decode(&bytes) {
            prop_assert_eq!(c.encode(), bytes);
        }
    }

    #[test]
    fn state_key_round_trips(key in state_key()) {
        prop_assert_eq!(StateKey::from_bytes(&key.to_bytes()).unwrap(), key);
    }

    /// The state key encoding is canonical: whatever parses re-encodes to the
    /// same bytes (the caller's database uses them as primary keys).
    #[test]
    fn state_key_from_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..48)) {
        if let Ok(key) = StateKey::from_bytes(&bytes) {
            prop_assert_eq!(key.to_bytes(), bytes);
        }
    }
}
