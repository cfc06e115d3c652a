//! The storage conformance suite, key transparency and leases: written
//! once, run against every backend. SQLite always; PostgreSQL when
//! `HUSH_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store_common;

use std::sync::Arc;

use hush_server::store::*;
use store_common::*;

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

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

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
        }
    };
}

conformance!(on_sqlite, sqlite());

conformance!(on_postgres, postgres_or_skip());
