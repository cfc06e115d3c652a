//! Big groups: a hybrid-suite tree too large for a Welcome travels out of
//! band, a tampered tree blob is refused with nothing changed, and the group
//! size limit holds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_proto::big_group::{BIG_GROUP_LEAVES, add_batches};
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

    // The joiner's self-update fills its path; the creator follows.
    let update = joined.self_update(NOW).unwrap();
    joined.confirm_commit().unwrap();
    assert!(update.tree_blob.is_none());
    match conv.process(&update.commit, NOW).unwrap() {
        Incoming::Commit(c) => assert_eq!(c.epoch, joined.epoch()),
        other => panic!("unexpected {other:?}"),
    }
    println!(
        "{tree_len} hybrid leaves: tree blob {} bytes, welcome {} bytes, joiner's first self-update {} bytes",
        blob.bytes.len(),
        welcome.len(),
        update.commit.len()
    );
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
