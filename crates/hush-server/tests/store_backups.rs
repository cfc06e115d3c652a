//! Backups stored on the server (decision 0035), on every backend: one slot
//! per account, found by locator, replaced whole, never written over another
//! account's; and the migration that adds them opens a database of the
//! version before it with everything kept.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store_common;

use hush_server::store::backups::BackupInfo;
use hush_server::store::postgres::PostgresStore;
use hush_server::store::sqlite::SqliteStore;
use hush_server::store::*;
use store_common::*;

async fn one_slot_per_account(store: &dyn Store) {
    register(store, "alice", 1).await;
    register(store, "mallory", 2).await;
    assert_eq!(store.backup([7; 32]).await.unwrap(), None);
    assert_eq!(store.backup_info("alice").await.unwrap(), None);
    store
        .put_backup("alice", [7; 32], b"first".to_vec(), 10)
        .await
        .unwrap();
    assert_eq!(store.backup([7; 32]).await.unwrap().unwrap(), b"first");
    // A new backup replaces the old one, and its locator.
    store
        .put_backup("alice", [8; 32], b"second one".to_vec(), 20)
        .await
        .unwrap();
    assert_eq!(store.backup([7; 32]).await.unwrap(), None);
    assert_eq!(store.backup([8; 32]).await.unwrap().unwrap(), b"second one");
    assert_eq!(
        store.backup_info("alice").await.unwrap(),
        Some(BackupInfo {
            size: 10,
            updated_at_ms: 20
        })
    );
    // Another account cannot store under alice's locator: nothing changes.
    assert!(matches!(
        store
            .put_backup("mallory", [8; 32], b"evil".to_vec(), 30)
            .await,
        Err(StoreError::LocatorTaken)
    ));
    assert_eq!(store.backup([8; 32]).await.unwrap().unwrap(), b"second one");
    assert_eq!(store.backup_info("mallory").await.unwrap(), None);
    // Nor delete it: a delete takes only the caller's own slot.
    assert!(!store.delete_backup("mallory").await.unwrap());
    assert_eq!(store.backup([8; 32]).await.unwrap().unwrap(), b"second one");
    // An unknown account stores nothing.
    assert!(matches!(
        store.put_backup("nobody", [9; 32], b"x".to_vec(), 30).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.delete_backup("alice").await.unwrap());
    assert_eq!(store.backup([8; 32]).await.unwrap(), None);
    assert!(!store.delete_backup("alice").await.unwrap());
    // A deleted account takes its backup with it.
    store
        .put_backup("mallory", [5; 32], b"m".to_vec(), 40)
        .await
        .unwrap();
    store.delete_account("mallory").await.unwrap();
    assert_eq!(store.backup([5; 32]).await.unwrap(), None);
}

#[tokio::test]
async fn sqlite_keeps_one_backup_per_account() {
    let (_guard, store) = sqlite().await;
    one_slot_per_account(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_one_backup_per_account() {
    let (_guard, store) = postgres_or_skip().await;
    one_slot_per_account(store.as_ref()).await;
}

/// An account with a device and a profile, as the version before backups
/// wrote them.
const BEFORE_DATA: &str = "\
INSERT INTO accounts (username, account_key, state, created_at_ms) VALUES ('olde', X'0101', 0, 1000);
INSERT INTO devices (username, device_id, certificate, token_hash, next_seq)
    VALUES ('olde', 1, X'0202', X'0303030303030303030303030303030303030303030303030303030303030303', 8);
INSERT INTO profiles (username, blob) VALUES ('olde', X'0404');";

async fn finds_data_from_before_backups(store: &dyn Store) {
    let acct = store.account("olde").await.unwrap().unwrap();
    assert_eq!(acct.devices[0].certificate, vec![2, 2]);
    assert_eq!(store.profile("olde").await.unwrap().unwrap(), vec![4, 4]);
    assert_eq!(store.backup_info("olde").await.unwrap(), None);
    store
        .put_backup("olde", [1; 32], b"sealed".to_vec(), 5)
        .await
        .unwrap();
    assert_eq!(store.backup([1; 32]).await.unwrap().unwrap(), b"sealed");
}

/// The schema version just before the backups step (version 6).
const BEFORE_SQLITE: u32 = 5;
const BEFORE_POSTGRES: i64 = 5;

#[tokio::test]
async fn sqlite_opens_a_database_from_before_backups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.db");
    sqlite_at_version(&path, BEFORE_SQLITE, BEFORE_DATA);
    let has: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'backups'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(has, 0, "the version before has no backups table");
    let store = SqliteStore::open(&path).unwrap();
    finds_data_from_before_backups(&store).await;
    drop(store);
    assert_eq!(
        sqlite_version(&path),
        hush_server::store::sqlite_migrate::LATEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_opens_a_database_from_before_backups() {
    let Some((schema, pool)) = postgres_at_version(BEFORE_POSTGRES, BEFORE_DATA).await else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: skipping");
        return;
    };
    let store = PostgresStore::connect_with(schema.connect_options())
        .await
        .unwrap();
    assert_eq!(
        postgres_version(&pool).await,
        hush_server::store::postgres_migrate::LATEST
    );
    finds_data_from_before_backups(&store).await;
}
