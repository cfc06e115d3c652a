//! Replays the fuzz corpora as an ordinary test (the idea of vodozemac's
//! `run_corpus`): every file in `fuzz/corpus/<target>/` goes through the same
//! code the cargo-fuzz target runs, so a regression on any input a fuzzer once
//! found interesting fails `cargo test` on stable, without libFuzzer.
//!
//! The per-target code is `fuzz/src/lib.rs`, compiled here as a module (see the
//! comment at its top for why a `#[path]` include rather than a cargo feature).
//!
//! `regenerate_fuzz_seeds` (ignored) rewrites the hand-made seeds and bob's
//! conversation snapshot:
//! `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../fuzz/src/lib.rs"]
mod fuzz;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use fuzz::{Fixture, Member, NOW, Snapshot};
use hush_proto::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn corpus_dir(target: &str) -> PathBuf {
    fuzz::fuzz_dir().join("corpus").join(target)
}

/// The files of a corpus, sorted; fails when the directory is missing or
/// empty, so that a moved corpus cannot make the test pass vacuously.
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

fn replay(target: &str) {
    let mut failures = Vec::new();
    let files = corpus_files(target);
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(path).unwrap();
        match catch_unwind(AssertUnwindSafe(|| fuzz::run(target, &data))) {
            Ok(Some(accepted)) => {
                if name.starts_with("valid-") && !accepted {
                    failures.push(format!("{name}: a valid seed was refused"));
                }
            }
            Ok(None) => panic!("no fuzz target called {target}"),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(non-string panic)");
                failures.push(format!("{name}: panicked: {msg}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} corpus files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn every_target_has_a_corpus() {
    for target in fuzz::TARGETS {
        let files = corpus_files(target);
        assert!(
            files.iter().any(|p| p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("valid-"))),
            "{target}: no valid-* seed"
        );
        let bin = fuzz::fuzz_dir().join(format!("fuzz_targets/{target}.rs"));
        assert!(bin.is_file(), "{} is missing", bin.display());
    }
    // ...and every corpus belongs to a target this test replays.
    for entry in std::fs::read_dir(fuzz::fuzz_dir().join("corpus")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            fuzz::TARGETS.contains(&name.as_str()),
            "fuzz/corpus/{name} is not replayed: add it to fuzz::TARGETS"
        );
    }
}

#[test]
fn content_decode_corpus() {
    replay("content_decode");
}

#[test]
fn certificate_decode_corpus() {
    replay("certificate_decode");
}

#[test]
fn state_key_corpus() {
    replay("state_key");
}

#[test]
fn conversation_process_corpus() {
    replay("conversation_process");
}

#[test]
fn key_package_add_corpus() {
    replay("key_package_add");
}

#[test]
fn kt_decode_corpus() {
    replay("kt_decode");
}

#[test]
fn ws_frame_decode_corpus() {
    replay("ws_frame_decode");
}

#[test]
fn device_link_decode_corpus() {
    replay("device_link_decode");
}

#[test]
fn xwing_kem_corpus() {
    replay("xwing_kem");
}

#[test]
fn archive_open_corpus() {
    replay("archive_open");
}

#[test]
fn group_policy_decode_corpus() {
    replay("group_policy_decode");
}

#[test]
fn group_links_decode_corpus() {
    replay("group_links_decode");
}

#[test]
fn invite_open_corpus() {
    replay("invite_open");
}

#[test]
fn channel_open_corpus() {
    replay("channel_open");
}

/// Writes the `channel_open` seeds: valid descriptors, posts and a link of
/// the fixed channel, and a few broken ones.
#[test]
#[ignore = "rewrites fuzz/corpus/channel_open"]
fn regenerate_channel_seeds() {
    use hush_proto::channel::{ChannelLink, Descriptor, Post, PostBody};
    let (secret, owner, key) = fuzz::channel_fixture();
    let id = secret.channel_id();
    let rng = &mut rand_core::OsRng;
    let d = Descriptor::new(&id, &owner, "news", 0, key, vec![owner.public()]).unwrap();
    let post = Post::seal(
        &id,
        0,
        &key,
        &owner,
        PostBody::Content(b"hi".to_vec()),
        5,
        rng,
    )
    .unwrap();
    let rotate = Post::seal(
        &id,
        0,
        &key,
        &owner,
        PostBody::Rotate {
            epoch: 1,
            key: [3; 32],
        },
        6,
        rng,
    )
    .unwrap();
    let opened = Post::open(&id, &key, &[owner.public()], &post).unwrap();
    let link = ChannelLink {
        server: "https://hush.example".into(),
        secret: secret.clone(),
        owner: owner.public(),
    };
    let with = |tag: u8, bytes: &[u8]| [&[tag][..], bytes].concat();
    let dir = corpus_dir("channel_open");
    std::fs::create_dir_all(&dir).unwrap();
    let mut short = post.clone();
    short.truncate(20);
    for (name, bytes) in [
        ("valid-descriptor", with(0, &d.encode())),
        (
            "valid-sealed-descriptor",
            with(1, &secret.seal_descriptor(&d, rng).unwrap()),
        ),
        ("valid-post", with(2, &opened.encode())),
        ("valid-sealed-post", with(3, &post)),
        ("valid-sealed-rotate", with(3, &rotate)),
        ("valid-link", with(4, link.to_link().as_bytes())),
        ("sealed-short", with(3, &short)),
        ("descriptor-garbage", with(0, &[1, 0, 200, 1, 2, 3])),
        ("link-bad-hex", with(4, b"https://h/channel#zz")),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn state_restore_corpus() {
    replay("state_restore");
}

#[test]
fn successor_open_corpus() {
    replay("successor_open");
}

/// The `seed-*` files of `state_restore` (a flipped, a missing chunk, a cut
/// manifest) are refused, and its `valid-*` ones (the fixture as an earlier
/// release wrote it, and converted to chunks) accepted.
#[test]
fn state_restore_seeds_are_classified() {
    for path in corpus_files("state_restore") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let accepted = fuzz::state_restore(&std::fs::read(&path).unwrap());
        if name.starts_with("seed-") {
            assert!(!accepted, "{name} was accepted");
        }
        if name.starts_with("valid-") {
            assert!(accepted, "{name} was refused");
        }
    }
}

/// Writes the `state_restore` seeds from the fixture:
/// `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_state_restore`.
#[test]
#[ignore = "writes fuzz/corpus/state_restore"]
fn regenerate_state_restore_seeds() {
    let old = std::fs::read(fuzz::fuzz_dir().join("fixture/bob.state")).unwrap();
    let mut snapshot = fuzz::decode_snapshot(&old).unwrap();
    let bob = Member::bob().unwrap();
    let entries = snapshot.iter().map(|(k, v)| (k.clone(), v.clone()));
    let device = Device::restore(bob.cert.clone(), &bob.key, entries).unwrap();
    let gid = device.conversation_ids().pop().unwrap();
    let mut conv = device.load(&gid).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(29);
    let content = Content {
        id: MessageId::generate(&mut rng),
        sent_at_ms: NOW.as_millis(),
        expire_timer_secs: None,
        kt_checkpoint: None,
        meta: Default::default(),
        body: Body::Text {
            text: "converted".into(),
            reply_to: None,
        },
    };
    conv.encrypt(&content, &mut rng).unwrap();
    fuzz::apply(&mut snapshot, device.take_changes());
    let chunks: Vec<StateKey> = snapshot
        .keys()
        .filter(|k| matches!(k, StateKey::Chunk(..)))
        .cloned()
        .collect();
    assert!(!chunks.is_empty() && !snapshot.contains_key(&StateKey::Group(gid.clone())));
    let mut flipped = snapshot.clone();
    flipped.get_mut(&chunks[0]).unwrap()[0] ^= 1;
    let mut missing = snapshot.clone();
    missing.remove(&chunks[chunks.len() - 1]);
    let mut cut = snapshot.clone();
    cut.get_mut(&StateKey::TreeManifest(gid.clone()))
        .unwrap()
        .truncate(5);
    let dir = corpus_dir("state_restore");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("valid-whole-before-0029"), &old).unwrap();
    for (name, s) in [
        ("valid-chunked", &snapshot),
        ("seed-flipped-chunk", &flipped),
        ("seed-missing-chunk", &missing),
        ("seed-cut-manifest", &cut),
    ] {
        std::fs::write(dir.join(name), fuzz::encode_snapshot(s)).unwrap();
    }
}

/// Writes the archive seeds (and the device-link history seeds):
/// `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_archive`.
#[test]
#[ignore = "writes fuzz/corpus/archive_open"]
fn regenerate_archive_seeds() {
    use hush_proto::archive::*;
    use hush_proto::device_link::{HistoryBlob, LinkHistory};
    let mut rng = ChaCha20Rng::seed_from_u64(26);
    let account = AccountKey::from_seed([6; 32]).unwrap();
    let user = Username::new("alice").unwrap();
    let cert = DeviceCertificate::issue_for_key(&account, &user, DeviceId(1), [8; 32], 1).unwrap();
    let message = |i: u64| ArchivedMessage {
        id: format!("m{i}"),
        sender: "bob".into(),
        sender_device: 1,
        outgoing: i.is_multiple_of(2),
        kind: "text".into(),
        body: Some(format!("message {i}")),
        reply_to: (i > 0).then(|| format!("m{}", i - 1)),
        attachment: None,
        sent_at: 10 + i,
        received_at: 11 + i,
        expires_at: None,
        status: "received".into(),
        edited: false,
        deleted: false,
        franking: None,
        extras: if i == 1 {
            MessageExtras {
                poll: Some(r#"{"options":["a","b"],"multiple":false}"#.into()),
                mentions: Some(r#"["alice"]"#.into()),
                mentions_me: true,
                forwarded: false,
                reactions: vec![ArchivedReaction {
                    member: "alice".into(),
                    emoji: Some("🎉".into()),
                    sent_at: 20,
                }],
                votes: vec![ArchivedVote {
                    member: "bob".into(),
                    options: "[0]".into(),
                    sent_at: 21,
                }],
                pin: Some(ArchivedPin {
                    pinned: true,
                    member: "bob".into(),
                    sent_at: 22,
                }),
            }
        } else {
            MessageExtras::default()
        },
    };
    let archive = Archive {
        username: "alice".into(),
        created_at_ms: 99,
        account_seed: Some(account.to_seed()),
        kt_signing_key: vec![7; 32],
        kt_vrf_key: vec![9; 32],
        devices: vec![ArchivedDevice {
            certificate: cert.encode(),
            name: Some("phone".into()),
            removed: false,
        }],
        settings: vec![("presence".into(), b"contacts".to_vec())],
        contacts: vec![ArchivedContact {
            username: "bob".into(),
            account_key: vec![4; 32],
            first_seen: 1,
            verified: true,
            verified_key: Some(vec![4; 32]),
            key_changed: 0,
            blocked: false,
            profile_key: None,
            display_name: Some("Bob".into()),
        }],
        conversations: vec![ArchivedConversation {
            group_id: vec![1; 32],
            kind: "group".into(),
            peer: None,
            name: Some("family".into()),
            disappear_secs: None,
            active: true,
            created_at: 5,
            messages: (0..3).map(message).collect(),
        }],
    };
    let mut link = archive.clone();
    link.account_seed = None;
    let key = fuzz::ARCHIVE_KEY;
    let backup = seal(&key, Purpose::Backup, &archive, &mut rng);
    let with = |tag: u8, body: &[u8]| [&[tag][..], body].concat();
    let mut newer = backup.clone();
    newer[8] = FORMAT_VERSION + 1;
    let seeds = [
        ("valid-backup", with(0, &backup)),
        (
            "valid-link",
            with(1, &seal(&key, Purpose::Link, &link, &mut rng)),
        ),
        ("valid-plaintext", with(2, &archive.encode())),
        ("seed-truncated", with(0, &backup[..backup.len() - 7])),
        ("seed-newer", with(0, &newer)),
        (
            "seed-wrong-key",
            with(0, &seal(&[1; 32], Purpose::Backup, &archive, &mut rng)),
        ),
        (
            "seed-garbage-inside",
            with(
                0,
                &seal_plaintext(&key, Purpose::Backup, vec![1, 0, 0, 0, 9], &mut rng),
            ),
        ),
    ];
    let dir = corpus_dir("archive_open");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in seeds {
        std::fs::write(dir.join(name), data).unwrap();
    }
    let history = LinkHistory {
        blob: Some(HistoryBlob {
            blob_id: "0123456789abcdef".into(),
            key: zeroize::Zeroizing::new([5; 32]),
            size: 1234,
            messages: 3,
        }),
    };
    let dir = corpus_dir("device_link_decode");
    std::fs::write(dir.join("valid-history"), with(5, &history.encode())).unwrap();
    let none = LinkHistory { blob: None };
    std::fs::write(dir.join("valid-history-none"), with(5, &none.encode())).unwrap();
}

/// Writes the device-link seeds only:
/// `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_device_link`.
#[test]
#[ignore = "writes fuzz/corpus/device_link_decode"]
fn regenerate_device_link_seeds() {
    use hush_proto::device_link::*;
    let mut rng = ChaCha20Rng::seed_from_u64(23);
    let keys = fuzz::device_link_code().keys();
    let account = AccountKey::from_seed([6; 32]).unwrap();
    let user = Username::new("alice").unwrap();
    let cert = DeviceCertificate::issue_for_key(&account, &user, DeviceId(2), [3; 32], 9).unwrap();
    let first = DeviceCertificate::issue_for_key(&account, &user, DeviceId(1), [8; 32], 1).unwrap();
    let welcome = LinkWelcome {
        account_seed: account.to_seed(),
        certificate: cert,
        approver: 1,
        kt_signing_key: [7; 32],
        kt_vrf_key: vec![9; 32],
        roster: vec![RosterEntry {
            certificate: first,
            removed: false,
        }],
        wanted: vec![65100, 1],
    }
    .encode();
    let ready = LinkReady {
        name: "laptop".into(),
        key_packages: vec![vec![1, 2, 3]],
    }
    .encode();
    let with = |tag: u8, body: &[u8]| [&[tag][..], body].concat();
    let seeds = [
        (
            "valid-code",
            with(0, fuzz::device_link_code().encode().as_bytes()),
        ),
        (
            "valid-welcome-frame",
            with(
                1,
                &seal_frame(&keys.to_new, FrameKind::Welcome, 0, &welcome, &mut rng),
            ),
        ),
        (
            "valid-ready-frame",
            with(
                2,
                &seal_frame(&keys.to_existing, FrameKind::Ready, 0, &ready, &mut rng),
            ),
        ),
        ("valid-welcome", with(3, &welcome)),
        ("valid-ready", with(4, &ready)),
        ("seed-code-typo", with(0, b"aaaaa-bbbbb")),
        (
            "seed-frame-wrong-direction",
            with(
                1,
                &seal_frame(&keys.to_existing, FrameKind::Welcome, 0, &welcome, &mut rng),
            ),
        ),
    ];
    let dir = corpus_dir("device_link_decode");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in seeds {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

/// The WebSocket seeds are made without randomness: the committed files
/// must be exactly what `fuzz::ws_frame_seeds` makes, and each `valid-*`
/// one accepted, each `seed-*` one refused.
#[test]
fn ws_frame_seeds_are_committed_and_classified() {
    for (name, data) in fuzz::ws_frame_seeds() {
        assert_eq!(
            seed("ws_frame_decode", name),
            data,
            "{name} is stale: `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_ws`"
        );
        assert_eq!(
            fuzz::ws_frame_decode(&data),
            name.starts_with("valid-"),
            "{name}"
        );
    }
}

/// Writes the WebSocket seeds only (no MLS fixture change):
/// `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_ws`.
#[test]
#[ignore = "writes fuzz/corpus/ws_frame_decode"]
fn regenerate_ws_frame_seeds() {
    let dir = corpus_dir("ws_frame_decode");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in fuzz::ws_frame_seeds() {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

#[test]
fn kt_batch_check_corpus() {
    replay("kt_batch_check");
}

/// The batched-lookup seeds are plain JSON: the committed files must be
/// exactly what `fuzz::kt_batch_seeds` makes, `valid-*` accepted, `seed-*`
/// refused.
#[test]
fn kt_batch_seeds_are_committed_and_classified() {
    for (name, data) in fuzz::kt_batch_seeds() {
        assert_eq!(
            seed("kt_batch_check", name),
            data,
            "{name} is stale: `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_kt_batch`"
        );
        assert_eq!(
            fuzz::kt_batch_check(&data),
            name.starts_with("valid-"),
            "{name}"
        );
    }
}

/// Writes the batched-lookup seeds only:
/// `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_kt_batch`.
#[test]
#[ignore = "writes fuzz/corpus/kt_batch_check"]
fn regenerate_kt_batch_seeds() {
    let dir = corpus_dir("kt_batch_check");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in fuzz::kt_batch_seeds() {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

#[test]
fn message_framing_corpus() {
    replay("message_framing");
}

#[test]
fn sealed_open_corpus() {
    replay("sealed_open");
}

/// Writes the `sealed_open` seeds: envelopes sealed to the fixed key, with
/// and without a relay tag.
/// `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_sealed`
#[test]
#[ignore]
fn regenerate_sealed_open_seeds() {
    use hush_proto::sealed::*;
    let key = DeviceSigningKey::from_seed([7; 32]).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let account = AccountKey::generate(&mut rng).unwrap();
    let user = Username::new("bob").unwrap();
    let cert = DeviceCertificate::issue(&account, &user, DeviceId(1), &key, 5).unwrap();
    let to = SealKey::of(&cert).unwrap();
    let dir = corpus_dir("sealed_open");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, tag) in [("valid-tagged", Some([9u8; 32])), ("valid-untagged", None)] {
        let body = seal_body(b"an MLS message", &mut rng).unwrap();
        let header = body.header(&to, tag.as_ref()).unwrap();
        let env = sealed_envelope(&header, &body.body);
        assert!(open_envelope(&fuzz::sealed_open_key(), &env).is_ok());
        std::fs::write(dir.join(name), env).unwrap();
    }
    std::fs::write(dir.join("seed-bare-mls"), b"\x00\x01\x00\x02").unwrap();
}

#[test]
fn receipt_open_corpus() {
    replay("receipt_open");
}

/// Writes the `receipt_open` seeds: bob's receipts sealed to alice's device
/// 1 (alone, and with her device 2), and their signed parts.
/// `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_receipt`
#[test]
#[ignore]
fn regenerate_receipt_open_seeds() {
    use hush_proto::receipt::*;
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let (key, bob_cert) = fuzz::receipt_keys();
    let bob = DeviceSigningKey::from_seed([8; 32]).unwrap();
    let alice_account = AccountKey::from_seed([5; 32]).unwrap();
    let alice = Username::new("alice").unwrap();
    let device = |id: u32, seed: u8| {
        let k = DeviceSigningKey::from_seed([seed; 32]).unwrap();
        DeviceCertificate::issue(&alice_account, &alice, DeviceId(id), &k, 5).unwrap()
    };
    let dir = corpus_dir("receipt_open");
    std::fs::create_dir_all(&dir).unwrap();
    let seeds = [
        (
            "delivered-one",
            ReceiptKind::Delivered,
            1,
            vec![device(1, 7)],
        ),
        (
            "read-many",
            ReceiptKind::Read,
            40,
            vec![device(2, 9), device(1, 7)],
        ),
    ];
    for (name, kind, n, to) in seeds {
        let receipt = Receipt {
            group_id: vec![0xab; 32],
            from: bob_cert.username().clone(),
            from_device: DeviceId(1),
            to: alice.clone(),
            kind,
            sent_at_ms: 1_700_000_000_000,
            ids: (0..n).map(|i| MessageId([i as u8; 16])).collect(),
        };
        let frame = receipt.seal(&bob, &to, &mut rng).unwrap();
        let signed = open(&key, DeviceId(1), &frame).unwrap();
        assert_eq!(signed.clone().verify(&bob_cert, &alice).unwrap(), receipt);
        let mut whole = vec![0];
        whole.extend_from_slice(&frame);
        std::fs::write(dir.join(format!("valid-frame-{name}")), whole).unwrap();
        let mut part = vec![1];
        part.extend_from_slice(&signed.encode());
        std::fs::write(dir.join(format!("valid-signed-{name}")), part).unwrap();
    }
    std::fs::write(dir.join("seed-magic-only"), b"\x00\xfeHR\x01\x01").unwrap();
}

#[test]
fn self_sync_open_corpus() {
    replay("self_sync_open");
}

/// Writes the `self_sync_open` seeds: alice's device 1 telling her device 2
/// (alone, and with device 3) every kind of change, and the signed parts.
/// `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_self_sync`
#[test]
#[ignore]
fn regenerate_self_sync_open_seeds() {
    use hush_proto::self_sync::*;
    let mut rng = ChaCha20Rng::seed_from_u64(19);
    let (key, one_cert) = fuzz::self_sync_keys();
    let one = DeviceSigningKey::from_seed([7; 32]).unwrap();
    let account = AccountKey::from_seed([5; 32]).unwrap();
    let alice = Username::new("alice").unwrap();
    let device = |id: u32, seed: u8| {
        let k = DeviceSigningKey::from_seed([seed; 32]).unwrap();
        DeviceCertificate::issue(&account, &alice, DeviceId(id), &k, 5).unwrap()
    };
    let bob = Username::new("bob").unwrap();
    let every = vec![
        SyncOp::Read {
            group_id: vec![0xab; 32],
            ids: (0..3).map(|i| MessageId([i; 16])).collect(),
        },
        SyncOp::Blocked {
            user: bob.clone(),
            blocked: true,
        },
        SyncOp::Verified {
            user: bob,
            account_key: [4; 32],
        },
        SyncOp::ProfileKey { key: [3; 32] },
        SyncOp::Presence(Presence::Contacts),
        SyncOp::DeviceName {
            device: DeviceId(2),
            name: "laptop".into(),
        },
        SyncOp::DeviceRemoved {
            device: DeviceId(4),
        },
        SyncOp::ContactName {
            user: Username::new("carol").unwrap(),
            name: "Carol C.".into(),
        },
    ];
    let dir = corpus_dir("self_sync_open");
    std::fs::create_dir_all(&dir).unwrap();
    let seeds = [
        ("one-read", every[..1].to_vec(), vec![device(2, 9)]),
        ("every-kind", every, vec![device(3, 11), device(2, 9)]),
    ];
    for (name, ops, to) in seeds {
        let sync = SelfSync {
            account: alice.clone(),
            from_device: DeviceId(1),
            sent_at_ms: 1_700_000_000_000,
            ops: ops
                .into_iter()
                .enumerate()
                .map(|(i, op)| StampedOp {
                    at_ms: 1_700_000_000_000 + i as u64,
                    op,
                })
                .collect(),
        };
        let frame = sync.seal(&one, &to, &mut rng).unwrap();
        let signed = open(&key, DeviceId(2), &frame).unwrap();
        assert_eq!(signed.clone().verify(&one_cert, &alice).unwrap(), sync);
        let mut whole = vec![0];
        whole.extend_from_slice(&frame);
        std::fs::write(dir.join(format!("valid-frame-{name}")), whole).unwrap();
        let mut part = vec![1];
        part.extend_from_slice(&signed.encode());
        std::fs::write(dir.join(format!("valid-signed-{name}")), part).unwrap();
    }
    std::fs::write(dir.join("seed-magic-only"), b"\x00\xfeHY\x01\x01").unwrap();
}

/// Writes the `tree_blob_open` seeds: a pointer and its sealed tree.
/// `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_tree`
#[test]
#[ignore]
fn regenerate_tree_blob_seeds() {
    let (group, epoch) = fuzz::TREE_BLOB_GROUP;
    let dir = corpus_dir("tree_blob_open");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, tree, len) in [
        ("valid-small", &b"a tree"[..], 64),
        ("valid-padded", &[5u8; 300][..], 1024),
    ] {
        let (pointer, blob) =
            hush_proto::big_group::seal_tree_blob("fuzzBlob_1", [3; 32], len, group, epoch, tree)
                .unwrap();
        let mut input = (pointer.len() as u16).to_be_bytes().to_vec();
        input.extend_from_slice(&pointer);
        input.extend_from_slice(&blob);
        assert!(fuzz::tree_blob_open(&input));
        std::fs::write(dir.join(name), input).unwrap();
    }
    std::fs::write(dir.join("seed-empty-pointer"), b"\x00\x00").unwrap();
}

#[test]
fn tree_blob_open_corpus() {
    replay("tree_blob_open");
}

#[test]
fn commit_blob_open_corpus() {
    replay("commit_blob_open");
}

/// Writes the `commit_blob_open` seeds: pointers and their sealed blobs
/// (what is inside is not an MLS commit: the blob opens, the check after
/// it refuses), and a pointer alone.
/// `cargo test -p hush-proto --test fuzz_corpus -- --ignored regenerate_commit`
#[test]
#[ignore]
fn regenerate_commit_blob_seeds() {
    let dir = corpus_dir("commit_blob_open");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    for (name, commit) in [("valid-small", &b"a commit"[..]), ("valid-empty", &[][..])] {
        let len = hush_proto::commit_blob::commit_blob_len(commit.len());
        let out = hush_proto::commit_blob::seal_commit_with(
            &fuzz::COMMIT_POINTER_KEY,
            [5; 32],
            "fuzzBlob_2",
            len,
            b"fuzz group",
            4,
            commit,
            &mut rng,
        )
        .unwrap();
        let mut input = (out.pointer.len() as u16).to_be_bytes().to_vec();
        input.extend_from_slice(&out.pointer);
        input.extend_from_slice(&out.blob);
        assert!(fuzz::commit_blob_open(&input));
        std::fs::write(dir.join(name), &input).unwrap();
        if name == "valid-small" {
            let n = 2 + out.pointer.len();
            std::fs::write(dir.join("seed-pointer-only"), &input[..n]).unwrap();
        }
    }
    std::fs::write(dir.join("seed-magic-only"), b"\x00\x04\xfeHC\x01").unwrap();
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = corpus_dir(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The MLS targets restore bob's conversation only after an input changed its
/// state: inputs refused early leave it (and its serialisation) untouched, so
/// the fuzzer does not pay for a restore per input, and every input still
/// meets the same conversation.
#[test]
fn fixture_is_restored_only_after_a_change() {
    let mut fixture = Fixture::load().unwrap();
    let message = seed("conversation_process", "valid-message-text");
    let own = seed("conversation_process", "seed-own-message");
    // PrivateMessage: u16 version, u16 wire format, then the group id.
    let mut wrong_group = message.clone();
    wrong_group[10] ^= 1;
    let mut tampered = message.clone();
    *tampered.last_mut().unwrap() ^= 1;

    for input in [b"garbage".as_slice(), &own, &wrong_group, &own] {
        assert!(fixture.process(input).is_err());
    }
    assert_eq!(fixture.restores, 1, "a refused input changed bob's state");

    // A copy whose ciphertext was altered is refused and rolled back (see
    // `tampered_copy_does_not_burn_the_message_key`), so it changes nothing...
    assert!(matches!(
        fixture.process(&tampered),
        Err(ProtoError::Tampered)
    ));
    assert_eq!(fixture.restores, 1, "a tampered copy changed bob's state");
    // ...and the genuine message opens; it changes the state (its key is
    // used), so the next input starts over from the snapshot and opens it too.
    assert!(matches!(
        fixture.process(&message),
        Ok(Incoming::Message(_))
    ));
    assert!(matches!(
        fixture.process(&message),
        Ok(Incoming::Message(_))
    ));
    assert_eq!(fixture.restores, 2);
}

/// Found while building the fuzz fixture: when the sender data of an
/// application message decrypts but its ciphertext does not (a copy altered
/// in transit, or forged by the relay), mls-rs has already taken the message
/// key out of the secret tree. `process` now rolls back to the persisted
/// state on any refusal, so the genuine message arriving later still opens.
#[test]
fn tampered_copy_does_not_burn_the_message_key() {
    let message = seed("conversation_process", "valid-message-text");
    let mut tampered = message.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let snapshot =
        fuzz::decode_snapshot(&std::fs::read(fuzz::fuzz_dir().join("fixture/bob.state")).unwrap())
            .unwrap();
    let bob = Member::bob().unwrap();
    let group_id = snapshot
        .keys()
        .find_map(|k| match k {
            StateKey::Group(id) => Some(id.clone()),
            _ => None,
        })
        .unwrap();
    let device = Device::restore(
        bob.cert.clone(),
        &bob.key,
        snapshot.iter().map(|(k, v)| (k.clone(), v.clone())),
    )
    .unwrap();
    let mut conv = device.load(&group_id).unwrap();
    assert!(matches!(
        conv.process(&tampered, NOW),
        Err(ProtoError::Tampered)
    ));
    let genuine = conv.process(&message, NOW);
    assert!(
        matches!(genuine, Ok(Incoming::Message(_))),
        "the genuine message after an altered copy: {genuine:?}"
    );
}

// ---- seed generation ----------------------------------------------------

/// Writes `fuzz/fixture/bob.state` and the `valid-*` / `seed-*` files of every
/// corpus (replacing earlier ones; fuzzer-found files are left alone), then
/// checks each against a fixture restored from the new snapshot. The MLS
/// seeds only make sense for the snapshot written with them.
#[test]
#[ignore = "rewrites fuzz/fixture and the hand-made seeds; run by hand"]
fn regenerate_fuzz_seeds() {
    let mut seeds: Vec<(&str, String, Vec<u8>)> = Vec::new();
    let mut seed = |target: &'static str, name: &str, data: Vec<u8>| {
        seeds.push((target, name.to_owned(), data));
    };

    for (name, content) in contents() {
        seed("content_decode", &format!("valid-{name}"), content.encode());
    }
    // Forward compatibility: an unknown optional field, and an unknown kind.
    let mut extra = contents()[0].1.encode();
    extra.extend_from_slice(&[0x90, 0x00, 0, 0, 0, 2, 0xab, 0xcd]);
    seed("content_decode", "valid-unknown-optional-field", extra);

    let alice = Member::alice().unwrap();
    let bob = Member::bob().unwrap();
    let carol = Member::carol().unwrap();
    seed("certificate_decode", "valid-alice", alice.cert.encode());
    seed("certificate_decode", "valid-carol", carol.cert.encode());
    let mut forged = bob.cert.encode();
    *forged.last_mut().unwrap() ^= 1;
    seed("certificate_decode", "seed-bad-signature", forged);
    for (name, data) in fuzz::ws_frame_seeds() {
        seed("ws_frame_decode", name, data);
    }

    {
        use hush_proto::kt::{KtDevice, KtValue, SignedRoot};
        let tagged = |tag: u8, bytes: Vec<u8>| [vec![tag], bytes].concat();
        let value = KtValue {
            account_key: Some(alice.cert.account_key()),
            devices: vec![
                KtDevice {
                    device_id: 1,
                    signature_key: [3; 32],
                },
                KtDevice {
                    device_id: 2,
                    signature_key: [4; 32],
                },
            ],
        };
        seed("kt_decode", "valid-value", tagged(0, value.encode()));
        seed(
            "kt_decode",
            "valid-deleted",
            tagged(0, KtValue::deleted().encode()),
        );
        let root = SignedRoot {
            epoch: 7,
            root_hash: [5; 32],
            signature: [6; 64],
        };
        seed("kt_decode", "valid-root", tagged(1, root.encode()));
        seed(
            "kt_decode",
            "seed-lookup-junk",
            tagged(2, vec![0x0a, 0x03, 1, 2, 3, 0x10, 0x01]),
        );
        seed(
            "kt_decode",
            "seed-history-junk",
            tagged(3, vec![0x0a, 0x00, 0x12, 0x00]),
        );
        let mut unsorted = value.encode();
        unsorted.swap(39, 75);
        seed("kt_decode", "seed-value-unsorted", tagged(0, unsorted));
    }

    for (name, key) in [
        ("group", StateKey::Group(vec![0x11; 32])),
        ("tree", StateKey::Tree(vec![0x22; 32])),
        ("epoch", StateKey::Epoch(vec![0x33; 32], 7)),
        ("key-package", StateKey::KeyPackage(vec![0x44; 32])),
        ("empty-id", StateKey::Group(Vec::new())),
    ] {
        seed("state_key", &format!("valid-{name}"), key.to_bytes());
    }

    // The conversation: alice creates it with bob, bob joins.
    let mut rng = ChaCha20Rng::seed_from_u64(0xF022);
    let alice_dev = Device::new(alice.cert.clone(), &alice.key).unwrap();
    let bob_dev = Device::new(bob.cert.clone(), &bob.key).unwrap();
    let carol_dev = Device::new(carol.cert.clone(), &carol.key).unwrap();
    let bob_kp = bob_dev
        .generate_key_package(Suite::Hybrid, false, NOW)
        .unwrap();
    let (mut chat, commit) = alice_dev
        .create_conversation(
            Suite::Hybrid,
            &ConversationInfo::group("fuzz"),
            &[bob_kp.message],
            NOW,
        )
        .unwrap();
    let mut bob_chat = bob_dev
        .join(&commit.unwrap().welcome.unwrap(), NOW)
        .unwrap();
    // Bob's own message: processing it is refused (own message).
    let own = bob_chat.encrypt(&contents()[0].1, &mut rng).unwrap();
    seed("conversation_process", "seed-own-message", own.message);
    let mut state = Snapshot::new();
    fuzz::apply(&mut state, bob_dev.take_changes());
    let snapshot = fuzz::encode_snapshot(&state);

    for (name, content) in contents() {
        let out = chat.encrypt(&content, &mut rng).unwrap();
        seed(
            "conversation_process",
            &format!("valid-message-{name}"),
            out.message,
        );
    }
    let carol_kp = |suite, last_resort| {
        carol_dev
            .generate_key_package(suite, last_resort, NOW)
            .unwrap()
            .message
    };
    let pending = chat.self_update(NOW).unwrap();
    chat.discard_commit().unwrap();
    seed(
        "conversation_process",
        "valid-commit-update",
        pending.commit,
    );
    let pending = chat.rename("renamed", NOW).unwrap();
    chat.discard_commit().unwrap();
    seed(
        "conversation_process",
        "valid-commit-rename",
        pending.commit,
    );
    let pending = chat
        .add_devices(&[carol_kp(Suite::Hybrid, false)], NOW)
        .unwrap();
    chat.discard_commit().unwrap();
    seed("conversation_process", "valid-commit-add", pending.commit);
    seed(
        "conversation_process",
        "seed-welcome",
        pending.welcome.unwrap(),
    );
    seed(
        "conversation_process",
        "seed-key-package",
        carol_kp(Suite::Hybrid, false),
    );
    for (i, proposal) in chat.leave().unwrap().into_iter().enumerate() {
        seed(
            "conversation_process",
            &format!("valid-proposal-leave-{i}"),
            proposal,
        );
    }

    seed(
        "key_package_add",
        "valid-carol-pq",
        carol_kp(Suite::Hybrid, false),
    );
    seed(
        "key_package_add",
        "valid-carol-pq-last-resort",
        carol_kp(Suite::Hybrid, true),
    );
    seed(
        "key_package_add",
        "seed-carol-classical",
        carol_kp(Suite::Classical, false),
    );
    // Alice is already a member: a second leaf for her device is refused.
    let alice_kp = alice_dev
        .generate_key_package(Suite::Hybrid, false, NOW)
        .unwrap();
    seed(
        "key_package_add",
        "seed-alice-already-member",
        alice_kp.message,
    );

    // Write, replacing the previous hand-made seeds.
    let fixture_dir = fuzz::fuzz_dir().join("fixture");
    std::fs::create_dir_all(&fixture_dir).unwrap();
    std::fs::write(fixture_dir.join("bob.state"), &snapshot).unwrap();
    for target in fuzz::TARGETS {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if is_hand_made(&path) {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
    for (target, name, data) in &seeds {
        std::fs::write(corpus_dir(target).join(name), data).unwrap();
    }

    // Check them against the snapshot just written, not the process-wide one.
    let mut fixture = Fixture::new(fuzz::decode_snapshot(&snapshot).unwrap()).unwrap();
    for (target, name, data) in &seeds {
        let accepted = match *target {
            "conversation_process" => {
                let result = fixture.process(data);
                println!("{target}/{name}: {:?}", result.as_ref().map(|_| ()));
                result.is_ok()
            }
            "key_package_add" => {
                let result = fixture.add(data);
                println!("{target}/{name}: {result:?}");
                result.is_ok()
            }
            other => fuzz::run(other, data).unwrap(),
        };
        assert_eq!(
            accepted,
            name.starts_with("valid-"),
            "{target}/{name} accepted: {accepted}"
        );
    }
}

fn is_hand_made(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy())
        .is_some_and(|n| n.starts_with("valid-") || n.starts_with("seed-"))
}

/// One content of every kind.
fn contents() -> Vec<(&'static str, Content)> {
    let id = |n: u8| MessageId([n; 16]);
    let content = |n: u8, body| Content {
        id: id(n),
        sent_at_ms: NOW.as_millis(),
        expire_timer_secs: None,
        kt_checkpoint: None,
        meta: Default::default(),
        body,
    };
    let pointer = AttachmentPointer {
        blob_id: "blob-0123456789abcdef".into(),
        key: [5; 32],
        digest: [6; 32],
        size: 123_456,
        media_type: "image/png".into(),
        file_name: "cat.png".into(),
    };
    vec![
        (
            "text",
            content(
                1,
                Body::Text {
                    text: "hello, wörld".into(),
                    reply_to: None,
                },
            ),
        ),
        (
            "text-reply-expiring",
            Content {
                expire_timer_secs: Some(3600),
                kt_checkpoint: None,
                ..content(
                    2,
                    Body::Text {
                        text: "re".into(),
                        reply_to: Some(id(1)),
                    },
                )
            },
        ),
        (
            "attachment",
            content(
                3,
                Body::Attachment {
                    pointer: pointer.clone(),
                    caption: None,
                    reply_to: None,
                },
            ),
        ),
        (
            "attachment-caption-reply",
            content(
                4,
                Body::Attachment {
                    pointer,
                    caption: Some("look".into()),
                    reply_to: Some(id(1)),
                },
            ),
        ),
        (
            "receipt-delivered",
            content(
                5,
                Body::Receipt {
                    kind: ReceiptKind::Delivered,
                    ids: vec![id(1), id(2)],
                },
            ),
        ),
        (
            "receipt-read-empty",
            content(
                6,
                Body::Receipt {
                    kind: ReceiptKind::Read,
                    ids: Vec::new(),
                },
            ),
        ),
        ("typing", content(7, Body::Typing { started: true })),
        (
            "presence",
            content(
                8,
                Body::Presence {
                    online: false,
                    last_seen_ms: Some(NOW.as_millis() - 60_000),
                },
            ),
        ),
        (
            "timer",
            content(
                9,
                Body::DisappearingTimer {
                    seconds: Some(86_400),
                },
            ),
        ),
        (
            "timer-off",
            content(10, Body::DisappearingTimer { seconds: None }),
        ),
        (
            "edit",
            content(
                11,
                Body::Edit {
                    target: id(1),
                    text: "hello, world".into(),
                },
            ),
        ),
        ("delete", content(12, Body::Delete { target: id(2) })),
        (
            "profile-key",
            content(13, Body::ProfileKey { key: [9; 32] }),
        ),
        (
            "unsupported",
            content(14, Body::Unsupported { kind: 0x0100 }),
        ),
        (
            "channel-admin",
            content(
                21,
                Body::ChannelAdmin {
                    grant: hush_proto::ChannelGrant {
                        link: format!("https://hush.example/channel#{}", "ab".repeat(64)),
                        admin_seed: [5; 32],
                        post_token: vec![6; 32],
                        descriptor: vec![1, 0, 1, b'n'],
                    },
                },
            ),
        ),
        (
            "text-mentions",
            Content {
                meta: hush_proto::PostMeta {
                    mentions: vec![
                        Username::new("bob").unwrap(),
                        Username::new("carol.b").unwrap(),
                    ],
                    forwarded: false,
                },
                ..content(
                    17,
                    Body::Text {
                        text: "@bob @carol.b look".into(),
                        reply_to: None,
                    },
                )
            },
        ),
        (
            "reaction",
            content(
                15,
                Body::Reaction {
                    target: id(1),
                    emoji: Some("👍🏽".into()),
                },
            ),
        ),
        (
            "attachment-forwarded",
            Content {
                meta: hush_proto::PostMeta {
                    mentions: Vec::new(),
                    forwarded: true,
                },
                ..content(
                    19,
                    Body::Attachment {
                        pointer: AttachmentPointer {
                            blob_id: "blob-fedcba9876543210".into(),
                            key: [7; 32],
                            digest: [8; 32],
                            size: 42,
                            media_type: "text/plain".into(),
                            file_name: "notes.txt".into(),
                        },
                        caption: Some("fyi".into()),
                        reply_to: None,
                    },
                )
            },
        ),
        (
            "poll",
            content(
                20,
                Body::Poll {
                    question: "Lunch?".into(),
                    options: vec!["Pizza".into(), "Ramen 🍜".into(), "Salad".into()],
                    multiple: true,
                },
            ),
        ),
        (
            "vote",
            content(
                21,
                Body::Vote {
                    poll: id(20),
                    options: vec![0, 2],
                },
            ),
        ),
        (
            "vote-retracted",
            content(
                22,
                Body::Vote {
                    poll: id(20),
                    options: Vec::new(),
                },
            ),
        ),
        (
            "pin",
            content(
                18,
                Body::Pin {
                    target: id(1),
                    pinned: true,
                },
            ),
        ),
        (
            "reaction-removed",
            content(
                16,
                Body::Reaction {
                    target: id(1),
                    emoji: None,
                },
            ),
        ),
    ]
}

/// Writes only the `content_decode` seeds of [`contents`] (deterministic,
/// so the existing ones come out the same), without touching the MLS
/// fixture: `cargo test -p hush-proto --test fuzz_corpus -- --ignored
/// regenerate_content`.
#[test]
#[ignore = "writes fuzz/corpus/content_decode"]
fn regenerate_content_seeds() {
    let dir = corpus_dir("content_decode");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, content) in contents() {
        std::fs::write(dir.join(format!("valid-{name}")), content.encode()).unwrap();
    }
}
