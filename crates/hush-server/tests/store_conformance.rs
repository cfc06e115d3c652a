//! The storage conformance suite: written once, run against every backend.
//! SQLite always; PostgreSQL when `HUSH_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store_common;

use std::sync::Arc;

use hush_server::store::*;
use store_common::*;

async fn accounts_and_devices(store: &dyn Store) {
    register(store, "alice", 1).await;
    assert!(matches!(
        store
            .create_account(NewAccount {
                username: "alice".into(),
                account_key: vec![9; 32],
                device: device(1, 99),
                now_ms: 0,
            })
            .await,
        Err(StoreError::UsernameTaken)
    ));
    // The failed registration changed nothing.
    let a = store.account("alice").await.unwrap().unwrap();
    assert_eq!(a.account_key, vec![1; 32]);
    assert_eq!(a.devices.len(), 1);
    assert!(store.authenticate(&[99; 32]).await.unwrap().is_none());

    store.add_device("alice", device(2, 2), 2).await.unwrap();
    assert!(matches!(
        store.add_device("alice", device(2, 3), 5).await,
        Err(StoreError::DeviceExists)
    ));
    assert!(matches!(
        store.add_device("alice", device(3, 4), 2).await,
        Err(StoreError::TooManyDevices)
    ));
    assert!(matches!(
        store.add_device("nobody", device(1, 5), 2).await,
        Err(StoreError::NotFound)
    ));
    let auth = store.authenticate(&[2; 32]).await.unwrap().unwrap();
    assert_eq!(auth.device, DeviceKey::new("alice", 2));
    assert_eq!(auth.state, AccountState::Active);
    // Certificates in the order asked, none for a device not held.
    let certificates = store
        .device_certificates(&[
            DeviceKey::new("alice", 2),
            DeviceKey::new("nobody", 1),
            DeviceKey::new("alice", 1),
            DeviceKey::new("alice", 3),
        ])
        .await
        .unwrap();
    assert_eq!(
        certificates,
        [Some(vec![2; 8]), None, Some(vec![1; 8]), None]
    );

    store
        .set_account_state("alice", AccountState::Suspended)
        .await
        .unwrap();
    let auth = store.authenticate(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(auth.state, AccountState::Suspended);

    store
        .remove_device(&DeviceKey::new("alice", 2))
        .await
        .unwrap();
    assert!(store.authenticate(&[2; 32]).await.unwrap().is_none());
    assert!(matches!(
        store.remove_device(&DeviceKey::new("alice", 2)).await,
        Err(StoreError::NotFound)
    ));

    register(store, "bob", 3).await;
    let names: Vec<String> = store
        .list_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    store.delete_account("alice").await.unwrap();
    assert!(store.account("alice").await.unwrap().is_none());
    assert!(store.authenticate(&[1; 32]).await.unwrap().is_none());
}

async fn token_rotation_and_suspensions(store: &dyn Store) {
    register(store, "alice", 41).await;
    register(store, "bob", 42).await;
    let alice = DeviceKey::new("alice", 1);
    store
        .replace_token(&alice, &[41; 32], &[43; 32])
        .await
        .unwrap();
    assert!(store.authenticate(&[41; 32]).await.unwrap().is_none());
    let auth = store.authenticate(&[43; 32]).await.unwrap().unwrap();
    assert_eq!(auth.device, alice);
    // Only from the token that is current: a second rotation from the old
    // one, or of another device's token, changes nothing.
    assert!(matches!(
        store.replace_token(&alice, &[41; 32], &[44; 32]).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .replace_token(&DeviceKey::new("alice", 1), &[42; 32], &[44; 32])
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(store.authenticate(&[42; 32]).await.unwrap().is_some());
    assert!(store.suspended_accounts().await.unwrap().is_empty());
    store
        .set_account_state("bob", AccountState::Suspended)
        .await
        .unwrap();
    assert_eq!(store.suspended_accounts().await.unwrap(), vec!["bob"]);
}

async fn key_packages(store: &dyn Store) {
    register(store, "alice", 1).await;
    store.add_device("alice", device(2, 2), 5).await.unwrap();
    let d1 = DeviceKey::new("alice", 1);
    let d2 = DeviceKey::new("alice", 2);
    store
        .put_key_packages(
            &d1,
            1,
            vec![b"a1".to_vec(), b"a2".to_vec()],
            Some(b"alr".to_vec()),
        )
        .await
        .unwrap();
    store
        .put_key_packages(&d2, 1, vec![], Some(b"blr".to_vec()))
        .await
        .unwrap();
    store
        .put_key_packages(&d1, 65100, vec![b"pq".to_vec()], None)
        .await
        .unwrap();
    assert_eq!(
        store.key_package_counts(&d1).await.unwrap(),
        vec![(1, 2), (65100, 1)]
    );
    // One per device: ordinary ones first, then the last resort, which stays.
    let claim = |s| async move { store.claim_key_packages("alice", s).await.unwrap() };
    assert_eq!(
        claim(1).await,
        vec![(1, b"a1".to_vec()), (2, b"blr".to_vec())]
    );
    assert_eq!(
        claim(1).await,
        vec![(1, b"a2".to_vec()), (2, b"blr".to_vec())]
    );
    assert_eq!(
        claim(1).await,
        vec![(1, b"alr".to_vec()), (2, b"blr".to_vec())]
    );
    assert_eq!(
        claim(1).await,
        vec![(1, b"alr".to_vec()), (2, b"blr".to_vec())]
    );
    assert_eq!(claim(65100).await, vec![(1, b"pq".to_vec())]);
    assert_eq!(claim(65100).await, vec![]);
    assert_eq!(store.key_package_counts(&d1).await.unwrap(), vec![]);
    assert!(matches!(
        store
            .put_key_packages(&DeviceKey::new("alice", 9), 1, vec![b"x".to_vec()], None)
            .await,
        Err(StoreError::NotFound)
    ));
}

/// Envelopes handed to connections before their write: an acknowledgement
/// that comes first spares the write; every other recipient's copy is
/// stored; numbers keep growing either way.
async fn early_acknowledgements(store: &dyn Store) {
    register(store, "alice", 1).await;
    register(store, "bob", 2).await;
    let a = DeviceKey::new("alice", 1);
    let b = DeviceKey::new("bob", 1);
    let first = store
        .enqueue(std::slice::from_ref(&b), envelope(b"m0"), None)
        .await
        .unwrap()[0];
    let early: Vec<Arc<EarlyAck>> = vec![Arc::default(), Arc::default()];
    let mut reserved = Vec::new();
    let mut acked_first = false;
    let mut env = envelope(b"m1");
    env.relay_tags = vec![vec![7; 32], vec![8; 32]];
    let outcome = store
        .enqueue_early(&[b.clone(), a.clone()], env, &early, &mut |seqs| {
            reserved = seqs.to_vec();
            // Bob's device acknowledges as soon as it is handed the envelope.
            acked_first = early[0].ack();
        })
        .await
        .unwrap();
    assert_eq!(outcome.seqs, reserved);
    assert_eq!(outcome.seqs.len(), 2);
    assert!(outcome.seqs[0] > first);
    // Bob's copy is stored exactly when his acknowledgement came too late.
    let bobs = store.fetch(&b, first, 100).await.unwrap();
    assert_eq!(bobs.len(), usize::from(!acked_first));
    // Nothing to read back for a copy never written.
    assert!(!(acked_first && outcome.wake[0]));
    // Alice never acknowledged: hers is stored, and is now a deletion.
    let alices = store.fetch(&a, 0, 100).await.unwrap();
    assert_eq!(alices.len(), 1);
    assert_eq!(alices[0].seq, outcome.seqs[1]);
    assert_eq!(alices[0].relay_tag, Some(vec![8; 32]));
    assert!(!early[1].ack());
    assert_eq!(store.ack(&a, &[outcome.seqs[1]]).await.unwrap(), 1);
    // An unknown recipient fails the whole send and stores nothing.
    let early: Vec<Arc<EarlyAck>> = vec![Arc::default(), Arc::default()];
    let mut called = false;
    assert!(matches!(
        store
            .enqueue_early(
                &[b.clone(), DeviceKey::new("carol", 1)],
                envelope(b"x"),
                &early,
                &mut |_| called = true,
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        !called,
        "nothing is handed over for a send that fails up front"
    );
    assert_eq!(
        store.fetch(&b, outcome.seqs[0], 100).await.unwrap().len(),
        0
    );
    // Later numbers are still larger.
    let next = store
        .enqueue(std::slice::from_ref(&b), envelope(b"m2"), None)
        .await
        .unwrap()[0];
    assert!(next > outcome.seqs[0]);
    assert_eq!(store.fetch(&b, next, 100).await.unwrap().len(), 0);
}

async fn queues(store: &dyn Store) {
    register(store, "alice", 1).await;
    register(store, "bob", 2).await;
    store.add_device("bob", device(2, 3), 5).await.unwrap();
    let a = DeviceKey::new("alice", 1);
    let b1 = DeviceKey::new("bob", 1);
    let b2 = DeviceKey::new("bob", 2);

    let seqs = store
        .enqueue(&[b1.clone(), b2.clone()], envelope(b"m1"), None)
        .await
        .unwrap();
    assert_eq!(seqs, vec![1, 1]);
    let seqs = store
        .enqueue(&[b1.clone(), a.clone()], envelope(b"m2"), None)
        .await
        .unwrap();
    assert_eq!(seqs, vec![2, 1]);

    let got = store.fetch(&b1, 0, 100).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].payload, b"m1");
    assert_eq!(got[0].relay_tag, Some(vec![7; 32]));
    assert_eq!(got[1].seq, 2);
    assert_eq!(store.fetch(&b1, 1, 100).await.unwrap().len(), 1);
    assert_eq!(store.fetch(&b1, 0, 1).await.unwrap().len(), 1);

    // A recipient that does not exist fails the whole send.
    assert!(matches!(
        store
            .enqueue(
                &[b1.clone(), DeviceKey::new("carol", 1)],
                envelope(b"x"),
                None
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.fetch(&b1, 0, 100).await.unwrap().len(), 2);

    // A device acks only its own queue.
    assert_eq!(store.ack(&a, &[1, 2]).await.unwrap(), 1);
    assert_eq!(store.fetch(&b1, 0, 100).await.unwrap().len(), 2);
    assert_eq!(store.ack(&b1, &[1]).await.unwrap(), 1);
    assert_eq!(store.ack(&b1, &[1]).await.unwrap(), 0);
    assert_eq!(store.fetch(&b1, 0, 100).await.unwrap()[0].payload, b"m2");

    // Sequence numbers keep growing after acks.
    let seqs = store
        .enqueue(std::slice::from_ref(&b1), envelope(b"m3"), None)
        .await
        .unwrap();
    assert_eq!(seqs, vec![3]);

    // Expiry.
    assert_eq!(store.expire(9_999).await.unwrap(), 0);
    let expired = store.expire(10_001).await.unwrap();
    assert_eq!(expired, 3);
    assert!(store.fetch(&b1, 0, 100).await.unwrap().is_empty());
    assert_eq!(store.stats().await.unwrap().queued_envelopes, 0);
}

/// What the queue quota reads, and the byte cap of one fetch.
async fn queue_bytes_and_fetch_cap(store: &dyn Store) {
    register(store, "alice", 1).await;
    register(store, "bob", 2).await;
    let a = DeviceKey::new("alice", 1);
    let b = DeviceKey::new("bob", 1);
    let nobody = DeviceKey::new("nobody", 1);
    let big = vec![1u8; 512 * 1024];
    for _ in 0..12 {
        store
            .enqueue(std::slice::from_ref(&b), envelope(&big), None)
            .await
            .unwrap();
    }
    store
        .enqueue(std::slice::from_ref(&a), envelope(b"abc"), None)
        .await
        .unwrap();
    assert_eq!(
        store
            .queue_bytes(&[b.clone(), nobody, a.clone()])
            .await
            .unwrap(),
        vec![12 * 512 * 1024, 0, 3]
    );
    // 4 MiB is 8 of them: the ninth waits for the next fetch.
    let first = store.fetch(&b, 0, 100).await.unwrap();
    assert_eq!(first.len(), 8);
    let rest = store.fetch(&b, first[7].seq, 100).await.unwrap();
    assert_eq!(rest.len(), 4);
    // One envelope always comes, whatever its size.
    assert_eq!(store.fetch(&a, 0, 100).await.unwrap().len(), 1);
    let seqs: Vec<u64> = first.iter().map(|e| e.seq).collect();
    store.ack(&b, &seqs).await.unwrap();
    assert_eq!(
        store.queue_bytes(std::slice::from_ref(&b)).await.unwrap(),
        vec![4 * 512 * 1024]
    );
}

async fn epochs(store: &dyn Store) {
    register(store, "alice", 1).await;
    let a = DeviceKey::new("alice", 1);
    // Token n stands in for the MLS exporter secret of epoch n.
    let claim = |e, token, next| claim_for(b"group", e, token, next);
    assert_eq!(store.group_epoch(b"group").await.unwrap(), None);
    // The first claim for an unknown group registers it.
    store
        .enqueue(std::slice::from_ref(&a), envelope(b"c1"), claim(1, 1, 2))
        .await
        .unwrap();
    assert_eq!(store.group_epoch(b"group").await.unwrap(), Some(2));
    // A second commit for epoch 1 (a member of it) loses and writes nothing.
    let res = store
        .enqueue(std::slice::from_ref(&a), envelope(b"late"), claim(1, 1, 9))
        .await;
    assert!(matches!(res, Err(StoreError::EpochConflict { current: 2 })));
    // A stranger's token, a far-future claim, an old token for a later
    // epoch: refused, nothing written, the epoch unchanged.
    for (e, t) in [(2, 9), (1 << 40, 9), (3, 1), (2, 1)] {
        let res = store
            .enqueue(std::slice::from_ref(&a), envelope(b"bad"), claim(e, t, 9))
            .await;
        assert!(
            matches!(res, Err(StoreError::CommitRefused)),
            "{e} {t}: {res:?}"
        );
    }
    assert_eq!(store.group_epoch(b"group").await.unwrap(), Some(2));
    assert_eq!(store.fetch(&a, 0, 10).await.unwrap().len(), 1);
    // The holder of epoch 2's token wins it, with no recipients at all.
    store
        .enqueue(&[], envelope(b"c2"), claim(2, 2, 3))
        .await
        .unwrap();
    assert_eq!(store.group_epoch(b"group").await.unwrap(), Some(3));
    assert_eq!(store.stats().await.unwrap().groups, 1);
    // An epoch whose successor does not fit is an error, not a panic; it
    // writes nothing and the store keeps working.
    for e in [u64::MAX, i64::MAX as u64] {
        let res = store
            .enqueue(
                std::slice::from_ref(&a),
                envelope(b"huge"),
                claim_for(b"other", e, 1, 2),
            )
            .await;
        assert!(matches!(res, Err(StoreError::Backend(_))), "{res:?}");
    }
    assert_eq!(store.group_epoch(b"other").await.unwrap(), None);
    assert_eq!(store.fetch(&a, 0, 10).await.unwrap().len(), 1);
    store
        .enqueue(std::slice::from_ref(&a), envelope(b"c3"), claim(3, 3, 4))
        .await
        .unwrap();
    assert_eq!(store.group_epoch(b"group").await.unwrap(), Some(4));
}

/// Two nodes race for one epoch with the same valid token: one wins.
async fn two_nodes_race_for_an_epoch(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    register(&*a, "alice", 1).await;
    let to = DeviceKey::new("alice", 1);
    a.enqueue(
        std::slice::from_ref(&to),
        envelope(b"c0"),
        claim_for(b"g", 0, 0, 1),
    )
    .await
    .unwrap();
    for round in 1..6u8 {
        let (x, y) = tokio::join!(
            a.enqueue(
                std::slice::from_ref(&to),
                envelope(b"x"),
                claim_for(b"g", u64::from(round), round, round + 1)
            ),
            b.enqueue(
                std::slice::from_ref(&to),
                envelope(b"y"),
                claim_for(b"g", u64::from(round), round, round + 1)
            ),
        );
        let wins = [&x, &y].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {x:?} {y:?}");
        assert!(
            [x, y]
                .into_iter()
                .any(|r| matches!(r, Err(StoreError::EpochConflict { .. })))
        );
    }
    assert_eq!(a.fetch(&to, 0, 100).await.unwrap().len(), 6);
    assert_eq!(b.group_epoch(b"g").await.unwrap(), Some(6));
}

async fn concurrent_sends_all_land(store: Arc<dyn Store>) {
    register(&*store, "alice", 1).await;
    let a = DeviceKey::new("alice", 1);
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let store = store.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            store
                .enqueue(&[a], envelope(&i.to_be_bytes()), None)
                .await
                .unwrap()
        }));
    }
    let mut seqs: Vec<u64> = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    assert_eq!(store.fetch(&a, 0, 1000).await.unwrap().len(), 200);
}

/// Many devices acknowledging at once (deleted together on a backend that
/// batches them): each hears how many of its own envelopes went, no other
/// device's, and every payload goes with its last envelope.
async fn concurrent_acks_all_land(store: Arc<dyn Store>) {
    let devices: Vec<DeviceKey> = (0..40u8)
        .map(|i| DeviceKey::new(&format!("user{i:02}"), 1))
        .collect();
    for (i, d) in devices.iter().enumerate() {
        register(&*store, &d.username, i as u8 + 1).await;
    }
    // Each payload goes to two neighbours; every device gets five.
    for round in 0..5u8 {
        for i in 0..devices.len() {
            let to = [devices[i].clone(), devices[(i + 1) % devices.len()].clone()];
            let mut e = envelope(&[round, i as u8]);
            e.relay_tags = vec![vec![7; 32]; 2];
            store.enqueue(&to, e, None).await.unwrap();
        }
    }
    let mut tasks = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let (store, d) = (store.clone(), d.clone());
        // Seqs 1..=10 of each queue, and two that are not there.
        tasks.push(tokio::spawn(async move {
            let first = store.ack(&d, &[1, 2, 3, 4, 5, 99]).await.unwrap();
            let again = store.ack(&d, &[5, 6, 7, 8, 9, 10, 98]).await.unwrap();
            (i, first, again)
        }));
    }
    for t in tasks {
        let (i, first, again) = t.await.unwrap();
        assert_eq!((first, again), (5, 5), "device {i}");
    }
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.queued_envelopes, 0);
    assert_eq!(
        stats.payloads, 0,
        "every payload freed with its last envelope"
    );
}

async fn profiles(store: &dyn Store) {
    register(store, "alice", 1).await;
    assert_eq!(store.profile("alice").await.unwrap(), None);
    store.put_profile("alice", b"v1".to_vec()).await.unwrap();
    store.put_profile("alice", b"v2".to_vec()).await.unwrap();
    assert_eq!(store.profile("alice").await.unwrap(), Some(b"v2".to_vec()));
    assert!(matches!(
        store.put_profile("nobody", b"x".to_vec()).await,
        Err(StoreError::NotFound)
    ));
}

async fn reports_and_secrets(store: &dyn Store) {
    let k1 = store.server_secret("franking", vec![1; 32]).await.unwrap();
    let k2 = store.server_secret("franking", vec![2; 32]).await.unwrap();
    assert_eq!(k1, vec![1; 32]);
    assert_eq!(k2, k1, "the first value stays");
    let report = |reporter: &str, c: u8, at: u64| NewReport {
        reporter: reporter.into(),
        sender: "mallory".into(),
        commitment: [c; 32],
        content: vec![c],
        reason: "spam".into(),
        received_at_ms: 10,
        filed_at_ms: at,
    };
    let a = store.file_report(report("bob", 1, 100)).await.unwrap();
    assert!(matches!(
        store.file_report(report("bob", 1, 101)).await,
        Err(StoreError::DuplicateReport)
    ));
    // Another recipient may report the same message.
    let b = store.file_report(report("carol", 1, 102)).await.unwrap();
    assert_ne!(a, b);
    assert_eq!(store.reports_since("bob", 0).await.unwrap(), 1);
    assert_eq!(store.reports_since("bob", 101).await.unwrap(), 0);
    assert_eq!(store.list_reports(false).await.unwrap().len(), 2);
    store.resolve_report(a, "warned").await.unwrap();
    let open = store.list_reports(false).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, b);
    let all = store.list_reports(true).await.unwrap();
    assert_eq!(all.len(), 2);
    let got = store.get_report(a).await.unwrap().unwrap();
    assert_eq!(
        (got.status.as_str(), got.report.content.as_slice()),
        ("warned", &[1u8][..])
    );
    assert!(store.get_report(9999).await.unwrap().is_none());
    assert!(matches!(
        store.resolve_report(9999, "dismissed").await,
        Err(StoreError::NotFound)
    ));
}

/// Signed-request nonces: fresh once, a replay while remembered, reusable
/// once expired, and forgotten by `expire`.
async fn signed_nonces(store: &dyn Store) {
    let (one, two, three) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    assert!(store.remember_nonce(one, 1_000, 0).await.unwrap(), "fresh");
    assert!(
        !store.remember_nonce(one, 2_000, 500).await.unwrap(),
        "replayed"
    );
    // Until its expiry, inclusive.
    assert!(!store.remember_nonce(one, 2_000, 1_000).await.unwrap());
    assert!(
        store.remember_nonce(two, 2_000, 500).await.unwrap(),
        "another nonce"
    );
    // Past its expiry the nonce may be taken again, with the new expiry.
    assert!(
        store.remember_nonce(one, 3_000, 1_001).await.unwrap(),
        "expired"
    );
    assert!(!store.remember_nonce(one, 4_000, 2_500).await.unwrap());

    // `expire` forgets only the nonces that expired.
    assert!(store.remember_nonce(three, 5_000, 0).await.unwrap());
    assert_eq!(store.expire(4_999).await.unwrap(), 0, "envelopes only");
    assert!(!store.remember_nonce(three, 6_000, 100).await.unwrap());
    store.expire(5_001).await.unwrap();
    // Forgotten: at a time within its old expiry, it is fresh again.
    assert!(store.remember_nonce(three, 6_000, 100).await.unwrap());
    assert!(!store.remember_nonce(three, 6_000, 200).await.unwrap());
}

/// Two nodes (two handles on one database) take one nonce at once: exactly
/// one gets it, each round.
async fn two_nodes_race_for_a_nonce(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    for round in 0..20u8 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.spawn(async move { store.remember_nonce([round; 32], 10_000, 0).await.unwrap() });
        }
        let mut fresh = 0;
        while let Some(r) = tasks.join_next().await {
            fresh += usize::from(r.unwrap());
        }
        assert_eq!(fresh, 1, "round {round}: one winner, not {fresh}");
    }
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn accounts_and_devices() {
                let (_guard, store) = $make.await;
                super::accounts_and_devices(&*store).await;
            }

            #[tokio::test]
            async fn token_rotation_and_suspensions() {
                let (_guard, store) = $make.await;
                super::token_rotation_and_suspensions(&*store).await;
            }

            #[tokio::test]
            async fn key_packages() {
                let (_guard, store) = $make.await;
                super::key_packages(&*store).await;
            }

            #[tokio::test]
            async fn queues() {
                let (_guard, store) = $make.await;
                super::queues(&*store).await;
            }

            #[tokio::test]
            async fn queue_bytes_and_fetch_cap() {
                let (_guard, store) = $make.await;
                super::queue_bytes_and_fetch_cap(&*store).await;
            }

            #[tokio::test]
            async fn early_acknowledgements() {
                let (_guard, store) = $make.await;
                super::early_acknowledgements(&*store).await;
            }

            #[tokio::test]
            async fn epochs() {
                let (_guard, store) = $make.await;
                super::epochs(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_nodes_race_for_an_epoch() {
                let (guard, store) = $make.await;
                let other = guard.another_node().await;
                super::two_nodes_race_for_an_epoch(store, other).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_sends_all_land() {
                let (_guard, store) = $make.await;
                super::concurrent_sends_all_land(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_acks_all_land() {
                let (_guard, store) = $make.await;
                super::concurrent_acks_all_land(store).await;
            }

            #[tokio::test]
            async fn reports_and_secrets() {
                let (_guard, store) = $make.await;
                super::reports_and_secrets(&*store).await;
            }

            #[tokio::test]
            async fn profiles() {
                let (_guard, store) = $make.await;
                super::profiles(&*store).await;
            }

            #[tokio::test]
            async fn signed_nonces() {
                let (_guard, store) = $make.await;
                super::signed_nonces(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_nodes_race_for_a_nonce() {
                let (guard, store) = $make.await;
                let other = guard.another_node().await;
                super::two_nodes_race_for_a_nonce(store, other).await;
            }
        }
    };
}

conformance!(on_sqlite, sqlite());

conformance!(on_postgres, postgres_or_skip());

conformance!(on_postgres_alone, postgres_alone_or_skip());

conformance!(on_postgres_cluster, postgres_cluster_or_skip());
