//! State written once per batch (decision 0018): bytes per message do not grow
//! with the group, a refused message in a batch undoes nothing, and a batch
//! never flushed is as if it never happened.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use hush_proto::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

const NOW: Timestamp = Timestamp::from_millis(1_750_000_000_000);
/// Messages per batch in these tests.
const BATCH: usize = 20;

struct Pair {
    alice: Device,
    alice_key: DeviceSigningKey,
    bob: Device,
    bob_key: DeviceSigningKey,
    a: Conversation,
    b: Conversation,
    rng: ChaCha20Rng,
}

fn device(name: &str, rng: &mut ChaCha20Rng) -> (Device, DeviceSigningKey) {
    let account = AccountKey::generate(rng).unwrap();
    let key = DeviceSigningKey::generate(rng).unwrap();
    let user = Username::new(name).unwrap();
    let cert =
        DeviceCertificate::issue(&account, &user, DeviceId(1), &key, NOW.as_millis()).unwrap();
    (Device::new(cert, &key).unwrap(), key)
}

/// A hybrid group of `n` devices where alice sends and bob receives.
fn group(n: usize) -> Pair {
    let mut rng = ChaCha20Rng::seed_from_u64(n as u64);
    let (alice, alice_key) = device("alice", &mut rng);
    let (bob, bob_key) = device("bob", &mut rng);
    let mut kps = vec![
        bob.generate_key_package(Suite::Hybrid, false, NOW)
            .unwrap()
            .message,
    ];
    for i in 2..n {
        let (other, _) = device(&format!("member{i:04}"), &mut rng);
        kps.push(
            other
                .generate_key_package(Suite::Hybrid, false, NOW)
                .unwrap()
                .message,
        );
    }
    let (a, commit) = alice
        .create_conversation(Suite::Hybrid, &ConversationInfo::group("g"), &kps, NOW)
        .unwrap();
    let b = bob
        .join(&commit.and_then(|c| c.welcome).unwrap(), NOW)
        .unwrap();
    Pair {
        alice,
        alice_key,
        bob,
        bob_key,
        a,
        b,
        rng,
    }
}

fn text(rng: &mut ChaCha20Rng, s: &str) -> Content {
    Content {
        id: MessageId::generate(rng),
        sent_at_ms: NOW.as_millis(),
        expire_timer_secs: None,
        kt_checkpoint: None,
        meta: Default::default(),
        body: Body::Text {
            text: s.to_owned(),
            reply_to: None,
        },
    }
}

fn text_of(incoming: Incoming) -> String {
    match incoming {
        Incoming::Message(m) => match m.content.body {
            Body::Text { text, .. } => text,
            other => panic!("not text: {other:?}"),
        },
        other => panic!("not a message: {other:?}"),
    }
}

impl Pair {
    /// Alice seals a batch and flushes once; the ciphertexts.
    fn seal_batch(&mut self, n: usize) -> Vec<Vec<u8>> {
        let out = (0..n)
            .map(|i| {
                let c = text(&mut self.rng, &format!("m{i}"));
                self.a.encrypt_in_batch(&c, &mut self.rng).unwrap().message
            })
            .collect();
        self.a.flush().unwrap();
        self.alice.take_changes();
        out
    }

    /// Bytes bob and alice write per message for one batch, once the
    /// conversation is warm (the first batch of an epoch writes the base).
    fn bytes_per_message(&mut self) -> (u64, u64) {
        for _ in 0..2 {
            let batch = self.seal_batch(BATCH);
            for m in &batch {
                self.b.process_in_batch(m, NOW).unwrap();
            }
            self.b.flush().unwrap();
            self.bob.take_changes();
        }
        let (a0, b0) = (
            self.alice.state_bytes_written(),
            self.bob.state_bytes_written(),
        );
        let batch = self.seal_batch(BATCH);
        for m in &batch {
            self.b.process_in_batch(m, NOW).unwrap();
        }
        self.b.flush().unwrap();
        self.bob.take_changes();
        let per = |d: u64| d / BATCH as u64;
        (
            per(self.alice.state_bytes_written() - a0),
            per(self.bob.state_bytes_written() - b0),
        )
    }
}

#[test]
fn bytes_written_per_message_in_a_batch_do_not_grow_with_the_group() {
    let (small_a, small_b) = group(4).bytes_per_message();
    let (big_a, big_b) = group(64).bytes_per_message();
    // The whole state of the 64-member group is far larger than a batch's
    // writes: each hybrid member's leaf key alone is over a kilobyte.
    eprintln!("bytes per message: 4 members {small_a}/{small_b}, 64 members {big_a}/{big_b}");
    for (small, big) in [(small_a, big_a), (small_b, big_b)] {
        assert!(
            big <= small + small / 2 + 64,
            "per-message bytes grew with the group: {small} at 4 members, {big} at 64"
        );
        assert!(big < 2_000, "{big} bytes per message");
    }
}

#[test]
fn a_refused_message_in_a_batch_undoes_nothing_before_it() {
    let mut p = group(3);
    let batch = p.seal_batch(3);
    assert_eq!(text_of(p.b.process_in_batch(&batch[0], NOW).unwrap()), "m0");
    // A ciphertext whose body was tampered with after the sender data: mls-rs
    // uses up the key, and the conversation rolls back.
    let mut bad = batch[1].clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(p.b.process_in_batch(&bad, NOW).is_err());
    // The first message stays applied (it does not open a second time), the
    // genuine second one still opens.
    assert!(p.b.process_in_batch(&batch[0], NOW).is_err());
    assert_eq!(text_of(p.b.process_in_batch(&batch[1], NOW).unwrap()), "m1");
    assert_eq!(text_of(p.b.process_in_batch(&batch[2], NOW).unwrap()), "m2");
    assert!(p.b.has_unflushed());
    p.b.flush().unwrap();
    assert!(!p.b.has_unflushed());
}

type Db = BTreeMap<StateKey, Zeroizing<Vec<u8>>>;

/// Writes a device's drained changes to its "database", as a client does.
fn save(db: &mut Db, device: &Device) {
    for c in device.take_changes() {
        match c {
            StateChange::Put(k, v) => {
                db.insert(k, v);
            }
            StateChange::Delete(k) => {
                db.remove(&k);
            }
            other => panic!("unknown change {other:?}"),
        }
    }
}

/// A device restarted from its database, with its conversation loaded.
fn restart(device: &Device, key: &DeviceSigningKey, db: &Db, gid: &[u8]) -> (Device, Conversation) {
    let d = Device::restore(
        device.certificate().clone(),
        key,
        db.iter().map(|(k, v)| (k.clone(), v.clone())),
    )
    .unwrap();
    let c = d.load(gid).unwrap();
    (d, c)
}

#[test]
fn a_batch_never_flushed_opens_again_after_a_restart_and_never_after_its_write() {
    let mut p = group(3);
    let gid = p.b.id().to_vec();
    let mut db = Db::new();
    save(&mut db, &p.bob);
    let batch = p.seal_batch(4);
    for m in &batch {
        p.b.process_in_batch(m, NOW).unwrap();
    }
    // Crash before the batch's single write: nothing reached the database.
    drop(p.b);
    let (dev, mut conv) = restart(&p.bob, &p.bob_key, &db, &gid);
    for (i, m) in batch.iter().enumerate() {
        assert_eq!(
            text_of(conv.process_in_batch(m, NOW).unwrap()),
            format!("m{i}")
        );
    }
    conv.flush().unwrap();
    save(&mut db, &dev);
    // Once the batch is written, the same envelopes are not applied again.
    let (_dev, mut conv) = restart(&dev, &p.bob_key, &db, &gid);
    for m in &batch {
        assert!(conv.process_in_batch(m, NOW).is_err());
    }
}

#[test]
fn a_sender_persists_before_sending_and_a_restart_never_reuses_a_key() {
    let mut p = group(3);
    let gid = p.a.id().to_vec();
    let mut db = Db::new();
    save(&mut db, &p.alice);
    // A sealed message whose state was written is sent and opened.
    let c = text(&mut p.rng, "first");
    let first = p.a.encrypt_in_batch(&c, &mut p.rng).unwrap().message;
    p.a.flush().unwrap();
    save(&mut db, &p.alice);
    assert_eq!(text_of(p.b.process(&first, NOW).unwrap()), "first");
    // Sealed but never written (so never sent, by the rule): a crash.
    let c = text(&mut p.rng, "lost");
    let _lost = p.a.encrypt_in_batch(&c, &mut p.rng).unwrap();
    drop(p.a);
    let (alice, mut a) = restart(&p.alice, &p.alice_key, &db, &gid);
    let c = text(&mut p.rng, "after restart");
    let next = a.encrypt(&c, &mut p.rng).unwrap().message;
    save(&mut db, &alice);
    assert_eq!(text_of(p.b.process(&next, NOW).unwrap()), "after restart");

    // What the rule prevents: a sender that sent before writing its state
    // seals the next message with a used key, and the receiver refuses it.
    let c = text(&mut p.rng, "sent unwritten");
    let unwritten = a.encrypt_in_batch(&c, &mut p.rng).unwrap().message;
    assert_eq!(
        text_of(p.b.process(&unwritten, NOW).unwrap()),
        "sent unwritten"
    );
    drop(a);
    let (_alice, mut a) = restart(&alice, &p.alice_key, &db, &gid);
    let c = text(&mut p.rng, "reused key");
    let reused = a.encrypt(&c, &mut p.rng).unwrap().message;
    assert!(p.b.process(&reused, NOW).is_err());
}
