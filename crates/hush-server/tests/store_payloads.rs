//! The store keeps a send's payload once, whatever the number of recipient
//! devices, and frees it when the last of them acknowledged it, when it
//! expires, or when the last device holding it is removed. Conformance
//! cases, run against every backend: SQLite always; PostgreSQL when
//! `HUSH_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store_common;

use std::sync::Arc;

use hush_server::store::*;
use store_common::*;

/// alice/1, bob/1, bob/2, carol/1.
async fn people(store: &dyn Store) -> [DeviceKey; 4] {
    register(store, "alice", 1).await;
    register(store, "bob", 2).await;
    store.add_device("bob", device(2, 3), 5).await.unwrap();
    register(store, "carol", 4).await;
    [
        DeviceKey::new("alice", 1),
        DeviceKey::new("bob", 1),
        DeviceKey::new("bob", 2),
        DeviceKey::new("carol", 1),
    ]
}

fn to(payload: &[u8], n: usize, expires_at_ms: u64) -> NewEnvelope {
    NewEnvelope {
        payload: payload.to_vec(),
        relay_tags: (0..n).map(|i| vec![i as u8; 113]).collect(),
        received_at_ms: 5000,
        expires_at_ms,
        seal_later: None,
    }
}

/// (envelopes, payloads, payload bytes) stored.
async fn counts(store: &dyn Store) -> (u64, u64, u64) {
    let s = store.stats().await.unwrap();
    (s.queued_envelopes, s.payloads, s.payload_bytes)
}

async fn one_payload_per_send(store: &dyn Store) {
    let [a, b1, b2, c] = people(store).await;
    let body = vec![0xab; 1000];
    let seqs = store
        .enqueue(
            &[b1.clone(), b2.clone(), c.clone()],
            to(&body, 3, 10_000),
            None,
        )
        .await
        .unwrap();
    assert_eq!(counts(store).await, (3, 1, 1000));
    // Every recipient reads the same body under its own header.
    for (i, d) in [&b1, &b2, &c].into_iter().enumerate() {
        let got = store.fetch(d, 0, 10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].seq, &got[0].payload), (seqs[i], &body));
        assert_eq!(got[0].relay_tag, Some(vec![i as u8; 113]));
    }
    // Each queue counts the payload it waits for, for the queue quota.
    assert_eq!(
        store
            .queue_bytes(&[a.clone(), b1.clone(), c.clone()])
            .await
            .unwrap(),
        vec![0, 1000, 1000]
    );
    store
        .enqueue(std::slice::from_ref(&a), to(b"second", 1, 10_000), None)
        .await
        .unwrap();
    assert_eq!(counts(store).await, (4, 2, 1006));
    // A commit that goes to nobody stores no payload.
    store
        .enqueue(&[], to(b"alone", 0, 10_000), claim_for(b"g", 0, 1, 2))
        .await
        .unwrap();
    assert_eq!(counts(store).await, (4, 2, 1006));
    // A send that fails (an unknown recipient) stores nothing.
    assert!(matches!(
        store
            .enqueue(
                &[b1.clone(), DeviceKey::new("nobody", 1)],
                to(b"x", 2, 10_000),
                None
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(counts(store).await, (4, 2, 1006));
}

async fn freed_after_the_last_ack(store: &dyn Store) {
    let [_, b1, b2, c] = people(store).await;
    let recipients = [b1.clone(), b2.clone(), c.clone()];
    let seqs = store
        .enqueue(&recipients, to(b"shared", 3, 10_000), None)
        .await
        .unwrap();
    assert_eq!(store.ack(&b1, &[seqs[0]]).await.unwrap(), 1);
    assert_eq!(counts(store).await, (2, 1, 6));
    assert_eq!(store.ack(&b2, &[seqs[1]]).await.unwrap(), 1);
    assert_eq!(counts(store).await, (1, 1, 6));
    assert_eq!(store.fetch(&c, 0, 10).await.unwrap()[0].payload, b"shared");
    assert_eq!(store.ack(&c, &[seqs[2]]).await.unwrap(), 1);
    assert_eq!(counts(store).await, (0, 0, 0));
    // Acknowledging again finds nothing.
    assert_eq!(store.ack(&c, &[seqs[2]]).await.unwrap(), 0);
    assert_eq!(counts(store).await, (0, 0, 0));
}

/// The attacker acknowledges numbers of another device's queue: its own
/// queue is emptied, the other device's copy stays whole.
async fn an_ack_frees_only_its_own_copy(store: &dyn Store) {
    let [a, b1, _, c] = people(store).await;
    let seqs = store
        .enqueue(&[b1.clone(), c.clone()], to(b"for two", 2, 10_000), None)
        .await
        .unwrap();
    // Both queues were empty: the two copies have the same number.
    assert_eq!(seqs[0], seqs[1]);
    let all: Vec<u64> = (0..100).collect();
    assert_eq!(store.ack(&b1, &all).await.unwrap(), 1);
    assert_eq!(store.ack(&a, &all).await.unwrap(), 0);
    let left = store.fetch(&c, 0, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].payload, b"for two");
    assert_eq!(counts(store).await, (1, 1, 7));
}

async fn freed_at_expiry(store: &dyn Store) {
    let [_, b1, _, c] = people(store).await;
    let first = store
        .enqueue(&[b1.clone(), c.clone()], to(b"early", 2, 10_000), None)
        .await
        .unwrap();
    store
        .enqueue(&[b1.clone(), c.clone()], to(b"later", 2, 20_000), None)
        .await
        .unwrap();
    store.ack(&b1, &[first[0]]).await.unwrap();
    assert_eq!(counts(store).await, (3, 2, 10));
    assert_eq!(store.expire(10_000).await.unwrap(), 0);
    assert_eq!(store.expire(10_001).await.unwrap(), 1);
    assert_eq!(counts(store).await, (2, 1, 5));
    let left = store.fetch(&c, 0, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].payload, b"later");
    assert_eq!(store.expire(20_001).await.unwrap(), 2);
    assert_eq!(counts(store).await, (0, 0, 0));
}

/// A removed device or a deleted account takes its queue along, and with
/// it the payloads nobody else waits for.
async fn removal_frees_what_only_it_held(store: &dyn Store) {
    let [a, b1, b2, c] = people(store).await;
    store
        .enqueue(&[b1.clone(), c.clone()], to(b"shared", 2, 10_000), None)
        .await
        .unwrap();
    store
        .enqueue(std::slice::from_ref(&b1), to(b"only b1", 1, 10_000), None)
        .await
        .unwrap();
    store
        .enqueue(&[b1.clone(), b2.clone()], to(b"bob's two", 2, 10_000), None)
        .await
        .unwrap();
    store
        .enqueue(std::slice::from_ref(&a), to(b"alice", 1, 10_000), None)
        .await
        .unwrap();
    assert_eq!(counts(store).await, (6, 4, 6 + 7 + 9 + 5));
    store.remove_device(&b1).await.unwrap();
    assert_eq!(counts(store).await, (3, 3, 6 + 9 + 5));
    store.delete_account("bob").await.unwrap();
    assert_eq!(counts(store).await, (2, 2, 6 + 5));
    store.delete_account("carol").await.unwrap();
    assert_eq!(counts(store).await, (1, 1, 5));
    assert_eq!(store.fetch(&a, 0, 10).await.unwrap()[0].payload, b"alice");
}

/// Every recipient acknowledges as soon as it is handed the envelope: when
/// all of them come before the write (always on SQLite), nothing is
/// written, not even the payload. When one is late, the payload is written
/// once, for it alone.
async fn early_acks_of_all_write_nothing(store: &dyn Store, acks_come_first: bool) {
    let [_, b1, _, c] = people(store).await;
    let early: Vec<Arc<EarlyAck>> = vec![Arc::default(), Arc::default()];
    let mut first = Vec::new();
    let outcome = store
        .enqueue_early(
            &[b1.clone(), c.clone()],
            to(b"gone at once", 2, 10_000),
            &early,
            &mut |_| first = early.iter().map(|e| e.ack()).collect(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.seqs.len(), 2);
    if acks_come_first {
        assert_eq!(first, [true, true]);
    }
    if first == [true, true] {
        assert_eq!(counts(store).await, (0, 0, 0));
    } else {
        // Written first: the acknowledgements are deletions.
        for (d, s) in [&b1, &c].into_iter().zip(&outcome.seqs) {
            store.ack(d, &[*s]).await.unwrap();
        }
        assert_eq!(counts(store).await, (0, 0, 0));
    }
    // Only bob's device acknowledges in time: the payload is stored once,
    // for carol's device.
    let early: Vec<Arc<EarlyAck>> = vec![Arc::default(), Arc::default()];
    let mut bob_first = false;
    let outcome = store
        .enqueue_early(
            &[b1.clone(), c.clone()],
            to(b"for carol", 2, 10_000),
            &early,
            &mut |_| bob_first = early[0].ack(),
        )
        .await
        .unwrap();
    if acks_come_first {
        assert!(bob_first);
    }
    let stored_for_bob = u64::from(!bob_first);
    assert_eq!(counts(store).await, (1 + stored_for_bob, 1, 9));
    let got = store.fetch(&c, 0, 10).await.unwrap();
    assert_eq!(got[0].payload, b"for carol");
    store.ack(&c, &[outcome.seqs[1]]).await.unwrap();
    store.ack(&b1, &[outcome.seqs[0]]).await.unwrap();
    assert_eq!(counts(store).await, (0, 0, 0));
}

/// Two nodes acknowledge the last two copies of a payload at the same
/// moment: one of them frees it, every time.
async fn two_nodes_ack_the_last_copies_at_once(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let [_, b1, _, c] = people(&*a).await;
    for round in 0..30u8 {
        let seqs = a
            .enqueue(&[b1.clone(), c.clone()], to(&[round; 64], 2, 10_000), None)
            .await
            .unwrap();
        let (x, y) = (a.clone(), b.clone());
        let (b1c, cc) = (b1.clone(), c.clone());
        let (s0, s1) = (seqs[0], seqs[1]);
        let one = tokio::spawn(async move { x.ack(&b1c, &[s0]).await.unwrap() });
        let two = tokio::spawn(async move { y.ack(&cc, &[s1]).await.unwrap() });
        assert_eq!((one.await.unwrap(), two.await.unwrap()), (1, 1));
        assert_eq!(counts(&*a).await, (0, 0, 0), "round {round}");
    }
}

macro_rules! payloads {
    ($backend:ident, $make:expr, $acks_come_first:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn one_payload_per_send() {
                let (_guard, store) = $make.await;
                super::one_payload_per_send(&*store).await;
            }

            #[tokio::test]
            async fn freed_after_the_last_ack() {
                let (_guard, store) = $make.await;
                super::freed_after_the_last_ack(&*store).await;
            }

            #[tokio::test]
            async fn an_ack_frees_only_its_own_copy() {
                let (_guard, store) = $make.await;
                super::an_ack_frees_only_its_own_copy(&*store).await;
            }

            #[tokio::test]
            async fn freed_at_expiry() {
                let (_guard, store) = $make.await;
                super::freed_at_expiry(&*store).await;
            }

            #[tokio::test]
            async fn removal_frees_what_only_it_held() {
                let (_guard, store) = $make.await;
                super::removal_frees_what_only_it_held(&*store).await;
            }

            #[tokio::test]
            async fn early_acks_of_all_write_nothing() {
                let (_guard, store) = $make.await;
                super::early_acks_of_all_write_nothing(&*store, $acks_come_first).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_nodes_ack_the_last_copies_at_once() {
                let (guard, store) = $make.await;
                let other = guard.another_node().await;
                super::two_nodes_ack_the_last_copies_at_once(store, other).await;
            }
        }
    };
}

payloads!(on_sqlite, sqlite(), true);

// PostgreSQL writes before it hands envelopes over: acknowledgements never
// come first there.
payloads!(on_postgres, postgres_or_skip(), false);
