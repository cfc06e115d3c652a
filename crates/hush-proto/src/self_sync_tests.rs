use super::*;
use crate::identity::AccountKey;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn device(
    account: &AccountKey,
    name: &str,
    id: u32,
    seed: u64,
) -> (DeviceSigningKey, DeviceCertificate) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let key = DeviceSigningKey::generate(&mut rng).unwrap();
    let user = Username::new(name).unwrap();
    let cert = DeviceCertificate::issue(account, &user, DeviceId(id), &key, 5).unwrap();
    (key, cert)
}

fn account(seed: u64) -> AccountKey {
    AccountKey::generate(&mut ChaCha20Rng::seed_from_u64(seed)).unwrap()
}

fn every_op() -> Vec<StampedOp> {
    let user = Username::new("bob").unwrap();
    [
        SyncOp::Read {
            group_id: vec![3; 32],
            ids: vec![MessageId([1; 16]), MessageId([2; 16])],
        },
        SyncOp::Blocked {
            user: user.clone(),
            blocked: true,
        },
        SyncOp::Verified {
            user,
            account_key: [7; 32],
        },
        SyncOp::ProfileKey { key: [9; 32] },
        SyncOp::Presence(Presence::Nobody),
        SyncOp::DeviceName {
            device: DeviceId(2),
            name: "laptop".into(),
        },
        SyncOp::DeviceRemoved {
            device: DeviceId(3),
        },
        SyncOp::ContactName {
            user: Username::new("carol").unwrap(),
            name: "Carol C.".into(),
        },
    ]
    .into_iter()
    .enumerate()
    .map(|(i, op)| StampedOp {
        at_ms: 100 + i as u64,
        op,
    })
    .collect()
}

fn frame() -> SelfSync {
    SelfSync {
        account: Username::new("alice").unwrap(),
        from_device: DeviceId(1),
        sent_at_ms: 77,
        ops: every_op(),
    }
}

#[test]
fn every_other_device_opens_it_and_only_the_signer_verifies() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let alice = account(1);
    let (k1, c1) = device(&alice, "alice", 1, 11);
    let (k2, c2) = device(&alice, "alice", 2, 12);
    let (k3, c3) = device(&alice, "alice", 3, 13);
    let (_, forged) = device(&account(2), "alice", 1, 14);
    let me = Username::new("alice").unwrap();
    let sync = frame();
    let bytes = sync.seal(&k1, &[c2, c3], &mut rng).unwrap();
    assert!(is_self_sync(&bytes));
    assert!(!crate::receipt::is_receipt(&bytes));
    for (key, id) in [(&k2, 2), (&k3, 3)] {
        let opened = open(&OpenKey::of(key).unwrap(), DeviceId(id), &bytes).unwrap();
        assert_eq!(SignedSelfSync::decode(&opened.encode()).unwrap(), opened);
        assert_eq!(opened.claimed_sender(), (&me, DeviceId(1)));
        assert_eq!(opened.clone().verify(&c1, &me).unwrap(), sync);
        // A certificate for device 1 under another account key (what a
        // server substituting keys would hold) does not verify it.
        assert!(matches!(
            opened.clone().verify(&forged, &me),
            Err(ProtoError::Tampered)
        ));
        // Not about bob's account.
        assert!(opened.verify(&c1, &Username::new("bob").unwrap()).is_err());
    }
    // The sender is not among the recipients.
    assert!(open(&OpenKey::of(&k1).unwrap(), DeviceId(1), &bytes).is_err());
}

#[test]
fn it_goes_to_the_accounts_other_devices_only() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let alice = account(1);
    let (k1, c1) = device(&alice, "alice", 1, 11);
    let (_, bob) = device(&account(3), "bob", 2, 15);
    assert!(frame().seal(&k1, &[c1], &mut rng).is_err());
    assert!(frame().seal(&k1, &[bob], &mut rng).is_err());
    assert!(frame().seal(&k1, &[], &mut rng).is_err());
}

#[test]
fn any_altered_byte_or_truncation_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let alice = account(1);
    let (k1, _) = device(&alice, "alice", 1, 11);
    let (k2, c2) = device(&alice, "alice", 2, 12);
    let mut sync = frame();
    sync.ops.truncate(2);
    let bytes = sync.seal(&k1, &[c2], &mut rng).unwrap();
    let key = OpenKey::of(&k2).unwrap();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        assert!(open(&key, DeviceId(2), &bad).is_err(), "byte {i}");
    }
    for len in 0..bytes.len() {
        assert!(open(&key, DeviceId(2), &bytes[..len]).is_err(), "len {len}");
    }
}

#[test]
fn a_signature_over_other_changes_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let alice = account(1);
    let (k1, c1) = device(&alice, "alice", 1, 11);
    let (k2, c2) = device(&alice, "alice", 2, 12);
    let bytes = frame().seal(&k1, &[c2], &mut rng).unwrap();
    let opened = open(&OpenKey::of(&k2).unwrap(), DeviceId(2), &bytes).unwrap();
    let me = Username::new("alice").unwrap();
    let mut forged = opened.clone();
    forged.sync.ops[1].op = SyncOp::Blocked {
        user: Username::new("bob").unwrap(),
        blocked: false,
    };
    assert!(matches!(forged.verify(&c1, &me), Err(ProtoError::Tampered)));
    let mut later = opened;
    later.sync.ops[1].at_ms += 1;
    assert!(matches!(later.verify(&c1, &me), Err(ProtoError::Tampered)));
}

#[test]
fn sizes_are_bounded() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let alice = account(1);
    let (k1, _) = device(&alice, "alice", 1, 11);
    let (_, c2) = device(&alice, "alice", 2, 12);
    let to = std::slice::from_ref(&c2);
    let mut empty = frame();
    empty.ops.clear();
    assert!(empty.seal(&k1, to, &mut rng).is_err());
    let mut many = frame();
    many.ops = (0..=MAX_OPS)
        .map(|i| StampedOp {
            at_ms: i as u64,
            op: SyncOp::Presence(Presence::Everyone),
        })
        .collect();
    assert!(many.seal(&k1, to, &mut rng).is_err());
    many.ops.pop();
    assert!(many.seal(&k1, to, &mut rng).is_ok());
    let read = |n: usize| SelfSync {
        ops: vec![StampedOp {
            at_ms: 1,
            op: SyncOp::Read {
                group_id: vec![1; 8],
                ids: (0..n).map(|i| MessageId([i as u8; 16])).collect(),
            },
        }],
        ..frame()
    };
    assert!(read(0).seal(&k1, to, &mut rng).is_err());
    assert!(read(MAX_READ_IDS + 1).seal(&k1, to, &mut rng).is_err());
    assert!(read(MAX_READ_IDS).seal(&k1, to, &mut rng).is_ok());
    let named = |name: &str| SelfSync {
        ops: vec![StampedOp {
            at_ms: 1,
            op: SyncOp::DeviceName {
                device: DeviceId(2),
                name: name.into(),
            },
        }],
        ..frame()
    };
    assert!(named(" ").seal(&k1, to, &mut rng).is_err());
    assert!(
        named(&"x".repeat(MAX_NAME + 1))
            .seal(&k1, to, &mut rng)
            .is_err()
    );
    let contact = |name: &str| SelfSync {
        ops: vec![StampedOp {
            at_ms: 1,
            op: SyncOp::ContactName {
                user: Username::new("bob").unwrap(),
                name: name.into(),
            },
        }],
        ..frame()
    };
    assert!(contact("").seal(&k1, to, &mut rng).is_ok(), "no name shown");
    assert!(
        contact(&"x".repeat(MAX_CONTACT_NAME))
            .seal(&k1, to, &mut rng)
            .is_ok()
    );
    assert!(
        contact(&"x".repeat(MAX_CONTACT_NAME + 1))
            .seal(&k1, to, &mut rng)
            .is_err()
    );
}

#[test]
fn stamps_order_by_time_then_device() {
    let a = Stamp {
        at_ms: 5,
        device: 9,
    };
    let b = Stamp {
        at_ms: 6,
        device: 1,
    };
    let c = Stamp {
        at_ms: 6,
        device: 2,
    };
    assert!(a < b && b < c);
}
