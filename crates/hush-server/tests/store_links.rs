//! Invite links in storage (decision 0033), on SQLite and PostgreSQL: the
//! use limit, expiry and revocation hold in the store itself, and a
//! database written by the release before links (schema 4) opens with this
//! code, keeps what it held and takes links.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store_common;

use hush_server::store::postgres::PostgresStore;
use hush_server::store::sqlite::SqliteStore;
use hush_server::store::*;
use store_common::*;

fn link(max_uses: u32, expires_at_ms: u64) -> NewLink {
    NewLink {
        blob: b"sealed preview".to_vec(),
        manage_hash: [7; 32],
        expires_at_ms,
        max_uses,
        approve: false,
        now_ms: 1000,
    }
}

async fn links_hold_their_limits(store: &dyn Store) {
    let id = [1; 32];
    assert!(store.create_link(id, link(2, 0)).await.unwrap());
    assert!(
        !store.create_link(id, link(9, 0)).await.unwrap(),
        "an id is filed once"
    );
    let got = store.link(id).await.unwrap().unwrap();
    assert_eq!(got.link, link(2, 0));
    assert_eq!((got.uses, got.revoked), (0, false));
    assert_eq!(
        store.file_join_request([2; 32], vec![1], 5).await.unwrap(),
        JoinFiled::Unknown
    );
    let JoinFiled::Filed(a) = store.file_join_request(id, vec![1], 5).await.unwrap() else {
        panic!("first request refused")
    };
    assert!(matches!(
        store.file_join_request(id, vec![2], 6).await.unwrap(),
        JoinFiled::Filed(_)
    ));
    // Used up: the third is refused and nothing is filed.
    assert_eq!(
        store.file_join_request(id, vec![3], 7).await.unwrap(),
        JoinFiled::Closed
    );
    let pending = store.join_requests(id).await.unwrap();
    assert_eq!(
        pending.iter().map(|p| p.1.clone()).collect::<Vec<_>>(),
        vec![vec![1], vec![2]]
    );
    assert_eq!(store.delete_join_requests(id, vec![a]).await.unwrap(), 1);
    assert_eq!(store.join_requests(id).await.unwrap().len(), 1);
    // Expiry.
    let soon = [3; 32];
    assert!(store.create_link(soon, link(0, 100)).await.unwrap());
    assert!(matches!(
        store.file_join_request(soon, vec![1], 99).await.unwrap(),
        JoinFiled::Filed(_)
    ));
    assert_eq!(
        store.file_join_request(soon, vec![1], 100).await.unwrap(),
        JoinFiled::Closed
    );
    // Revocation closes it and empties its mailbox.
    store.revoke_link(soon).await.unwrap();
    assert!(store.link(soon).await.unwrap().unwrap().revoked);
    assert!(store.join_requests(soon).await.unwrap().is_empty());
    assert_eq!(
        store.file_join_request(soon, vec![1], 50).await.unwrap(),
        JoinFiled::Closed
    );
    // The expiry sweep forgets the closed link and old requests, and keeps
    // the open one.
    assert_eq!(store.expire_links(2000).await.unwrap(), 1);
    assert!(store.link(soon).await.unwrap().is_none());
    assert!(store.link(id).await.unwrap().is_some());
    assert!(store.join_requests(id).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_links_hold_their_limits() {
    let (_g, store) = sqlite().await;
    links_hold_their_limits(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_links_hold_their_limits() {
    let (_g, store) = postgres_or_skip().await;
    links_hold_their_limits(&*store).await;
}

/// A schema-4 database: an account, a device and a queued envelope.
const V4_DATA: &str = "\
INSERT INTO accounts (username, account_key, state, created_at_ms) VALUES ('olde', X'0101', 0, 1000);
INSERT INTO devices (username, device_id, certificate, token_hash, next_seq)
    VALUES ('olde', 1, X'0202', X'0303030303030303030303030303030303030303030303030303030303030303', 8);";

async fn finds_version_4_data_and_takes_links(store: &dyn Store) {
    let acct = store.account("olde").await.unwrap().unwrap();
    assert_eq!(acct.devices[0].certificate, vec![2, 2]);
    let auth = store.authenticate(&[3; 32]).await.unwrap().unwrap();
    assert_eq!(auth.device, DeviceKey::new("olde", 1));
    assert!(store.create_link([5; 32], link(1, 0)).await.unwrap());
    assert!(matches!(
        store.file_join_request([5; 32], vec![9], 1).await.unwrap(),
        JoinFiled::Filed(_)
    ));
}

#[tokio::test]
async fn sqlite_opens_a_version_4_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.db");
    sqlite_at_version(&path, 4, V4_DATA);
    let store = SqliteStore::open(&path).unwrap();
    finds_version_4_data_and_takes_links(&store).await;
    drop(store);
    assert_eq!(
        sqlite_version(&path),
        hush_server::store::sqlite_migrate::LATEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_opens_a_version_4_database() {
    let Some((schema, pool)) = postgres_at_version(4, V4_DATA).await else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipping");
        return;
    };
    // Two nodes start at once on it: the migration runs once.
    let options = schema.connect_options();
    let (a, b) = tokio::join!(
        PostgresStore::connect_with(options.clone()),
        PostgresStore::connect_with(options)
    );
    let (a, _b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        postgres_version(&pool).await,
        hush_server::store::postgres_migrate::LATEST
    );
    finds_version_4_data_and_takes_links(&a).await;
}
