//! What each fuzz target runs, shared with the corpus replay test.
//!
//! How it is shared: this file is the library of the `hush-fuzz` crate, whose
//! `fuzz_targets/*.rs` binaries each call one function below, and
//! `crates/hush-proto/tests/fuzz_corpus.rs` compiles the very same file as a
//! module through `#[path]`. That needs no cargo feature and no change to
//! hush-proto's library (fuzz-only fixture code stays out of the shipped
//! crate), at one cost: this file may only use crates both sides depend on,
//! `hush_proto`, `hush_wire` (a dev-dependency of hush-proto, for the
//! WebSocket frames) and `zeroize`, and no crate-only attributes
//! (`#![no_main]` and the like stay in the target binaries).
//!
//! Each function returns whether the input was *accepted* (decoded, verified,
//! processed); the fuzz targets ignore that, the replay test checks that the
//! hand-made `valid-*` seeds still are. A panic is a bug: the decoders must
//! refuse bad input with an error, and the asserts below check properties every
//! accepted input must have.
//!
//! The two MLS targets run against bob's side of a fixed two-party conversation
//! (alice and bob, one device each) restored from `fuzz/fixture/bob.state`.
//! The fixture was written before decision 0031, in the legacy hybrid suite
//! 65100: replaying its `valid-*` seeds also shows that such a conversation
//! still loads and processes (regenerating it would move it to 0x004D). mls-rs draws group ids and secrets from aws-lc's
//! own RNG, so a conversation built afresh would differ on every run and no
//! stored message could ever decrypt in it; a stored snapshot keeps the
//! `valid-*` seeds (alice's messages and commits) meaningful. The snapshot is
//! loaded once per process; an input that changed the persisted state (a seed
//! that really was processed) makes the next input start from the snapshot
//! again, so every input sees the same conversation. The snapshot is mls-rs's
//! own state encoding: if an mls-rs upgrade cannot read it, the replay test
//! fails loudly (as real clients' stored state would), and the fixture and
//! seeds are regenerated.
//!
//! Regenerate the fixture and the seeds with
//! `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate`.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use hush_proto::codec::{DecodeError, Reader, Writer};
use hush_proto::{
    AccountKey, Content, Conversation, Device, DeviceCertificate, DeviceId, DeviceSigningKey,
    HushIdentityProvider, Incoming, ProtoError, StateChange, StateKey, Timestamp, Username,
};
use zeroize::Zeroizing;

/// Every fuzz target, by the name of its binary and corpus directory.
pub const TARGETS: [&str; 23] = [
    "content_decode",
    "certificate_decode",
    "state_key",
    "conversation_process",
    "key_package_add",
    "kt_decode",
    "ws_frame_decode",
    "message_framing",
    "sealed_open",
    "receipt_open",
    "tree_blob_open",
    "commit_blob_open",
    "device_link_decode",
    "kt_batch_check",
    "self_sync_open",
    "archive_open",
    "xwing_kem",
    "group_policy_decode",
    "group_links_decode",
    "invite_open",
    "state_restore",
    "successor_open",
    "channel_open",
];

/// Runs `data` through the target called `target`; `None` for an unknown name.
pub fn run(target: &str, data: &[u8]) -> Option<bool> {
    Some(match target {
        "content_decode" => content_decode(data),
        "certificate_decode" => certificate_decode(data),
        "state_key" => state_key(data),
        "conversation_process" => conversation_process(data),
        "key_package_add" => key_package_add(data),
        "kt_decode" => kt_decode(data),
        "ws_frame_decode" => ws_frame_decode(data),
        "message_framing" => message_framing(data),
        "sealed_open" => sealed_open(data),
        "receipt_open" => receipt_open(data),
        "self_sync_open" => self_sync_open(data),
        "tree_blob_open" => tree_blob_open(data),
        "commit_blob_open" => commit_blob_open(data),
        "device_link_decode" => device_link_decode(data),
        "kt_batch_check" => kt_batch_check(data),
        "archive_open" => archive_open(data),
        "xwing_kem" => xwing_kem(data),
        "group_policy_decode" => group_policy_decode(data),
        "group_links_decode" => group_links_decode(data),
        "invite_open" => invite_open(data),
        "channel_open" => channel_open(data),
        "state_restore" => state_restore(data),
        "successor_open" => successor_open(data),
        _ => return None,
    })
}

/// The `fuzz/` directory, whichever crate compiles this file.
pub fn fuzz_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("fuzz_targets").is_dir() {
        manifest.to_path_buf()
    } else {
        manifest.join("../../fuzz")
    }
}

/// `Content::decode`; what decodes must survive a round trip, and an input
/// that lost nothing on the way (no unknown field skipped) must have been the
/// canonical encoding, since franking commits to exact bytes.
pub fn content_decode(data: &[u8]) -> bool {
    let Ok(content) = Content::decode(data) else {
        return false;
    };
    let encoded = content.encode();
    assert_eq!(
        Content::decode(&encoded).as_ref(),
        Ok(&content),
        "re-encoding changed the content"
    );
    // Decoding drops only unknown optional fields and the fields of unknown
    // kinds, each at least 6 bytes; nothing dropped means nothing may differ.
    assert!(encoded.len() <= data.len(), "re-encoding grew");
    if encoded.len() == data.len() {
        assert_eq!(encoded, data, "one content, two encodings");
    }
    true
}

/// `DeviceCertificate::decode` then `verify`; the encoding is canonical, and
/// the MLS identity check agrees with `verify`.
pub fn certificate_decode(data: &[u8]) -> bool {
    let Ok(cert) = DeviceCertificate::decode(data) else {
        return false;
    };
    assert_eq!(cert.encode(), data, "one certificate, two encodings");
    let verified = cert.verify().is_ok();
    let checked = HushIdentityProvider::check(&cert.signing_identity());
    assert_eq!(
        checked.is_ok(),
        verified,
        "identity provider and verify disagree"
    );
    verified
}

/// `read_framing`, what the server reads of a message it relays: what it
/// reads as an application message is a private message of a group, and a
/// commitment it finds is exactly the 32 bytes after the version byte of
/// authenticated data that occur in the input.
pub fn message_framing(data: &[u8]) -> bool {
    use hush_proto::{Framing, MessageKind, peek_message, read_framing};
    let Ok(framing) = read_framing(data) else {
        return false;
    };
    if let Framing::Application { commitment } = framing {
        assert!(
            matches!(peek_message(data), Ok(MessageKind::Group { .. })),
            "an application message that is not a group message"
        );
        if let Some(c) = commitment {
            let mut aad = vec![1u8];
            aad.extend_from_slice(&c.0);
            assert!(
                data.windows(aad.len()).any(|w| w == aad.as_slice()),
                "a commitment that is not in the message"
            );
        }
    }
    true
}

/// The device key the `sealed_open` seeds are sealed to.
pub fn sealed_open_key() -> hush_proto::sealed::OpenKey {
    let key = DeviceSigningKey::from_seed([7; 32]).expect("a valid seed");
    hush_proto::sealed::OpenKey::of(&key).expect("a valid key")
}

/// `open_envelope`, a device opening what the server delivers: what opens
/// was sealed whole (any change is refused), and yields at most the input.
pub fn sealed_open(data: &[u8]) -> bool {
    let key = sealed_open_key();
    let Ok(opened) = hush_proto::sealed::open_envelope(&key, data) else {
        return false;
    };
    assert!(
        opened.message.len() < data.len(),
        "opened more than it held"
    );
    true
}

/// The keys of the `receipt_open` seeds: the recipient's opening key
/// (alice's device 1) and the certificate of the signer (bob's device 1).
pub fn receipt_keys() -> (hush_proto::sealed::OpenKey, DeviceCertificate) {
    let alice = DeviceSigningKey::from_seed([7; 32]).expect("a valid seed");
    let open = hush_proto::sealed::OpenKey::of(&alice).expect("a valid key");
    let account = AccountKey::from_seed([6; 32]).expect("a valid seed");
    let bob = DeviceSigningKey::from_seed([8; 32]).expect("a valid seed");
    let user = Username::new("bob").expect("a valid name");
    let cert = DeviceCertificate::issue(&account, &user, DeviceId(1), &bob, 5).expect("issued");
    (open, cert)
}

/// Receipts to the sender, by the first byte: 0 a whole frame opened by
/// alice's device 1 and verified against bob's certificate (what opens and
/// verifies covers 1 to 1000 ids), 1 the signed part alone (canonical).
pub fn receipt_open(data: &[u8]) -> bool {
    use hush_proto::receipt::{MAX_IDS, SignedReceipt, open};
    let Some((&which, rest)) = data.split_first() else {
        return false;
    };
    match which {
        0 => {
            let (key, bob) = receipt_keys();
            let Ok(signed) = open(&key, DeviceId(1), rest) else {
                return false;
            };
            let alice = Username::new("alice").expect("a valid name");
            let Ok(receipt) = signed.verify(&bob, &alice) else {
                return false;
            };
            assert!(!receipt.ids.is_empty() && receipt.ids.len() <= MAX_IDS);
            true
        }
        1 => {
            let Ok(signed) = SignedReceipt::decode(rest) else {
                return false;
            };
            assert_eq!(signed.encode(), rest, "one receipt, two encodings");
            true
        }
        _ => false,
    }
}

/// The keys of the `self_sync_open` seeds: the opening key of alice's
/// device 2 and the certificate of the signer, her device 1.
pub fn self_sync_keys() -> (hush_proto::sealed::OpenKey, DeviceCertificate) {
    let two = DeviceSigningKey::from_seed([9; 32]).expect("a valid seed");
    let open = hush_proto::sealed::OpenKey::of(&two).expect("a valid key");
    let account = AccountKey::from_seed([5; 32]).expect("a valid seed");
    let one = DeviceSigningKey::from_seed([7; 32]).expect("a valid seed");
    let user = Username::new("alice").expect("a valid name");
    let cert = DeviceCertificate::issue(&account, &user, DeviceId(1), &one, 5).expect("issued");
    (open, cert)
}

/// Self-sync between an account's devices, by the first byte: 0 a whole
/// frame opened by alice's device 2 and verified against her device 1's
/// certificate (what opens and verifies carries 1 to 64 changes), 1 the
/// signed part alone (canonical).
pub fn self_sync_open(data: &[u8]) -> bool {
    use hush_proto::self_sync::{MAX_OPS, SignedSelfSync, open};
    let Some((&which, rest)) = data.split_first() else {
        return false;
    };
    match which {
        0 => {
            let (key, one) = self_sync_keys();
            let Ok(signed) = open(&key, DeviceId(2), rest) else {
                return false;
            };
            let alice = Username::new("alice").expect("a valid name");
            let Ok(sync) = signed.verify(&one, &alice) else {
                return false;
            };
            assert!(!sync.ops.is_empty() && sync.ops.len() <= MAX_OPS);
            true
        }
        1 => {
            let Ok(signed) = SignedSelfSync::decode(rest) else {
                return false;
            };
            assert_eq!(signed.encode(), rest, "one frame, two encodings");
            true
        }
        _ => false,
    }
}

/// The group id and epoch the `tree_blob_open` seeds are sealed for.
pub const TREE_BLOB_GROUP: (&[u8], u64) = (b"fuzz group", 3);

/// A joiner opening a big group's out-of-band tree: `u16 length || pointer
/// (the Welcome's GroupInfo extension) || blob`. What opens is smaller than
/// the blob, which must be exactly the announced size.
pub fn tree_blob_open(data: &[u8]) -> bool {
    let mut r = Reader::new(data);
    let Ok(n) = r.u16() else { return false };
    let Ok(pointer) = r.take(usize::from(n)) else {
        return false;
    };
    let Ok(blob) = r.take(r.remaining()) else {
        return false;
    };
    let (group, epoch) = TREE_BLOB_GROUP;
    let Ok(tree) = hush_proto::big_group::open_tree_blob(pointer, group, epoch, blob) else {
        return false;
    };
    assert!(tree.len() < blob.len(), "opened more than it held");
    true
}

/// The exporter key the `commit_blob_open` seeds' pointers are sealed with.
pub const COMMIT_POINTER_KEY: [u8; 32] = [4; 32];

/// A member opening a commit that travelled out of band: `u16 length ||
/// pointer || blob`. The pointer is opened with [`COMMIT_POINTER_KEY`], the
/// blob with what it names, for the group and epoch in its header; what is
/// inside is then checked to be an MLS commit of that group and epoch.
pub fn commit_blob_open(data: &[u8]) -> bool {
    use hush_proto::commit_blob::{check_commit, open_commit_blob, open_commit_pointer_with};
    let mut r = Reader::new(data);
    let Ok(n) = r.u16() else { return false };
    let Ok(pointer) = r.take(usize::from(n)) else {
        return false;
    };
    let Ok(blob) = r.take(r.remaining()) else {
        return false;
    };
    let Ok((header, at)) = open_commit_pointer_with(&COMMIT_POINTER_KEY, pointer) else {
        return false;
    };
    assert_eq!(
        hush_proto::commit_blob::commit_pointer_header(pointer).ok(),
        Some(header.clone()),
        "the header read without a key differs from the one opened"
    );
    let Ok(commit) = open_commit_blob(&at, &header.group_id, header.epoch, blob) else {
        return false;
    };
    assert!(commit.len() < blob.len(), "opened more than it held");
    let _ = check_commit(&commit, &header.group_id, header.epoch);
    true
}

/// The link code every `device_link_decode` frame is sealed under.
pub fn device_link_code() -> hush_proto::device_link::LinkCode {
    hush_proto::device_link::LinkCode {
        device_key: [3; 32],
        secret: Zeroizing::new([4; hush_proto::device_link::SECRET_LEN]),
    }
}

/// Device-link decoders (decision 0023), by the first byte: 0 a link code
/// as typed (what parses re-encodes to a code that parses to the same), 1 a
/// frame opened under [`device_link_code`]'s key to the new device and its
/// welcome decoded, 2 a frame under the key to the existing device and its
/// ready answer decoded, 3 a welcome and 4 a ready answer on their own
/// (each decoded one re-encodes to the same bytes).
pub fn device_link_decode(data: &[u8]) -> bool {
    use hush_proto::device_link::{LinkCode, LinkReady, LinkWelcome, open_frame};
    let Some((&which, rest)) = data.split_first() else {
        return false;
    };
    let keys = device_link_code().keys();
    let welcome = |bytes: &[u8]| match LinkWelcome::decode(bytes) {
        Ok(w) => {
            assert_eq!(&w.encode()[..], bytes, "one welcome, two encodings");
            true
        }
        Err(_) => false,
    };
    let ready = |bytes: &[u8]| match LinkReady::decode(bytes) {
        Ok(r) => {
            assert_eq!(r.encode(), bytes, "one ready answer, two encodings");
            true
        }
        Err(_) => false,
    };
    match which {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return false;
            };
            let Ok(code) = LinkCode::parse(text) else {
                return false;
            };
            assert_eq!(LinkCode::parse(&code.encode()).ok(), Some(code));
            true
        }
        1 => open_frame(&keys.to_new, rest).is_ok_and(|f| welcome(&f.plaintext)),
        2 => open_frame(&keys.to_existing, rest).is_ok_and(|f| ready(&f.plaintext)),
        3 => welcome(rest),
        4 => ready(rest),
        5 => match hush_proto::device_link::LinkHistory::decode(rest) {
            Ok(h) => {
                assert_eq!(h.encode(), rest, "one history pointer, two encodings");
                true
            }
            Err(_) => false,
        },
        _ => false,
    }
}

/// The key every `archive_open` seed is sealed under.
pub const ARCHIVE_KEY: [u8; 32] = [26; 32];

/// Account archives (decision 0026), by the first byte: 0 a sealed backup
/// and 1 a sealed link archive, opened with [`ARCHIVE_KEY`] (whole or
/// refused: what opens decodes, and re-sealing it opens to the same); 2 a
/// plaintext archive (what decodes re-encodes to the same bytes, or, from
/// an older format, to the same archive).
pub fn archive_open(data: &[u8]) -> bool {
    use hush_proto::archive::{Archive, FORMAT_VERSION, Purpose, open};
    let Some((&which, rest)) = data.split_first() else {
        return false;
    };
    let sealed = |purpose: Purpose| match open(&ARCHIVE_KEY, purpose, rest) {
        Ok(archive) => {
            assert_eq!(
                Archive::decode(&archive.encode()).as_ref(),
                Ok(&archive),
                "re-encoding changed the archive"
            );
            true
        }
        Err(_) => false,
    };
    match which {
        0 => sealed(Purpose::Backup),
        1 => sealed(Purpose::Link),
        2 => match Archive::decode(rest) {
            Ok(a) if rest.first() == Some(&FORMAT_VERSION) => {
                assert_eq!(a.encode(), rest, "one archive, two encodings");
                true
            }
            // An older format re-encodes as the current one, the same archive.
            Ok(a) => {
                assert_eq!(Archive::decode(&a.encode()), Ok(a), "upgrading changed it");
                true
            }
            Err(_) => false,
        },
        _ => false,
    }
}

/// A batched directory answer (`POST /v1/kt/lookup`, JSON) to a lookup of
/// alice and bob, as a client checks it (`hush_proto::kt_batch`) against a
/// fixed root and VRF key: the answer must name exactly alice and bob, and
/// every entry's certificates and proof are checked; none may be vouched
/// for by a made-up root. Accepted: it decodes and names exactly the two.
pub fn kt_batch_check(data: &[u8]) -> bool {
    use hush_proto::kt::{KtConfig, SignedRoot};
    use hush_proto::kt_batch::{BatchAccount, BatchEntry, EntryCheck, check_batch};
    use hush_wire::kt::KtBatchLookupResponse;
    let Ok(resp) = KtBatchLookupResponse::from_json(data) else {
        return false;
    };
    let devices: Vec<Vec<(u32, &[u8])>> = resp
        .entries
        .iter()
        .map(|e| {
            e.account
                .iter()
                .flat_map(|a| &a.devices)
                .map(|d| (d.device_id, d.certificate.as_slice()))
                .collect()
        })
        .collect();
    let entries: Vec<BatchEntry<'_>> = resp
        .entries
        .iter()
        .zip(&devices)
        .map(|(e, devices)| BatchEntry {
            username: &e.username,
            account: e.account.as_ref().map(|a| BatchAccount {
                account_key: a.account_key.as_slice(),
                devices,
            }),
            proof: e.proof.as_ref().map(|p| p.as_slice()),
        })
        .collect();
    let config = KtConfig {
        signing_key: [7; 32],
        vrf_public_key: vec![9; 32],
    };
    let root = SignedRoot {
        epoch: 3,
        root_hash: [1; 32],
        signature: [2; 64],
    };
    let (Ok(alice), Ok(bob)) = (Username::new("alice"), Username::new("bob")) else {
        return false;
    };
    let Ok(checks) = check_batch(&config, &root, &[alice, bob], &entries) else {
        return false;
    };
    assert!(
        !checks.iter().any(|c| matches!(c, EntryCheck::Vouched(..))),
        "an entry was vouched for by a made-up root"
    );
    true
}

/// The hand-made seeds of `kt_batch_check` (JSON, no randomness).
pub fn kt_batch_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let root = r#""root":{"epoch":3,"root_hash":"AQ==","signature":"Ag=="}"#;
    let alice = r#"{"username":"alice","account":{"username":"alice","account_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","devices":[{"device_id":1,"certificate":"AQID"}]},"proof":"CgA="}"#;
    let bob = r#"{"username":"bob","account":null,"proof":null}"#;
    let carol = r#"{"username":"carol","account":null,"proof":"CgA="}"#;
    let answer = |entries: &[&str]| format!("{{{root},\"entries\":[{}]}}", entries.join(","));
    vec![
        ("valid-two-entries", answer(&[alice, bob]).into_bytes()),
        ("seed-left-out", answer(&[alice]).into_bytes()),
        ("seed-unasked", answer(&[alice, bob, carol]).into_bytes()),
        ("seed-swapped-in", answer(&[alice, carol]).into_bytes()),
        ("seed-reordered", answer(&[bob, alice]).into_bytes()),
        ("seed-not-json", b"{\"root\":".to_vec()),
    ]
}

/// Key-transparency decoders, by the first byte: 0 a directory value
/// (canonical), 1 a signed root (canonical), 2 a lookup proof and 3 a history
/// proof, each checked against a fixed root and VRF key (random bytes must
/// be refused with an error, never verify or panic).
pub fn kt_decode(data: &[u8]) -> bool {
    use hush_proto::kt::{KtConfig, KtValue, SignedRoot, verify_history, verify_lookup};
    let Some((&which, rest)) = data.split_first() else {
        return false;
    };
    match which {
        0 => {
            let Ok(v) = KtValue::decode(rest) else {
                return false;
            };
            assert_eq!(v.encode(), rest, "one directory value, two encodings");
            true
        }
        1 => {
            let Ok(r) = SignedRoot::decode(rest) else {
                return false;
            };
            assert_eq!(r.encode(), rest, "one root, two encodings");
            true
        }
        2 | 3 => {
            let config = KtConfig {
                signing_key: [7; 32],
                vrf_public_key: vec![9; 32],
            };
            let root = SignedRoot {
                epoch: 3,
                root_hash: [1; 32],
                signature: [2; 64],
            };
            let Ok(user) = Username::new("alice") else {
                return false;
            };
            let verified = if which == 2 {
                verify_lookup(&config, &root, &user, rest).is_ok()
            } else {
                verify_history(&config, &root, &user, rest).is_ok()
            };
            assert!(!verified, "a proof verified against a made-up root");
            false
        }
        _ => false,
    }
}

/// hush-wire's WebSocket frames, by the first byte: 0 a frame from the
/// server (`ServerFrame::decode`, what a client reads), 1 a frame from a
/// device (`ClientFrame::decode`, what the server reads). What decodes
/// re-encodes to the same bytes, except a refusal, whose JSON body need not
/// be canonical: it must decode again to the same frame.
pub fn ws_frame_decode(data: &[u8]) -> bool {
    use hush_wire::ws::{ClientFrame, ServerFrame};
    let Some((&which, frame)) = data.split_first() else {
        return false;
    };
    match which {
        0 => {
            let Ok(f) = ServerFrame::decode(frame) else {
                return false;
            };
            let encoded = f.encode();
            if matches!(f, ServerFrame::Refused { .. }) {
                assert_eq!(ServerFrame::decode(&encoded).as_ref(), Ok(&f), "refusal");
            } else {
                assert_eq!(encoded, frame, "one server frame, two encodings");
            }
            true
        }
        1 => {
            let Ok(f) = ClientFrame::decode(frame) else {
                return false;
            };
            assert_eq!(f.encode(), frame, "one device frame, two encodings");
            true
        }
        _ => false,
    }
}

/// The hand-made seeds of `ws_frame_decode`: every frame type each way, and
/// a few that must be refused.
pub fn ws_frame_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use hush_wire::api::{CommitClaim, SendRequest, SendResponse};
    use hush_wire::ws::{ClientFrame, Envelope, ServerFrame};
    use hush_wire::{ApiError, Bytes, DeviceAddress, ErrorCode};
    let server = |f: ServerFrame| [vec![0], f.encode()].concat();
    let device = |f: ClientFrame| [vec![1], f.encode()].concat();
    let send = |ephemeral: bool, commit: bool, franking: bool| SendRequest {
        recipients: vec![
            DeviceAddress {
                username: "bob".into(),
                device_id: 1,
            },
            DeviceAddress {
                username: "carol".into(),
                device_id: 7,
            },
        ],
        payload: Bytes(b"mls message".to_vec()),
        ephemeral,
        commit: commit.then(|| CommitClaim {
            group_id: Bytes(vec![0xAB; 32]),
            epoch: 41,
            token: Bytes(vec![0x71; 32]),
            next_token_hash: Bytes(vec![0x72; 32]),
        }),
        franking_commitment: franking.then(|| Bytes(vec![0xCD; 32])),
    };
    let envelope = |relay_tag| {
        ServerFrame::Envelope(Envelope {
            seq: 12,
            received_at_ms: 1_750_000_000_000,
            relay_tag,
            payload: b"mls message".to_vec(),
        })
    };
    let batch = |seqs: [u64; 3]| {
        ServerFrame::Envelopes(
            seqs.iter()
                .zip([None, Some([0xEE; 32]), None])
                .map(|(&seq, relay_tag)| Envelope {
                    seq,
                    received_at_ms: 1_750_000_000_000,
                    relay_tag,
                    payload: format!("mls message {seq}").into_bytes(),
                })
                .collect(),
        )
    };
    vec![
        ("valid-server-envelope", server(envelope(None))),
        ("valid-server-envelopes", server(batch([12, 13, 20]))),
        (
            "valid-server-envelope-tag",
            server(envelope(Some([0xEE; 32]))),
        ),
        (
            "valid-server-ephemeral",
            server(ServerFrame::Ephemeral(b"typing".to_vec())),
        ),
        ("valid-server-drained", server(ServerFrame::Drained)),
        (
            "valid-server-sent",
            server(ServerFrame::Sent {
                id: 3,
                response: SendResponse {
                    received_at_ms: 1_750_000_000_000,
                    delivered_to: 2,
                    missing: vec![DeviceAddress {
                        username: "dave".into(),
                        device_id: 2,
                    }],
                },
            }),
        ),
        (
            "valid-server-refused",
            server(ServerFrame::Refused {
                id: 4,
                error: ApiError::new(ErrorCode::EpochConflict, "the group moved on"),
            }),
        ),
        ("valid-device-ack", device(ClientFrame::Ack(vec![1, 2, 12]))),
        (
            "valid-device-send",
            device(ClientFrame::Send {
                id: 5,
                request: send(false, false, false),
            }),
        ),
        (
            "valid-device-send-commit-franking",
            device(ClientFrame::Send {
                id: 6,
                request: send(false, true, true),
            }),
        ),
        (
            "valid-device-send-ephemeral",
            device(ClientFrame::Send {
                id: 7,
                request: send(true, false, false),
            }),
        ),
        ("seed-server-unknown-type", vec![0, 0x09]),
        ("seed-server-drained-trailing", vec![0, 0x03, 0]),
        ("seed-server-bad-tag-flag", {
            let mut f = server(envelope(None));
            f[18] = 2;
            f
        }),
        (
            "seed-server-envelopes-unordered",
            server(batch([12, 20, 13])),
        ),
        ("seed-server-envelopes-one", {
            let mut f = server(batch([12, 13, 20]));
            f[3] = 1;
            f
        }),
        ("seed-server-envelopes-long", {
            let mut f = server(batch([12, 13, 20]));
            f[4 + 17..4 + 21].copy_from_slice(&u32::MAX.to_be_bytes());
            f
        }),
        ("seed-device-too-many-acks", vec![1, 0x01, 0xFF, 0xFF]),
        ("seed-device-send-truncated", {
            let f = device(ClientFrame::Send {
                id: 5,
                request: send(false, true, true),
            });
            f[..20].to_vec()
        }),
    ]
}

/// `StateKey::from_bytes`; the encoding is canonical.
pub fn state_key(data: &[u8]) -> bool {
    let Ok(key) = StateKey::from_bytes(data) else {
        return false;
    };
    assert_eq!(key.to_bytes(), data, "one state key, two encodings");
    true
}

/// `Conversation::process` on bob's side of the fixed conversation.
pub fn conversation_process(data: &[u8]) -> bool {
    fixture().process(data).is_ok()
}

/// `Conversation::add_devices` with `data` as the KeyPackage, on bob's side of
/// the fixed conversation; a commit that could be built is discarded.
pub fn key_package_add(data: &[u8]) -> bool {
    fixture().add(data).is_ok()
}

/// The time every fixture and seed uses.
pub const NOW: Timestamp = Timestamp::from_millis(1_750_000_000_000);

/// A device with fixed keys: the same on every run.
#[derive(Debug)]
pub struct Member {
    /// Its certificate.
    pub cert: DeviceCertificate,
    /// Its signing key.
    pub key: DeviceSigningKey,
}

impl Member {
    /// Device 1 of account `name`; `n` picks the keys.
    pub fn new(name: &str, n: u8) -> Result<Self, ProtoError> {
        let account = AccountKey::from_seed([n; 32])?;
        let key = DeviceSigningKey::from_seed([n | 0x80; 32])?;
        let cert = DeviceCertificate::issue(
            &account,
            &Username::new(name)?,
            DeviceId(1),
            &key,
            NOW.as_millis(),
        )?;
        Ok(Self { cert, key })
    }

    /// Alice, who sends the seeds.
    pub fn alice() -> Result<Self, ProtoError> {
        Self::new("alice", 1)
    }

    /// Bob, whose side of the conversation the MLS targets run on.
    pub fn bob() -> Result<Self, ProtoError> {
        Self::new("bob", 2)
    }

    /// Carol, whose KeyPackages are the seeds of `key_package_add`.
    pub fn carol() -> Result<Self, ProtoError> {
        Self::new("carol", 3)
    }
}

/// Persisted device state: what a client keeps on disk.
pub type Snapshot = BTreeMap<StateKey, Zeroizing<Vec<u8>>>;

/// Largest value in a snapshot file (a ratchet tree of two hybrid leaves is a
/// few KiB).
const MAX_SNAPSHOT_VALUE: usize = 1 << 20;

/// Applies `changes` to `state`, as a client's database would.
pub fn apply(state: &mut Snapshot, changes: Vec<StateChange>) {
    for change in changes {
        match change {
            StateChange::Put(key, value) => {
                state.insert(key, value);
            }
            StateChange::Delete(key) => {
                state.remove(&key);
            }
            // Not written by this hush-proto: treat as "changed everything".
            _ => state.clear(),
        }
    }
}

/// The snapshot file format: `u32 count`, then per entry a length-prefixed key
/// (`StateKey::to_bytes`) and a length-prefixed value.
pub fn encode_snapshot(state: &Snapshot) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(u32::try_from(state.len()).unwrap_or(u32::MAX));
    for (key, value) in state {
        w.bytes(&key.to_bytes()).bytes(value);
    }
    w.into_bytes()
}

/// Parses [`encode_snapshot`].
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, ProtoError> {
    let mut r = Reader::new(bytes);
    let mut state = Snapshot::new();
    for _ in 0..r.u32()? {
        let key = StateKey::from_bytes(r.bytes("state key", MAX_SNAPSHOT_VALUE)?)?;
        let value = r.bytes("state value", MAX_SNAPSHOT_VALUE)?;
        state.insert(key, Zeroizing::new(value.to_vec()));
    }
    r.finish()?;
    Ok(state)
}

/// Bob's side of the fixed conversation, restored from a snapshot on demand.
pub struct Fixture {
    bob: Member,
    group_id: Vec<u8>,
    snapshot: Snapshot,
    live: Option<(Device, Conversation)>,
    /// How often the conversation was restored from the snapshot.
    pub restores: u64,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("entries", &self.snapshot.len())
            .field("live", &self.live.is_some())
            .field("restores", &self.restores)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// Bob's state in `snapshot`, which must hold exactly one conversation.
    pub fn new(snapshot: Snapshot) -> Result<Self, ProtoError> {
        let mut groups = snapshot.keys().filter_map(|k| match k {
            StateKey::Group(id) => Some(id.clone()),
            _ => None,
        });
        let (Some(group_id), None) = (groups.next(), groups.next()) else {
            return Err(DecodeError::Invalid {
                field: "fixture",
                reason: "not exactly one conversation",
            }
            .into());
        };
        Ok(Self {
            bob: Member::bob()?,
            group_id,
            snapshot,
            live: None,
            restores: 0,
        })
    }

    /// The fixture in `fuzz/fixture/bob.state`.
    pub fn load() -> Result<Self, String> {
        let path = fuzz_dir().join("fixture/bob.state");
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        decode_snapshot(&bytes)
            .and_then(Self::new)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn restore(&mut self) -> Result<(Device, Conversation), ProtoError> {
        self.restores += 1;
        let entries = self.snapshot.iter().map(|(k, v)| (k.clone(), v.clone()));
        let device = Device::restore(self.bob.cert.clone(), &self.bob.key, entries)?;
        let conv = device.load(&self.group_id)?;
        Ok((device, conv))
    }

    /// Runs `op` on the conversation, then drains its state writes. When they
    /// leave the state other than the snapshot, the conversation is dropped, so
    /// the next call starts from the snapshot again.
    fn with<T>(
        &mut self,
        op: impl FnOnce(&mut Conversation) -> Result<T, ProtoError>,
    ) -> Result<T, ProtoError> {
        let (device, mut conv) = match self.live.take() {
            Some(live) => live,
            None => self.restore()?,
        };
        let result = op(&mut conv);
        let mut after = self.snapshot.clone();
        apply(&mut after, device.take_changes());
        if after == self.snapshot {
            self.live = Some((device, conv));
        }
        result
    }

    /// Bob processes `message`.
    pub fn process(&mut self, message: &[u8]) -> Result<Incoming, ProtoError> {
        self.with(|conv| conv.process(message, NOW))
    }

    /// Bob builds a commit adding `key_package`, then discards it.
    pub fn add(&mut self, key_package: &[u8]) -> Result<(), ProtoError> {
        self.with(|conv| {
            let added = conv.add_devices(&[key_package.to_vec()], NOW);
            if added.is_ok() {
                conv.discard_commit()?;
            }
            assert!(!conv.has_pending_commit(), "a commit was left pending");
            added.map(|_| ())
        })
    }
}

static FIXTURE: OnceLock<Mutex<Fixture>> = OnceLock::new();

/// The process-wide fixture. A panic while it was held (a finding, or a failed
/// replay) poisons it; the conversation is then restored afresh.
fn fixture() -> MutexGuard<'static, Fixture> {
    let lock = FIXTURE.get_or_init(|| match Fixture::load() {
        Ok(fixture) => Mutex::new(fixture),
        Err(e) => panic!("cannot load the fuzz fixture: {e}"),
    });
    match lock.lock() {
        Ok(guard) => guard,
        Err(poisoned) => {
            let mut guard = poisoned.into_inner();
            guard.live = None;
            lock.clear_poison();
            guard
        }
    }
}

/// The secret key of X-Wing's first official test vector, the key
/// [`xwing_kem`] decapsulates with.
const XWING_SEED: [u8; 32] = [
    0x7f, 0x9c, 0x2b, 0xa4, 0xe8, 0x8f, 0x82, 0x7d, 0x61, 0x60, 0x45, 0x50, 0x76, 0x05, 0x85, 0x3e,
    0xd7, 0x3b, 0x80, 0x93, 0xf6, 0xef, 0xbc, 0x88, 0xeb, 0x1a, 0x6e, 0xac, 0xfa, 0x66, 0xef, 0x26,
];

/// X-Wing on untrusted bytes (decision 0031): `data` as a public key from a
/// KeyPackage or leaf (encapsulating to it) and as a ciphertext from an
/// UpdatePath or Welcome (decapsulating it). Only a 1216-byte key whose
/// ML-KEM half passes the modulus check, and only a 1120-byte ciphertext,
/// may be accepted; anything else is an error, never a panic.
pub fn xwing_kem(data: &[u8]) -> bool {
    use hush_proto::xwing::{CIPHERTEXT_SIZE, PUBLIC_KEY_SIZE, XWing};
    let as_key = XWing::encapsulate_derand(data, &[7; 64]);
    if let Ok(enc) = &as_key {
        assert_eq!(data.len(), PUBLIC_KEY_SIZE);
        assert_eq!(enc.enc().len(), CIPHERTEXT_SIZE);
    }
    let as_ciphertext = XWing::decapsulate(data, &XWING_SEED);
    if let Ok(ss) = &as_ciphertext {
        assert_eq!(data.len(), CIPHERTEXT_SIZE);
        assert_eq!(ss.len(), 32);
    }
    as_key.is_ok() || as_ciphertext.is_ok()
}

/// `GroupPolicy::decode` (a group's admins and settings, from the group
/// context every member reads): what decodes re-encodes to the same bytes.
pub fn group_policy_decode(data: &[u8]) -> bool {
    let Ok(policy) = hush_proto::conversation::GroupPolicy::decode(data) else {
        return false;
    };
    assert_eq!(policy.encode(), data, "one policy, two encodings");
    true
}

/// `GroupLinks::decode` (a group's invite links, from the group context
/// every member reads): what decodes re-encodes to the same bytes.
pub fn group_links_decode(data: &[u8]) -> bool {
    let Ok(links) = hush_proto::invite::GroupLinks::decode(data) else {
        return false;
    };
    assert_eq!(links.encode(), data, "one link list, two encodings");
    assert!(links.links.len() <= hush_proto::invite::MAX_LINKS);
    true
}

/// What a joiner and an admin's device read of an invite link (decision
/// 0033), chosen by the first byte: 0 a preview's plaintext, 1 a sealed
/// preview, 2 a join request's plaintext (decoded, then its signature
/// checked), 3 a sealed join request, 4 a link as text. The secret is fixed.
pub fn invite_open(data: &[u8]) -> bool {
    use hush_proto::invite::{InviteSecret, JoinRequest, LinkPreview};
    let Some((&which, rest)) = data.split_first() else {
        return false;
    };
    let secret = InviteSecret::from_bytes([7; 32]);
    match which {
        0 => match LinkPreview::decode(rest) {
            Ok(p) => {
                assert_eq!(p.encode(), rest, "one preview, two encodings");
                true
            }
            Err(_) => false,
        },
        1 => secret.open_preview(rest).is_ok(),
        2 => match JoinRequest::decode(rest) {
            Ok(r) => {
                assert_eq!(r.encode(), rest, "one request, two encodings");
                r.verify(&secret.link_id()).is_ok()
            }
            Err(_) => false,
        },
        3 => secret.open_request(rest).is_ok(),
        4 => std::str::from_utf8(rest)
            .ok()
            .and_then(|s| InviteSecret::parse_link(s).ok())
            .is_some_and(|(server, parsed)| {
                assert_eq!(
                    InviteSecret::parse_link(&parsed.to_link(&server)).ok(),
                    Some((server.clone(), parsed))
                );
                true
            }),
        _ => false,
    }
}

/// `open_successor`, a member reading the successor a key-update commit's
/// authenticated data names (decision 0031; any member writes those bytes):
/// the first byte is the pad's length (an epoch's pad is 64 bytes; the
/// others test the bound), the pad a fixed pattern, the rest the
/// authenticated data. What opens is 1 to 64 bytes and seals back to the
/// same authenticated data.
pub fn successor_open(data: &[u8]) -> bool {
    use hush_proto::migration::{MAX_SUCCESSOR_ID, open_successor, seal_successor};
    let Some((&pad_len, aad)) = data.split_first() else {
        return false;
    };
    let pad: Vec<u8> = (0..pad_len).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    let Some(successor) = open_successor(&pad, aad) else {
        return false;
    };
    assert!((1..=MAX_SUCCESSOR_ID.min(pad.len())).contains(&successor.len()));
    assert_eq!(
        seal_successor(&pad, &successor).as_deref(),
        Some(aad),
        "one successor, two announcements"
    );
    true
}

/// The fixed channel of [`channel_open`]: its secret, the owner key (which
/// is its one admin) and the key of epoch 0.
pub fn channel_fixture() -> (hush_proto::channel::ChannelSecret, AccountKey, [u8; 32]) {
    let secret = hush_proto::channel::ChannelSecret::from_bytes([7; 32]);
    let owner = AccountKey::from_seed([8; 32]).expect("a valid seed");
    (secret, owner, [9; 32])
}

/// What a subscriber reads of a channel (decision 0038), chosen by the
/// first byte: 0 a descriptor's plaintext, 1 a sealed descriptor (opened
/// and its owner signature checked), 2 a post's plaintext, 3 a sealed post
/// (opened under the fixed key, its admin signature checked), 4 a channel
/// link as text. The secret, owner key and epoch key are fixed.
pub fn channel_open(data: &[u8]) -> bool {
    use hush_proto::channel::{ChannelLink, Descriptor, Post};
    let Some((&which, rest)) = data.split_first() else {
        return false;
    };
    let (secret, owner, key) = channel_fixture();
    let id = secret.channel_id();
    match which {
        0 => Descriptor::decode(rest).is_ok_and(|d| {
            assert_eq!(d.encode(), rest, "one descriptor, two encodings");
            d.verify(&id, &owner.public()).is_ok()
        }),
        1 => secret.open_descriptor(&owner.public(), rest).is_ok(),
        2 => Post::decode(rest).is_ok_and(|p| {
            assert_eq!(p.encode(), rest, "one post, two encodings");
            true
        }),
        3 => Post::open(&id, &key, &[owner.public()], rest).is_ok(),
        4 => std::str::from_utf8(rest)
            .ok()
            .and_then(|s| ChannelLink::parse(s).ok())
            .is_some_and(|link| {
                assert_eq!(ChannelLink::parse(&link.to_link()).ok(), Some(link));
                true
            }),
        _ => false,
    }
}

/// Persisted state entries in the order they were read.
pub type Entries = Vec<(StateKey, Zeroizing<Vec<u8>>)>;

/// The snapshot file format, keeping only the keys that parse (a client
/// skips keys it does not know the same way).
pub fn decode_entries(bytes: &[u8]) -> Result<Entries, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    for _ in 0..r.u32()? {
        let key = r.bytes("state key", MAX_SNAPSHOT_VALUE)?;
        let value = r.bytes("state value", MAX_SNAPSHOT_VALUE)?;
        if let Ok(key) = StateKey::from_bytes(key) {
            out.push((key, Zeroizing::new(value.to_vec())));
        }
    }
    r.finish()?;
    Ok(out)
}

/// `Device::restore` of bob on arbitrary persisted entries (decision 0029):
/// whole values of earlier releases, manifests and chunks in any mix and
/// order. A missing, corrupt or misplaced chunk or manifest is an error,
/// never a panic; accepted is a restore after which every conversation it
/// lists loads.
pub fn state_restore(data: &[u8]) -> bool {
    let (Ok(entries), Ok(bob)) = (decode_entries(data), Member::bob()) else {
        return false;
    };
    let Ok(device) = Device::restore(bob.cert, &bob.key, entries) else {
        return false;
    };
    let ids = device.conversation_ids();
    !ids.is_empty() && ids.iter().all(|id| device.load(id).is_ok())
}
