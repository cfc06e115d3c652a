//! Cluster nodes number the queues of the devices they send to early, one
//! claim per device (decision 0046): what a node numbered under a claim it
//! lost is never written under that number; the node numbers it again
//! under a new claim, above every number another node gave the device. Needs `HUSH_TEST_POSTGRES_URL`;
//! without it these tests say so and pass nothing off as PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store_common;

use std::sync::Arc;

use hush_server::store::postgres::PostgresStore;
use hush_server::store::*;
use store_common::*;

async fn two_nodes_or_skip() -> Option<(PgSchema, PostgresStore, PostgresStore)> {
    let Ok(url) = std::env::var("HUSH_TEST_POSTGRES_URL") else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipped");
        return None;
    };
    let schema = PgSchema::create(&url).await;
    let (x, y) = (cluster_node(&schema).await, cluster_node(&schema).await);
    Some((schema, x, y))
}

/// One early send of `body` to `to` from `node`; with `ack`, the device
/// acknowledges it as soon as it has its number (so it is never written).
async fn early(
    node: &PostgresStore,
    to: &DeviceKey,
    body: &[u8],
    ack: bool,
) -> StoreResult<EarlyOutcome> {
    let early = [Arc::new(EarlyAck::default())];
    node.enqueue_early(
        std::slice::from_ref(to),
        envelope(body),
        &early,
        &mut |_| {
            if ack {
                assert!(early[0].ack());
            } else {
                early[0].take_for_write();
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_send_written_by_another_node_takes_the_queue_and_fences_the_old_claim() {
    let Some((_guard, x, y)) = two_nodes_or_skip().await else {
        return;
    };
    register(&x, "alice", 1).await;
    let a = DeviceKey::new("alice", 1);
    // Node x claims alice's device and numbers in memory: one send
    // acknowledged before its write, one written.
    let spared = early(&x, &a, b"spared", true).await.unwrap().seqs[0];
    let m1 = early(&x, &a, b"m1", false).await.unwrap().seqs[0];
    assert_eq!(m1, spared + 1, "numbered from one block");
    // Node y writes one with the counters: above the block, and the claim
    // is gone.
    let m2 = y
        .enqueue(std::slice::from_ref(&a), envelope(b"m2"), None)
        .await
        .unwrap()[0];
    assert!(m2 > m1);
    // x's next send is numbered under the lost claim: its write is refused,
    // and x numbers it again under a new claim, above y's number.
    let again = early(&x, &a, b"again", false).await.unwrap().seqs[0];
    assert!(again > m2, "{again} after {m2}");
    // Once more: y takes the claim; a send x hands over under the old one
    // and the device acknowledges at once is delivered, and not written.
    let m3 = y
        .enqueue(std::slice::from_ref(&a), envelope(b"m3"), None)
        .await
        .unwrap()[0];
    early(&x, &a, b"acked", true).await.unwrap();
    let m4 = early(&x, &a, b"m4", false).await.unwrap().seqs[0];
    assert!(m4 > m3, "{m4} after {m3}");
    let queue = x.fetch(&a, 0, 100).await.unwrap();
    let bodies: Vec<&[u8]> = queue.iter().map(|e| e.payload.as_slice()).collect();
    assert_eq!(bodies, [b"m1".as_slice(), b"m2", b"again", b"m3", b"m4"]);
    let seqs: Vec<u64> = queue.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

/// Two nodes claim the same device in turn: each claim fences the other's,
/// and whatever either wrote reaches a reader paging the queue in order,
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_taking_one_queue_in_turn_lose_nothing_and_repeat_nothing() {
    let Some((_guard, x, y)) = two_nodes_or_skip().await else {
        return;
    };
    register(&x, "alice", 1).await;
    let a = DeviceKey::new("alice", 1);
    let (x, y) = (Arc::new(x), Arc::new(y));
    let mut tasks = Vec::new();
    for (n, node) in [x.clone(), y.clone()].into_iter().enumerate() {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = Vec::new();
            for i in 0..150u32 {
                let body = format!("{n}-{i}").into_bytes();
                // A send refused as busy is sent again.
                for _ in 0..20 {
                    match early(&node, &a, &body, false).await {
                        Ok(_) => {
                            stored.push(body.clone());
                            break;
                        }
                        Err(StoreError::Busy) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            stored
        }));
    }
    let mut sent = Vec::new();
    for t in tasks {
        sent.extend(t.await.unwrap());
    }
    assert_eq!(sent.len(), 300, "every send stored within its tries");
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = x.fetch(&a, after, 50).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        seen.extend(page.into_iter().map(|e| e.payload));
    }
    seen.sort();
    sent.sort();
    assert_eq!(seen, sent, "each stored send once, none lost");
}

/// A version-7 database (before claims) keeps its queue: a cluster node
/// claims the device, numbers above what is queued, and the old envelope
/// and account are all there.
#[tokio::test]
async fn a_version_7_database_keeps_its_queue_and_takes_claims() {
    let Some((schema, pool)) = postgres_at_version(7, V7_DATA).await else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipped");
        return;
    };
    let node = cluster_node(&schema).await;
    assert_eq!(
        postgres_version(&pool).await,
        hush_server::store::postgres_migrate::LATEST
    );
    let a = DeviceKey::new("olde", 1);
    let owner: (Option<String>, i64) =
        sqlx::query_as("SELECT owner, owner_token FROM devices WHERE username = 'olde'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(owner, (None, 0), "nobody holds a claim after the upgrade");
    let new = early(&node, &a, b"new", false).await.unwrap().seqs[0];
    assert!(new >= 8, "above the counter the old release left: {new}");
    let queue = node.fetch(&a, 0, 10).await.unwrap();
    let bodies: Vec<&[u8]> = queue.iter().map(|e| e.payload.as_slice()).collect();
    assert_eq!(bodies, [b"old".as_slice(), b"new"]);
    assert!(node.account("olde").await.unwrap().is_some());
}

/// An account, its device with one queued envelope (number 7), as release
/// 7 of the schema held them.
const V7_DATA: &str = "\
INSERT INTO accounts (username, account_key, state, created_at_ms) VALUES ('olde', X'0101', 0, 1000);
INSERT INTO devices (username, device_id, certificate, token_hash, next_seq)
    VALUES ('olde', 1, X'0202', X'0303030303030303030303030303030303030303030303030303030303030303', 8);
INSERT INTO payloads (body, size, expires_at_ms) VALUES (X'6F6C64', 3, 99999999999999);
INSERT INTO envelopes (username, device_id, seq, payload_id, header, received_at_ms, expires_at_ms)
    VALUES ('olde', 1, 7, currval(pg_get_serial_sequence('payloads', 'id')), NULL, 1000,
            99999999999999);";
