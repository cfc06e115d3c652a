//! A PostgreSQL node serving its database alone (decision 0044): what it
//! numbers in memory reaches a reader in order, another node cannot run
//! beside it, and once another node took the queues it writes nothing
//! numbered the old way. Needs `HUSH_TEST_POSTGRES_URL`; without it these
//! tests say so and pass nothing off as PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store_common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hush_server::store::postgres::PostgresStore;
use hush_server::store::*;
use store_common::*;

async fn alone_or_skip() -> Option<(PgSchema, PostgresStore)> {
    let found = postgres_alone().await;
    if found.is_none() {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipped");
    }
    found
}

/// A node alone with alice's device and one send to it, "m1": its number.
async fn alice_with_one_send() -> Option<(PgSchema, PostgresStore, DeviceKey, u64)> {
    let (guard, store) = alone_or_skip().await?;
    register(&store, "alice", 1).await;
    let a = DeviceKey::new("alice", 1);
    let first = store
        .enqueue(std::slice::from_ref(&a), envelope(b"m1"), None)
        .await
        .unwrap()[0];
    Some((guard, store, a, first))
}

/// Sends from many tasks at once while a reader pages through the queue
/// the way a connection does (`after` the last number it saw): it must
/// see every send, none skipped because a smaller number committed after
/// a larger one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_paging_by_number_misses_nothing_sent_concurrently() {
    let Some((_guard, store)) = alone_or_skip().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(store);
    register(&*store, "alice", 1).await;
    let a = DeviceKey::new("alice", 1);
    const SENDS: u32 = 600;
    let mut tasks = Vec::new();
    for w in 0..6u32 {
        let (store, a) = (store.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..SENDS / 6 {
                let body = (w * 1000 + i).to_be_bytes();
                // Half of them handed over early and never acknowledged.
                if i % 2 == 0 {
                    store
                        .enqueue(std::slice::from_ref(&a), envelope(&body), None)
                        .await
                        .unwrap();
                } else {
                    let early = [Arc::new(EarlyAck::default())];
                    store
                        .enqueue_early(
                            std::slice::from_ref(&a),
                            envelope(&body),
                            &early,
                            &mut |_| {},
                        )
                        .await
                        .unwrap();
                }
            }
        }));
    }
    let mut seen = BTreeSet::new();
    let mut after = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < SENDS as usize && tokio::time::Instant::now() < deadline {
        for env in store.fetch(&a, after, 50).await.unwrap() {
            assert!(env.seq > after, "numbers come in order");
            after = env.seq;
            assert!(seen.insert(env.payload.clone()), "no send twice");
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(seen.len(), SENDS as usize, "the reader saw every send");
    assert!(store.fetch(&a, after, 50).await.unwrap().is_empty());
}

/// A node serving the database alone keeps a second one (alone or in a
/// cluster) from starting beside it, with an error that says why.
#[tokio::test]
async fn a_second_node_cannot_start_beside_one_serving_alone() {
    let Some((guard, _first)) = alone_or_skip().await else {
        return;
    };
    let second = PostgresStore::connect_with(guard.connect_options())
        .await
        .unwrap();
    let third = PostgresStore::connect_with(guard.connect_options())
        .await
        .unwrap();
    let (alone, cluster) = tokio::join!(second.serve_alone("other"), third.join_cluster());
    let alone = alone
        .expect_err("a second node alone is refused")
        .to_string();
    assert!(alone.contains("alone:test"), "{alone}");
    let cluster = cluster.expect_err("a cluster node is refused").to_string();
    assert!(cluster.contains("without --nats"), "{cluster}");
}

/// The same node started again (after a crash) takes the queues at once,
/// and the process it replaced, if it still runs, writes no queue again.
#[tokio::test]
async fn a_node_started_again_fences_off_the_process_it_replaces() {
    let Some((guard, old, a, first)) = alice_with_one_send().await else {
        return;
    };
    let new = PostgresStore::connect_with(guard.connect_options())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    new.serve_alone("test").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no wait for itself"
    );
    // The old process had handed this one over early: it hears the send
    // failed (and its sender sends again), and nothing is written.
    let early = [Arc::new(EarlyAck::default())];
    let refused = old
        .enqueue_early(
            std::slice::from_ref(&a),
            envelope(b"lost"),
            &early,
            &mut |_| {},
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Busy)), "{refused:?}");
    // The new process numbers above everything the old one handed out.
    let next = new
        .enqueue(std::slice::from_ref(&a), envelope(b"m2"), None)
        .await
        .unwrap()[0];
    assert!(next > first);
    // The old one writes no queue any more: the new one serves them.
    let later = old
        .enqueue(std::slice::from_ref(&a), envelope(b"m3"), None)
        .await;
    assert!(later.is_err(), "{later:?}");
    let queue = new.fetch(&a, 0, 100).await.unwrap();
    let bodies: Vec<&[u8]> = queue.iter().map(|e| e.payload.as_slice()).collect();
    assert_eq!(bodies, vec![b"m1".as_slice(), b"m2".as_slice()]);
}

/// Another node took the queues once this one's claim lapsed (it could
/// not reach the database, say): this one's writes are refused from then
/// on, even a send every recipient acknowledged early, and it goes back to
/// numbering each send in its write, above what the other handed out.
#[tokio::test]
async fn after_another_node_took_the_queues_nothing_is_numbered_in_memory() {
    let Some((guard, store, a, first)) = alice_with_one_send().await else {
        return;
    };
    // A cluster node takes the lapsed lease and numbers a send.
    let pool = sqlx::PgPool::connect_with(guard.connect_options())
        .await
        .unwrap();
    sqlx::query("UPDATE leases SET holder = 'cluster', token = token + 1 WHERE name = 'queues'")
        .execute(&pool)
        .await
        .unwrap();
    let taken: i64 = sqlx::query_scalar(
        "UPDATE devices SET next_seq = next_seq + 1 WHERE username = 'alice' RETURNING next_seq - 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(taken as u64 > first);
    // Acknowledged early by its only recipient: still refused.
    let early = [Arc::new(EarlyAck::default())];
    let refused = store
        .enqueue_early(
            std::slice::from_ref(&a),
            envelope(b"spared"),
            &early,
            &mut |_| {
                assert!(early[0].ack());
            },
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Busy)), "{refused:?}");
    let again = store
        .enqueue(std::slice::from_ref(&a), envelope(b"m2"), None)
        .await
        .unwrap()[0];
    assert!(again > taken as u64, "{again} after {taken}");
    let queue = store.fetch(&a, 0, 100).await.unwrap();
    let bodies: Vec<&[u8]> = queue.iter().map(|e| e.payload.as_slice()).collect();
    assert_eq!(bodies, vec![b"m1".as_slice(), b"m2".as_slice()]);
}
