//! What the store test files share: test accounts and envelopes, and a
//! fresh database per test on each backend (SQLite always; PostgreSQL when
//! `HUSH_TEST_POSTGRES_URL` is set).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use hush_server::store::postgres::PostgresStore;
use hush_server::store::sqlite::SqliteStore;
use hush_server::store::*;

#[path = "../common/pg.rs"]
pub mod pg;
pub use pg::PgSchema;

pub fn device(id: u32, token: u8) -> NewDevice {
    NewDevice {
        device_id: id,
        certificate: vec![id as u8; 8],
        token_hash: [token; 32],
    }
}

pub async fn register(store: &dyn Store, name: &str, token: u8) {
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

pub fn envelope(payload: &[u8]) -> NewEnvelope {
    NewEnvelope {
        payload: payload.to_vec(),
        relay_tags: vec![vec![7; 32]],
        received_at_ms: 5000,
        expires_at_ms: 10_000,
        seal_later: None,
    }
}

pub fn claim_for(group: &[u8], epoch: u64, token: u8, next: u8) -> Option<EpochClaim> {
    Some(EpochClaim {
        group_id: group.to_vec(),
        epoch,
        token: [token; 32],
        next_token_hash: hush_proto::commit_token::token_hash(&[next; 32]),
    })
}

/// Keeps a test's database alive, and opens it again as another node.
pub enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres(PgSchema),
    /// A database served by one node alone: there is no second node, so
    /// "another" is that node again.
    PostgresAlone(PgSchema, Arc<dyn Store>),
    /// A database served by cluster nodes, each numbering the queues of
    /// the devices it sends to early (decision 0046).
    PostgresCluster(PgSchema),
}

impl Guard {
    /// A second, independent handle on the same database, as a second
    /// server node (or, for SQLite, a second process) would hold.
    pub async fn another_node(&self) -> Arc<dyn Store> {
        match self {
            Guard::Sqlite(dir) => Arc::new(SqliteStore::open(&dir.path().join("hush.db")).unwrap()),
            Guard::Postgres(schema) => Arc::new(
                PostgresStore::connect_with(schema.connect_options())
                    .await
                    .unwrap(),
            ),
            Guard::PostgresAlone(_, store) => store.clone(),
            Guard::PostgresCluster(schema) => Arc::new(cluster_node(schema).await),
        }
    }
}

pub async fn sqlite() -> (Guard, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("hush.db")).unwrap();
    (Guard::Sqlite(dir), Arc::new(store))
}

/// `None` when `HUSH_TEST_POSTGRES_URL` is unset. When it is set, PostgreSQL
/// must answer: a test never passes because the database was down.
pub async fn postgres() -> Option<(PgSchema, Arc<dyn Store>)> {
    let url = std::env::var("HUSH_TEST_POSTGRES_URL").ok()?;
    let schema = PgSchema::create(&url).await;
    let store = PostgresStore::connect_with(schema.connect_options())
        .await
        .unwrap();
    Some((schema, Arc::new(store)))
}

/// [`postgres`] with the store serving its database alone (decision
/// 0044): envelopes numbered in memory and handed over before their write.
pub async fn postgres_alone() -> Option<(PgSchema, PostgresStore)> {
    let url = std::env::var("HUSH_TEST_POSTGRES_URL").ok()?;
    let schema = PgSchema::create(&url).await;
    let store = PostgresStore::connect_with(schema.connect_options())
        .await
        .unwrap();
    store.serve_alone("test").await.unwrap();
    Some((schema, store))
}

pub async fn postgres_alone_or_skip() -> (Guard, Arc<dyn Store>) {
    match postgres_alone().await {
        Some((guard, store)) => {
            let store: Arc<dyn Store> = Arc::new(store);
            (Guard::PostgresAlone(guard, store.clone()), store)
        }
        None => {
            eprintln!("HUSH_TEST_POSTGRES_URL is not set: running against SQLite instead");
            sqlite().await
        }
    }
}

/// A cluster node on `schema` (decision 0046).
pub async fn cluster_node(schema: &PgSchema) -> PostgresStore {
    let store = PostgresStore::connect_with(schema.connect_options())
        .await
        .unwrap();
    store.join_cluster().await.unwrap();
    store.number_devices_here().unwrap();
    store
}

pub async fn postgres_cluster_or_skip() -> (Guard, Arc<dyn Store>) {
    let Ok(url) = std::env::var("HUSH_TEST_POSTGRES_URL") else {
        eprintln!("HUSH_TEST_POSTGRES_URL is not set: running against SQLite instead");
        return sqlite().await;
    };
    let schema = PgSchema::create(&url).await;
    let store = cluster_node(&schema).await;
    (Guard::PostgresCluster(schema), Arc::new(store))
}

pub async fn postgres_or_skip() -> (Guard, Arc<dyn Store>) {
    match postgres().await {
        Some((guard, store)) => (Guard::Postgres(guard), store),
        None => {
            eprintln!("HUSH_TEST_POSTGRES_URL is not set: running against SQLite instead");
            sqlite().await
        }
    }
}

/// Lays out the SQLite file `path` as schema `version` held it in an
/// earlier release, with the rows of `data` (SQL) in it.
pub fn sqlite_at_version(path: &std::path::Path, version: u32, data: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    hush_server::store::sqlite_migrate::migrate_to(&conn, version).unwrap();
    conn.execute_batch(data).unwrap();
    assert_eq!(sqlite_version(path), version);
}

/// The schema version of the SQLite file `path`.
pub fn sqlite_version(path: &std::path::Path) -> u32 {
    rusqlite::Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// A fresh PostgreSQL schema laid out as `version` held it in an earlier
/// release, with the rows of `data` (SQL with SQLite's `X'..'` blobs, turned
/// into `bytea`), and a pool on it. `None` when `HUSH_TEST_POSTGRES_URL` is
/// unset.
pub async fn postgres_at_version(version: i64, data: &str) -> Option<(PgSchema, sqlx::PgPool)> {
    use sqlx::Executor;
    let (schema, fresh) = postgres().await?;
    drop(fresh);
    let pool = sqlx::PgPool::connect_with(schema.connect_options())
        .await
        .unwrap();
    pool.execute(format!("DROP SCHEMA {0} CASCADE; CREATE SCHEMA {0}", schema.name).as_str())
        .await
        .unwrap();
    hush_server::store::postgres_migrate::migrate_to(&pool, version)
        .await
        .unwrap();
    pool.execute(data.replace("X'", "'\\x").as_str())
        .await
        .unwrap();
    Some((schema, pool))
}

/// The schema version of the PostgreSQL schema behind `pool`.
pub async fn postgres_version(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_one(pool)
        .await
        .unwrap()
}
