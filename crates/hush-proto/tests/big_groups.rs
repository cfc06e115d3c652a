//! Big groups: a hybrid-suite tree too large for a Welcome travels out of
//! band, a tampered tree blob is refused with nothing changed, and the group
//! size limit holds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_proto::big_group::{BIG_GROUP_LEAVES, add_batches};
use hush_proto::commit_blob::{self, commit_blob_len};
use hush_proto::*;
use hush_wire::limits::MAX_MESSAGE_LEN;
use rand_core::SeedableRng;

const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);

fn device(name: &str, rng: &mut rand_chacha::ChaCha20Rng) -> Device {
    let account = AccountKey::generate(rng).unwrap();
    let key = DeviceSigningKey::generate(rng).unwrap();
    let user = Username::new(name).unwrap();
    let cert =
        DeviceCertificate::issue(&account, &user, DeviceId(1), &key, NOW.as_millis()).unwrap();
    Device::new(cert, &key).unwrap()
}

fn key_packages(n: usize, rng: &mut rand_chacha::ChaCha20Rng) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            device(&format!("member{i}"), rng)
                .generate_key_package(Suite::Hybrid, false, NOW)
                .unwrap()
                .message
        })
        .collect()
}

/// What a commit that adds one batch produced, with the slot it used.
struct Added {
    commit: PendingCommit,
    slot: Option<TreeSlot>,
}

fn add(conv: &mut Conversation, kps: &[Vec<u8>], n: &mut u32) -> Added {
    let slot = conv.tree_blob_len(kps).unwrap().map(|len| {
        *n += 1;
        TreeSlot {
            blob_id: format!("slot{n}"),
            len,
        }
    });
    let commit = conv.add_devices_via(kps, NOW, slot.as_ref()).unwrap();
    assert!(
        commit.commit.len() <= MAX_MESSAGE_LEN,
        "commit {}",
        commit.commit.len()
    );
    let welcome = commit.welcome.as_ref().unwrap();
    assert!(
        welcome.len() <= MAX_MESSAGE_LEN,
        "welcome {}",
        welcome.len()
    );
    conv.confirm_commit().unwrap();
    Added { commit, slot }
}

#[test]
fn a_tree_over_the_message_limit_travels_out_of_band_and_tampering_is_refused() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(14);
    let creator = device("creator", &mut rng);
    let joiner = device("joiner", &mut rng);
    // Enough hybrid leaves that the tree alone is over the message limit.
    let mut kps = key_packages(400, &mut rng);
    kps.push(
        joiner
            .generate_key_package(Suite::Hybrid, false, NOW)
            .unwrap()
            .message,
    );
    let first = BIG_GROUP_LEAVES - 1;
    let (mut conv, commit) = creator
        .create_conversation(
            Suite::Hybrid,
            &ConversationInfo::group("big"),
            &kps[..first],
            NOW,
        )
        .unwrap();
    assert!(
        commit.unwrap().tree_blob.is_none(),
        "a small group's tree is in-band"
    );
    let mut slots = 0;
    let mut last = None;
    for batch in add_batches(&kps[first..], first + 1) {
        last = Some(add(&mut conv, batch, &mut slots));
    }
    assert_eq!(conv.members().len(), kps.len() + 1);
    let tree_len = conv.members().len();
    let Added { commit, slot } = last.unwrap();
    let slot = slot.expect("a big group's tree goes out of band");
    let blob = commit
        .tree_blob
        .clone()
        .expect("the commit sealed its tree");
    assert_eq!(blob.blob_id, slot.blob_id);
    assert_eq!(blob.bytes.len() as u64, slot.len);
    assert!(
        blob.bytes.len() > MAX_MESSAGE_LEN,
        "{tree_len} hybrid leaves: the tree blob is {} bytes",
        blob.bytes.len()
    );
    let welcome = commit.welcome.unwrap();

    // The joiner learns where the tree is only from the Welcome.
    let at = joiner.welcome_tree(&welcome).unwrap().expect("a pointer");
    assert_eq!(
        (at.blob_id.as_str(), at.len),
        (slot.blob_id.as_str(), slot.len)
    );
    joiner.take_changes();

    // A server that drops, truncates, flips or swaps the blob gets nowhere.
    let mut flipped = blob.bytes.clone();
    flipped[1000] ^= 1;
    let mut swapped_for_padding = blob.bytes.clone();
    let n = swapped_for_padding.len();
    swapped_for_padding[n - 20] ^= 1;
    let other = {
        let mut other = blob.bytes.clone();
        other.reverse();
        other
    };
    assert!(matches!(
        joiner.join_with_tree(&welcome, None, NOW),
        Err(ProtoError::InvalidRequest(_))
    ));
    for bad in [
        &blob.bytes[..blob.bytes.len() - 1],
        &flipped[..],
        &swapped_for_padding[..],
        &other[..],
        &[][..],
    ] {
        assert!(matches!(
            joiner.join_with_tree(&welcome, Some(bad), NOW),
            Err(ProtoError::Tampered)
        ));
    }
    assert!(
        joiner.take_changes().is_empty(),
        "a refused join stores nothing"
    );
    assert!(joiner.conversation_ids().is_empty());

    // The genuine blob joins, and the group works.
    let mut joined = joiner
        .join_with_tree(&welcome, Some(&blob.bytes), NOW)
        .unwrap();
    assert_eq!(joined.members().len(), tree_len);
    assert_eq!(joined.epoch(), conv.epoch());
    let hello = Content {
        id: MessageId::generate(&mut rng),
        sent_at_ms: NOW.as_millis(),
        expire_timer_secs: None,
        kt_checkpoint: None,
        meta: Default::default(),
        body: Body::Text {
            text: "hello, big group".into(),
            reply_to: None,
        },
    };
    let out = conv.encrypt(&hello, &mut rng).unwrap();
    match joined.process(&out.message, NOW).unwrap() {
        Incoming::Message(m) => assert_eq!(m.content, hello),
        other => panic!("unexpected {other:?}"),
    }

    // The creator's first self-update in the fresh tree is encrypted to
    // nearly every leaf: over the message limit. It travels out of band
    // (decision 0021): sealed into a blob, a pointer in its place; the
    // joiner fetches (here: is handed) the blob and follows.
    let first = conv.self_update(NOW).unwrap();
    assert!(
        first.commit.len() > MAX_MESSAGE_LEN,
        "{tree_len} hybrid leaves: the creator's first self-update is {} bytes",
        first.commit.len()
    );
    let len = commit_blob_len(first.commit.len());
    let sealed = conv
        .seal_commit_out_of_band(&first.commit, "commitBlob_0", len, &mut rng)
        .unwrap();
    conv.confirm_commit().unwrap();
    let at = joined.open_commit_pointer(&sealed.pointer).unwrap();
    let commit = joined.open_commit_blob(&at, &sealed.blob).unwrap();
    match joined.process(&commit, NOW).unwrap() {
        Incoming::Commit(c) => assert_eq!(c.epoch, conv.epoch()),
        other => panic!("unexpected {other:?}"),
    }

    // The joiner's self-update fills its path (smaller now that the
    // creator's has filled the top of the tree); out of band too, and the
    // creator follows.
    let update = joined.self_update(NOW).unwrap();
    assert!(update.tree_blob.is_none());
    let len = commit_blob_len(update.commit.len());
    let sealed = joined
        .seal_commit_out_of_band(&update.commit, "commitBlob_1", len, &mut rng)
        .unwrap();
    assert!(
        sealed.pointer.len() < 256,
        "pointer {}",
        sealed.pointer.len()
    );
    assert_eq!(sealed.blob.len() as u64, len);
    joined.confirm_commit().unwrap();
    let epoch = conv.epoch();
    let at = conv.open_commit_pointer(&sealed.pointer).unwrap();
    assert_eq!((at.blob_id.as_str(), at.len), ("commitBlob_1", len));
    refuses_altered_commit_blobs(&conv, &at, &sealed.blob);
    let commit = conv.open_commit_blob(&at, &sealed.blob).unwrap();
    assert_eq!(commit, update.commit);
    match conv.process(&commit, NOW).unwrap() {
        Incoming::Commit(c) => assert_eq!(c.epoch, joined.epoch()),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(conv.epoch(), epoch + 1);
    let old = (&update.commit[..], &sealed.pointer[..]);
    misdirected_commits_are_refused(&conv, &joined, old, &mut rng);
    println!(
        "{tree_len} hybrid leaves: tree blob {} bytes, welcome {} bytes, creator's first \
         self-update {} bytes, then the joiner's {} bytes (blob {len} bytes)",
        blob.bytes.len(),
        welcome.len(),
        first.commit.len(),
        update.commit.len()
    );
}

/// A server that truncates, flips or swaps the blob, or withholds it
/// (here: nothing), gets nowhere; nothing changes.
fn refuses_altered_commit_blobs(conv: &Conversation, at: &commit_blob::CommitBlobRef, blob: &[u8]) {
    let epoch = conv.epoch();
    let mut flipped = blob.to_vec();
    flipped[blob.len() / 2] ^= 1;
    let mut swapped = blob.to_vec();
    swapped.reverse();
    for bad in [&blob[..blob.len() - 1], &flipped, &swapped, &[][..]] {
        assert!(matches!(
            conv.open_commit_blob(at, bad),
            Err(ProtoError::Tampered)
        ));
    }
    assert_eq!(conv.epoch(), epoch);
    assert!(!conv.has_pending_commit());
}

/// A member of the current epoch seals, behind a pointer that opens and a
/// hash that matches, a commit of an earlier epoch or of another group:
/// the other members refuse it before MLS sees it, and nothing changes.
fn misdirected_commits_are_refused(
    conv: &Conversation,
    joined: &Conversation,
    (old_commit, old_pointer): (&[u8], &[u8]),
    rng: &mut rand_chacha::ChaCha20Rng,
) {
    let other_group = {
        let stranger = device("stranger", rng);
        let (mut other, _) = stranger
            .create_conversation(Suite::Hybrid, &ConversationInfo::group("o"), &[], NOW)
            .unwrap();
        other.self_update(NOW).unwrap().commit
    };
    let epoch = conv.epoch();
    for inner in [old_commit, &other_group] {
        let len = commit_blob_len(inner.len());
        let sealed = joined
            .seal_commit_out_of_band(inner, "commitBlob_2", len, rng)
            .unwrap();
        let at = conv.open_commit_pointer(&sealed.pointer).unwrap();
        assert!(matches!(
            conv.open_commit_blob(&at, &sealed.blob),
            Err(ProtoError::MisdirectedCommit)
        ));
    }
    // A pointer replayed from an earlier epoch is not opened.
    assert!(matches!(
        conv.open_commit_pointer(old_pointer),
        Err(ProtoError::WrongEpoch { .. })
    ));
    assert_eq!(conv.epoch(), epoch);
}

/// A group built the way a client builds one: the creator with the first
/// 63 devices in-band, the rest in add-only batches without a path, then
/// the last device added joins from its Welcome and the tree blob.
fn fresh_group(n: usize, rng: &mut rand_chacha::ChaCha20Rng) -> (Conversation, Conversation) {
    let creator = device("creator", rng);
    let joiner = device("joiner", rng);
    let mut kps = key_packages(n - 2, rng);
    kps.push(
        joiner
            .generate_key_package(Suite::Hybrid, false, NOW)
            .unwrap()
            .message,
    );
    let first = (BIG_GROUP_LEAVES - 1).min(kps.len());
    let (mut conv, created) = creator
        .create_conversation(
            Suite::Hybrid,
            &ConversationInfo::group("g"),
            &kps[..first],
            NOW,
        )
        .unwrap();
    let mut last = created.map(|commit| Added { commit, slot: None });
    let mut slots = 0;
    for batch in add_batches(&kps[first..], first + 1) {
        last = Some(add(&mut conv, batch, &mut slots));
    }
    let Added { commit, .. } = last.unwrap();
    let welcome = commit.welcome.unwrap();
    let tree = commit.tree_blob.map(|b| b.bytes);
    let joined = joiner
        .join_with_tree(&welcome, tree.as_deref(), NOW)
        .unwrap();
    assert_eq!(joined.members().len(), n);
    (conv, joined)
}

/// The size of a first self-update in fresh hybrid groups of 100, 400 and
/// 1000 devices (BENCHMARKS.md, "Commits larger than a message"): a joiner
/// added last, and the creator. About 10 s in a debug build:
/// `cargo test -p hush-proto --test big_groups -- --ignored --nocapture first_self_update_sizes`.
#[test]
#[ignore]
fn first_self_update_sizes() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
    for n in [100, 400, 1000] {
        let (mut conv, mut joined) = fresh_group(n, &mut rng);
        let joiner = joined.self_update(NOW).unwrap().commit.len();
        joined.discard_commit().unwrap();
        let creator = conv.self_update(NOW).unwrap().commit.len();
        conv.discard_commit().unwrap();
        println!(
            "{n} hybrid devices: joiner's first self-update {joiner} bytes (blob {}), \
             creator's {creator} bytes (blob {}); message limit {MAX_MESSAGE_LEN}",
            commit_blob_len(joiner),
            commit_blob_len(creator)
        );
    }
}

#[test]
fn a_group_beyond_the_limit_is_refused_with_a_clear_error() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(15);
    let creator = device("creator", &mut rng);
    let kp = key_packages(1, &mut rng).remove(0);
    let (mut conv, _) = creator
        .create_conversation(Suite::Hybrid, &ConversationInfo::group("g"), &[], NOW)
        .unwrap();
    let too_many = vec![kp; MAX_GROUP_DEVICES];
    let err = conv.add_devices(&too_many, NOW).unwrap_err();
    assert!(matches!(
        err,
        ProtoError::GroupTooLarge {
            limit: MAX_GROUP_DEVICES,
            requested
        } if requested == MAX_GROUP_DEVICES + 1
    ));
    assert!(err.to_string().contains("at most 5000 devices"), "{err}");
    assert!(!conv.has_pending_commit());
}

#[test]
fn a_big_group_needs_a_tree_slot() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(16);
    let creator = device("creator", &mut rng);
    let kps = key_packages(BIG_GROUP_LEAVES, &mut rng);
    let (mut conv, _) = creator
        .create_conversation(Suite::Hybrid, &ConversationInfo::group("g"), &[], NOW)
        .unwrap();
    assert!(
        conv.tree_blob_len(&kps[..BIG_GROUP_LEAVES - 1])
            .unwrap()
            .is_none()
    );
    assert!(conv.tree_blob_len(&kps).unwrap().is_some());
    assert!(matches!(
        conv.add_devices(&kps, NOW),
        Err(ProtoError::InvalidRequest(_))
    ));
    assert!(!conv.has_pending_commit());
}
