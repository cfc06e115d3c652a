//! The storage conformance suite: written once, run against every backend.
//! SQLite always; PostgreSQL when `HUSH_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use hush_server::store::postgres::PostgresStore;
use hush_server::store::sqlite::SqliteStore;
use hush_server::store::*;

fn device(id: u32, token: u8) -> NewDevice {
    NewDevice {
        device_id: id,
        certificate: vec![id as u8; 8],
        token_hash: [token; 32],
    }
}

async fn register(store: &dyn Store, name: &str, token: u8) {
    store
        .create_account(NewAccount {
            username: name.into(),
            account_key: vec![token; 32],
            device: device(1, token),
            now_ms: 1000,
        })
        .await
        .unwrap();
}

fn envelope(payload: &[u8]) -> NewEnvelope {
    NewEnvelope {
        payload: payload.to_vec(),
        relay_tags: vec![vec![7; 32]],
        received_at_ms: 5000,
        expires_at_ms: 10_000,
    }
}

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

fn claim_for(group: &[u8], epoch: u64, token: u8, next: u8) -> Option<EpochClaim> {
    Some(EpochClaim {
        group_id: group.to_vec(),
        epoch,
        token: [token; 32],
        next_token_hash: hush_proto::commit_token::token_hash(&[next; 32]),
    })
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

fn kt_state(user: &str, epoch: u64, version: u64, value: &str) -> KtValueState {
    KtValueState {
        username: user.as_bytes().to_vec(),
        epoch,
        version,
        node_label_len: 256,
        node_label: [version as u8; 32],
        value: value.as_bytes().to_vec(),
    }
}

fn kt_record(key: &[u8], data: &[u8]) -> KtRecord {
    KtRecord {
        key: key.to_vec(),
        data: data.to_vec(),
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

async fn kt_records(store: &dyn Store) {
    assert!(store.kt_records(&[b"a".to_vec()]).await.unwrap().is_empty());
    store
        .kt_write(
            vec![
                kt_record(b"a", b"1"),
                kt_record(b"b", b"2"),
                // Within one call the last of equal keys wins.
                kt_record(b"a", b"3"),
            ],
            vec![],
        )
        .await
        .unwrap();
    // Upsert: replaces, others unchanged.
    store
        .kt_write(vec![kt_record(b"b", b"4"), kt_record(b"c", b"")], vec![])
        .await
        .unwrap();
    let got = store
        .kt_records(&[b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"zz".to_vec()])
        .await
        .unwrap();
    let got = sorted(got.into_iter().map(|r| (r.key, r.data)).collect());
    assert_eq!(
        got,
        vec![
            (b"a".to_vec(), b"3".to_vec()),
            (b"b".to_vec(), b"4".to_vec()),
            (b"c".to_vec(), vec![])
        ]
    );
    // Many keys at once (more than one chunk of any backend), in one call.
    let many: Vec<KtRecord> = (0u32..12_000)
        .map(|i| kt_record(&i.to_be_bytes(), &(i * 3).to_le_bytes()))
        .collect();
    store.kt_write(many.clone(), vec![]).await.unwrap();
    let keys: Vec<Vec<u8>> = (0u32..12_001)
        .rev()
        .map(|i| i.to_be_bytes().to_vec())
        .collect();
    let got = store.kt_records(&keys).await.unwrap();
    assert_eq!(got.len(), 12_000);
    assert_eq!(
        sorted(got.into_iter().map(|r| (r.key, r.data)).collect()),
        sorted(many.into_iter().map(|r| (r.key, r.data)).collect())
    );
    let (records, states) = store.kt_dump().await.unwrap();
    assert_eq!(records.len(), 12_003);
    assert!(states.is_empty());
    assert!(store.kt_records(&[]).await.unwrap().is_empty());
}

async fn kt_states(store: &dyn Store) {
    use KtStateQuery::*;
    let q = |names: &[&str], query| {
        let names: Vec<Vec<u8>> = names.iter().map(|n| n.as_bytes().to_vec()).collect();
        async move {
            let mut got: Vec<(String, u64, u64, String)> = store
                .kt_user_state(&names, query)
                .await
                .unwrap()
                .into_iter()
                .map(|s| {
                    (
                        String::from_utf8(s.username).unwrap(),
                        s.epoch,
                        s.version,
                        String::from_utf8(s.value).unwrap(),
                    )
                })
                .collect();
            got.sort();
            got
        }
    };
    let row = |u: &str, e, v, val: &str| (u.to_owned(), e, v, val.to_owned());
    assert!(q(&["alice"], Latest).await.is_empty());
    assert!(store.kt_user_states(b"alice").await.unwrap().is_empty());
    // alice: v1 at epoch 1, v2 at 3, v3 at 7; bob: v1 at 3. One transaction
    // with a record as well.
    store
        .kt_write(
            vec![kt_record(b"azks", b"x")],
            vec![
                kt_state("alice", 3, 2, "a2"),
                kt_state("alice", 1, 1, "a1"),
                kt_state("bob", 3, 1, "b1"),
                kt_state("alice", 7, 3, "a3-typo"),
                kt_state("alice", 7, 3, "a3"),
            ],
        )
        .await
        .unwrap();
    let all = store.kt_user_states(b"alice").await.unwrap();
    assert_eq!(
        all,
        vec![
            kt_state("alice", 1, 1, "a1"),
            kt_state("alice", 3, 2, "a2"),
            kt_state("alice", 7, 3, "a3"),
        ]
    );
    let both = ["alice", "bob", "carol"];
    assert_eq!(
        q(&both, Latest).await,
        [row("alice", 7, 3, "a3"), row("bob", 3, 1, "b1")]
    );
    assert_eq!(
        q(&both, Earliest).await,
        [row("alice", 1, 1, "a1"), row("bob", 3, 1, "b1")]
    );
    assert_eq!(q(&both, Version(2)).await, [row("alice", 3, 2, "a2")]);
    assert_eq!(q(&both, Version(9)).await, []);
    assert_eq!(
        q(&both, Epoch(3)).await,
        [row("alice", 3, 2, "a2"), row("bob", 3, 1, "b1")]
    );
    assert_eq!(q(&both, Epoch(2)).await, []);
    assert_eq!(q(&both, AtOrBefore(0)).await, []);
    assert_eq!(q(&both, AtOrBefore(2)).await, [row("alice", 1, 1, "a1")]);
    assert_eq!(
        q(&both, AtOrBefore(3)).await,
        [row("alice", 3, 2, "a2"), row("bob", 3, 1, "b1")]
    );
    assert_eq!(
        q(&both, AtOrBefore(6)).await,
        [row("alice", 3, 2, "a2"), row("bob", 3, 1, "b1")]
    );
    assert_eq!(
        q(&both, AtOrBefore(u64::MAX)).await,
        [row("alice", 7, 3, "a3"), row("bob", 3, 1, "b1")]
    );
    // Out-of-range arguments find nothing and fail nothing.
    assert_eq!(q(&both, Epoch(u64::MAX)).await, []);
    assert_eq!(q(&both, Version(u64::MAX)).await, []);
    // By (username, epoch).
    let got = store
        .kt_states(&[
            (b"alice".to_vec(), 3),
            (b"bob".to_vec(), 3),
            (b"bob".to_vec(), 1),
            (b"alice".to_vec(), u64::MAX),
        ])
        .await
        .unwrap();
    let mut got: Vec<_> = got.into_iter().map(|s| (s.username, s.epoch)).collect();
    got.sort();
    assert_eq!(got, vec![(b"alice".to_vec(), 3), (b"bob".to_vec(), 3)]);
    // A replaced state (akd tombstones values this way).
    store
        .kt_write(vec![], vec![kt_state("alice", 1, 1, "tombstone")])
        .await
        .unwrap();
    assert_eq!(
        q(&["alice"], Earliest).await,
        [row("alice", 1, 1, "tombstone")]
    );
    // Epochs and versions that do not fit the database are refused, and the
    // whole write with them: nothing of it is stored.
    let res = store
        .kt_write(
            vec![kt_record(b"half", b"written?")],
            vec![
                kt_state("carol", 1, 1, "c1"),
                kt_state("carol", u64::MAX, 2, "c2"),
            ],
        )
        .await;
    assert!(matches!(res, Err(StoreError::Backend(_))), "{res:?}");
    assert!(
        store
            .kt_records(&[b"half".to_vec()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.kt_user_states(b"carol").await.unwrap().is_empty());
    // Many usernames in one call.
    let states: Vec<KtValueState> = (0..3000)
        .flat_map(|i| {
            let u = format!("user{i}");
            [kt_state(&u, 1, 1, "one"), kt_state(&u, 2, 2, &u)]
        })
        .collect();
    store.kt_write(vec![], states).await.unwrap();
    let names: Vec<Vec<u8>> = (0..3000).map(|i| format!("user{i}").into_bytes()).collect();
    let got = store.kt_user_state(&names, Latest).await.unwrap();
    assert_eq!(got.len(), 3000);
    assert!(got.iter().all(|s| s.version == 2 && s.value == s.username));
    let (_, dumped) = store.kt_dump().await.unwrap();
    assert_eq!(dumped.len(), 4 + 6000);
}

async fn kt_roots(store: &dyn Store) {
    let root = |epoch: u64, b: u8| KtRoot {
        epoch,
        root_hash: [b; 32],
        signature: vec![b; 64],
        published_at_ms: 1000u64.saturating_add(epoch),
    };
    assert_eq!(store.kt_latest_root().await.unwrap(), None);
    assert_eq!(store.kt_root(1).await.unwrap(), None);
    assert!(store.kt_roots(0, u64::MAX).await.unwrap().is_empty());
    for e in [2, 1, 3] {
        store.kt_put_root(root(e, e as u8)).await.unwrap();
    }
    // The same root again is fine; a different one for a stored epoch is
    // refused and changes nothing.
    store.kt_put_root(root(2, 2)).await.unwrap();
    for other in [
        root(2, 9),
        KtRoot {
            signature: vec![7; 64],
            ..root(2, 2)
        },
    ] {
        assert!(matches!(
            store.kt_put_root(other).await,
            Err(StoreError::KtRootConflict { epoch: 2 })
        ));
    }
    assert_eq!(store.kt_root(2).await.unwrap(), Some(root(2, 2)));
    assert_eq!(store.kt_latest_root().await.unwrap(), Some(root(3, 3)));
    assert_eq!(
        store.kt_roots(2, 3).await.unwrap(),
        vec![root(2, 2), root(3, 3)]
    );
    assert_eq!(store.kt_roots(0, u64::MAX).await.unwrap().len(), 3);
    assert!(store.kt_roots(3, 2).await.unwrap().is_empty());
    assert!(store.kt_roots(u64::MAX, u64::MAX).await.unwrap().is_empty());
    assert_eq!(store.kt_root(u64::MAX).await.unwrap(), None);
    assert!(matches!(
        store.kt_put_root(root(u64::MAX, 1)).await,
        Err(StoreError::Backend(_))
    ));
    // At most KT_ROOTS_LIMIT per call, the first ones, ascending.
    // (Concurrently, so SQLite commits them in a few group commits.)
    let puts = (4..(KT_ROOTS_LIMIT as u64 + 10)).map(|e| store.kt_put_root(root(e, e as u8)));
    for r in futures_util::future::join_all(puts).await {
        r.unwrap();
    }
    let page = store.kt_roots(1, u64::MAX).await.unwrap();
    assert_eq!(page.len(), KT_ROOTS_LIMIT);
    assert!(page.windows(2).all(|w| w[0].epoch + 1 == w[1].epoch));
    assert_eq!(page.first().unwrap().epoch, 1);
    let rest = store
        .kt_roots(page.last().unwrap().epoch + 1, u64::MAX)
        .await
        .unwrap();
    assert_eq!(rest.len(), 9);
    assert_eq!(
        store.kt_latest_root().await.unwrap().unwrap().epoch,
        KT_ROOTS_LIMIT as u64 + 9
    );
}

async fn leases(store: &dyn Store) {
    let t1 = store
        .try_lease("kt", "node-a", 1000, 10_000)
        .await
        .unwrap()
        .expect("a lease nobody holds is granted");
    assert!(
        store
            .try_lease("kt", "node-b", 1000, 10_500)
            .await
            .unwrap()
            .is_none(),
        "a running lease is not granted to another holder"
    );
    // A renewal extends the lease and keeps the token.
    assert_eq!(
        store.try_lease("kt", "node-a", 1000, 10_900).await.unwrap(),
        Some(t1)
    );
    assert_eq!(
        store.lease("kt", 11_000).await.unwrap(),
        Some(LeaseInfo {
            holder: "node-a".into(),
            token: t1,
            expires_at_ms: 11_900
        })
    );
    assert!(
        store
            .try_lease("kt", "node-b", 1000, 11_899)
            .await
            .unwrap()
            .is_none()
    );
    // Lapsed: another holder takes it with a larger token; the old holder
    // cannot renew any more.
    let t2 = store
        .try_lease("kt", "node-b", 1000, 11_900)
        .await
        .unwrap()
        .expect("a lapsed lease is granted");
    assert!(t2 > t1, "the fencing token grows when the holder changes");
    assert!(
        store
            .try_lease("kt", "node-a", 1000, 12_000)
            .await
            .unwrap()
            .is_none()
    );
    // Leases are independent by name.
    assert!(
        store
            .try_lease("other", "node-a", 1000, 12_000)
            .await
            .unwrap()
            .is_some()
    );
    // Only the holder releases; then another takes it at once.
    assert!(!store.release_lease("kt", "node-a").await.unwrap());
    assert_eq!(
        store.lease("kt", 12_000).await.unwrap().unwrap().holder,
        "node-b"
    );
    assert!(store.release_lease("kt", "node-b").await.unwrap());
    assert!(!store.release_lease("kt", "node-b").await.unwrap());
    assert!(store.lease("kt", 12_000).await.unwrap().is_none());
    let t3 = store
        .try_lease("kt", "node-a", 1000, 12_001)
        .await
        .unwrap()
        .expect("a released lease is granted");
    assert!(t3 > t2);
    assert!(store.lease("nothing", 0).await.unwrap().is_none());
    assert!(!store.release_lease("nothing", "node-a").await.unwrap());
}

/// A write fenced by a lease lands only while that lease is held with that
/// token; once another holder took it over, the old holder's write is
/// refused and leaves nothing behind.
async fn fenced_kt_writes(store: &dyn Store) {
    let t1 = store
        .try_lease("kt-publisher", "node-a", 1000, 10_000)
        .await
        .unwrap()
        .unwrap();
    let fence = |holder: &str, token: u64| Fence {
        lease: "kt-publisher".into(),
        holder: holder.into(),
        token,
    };
    store
        .kt_write_fenced(
            vec![kt_record(b"a", b"1")],
            vec![kt_state("alice", 1, 1, "v1")],
            fence("node-a", t1),
        )
        .await
        .unwrap();
    // A wrong token or holder is refused even while the lease runs.
    for bad in [fence("node-a", t1 + 1), fence("node-b", t1)] {
        assert!(matches!(
            store
                .kt_write_fenced(vec![kt_record(b"x", b"1")], vec![], bad)
                .await,
            Err(StoreError::LeaseLost { .. })
        ));
    }
    // node-a stalls past its lease; node-b takes it over.
    let t2 = store
        .try_lease("kt-publisher", "node-b", 1000, 12_000)
        .await
        .unwrap()
        .unwrap();
    assert!(t2 > t1);
    let late = store
        .kt_write_fenced(
            vec![kt_record(b"a", b"stale"), kt_record(b"y", b"1")],
            vec![kt_state("bob", 2, 1, "v1")],
            fence("node-a", t1),
        )
        .await;
    assert!(matches!(late, Err(StoreError::LeaseLost { token, .. }) if token == t1));
    let got = store
        .kt_records(&[b"a".to_vec(), b"x".to_vec(), b"y".to_vec()])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![kt_record(b"a", b"1")],
        "the refused writes left nothing"
    );
    assert!(store.kt_user_states(b"bob").await.unwrap().is_empty());
    store
        .kt_write_fenced(vec![kt_record(b"y", b"2")], vec![], fence("node-b", t2))
        .await
        .unwrap();
}

/// Two nodes (two handles on one database) and eight holders race for each
/// lease: exactly one wins, both nodes agree on who, and after it lapses the
/// next race again has exactly one winner, with a larger token.
async fn two_nodes_contend_for_a_lease(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    async fn race(
        a: &Arc<dyn Store>,
        b: &Arc<dyn Store>,
        name: &str,
        now: u64,
    ) -> Vec<(usize, u64)> {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let name = name.to_owned();
            tasks.spawn(async move {
                store
                    .try_lease(&name, &format!("holder-{i}"), 1000, now)
                    .await
                    .unwrap()
                    .map(|t| (i, t))
            });
        }
        let mut winners = Vec::new();
        while let Some(r) = tasks.join_next().await {
            winners.extend(r.unwrap());
        }
        winners
    }
    for round in 0..5 {
        let name = format!("race-{round}");
        let first = race(&a, &b, &name, 1_000).await;
        assert_eq!(first.len(), 1, "one winner, not {first:?}");
        let (winner, token) = first[0];
        let seen_a = a.lease(&name, 1_000).await.unwrap().unwrap();
        let seen_b = b.lease(&name, 1_000).await.unwrap().unwrap();
        assert_eq!(seen_a, seen_b, "both nodes see the same holder");
        assert_eq!(seen_a.holder, format!("holder-{winner}"));
        assert_eq!(seen_a.token, token);
        // While it runs, nobody else gets it, on either node.
        let during = race(&a, &b, &name, 1_500).await;
        assert!(
            during.iter().all(|(i, _)| *i == winner),
            "only the holder renews: {during:?}"
        );
        // After it lapsed: again exactly one, with a larger token.
        let after = race(&a, &b, &name, 10_000).await;
        assert_eq!(after.len(), 1, "one winner, not {after:?}");
        assert!(after[0].1 >= token);
        if after[0].0 != winner {
            assert!(after[0].1 > token);
        }
    }
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
            async fn kt_records() {
                let (_guard, store) = $make.await;
                super::kt_records(&*store).await;
            }

            #[tokio::test]
            async fn kt_states() {
                let (_guard, store) = $make.await;
                super::kt_states(&*store).await;
            }

            #[tokio::test]
            async fn kt_roots() {
                let (_guard, store) = $make.await;
                super::kt_roots(&*store).await;
            }

            #[tokio::test]
            async fn leases() {
                let (_guard, store) = $make.await;
                super::leases(&*store).await;
            }

            #[tokio::test]
            async fn fenced_kt_writes() {
                let (_guard, store) = $make.await;
                super::fenced_kt_writes(&*store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_nodes_contend_for_a_lease() {
                let (guard, store) = $make.await;
                let other = guard.another_node().await;
                super::two_nodes_contend_for_a_lease(store, other).await;
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

/// Keeps a test's database alive, and opens it again as another node.
enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres(PgSchema),
}

impl Guard {
    /// A second, independent handle on the same database, as a second
    /// server node (or, for SQLite, a second process) would hold.
    async fn another_node(&self) -> Arc<dyn Store> {
        match self {
            Guard::Sqlite(dir) => Arc::new(SqliteStore::open(&dir.path().join("hush.db")).unwrap()),
            Guard::Postgres(schema) => {
                let options: sqlx::postgres::PgConnectOptions = schema.url.parse().unwrap();
                let options = options.options([("search_path", schema.name.as_str())]);
                Arc::new(PostgresStore::connect_with(options).await.unwrap())
            }
        }
    }
}

async fn sqlite() -> (Guard, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("hush.db")).unwrap();
    (Guard::Sqlite(dir), Arc::new(store))
}

conformance!(on_sqlite, sqlite());

/// A PostgreSQL schema of its own for one test, dropped afterwards.
struct PgSchema {
    url: String,
    name: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// `None` when `HUSH_TEST_POSTGRES_URL` is unset. When it is set, PostgreSQL
/// must answer: a test never passes because the database was down.
async fn postgres() -> Option<(PgSchema, Arc<dyn Store>)> {
    use sqlx::Connection;
    let url = std::env::var("HUSH_TEST_POSTGRES_URL").ok()?;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "hush_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!("HUSH_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
    });
    sqlx::query(&format!("CREATE SCHEMA {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let options = options.options([("search_path", name.as_str())]);
    let store = PostgresStore::connect_with(options).await.unwrap();
    Some((PgSchema { url, name }, Arc::new(store)))
}

async fn postgres_or_skip() -> (Guard, Arc<dyn Store>) {
    match postgres().await {
        Some((guard, store)) => (Guard::Postgres(guard), store),
        None => {
            eprintln!("HUSH_TEST_POSTGRES_URL is not set: running against SQLite instead");
            sqlite().await
        }
    }
}

conformance!(on_postgres, postgres_or_skip());

#[tokio::test]
async fn sqlite_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        register(&store, "alice", 1).await;
        store
            .enqueue(&[DeviceKey::new("alice", 1)], envelope(b"kept"), None)
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let got = store
        .fetch(&DeviceKey::new("alice", 1), 0, 10)
        .await
        .unwrap();
    assert_eq!(got[0].payload, b"kept");
    // Numbers handed out before the restart are never handed out again
    // (a device ignores numbers at or below the last it processed).
    let seq = store
        .enqueue(&[DeviceKey::new("alice", 1)], envelope(b"after"), None)
        .await
        .unwrap()[0];
    assert!(seq > got[0].seq);
}

// ------------------------------------------------ schema migrations

/// Writes, with the version-1 schema and plain SQL as the releases before
/// versioned migrations did, an account with a device, a queued envelope
/// and a group. `exec` runs one SQL batch.
const V1_DATA: &str = "\
INSERT INTO accounts (username, account_key, state, created_at_ms) VALUES ('olde', X'0101', 0, 1000);
INSERT INTO devices (username, device_id, certificate, token_hash, next_seq)
    VALUES ('olde', 1, X'0202', X'0303030303030303030303030303030303030303030303030303030303030303', 8);
INSERT INTO envelopes (username, device_id, seq, payload, relay_tag, received_at_ms, expires_at_ms)
    VALUES ('olde', 1, 7, X'C0FFEE', NULL, 5000, 99999999999999);
INSERT INTO groups (group_id, epoch) VALUES (X'6C6567616379', 5);";

/// What a version-1 database must still hold once opened with this code,
/// and how its group (stored without a commit token) takes its first one.
async fn finds_version_1_data(store: &dyn Store) {
    let acct = store.account("olde").await.unwrap().unwrap();
    assert_eq!(acct.account_key, vec![1, 1]);
    assert_eq!(acct.devices[0].certificate, vec![2, 2]);
    let auth = store.authenticate(&[3; 32]).await.unwrap().unwrap();
    assert_eq!(auth.device, DeviceKey::new("olde", 1));
    let dev = DeviceKey::new("olde", 1);
    let queued = store.fetch(&dev, 0, 10).await.unwrap();
    assert_eq!(
        (queued[0].seq, queued[0].payload.clone()),
        (7, vec![0xc0, 0xff, 0xee])
    );
    assert_eq!(store.group_epoch(b"legacy").await.unwrap(), Some(5));
    // New envelopes get numbers after the old ones.
    let seq = store
        .enqueue(std::slice::from_ref(&dev), envelope(b"new"), None)
        .await
        .unwrap()[0];
    assert!(seq > 7);
    // The legacy group: a claim behind it loses; the first token-bearing
    // claim not behind it sets the hash; then tokens rule.
    let behind = store
        .enqueue(
            std::slice::from_ref(&dev),
            envelope(b"c"),
            claim_for(b"legacy", 4, 4, 5),
        )
        .await;
    assert!(matches!(
        behind,
        Err(StoreError::EpochConflict { current: 5 })
    ));
    store
        .enqueue(
            std::slice::from_ref(&dev),
            envelope(b"c"),
            claim_for(b"legacy", 6, 6, 7),
        )
        .await
        .unwrap();
    let stranger = store
        .enqueue(
            std::slice::from_ref(&dev),
            envelope(b"c"),
            claim_for(b"legacy", 7, 9, 9),
        )
        .await;
    assert!(matches!(stranger, Err(StoreError::CommitRefused)));
    store
        .enqueue(
            std::slice::from_ref(&dev),
            envelope(b"c"),
            claim_for(b"legacy", 7, 7, 8),
        )
        .await
        .unwrap();
    assert_eq!(store.group_epoch(b"legacy").await.unwrap(), Some(8));
}

#[tokio::test]
async fn sqlite_opens_a_version_1_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(hush_server::store::sqlite::SCHEMA)
            .unwrap();
        conn.execute_batch(V1_DATA).unwrap();
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0, "the releases before migrations set no version");
    }
    let store = SqliteStore::open(&path).unwrap();
    finds_version_1_data(&store).await;
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, hush_server::store::sqlite_migrate::LATEST);
    // A second open migrates nothing and finds the same data.
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.group_epoch(b"legacy").await.unwrap(), Some(8));
    // A database from a newer release is refused, not damaged.
    conn.pragma_update(None, "user_version", 99).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_opens_a_version_1_database() {
    use sqlx::Executor;
    let Some((schema, _fresh)) = postgres().await else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipping");
        return;
    };
    // Empty the schema again, then lay out version 1 by hand.
    let options: sqlx::postgres::PgConnectOptions = schema.url.parse().unwrap();
    let options = options.options([("search_path", schema.name.as_str())]);
    let pool = sqlx::PgPool::connect_with(options.clone()).await.unwrap();
    pool.execute(
        "DROP TABLE IF EXISTS schema_version, groups, envelopes, key_packages, devices, \
         profiles, reports, server_secrets, leases, accounts CASCADE",
    )
    .await
    .unwrap();
    pool.execute(hush_server::store::postgres::SCHEMA)
        .await
        .unwrap();
    pool.execute(V1_DATA.replace("X'", "'\\x").as_str())
        .await
        .unwrap();
    // Two nodes start at once on it: the migration runs once.
    let (a, b) = tokio::join!(
        PostgresStore::connect_with(options.clone()),
        PostgresStore::connect_with(options.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(version, hush_server::store::postgres_migrate::LATEST);
    finds_version_1_data(&a).await;
    assert_eq!(b.group_epoch(b"legacy").await.unwrap(), Some(8));
}
