#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::chunked::MAX_CHUNK;
use crate::identity::{AccountKey, DeviceCertificate, DeviceId, DeviceSigningKey, Username};
use crate::{Conversation, ConversationInfo, Device, Suite, Timestamp, TreeSlot};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A client's database of state entries.
type Db = BTreeMap<StateKey, Zeroizing<Vec<u8>>>;

fn apply(db: &mut Db, changes: Vec<StateChange>) {
    for change in changes {
        match change {
            StateChange::Put(k, v) => {
                db.insert(k, v);
            }
            StateChange::Delete(k) => {
                db.remove(&k);
            }
        }
    }
}

fn entries(db: &Db) -> impl Iterator<Item = (StateKey, Zeroizing<Vec<u8>>)> + '_ {
    db.iter().map(|(k, v)| (k.clone(), v.clone()))
}

fn put_bytes(changes: &[StateChange]) -> usize {
    changes
        .iter()
        .map(|c| match c {
            StateChange::Put(_, v) => v.len(),
            StateChange::Delete(_) => 0,
        })
        .sum()
}

/// Pseudo-random bytes (keys do not compress or repeat).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write_state(store: &mut MemoryStore, data: &[u8]) {
    let state = GroupState {
        id: b"g".to_vec(),
        data: Zeroizing::new(data.to_vec()),
    };
    store.write(state, vec![], vec![]).unwrap();
}

/// Every chunk in `db` is named by a manifest, and every named one is there.
fn assert_no_stray_chunks(db: &Db) {
    let mut named = HashSet::new();
    for (k, v) in db {
        if matches!(k, StateKey::BaseManifest(_) | StateKey::TreeManifest(_)) {
            named.extend(Manifest::decode(v).unwrap().hashes().copied());
        }
    }
    let stored: HashSet<ChunkHash> = db
        .keys()
        .filter_map(|k| match k {
            StateKey::Chunk(_, h) => Some(*h),
            _ => None,
        })
        .collect();
    assert_eq!(stored, named);
}

#[test]
fn state_keys_round_trip() {
    for key in [
        StateKey::Group(vec![1, 2, 3]),
        StateKey::Tree(vec![]),
        StateKey::Epoch(vec![9; 32], 77),
        StateKey::KeyPackage(vec![4; 16]),
        StateKey::GroupTail(vec![5; 8]),
        StateKey::Refused(vec![6; 8]),
        StateKey::BaseManifest(vec![7; 8]),
        StateKey::TreeManifest(vec![8; 8]),
        StateKey::Chunk(vec![9; 8], [3; 32]),
        StateKey::Chunk(vec![], [4; 32]),
    ] {
        assert_eq!(StateKey::from_bytes(&key.to_bytes()).unwrap(), key);
    }
    assert!(StateKey::from_bytes(&[]).is_err());
    assert!(StateKey::from_bytes(&[3, 1, 2]).is_err());
    assert!(StateKey::from_bytes(&[9; 32]).is_err());
    assert!(StateKey::from_bytes(&[10]).is_err());
}

#[test]
fn old_epochs_are_trimmed_and_journaled() {
    let mut store = MemoryStore::new();
    for e in 0..6u64 {
        store
            .write(
                GroupState {
                    id: b"g".to_vec(),
                    data: Zeroizing::new(vec![e as u8]),
                },
                vec![EpochRecord::new(e, Zeroizing::new(vec![e as u8]))],
                vec![],
            )
            .unwrap();
    }
    assert_eq!(store.epoch(b"g", 2).unwrap(), None);
    assert!(store.epoch(b"g", 3).unwrap().is_some());
    let changes = store.take_changes();
    assert!(changes.contains(&StateChange::Delete(StateKey::Epoch(b"g".to_vec(), 0))));
    assert!(store.take_changes().is_empty());
}

#[test]
fn a_state_that_changes_at_its_end_writes_only_its_tail() {
    let mut store = MemoryStore::new();
    let mut db = Db::new();
    let mut state = noise(200_000, 1);
    state.extend_from_slice(&[0; 100]);
    write_state(&mut store, &state);
    let changes = store.take_changes();
    assert!(put_bytes(&changes) >= state.len());
    apply(&mut db, changes);
    for i in 0..10u8 {
        *state.last_mut().unwrap() = i;
        state.extend_from_slice(&[i; 10]);
        write_state(&mut store, &state);
        let changes = store.take_changes();
        let written = put_bytes(&changes);
        assert!(
            written < 2 * BASE_MARGIN,
            "{written} bytes for a small change"
        );
        apply(&mut db, changes);
        assert_eq!(store.state(b"g").unwrap().unwrap().as_slice(), &state[..]);
    }
    // A change early in the state (a new epoch) rewrites the base, but only
    // the chunk around the change.
    state[10] ^= 1;
    write_state(&mut store, &state);
    let changes = store.take_changes();
    let written = put_bytes(&changes);
    assert!(written < 2 * MAX_CHUNK + 2 * BASE_MARGIN, "{written} bytes");
    apply(&mut db, changes);
    // Restoring the journaled parts gives the same state back.
    let restored = MemoryStore::new();
    restored.restore(entries(&db)).unwrap();
    assert_eq!(
        restored.state(b"g").unwrap().unwrap().as_slice(),
        &state[..]
    );
    assert_no_stray_chunks(&db);
}

#[test]
fn a_changed_tree_writes_the_chunks_around_the_change() {
    let store = MemoryStore::new();
    let mut db = Db::new();
    let mut tree = noise(300_000, 2);
    store.put_tree(b"g", tree.clone());
    apply(&mut db, store.take_changes());
    for (i, at) in [1000usize, 150_000, 290_000].into_iter().enumerate() {
        // A member's new key: same length, other bytes.
        tree.splice(at..at + 1216, noise(1216, 10 + i as u64));
        store.put_tree(b"g", tree.clone());
        let changes = store.take_changes();
        let written = put_bytes(&changes);
        assert!(written < 3 * MAX_CHUNK, "{written} bytes for one key");
        // The chunks that held the old key are deleted.
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, StateChange::Delete(StateKey::Chunk(..))))
        );
        apply(&mut db, changes);
    }
    let restored = MemoryStore::new();
    restored.restore(entries(&db)).unwrap();
    assert_eq!(restored.tree(b"g").unwrap().as_slice(), &tree[..]);
    assert_no_stray_chunks(&db);
}

/// A written group: its base, tail and tree in `db`.
fn chunked_db() -> (Db, Vec<u8>, Vec<u8>) {
    let mut store = MemoryStore::new();
    let state = noise(100_000, 3);
    let tree = noise(60_000, 4);
    write_state(&mut store, &state);
    store.put_tree(b"g", tree.clone());
    let mut db = Db::new();
    apply(&mut db, store.take_changes());
    (db, state, tree)
}

#[test]
fn a_missing_or_corrupt_chunk_or_manifest_is_refused() {
    let (db, state, _) = chunked_db();
    let chunks: Vec<StateKey> = db
        .keys()
        .filter(|k| matches!(k, StateKey::Chunk(..)))
        .cloned()
        .collect();
    assert!(chunks.len() > 10);
    for key in &chunks {
        let mut bad = db.clone();
        bad.get_mut(key).unwrap()[7] ^= 0x20;
        let store = MemoryStore::new();
        assert!(matches!(
            store.restore(entries(&bad)),
            Err(StoreError::CorruptChunk)
        ));
        // Nothing was loaded.
        assert!(store.group_ids().is_empty());
        let mut bad = db.clone();
        bad.remove(key);
        assert!(matches!(
            MemoryStore::new().restore(entries(&bad)),
            Err(StoreError::MissingChunk)
        ));
    }
    // A chunk stored under another chunk's name.
    let mut swapped = db.clone();
    let first = swapped[&chunks[0]].clone();
    swapped.insert(chunks[0].clone(), swapped[&chunks[1]].clone());
    swapped.insert(chunks[1].clone(), first);
    assert!(MemoryStore::new().restore(entries(&swapped)).is_err());
    // A truncated manifest.
    let mut bad = db.clone();
    let manifest = bad.get_mut(&StateKey::BaseManifest(b"g".to_vec())).unwrap();
    let len = manifest.len();
    manifest.truncate(len - 1);
    assert!(matches!(
        MemoryStore::new().restore(entries(&bad)),
        Err(StoreError::CorruptManifest)
    ));
    // The intact database restores.
    let store = MemoryStore::new();
    store.restore(entries(&db)).unwrap();
    assert_eq!(store.state(b"g").unwrap().unwrap().as_slice(), &state[..]);
}

#[test]
fn forgetting_a_group_deletes_every_key_of_it() {
    let (mut db, _, _) = chunked_db();
    let store = MemoryStore::new();
    store.restore(entries(&db)).unwrap();
    store.delete_group(b"g");
    apply(&mut db, store.take_changes());
    assert!(
        db.is_empty(),
        "left behind: {:?}",
        db.keys().collect::<Vec<_>>()
    );
}

#[test]
fn state_written_whole_before_the_split_restores() {
    // What a release before decision 0018 wrote: the state under Group only.
    let store = MemoryStore::new();
    let state = Zeroizing::new(vec![3u8; 5000]);
    store
        .restore([(StateKey::Group(b"g".to_vec()), state.clone())])
        .unwrap();
    assert_eq!(store.state(b"g").unwrap(), Some(state));
    assert_eq!(store.group_ids(), vec![b"g".to_vec()]);
}

#[test]
fn state_written_whole_converts_to_chunks_at_the_first_write() {
    // What a release between decisions 0018 and 0029 wrote.
    let base = noise(80_000, 5);
    let tail = noise(3000, 6);
    let tree = noise(50_000, 7);
    let mut db = Db::new();
    db.insert(StateKey::Group(b"g".to_vec()), Zeroizing::new(base.clone()));
    db.insert(
        StateKey::GroupTail(b"g".to_vec()),
        Zeroizing::new(tail.clone()),
    );
    db.insert(StateKey::Tree(b"g".to_vec()), Zeroizing::new(tree.clone()));
    let mut store = MemoryStore::new();
    store.restore(entries(&db)).unwrap();
    assert_eq!(store.tree(b"g").unwrap().as_slice(), &tree[..]);
    // A write that changes only the tail still converts both.
    let mut state = [base, tail].concat();
    *state.last_mut().unwrap() ^= 1;
    write_state(&mut store, &state);
    apply(&mut db, store.take_changes());
    assert!(!db.contains_key(&StateKey::Group(b"g".to_vec())));
    assert!(!db.contains_key(&StateKey::Tree(b"g".to_vec())));
    assert!(db.contains_key(&StateKey::TreeManifest(b"g".to_vec())));
    assert_no_stray_chunks(&db);
    let restored = MemoryStore::new();
    restored.restore(entries(&db)).unwrap();
    assert_eq!(
        restored.state(b"g").unwrap().unwrap().as_slice(),
        &state[..]
    );
    assert_eq!(restored.tree(b"g").unwrap().as_slice(), &tree[..]);
}

const NOW: Timestamp = Timestamp::from_millis(1_750_000_000_000);

fn device(name: &str, n: u8) -> (Device, DeviceSigningKey) {
    let account = AccountKey::from_seed([n; 32]).unwrap();
    let key = DeviceSigningKey::from_seed([n | 0x80; 32]).unwrap();
    let user = Username::new(name).unwrap();
    let cert =
        DeviceCertificate::issue(&account, &user, DeviceId(1), &key, NOW.as_millis()).unwrap();
    (Device::new(cert, &key).unwrap(), key)
}

#[test]
fn bob_s_state_written_by_an_earlier_release_loads_and_converts() {
    // The fuzz fixture: bob's side of a conversation with alice, written
    // whole (Group and Tree) by the code of an earlier release.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/fixture/bob.state");
    let bytes = std::fs::read(path).unwrap();
    let mut r = crate::codec::Reader::new(&bytes);
    let mut db = Db::new();
    for _ in 0..r.u32().unwrap() {
        let key = StateKey::from_bytes(r.bytes("key", usize::MAX).unwrap()).unwrap();
        let value = r.bytes("value", usize::MAX).unwrap();
        db.insert(key, Zeroizing::new(value.to_vec()));
    }
    let gid = db
        .keys()
        .find_map(|k| match k {
            StateKey::Group(id) => Some(id.clone()),
            _ => None,
        })
        .unwrap();
    assert!(db.contains_key(&StateKey::Tree(gid.clone())));
    let (bob, key) = device("bob", 2);
    let bob = Device::restore(bob.certificate().clone(), &key, entries(&db)).unwrap();
    let mut conv = bob.load(&gid).unwrap();
    let members = conv.members().len();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let content = crate::Content {
        id: crate::MessageId::generate(&mut rng),
        sent_at_ms: NOW.as_millis(),
        expire_timer_secs: None,
        kt_checkpoint: None,
        meta: Default::default(),
        body: crate::Body::Text {
            text: "after the upgrade".into(),
            reply_to: None,
        },
    };
    conv.encrypt(&content, &mut rng).unwrap();
    apply(&mut db, bob.take_changes());
    assert!(!db.contains_key(&StateKey::Group(gid.clone())));
    assert!(!db.contains_key(&StateKey::Tree(gid.clone())));
    assert_no_stray_chunks(&db);
    let again = Device::restore(bob.certificate().clone(), &key, entries(&db)).unwrap();
    assert_eq!(
        again.store().state(&gid).unwrap(),
        bob.store().state(&gid).unwrap()
    );
    assert_eq!(again.store().tree(&gid), bob.store().tree(&gid));
    assert_eq!(again.load(&gid).unwrap().members().len(), members);
}

/// A hybrid group of `n` devices made by alice, and bob's side of it.
fn group(n: usize) -> (Device, Conversation, Device, DeviceSigningKey, Conversation) {
    let (alice, _) = device("alice", 1);
    let (bob, bob_key) = device("bob", 2);
    let mut kps = vec![
        bob.generate_key_package(Suite::Hybrid, false, NOW)
            .unwrap()
            .message,
    ];
    for i in 2..n {
        let (other, _) = device(&format!("member{i:04}"), 3 + i as u8);
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
    (alice, a, bob, bob_key, b)
}

/// What the layout before this one wrote when a commit was processed: the
/// whole state (its base ended before the group context, which the commit
/// changed) and the whole tree.
fn whole_bytes(device: &Device, gid: &[u8]) -> usize {
    device.store().state(gid).unwrap().unwrap().len() + device.store().tree(gid).unwrap().len()
}

#[test]
fn a_commit_in_a_group_of_64_writes_a_fraction_of_the_state() {
    let (alice, mut a, bob, bob_key, mut b) = group(64);
    let gid = b.id().to_vec();
    let mut db = Db::new();
    apply(&mut db, bob.take_changes());
    let mut written = Vec::new();
    for i in 0..8 {
        let pending = if i % 4 == 3 {
            let victim = a.members()[2 + i].clone();
            a.remove_devices(|c| c.username() == victim.username(), NOW)
                .unwrap()
        } else {
            a.self_update(NOW).unwrap()
        };
        a.confirm_commit().unwrap();
        alice.take_changes();
        let before = bob.state_bytes_written();
        b.process(&pending.commit, NOW).unwrap();
        let chunked = bob.state_bytes_written() - before;
        apply(&mut db, bob.take_changes());
        written.push((chunked, whole_bytes(&bob, &gid)));
    }
    eprintln!("bytes written per processed commit at 64 members (chunked, whole): {written:?}");
    // Chunk boundaries depend on the commit's fresh keys, so one commit now
    // and then writes half the state (0.22 to 0.55 of it seen over many
    // runs, 0.32 typical); the layout before wrote all of it every time.
    for (chunked, whole) in &written {
        assert!(
            (*chunked as usize) < whole * 3 / 4,
            "{chunked} bytes written for a commit, the whole state is {whole}"
        );
    }
    let chunked: usize = written.iter().map(|w| w.0 as usize).sum();
    let whole: usize = written.iter().map(|w| w.1).sum();
    assert!(
        chunked < whole / 2,
        "{chunked} bytes written for {} commits, the whole state {whole}",
        written.len()
    );
    // A restart from what was written equals the live state, and goes on.
    assert_no_stray_chunks(&db);
    let again = Device::restore(bob.certificate().clone(), &bob_key, entries(&db)).unwrap();
    assert_eq!(
        again.store().state(&gid).unwrap(),
        bob.store().state(&gid).unwrap()
    );
    assert_eq!(again.store().tree(&gid), bob.store().tree(&gid));
    let mut b2 = again.load(&gid).unwrap();
    assert_eq!(b2.epoch(), b.epoch());
    assert_eq!(b2.members(), b.members());
    let pending = a.self_update(NOW).unwrap();
    a.confirm_commit().unwrap();
    b2.process(&pending.commit, NOW).unwrap();
    assert_eq!(b2.epoch(), a.epoch());
}

/// The `i`th member of a big test group: its own account and device keys.
fn member(i: usize) -> (Device, DeviceSigningKey) {
    let mut seed = [0x5a; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    let account = AccountKey::from_seed(seed).unwrap();
    seed[31] = 0xa5;
    let key = DeviceSigningKey::from_seed(seed).unwrap();
    let user = Username::new(&format!("member{i:04}")).unwrap();
    let cert =
        DeviceCertificate::issue(&account, &user, DeviceId(1), &key, NOW.as_millis()).unwrap();
    (Device::new(cert, &key).unwrap(), key)
}

/// Bytes put per key tag (`StateKey::to_bytes()[0]`).
fn by_tag(changes: &[StateChange]) -> BTreeMap<u8, (usize, usize)> {
    let mut out = BTreeMap::new();
    for c in changes {
        if let StateChange::Put(k, v) = c {
            let e = out.entry(k.to_bytes()[0]).or_insert((0, 0));
            e.0 += 1;
            e.1 += v.len();
        }
    }
    out
}

fn text(rng: &mut ChaCha20Rng, s: &str) -> crate::Content {
    crate::Content {
        id: crate::MessageId::generate(rng),
        sent_at_ms: NOW.as_millis(),
        expire_timer_secs: None,
        kt_checkpoint: None,
        body: crate::Body::Text {
            text: s.into(),
            reply_to: None,
        },
        meta: Default::default(),
    }
}

/// Bytes of state bob writes per message (application messages from alice
/// and carol, bob processing each, one write each) in a hybrid group of `n`
/// that grew as big groups do: alice made it with bob and carol and added the
/// others 32 at a time; then carol updated her keys (a new epoch). The state
/// bob wrote restores to what he holds, and goes on.
fn bytes_per_message(n: usize) -> Vec<u64> {
    let devices: Vec<(Device, DeviceSigningKey)> = (0..n).map(member).collect();
    let kp = |i: usize| {
        devices[i]
            .0
            .generate_key_package(Suite::Hybrid, false, NOW)
            .unwrap()
            .message
    };
    let info = ConversationInfo::group("g");
    let (mut a, commit) = devices[0]
        .0
        .create_conversation(Suite::Hybrid, &info, &[kp(1), kp(2)], NOW)
        .unwrap();
    let welcome = commit.and_then(|c| c.welcome).unwrap();
    let mut b = devices[1].0.join(&welcome, NOW).unwrap();
    let mut c = devices[2].0.join(&welcome, NOW).unwrap();
    for start in (3..n).step_by(32) {
        let kps: Vec<_> = (start..(start + 32).min(n)).map(kp).collect();
        // Past 64 leaves the tree goes out of band; bob and carol are
        // members already and do not need it.
        let slot = a.tree_blob_len(&kps).unwrap().map(|len| TreeSlot {
            blob_id: format!("slot{start}"),
            len,
        });
        let pending = a.add_devices_via(&kps, NOW, slot.as_ref()).unwrap();
        a.confirm_commit().unwrap();
        b.process(&pending.commit, NOW).unwrap();
        c.process(&pending.commit, NOW).unwrap();
    }
    let pending = c.self_update(NOW).unwrap();
    c.confirm_commit().unwrap();
    a.process(&pending.commit, NOW).unwrap();
    b.process(&pending.commit, NOW).unwrap();
    let (bob, bob_key) = &devices[1];
    let mut db = Db::new();
    apply(&mut db, bob.take_changes());
    let mut rng = ChaCha20Rng::seed_from_u64(n as u64);
    let mut written = Vec::new();
    for from_alice in [true, true, true, false, false, true] {
        let sender = if from_alice { &mut a } else { &mut c };
        let m = sender.encrypt(&text(&mut rng, "hi"), &mut rng).unwrap();
        b.process(&m.message, NOW).unwrap();
        let changes = bob.take_changes();
        eprintln!("{n} members, bytes put per key tag: {:?}", by_tag(&changes));
        written.push(put_bytes(&changes) as u64);
        apply(&mut db, changes);
    }
    assert_no_stray_chunks(&db);
    let again = Device::restore(bob.certificate().clone(), bob_key, entries(&db)).unwrap();
    let gid = b.id().to_vec();
    assert_eq!(
        again.store().state(&gid).unwrap(),
        bob.store().state(&gid).unwrap()
    );
    let mut b2 = again.load(&gid).unwrap();
    let m = a.encrypt(&text(&mut rng, "after"), &mut rng).unwrap();
    assert!(matches!(
        b2.process(&m.message, NOW).unwrap(),
        crate::Incoming::Message(_)
    ));
    written
}

#[test]
fn bytes_written_per_message_do_not_grow_with_the_group() {
    let mut means = Vec::new();
    for n in [64, 128, 256] {
        let written = bytes_per_message(n);
        let mean = written.iter().sum::<u64>() / written.len() as u64;
        eprintln!("{n} members: bytes written per message {written:?}, mean {mean}");
        means.push((n, mean, written));
    }
    let (_, small, _) = means[0];
    // A message writes the ratchets (log2(n) small nodes per sender), the
    // margin before them and at most the slack past the base; nothing that
    // grows with the members.
    let bound = (BASE_MARGIN + TAIL_SLACK + 2048) as u64;
    for (n, mean, written) in &means {
        assert!(
            written.iter().all(|w| *w < bound),
            "{n} members: {written:?} bytes per message"
        );
        assert!(
            *mean <= small + 1024,
            "{n} members: {mean} bytes per message against {small} at 64: {written:?}"
        );
    }
}
