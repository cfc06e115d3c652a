//! Versioned schema migrations of the PostgreSQL backend.
//!
//! The version is the one row of `schema_version`. Each migration runs in
//! its own transaction with the version bump, under a transaction-scoped
//! advisory lock, so nodes that start at once apply each migration exactly
//! once (the others wait, then re-read the version). A database written
//! before versions existed has no `schema_version` and its tables already:
//! migration 1 is the schema of those releases, written with
//! `IF NOT EXISTS`, so it adopts them unchanged.

use super::backend;
use sqlx::{Executor, PgPool};

use super::{StoreError, StoreResult};

/// Migration `i` takes the schema from version `i` to `i + 1`. Never edit
/// one that has shipped: add the next.
const MIGRATIONS: &[&[&str]] = &[
    // 1: the schema of the releases before versioned migrations.
    &[SCHEMA_V1, super::postgres_kt::SCHEMA],
    // 2: commit tokens (docs/decisions/0012-commit-tokens.md).
    &["ALTER TABLE groups ADD COLUMN token_hash BYTEA, ADD COLUMN prev_token_hash BYTEA;"],
    // 3: signed-request nonces shared by every node (decision 0011).
    &[super::nonces::POSTGRES_SCHEMA],
    // 4: a send's payload stored once (decision 0015).
    &[super::postgres_queue::SCHEMA_V4],
    // 5: invite links and their mailboxes (decision 0033).
    &[super::links::POSTGRES_SCHEMA_V5],
    // 6: server backups: one sealed blob per account under a locator
    // (decision 0035).
    &[super::backups::POSTGRES_SCHEMA],
    // 7: channels and their posts, stored once (decision 0038).
    &[super::channels::POSTGRES_SCHEMA_V7],
    // 8: the cluster node that numbers a device's queue in memory, and the
    // fencing token of its claim (decision 0046).
    &[
        "ALTER TABLE devices ADD COLUMN owner TEXT, ADD COLUMN owner_token BIGINT NOT NULL DEFAULT 0;",
    ],
];

/// The schema version this code writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// The advisory lock every node takes before it reads or changes the schema.
const MIGRATION_LOCK: i64 = 7780;

/// Brings the database to [`LATEST`], one transaction per migration.
/// Returns the version found and the version left.
pub(super) async fn migrate(pool: &PgPool) -> StoreResult<(i64, i64)> {
    let from = version(pool).await?;
    migrate_to(pool, LATEST).await?;
    let to = version(pool).await?;
    if from != to {
        tracing::info!(from, to, "database schema migrated");
    }
    Ok((from, to))
}

/// Connects to `url` and brings its schema to [`LATEST`] without serving:
/// for `hush-server migrate`. Returns the version found and the version
/// left. (Back up a PostgreSQL database with `pg_dump` first.)
pub async fn migrate_url(url: &str) -> StoreResult<(i64, i64)> {
    let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(backend)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(backend)?;
    let done = migrate(&pool).await;
    pool.close().await;
    done
}

/// The schema version of the database (0: none recorded yet).
pub async fn version(pool: &PgPool) -> StoreResult<i64> {
    let recorded: bool = sqlx::query_scalar("SELECT to_regclass('schema_version') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(backend)?;
    if !recorded {
        return Ok(0);
    }
    Ok(sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_optional(pool)
        .await
        .map_err(backend)?
        .unwrap_or(0))
}

/// Brings the database to schema `version` (at most [`LATEST`]), one
/// transaction per migration: what the release that wrote `version` would
/// have made of it. For tests that lay out an older release's database.
pub async fn migrate_to(pool: &PgPool, version: i64) -> StoreResult<()> {
    while step(pool, version).await? {}
    Ok(())
}

/// Applies the next migration up to `target`, if any; true if it applied
/// one.
async fn step(pool: &PgPool, target: i64) -> StoreResult<bool> {
    let mut tx = pool.begin().await.map_err(backend)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (\
             one     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), \
             version BIGINT NOT NULL)",
    )
    .await
    .map_err(backend)?;
    let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?
        .unwrap_or(0);
    if version > LATEST {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, newer than this hush-server knows \
             ({LATEST}): run the hush-server release that wrote it, or a newer one"
        )));
    }
    let Some(batches) = usize::try_from(version)
        .ok()
        .and_then(|v| MIGRATIONS.get(v))
        .filter(|_| version < target)
    else {
        tx.commit().await.map_err(backend)?;
        return Ok(false);
    };
    for sql in *batches {
        tx.execute(*sql).await.map_err(|e| {
            StoreError::Backend(format!(
                "schema migration to version {} failed: {e}",
                version + 1
            ))
        })?;
    }
    sqlx::query(
        "INSERT INTO schema_version (version) VALUES ($1) \
         ON CONFLICT (one) DO UPDATE SET version = excluded.version",
    )
    .bind(version + 1)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(true)
}

/// Schema version 1: the tables of the releases before versioned
/// migrations. Never edit it: add a migration here.
pub const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS accounts (
    username      TEXT PRIMARY KEY,
    account_key   BYTEA NOT NULL,
    state         SMALLINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    username    TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    device_id   BIGINT NOT NULL,
    certificate BYTEA NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    next_seq    BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (username, device_id)
);
CREATE TABLE IF NOT EXISTS key_packages (
    id          BIGSERIAL PRIMARY KEY,
    username    TEXT NOT NULL,
    device_id   BIGINT NOT NULL,
    suite       INTEGER NOT NULL,
    last_resort BOOLEAN NOT NULL,
    data        BYTEA NOT NULL,
    FOREIGN KEY (username, device_id) REFERENCES devices(username, device_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS key_packages_by_device
    ON key_packages(username, device_id, suite, last_resort, id);
CREATE TABLE IF NOT EXISTS envelopes (
    username       TEXT NOT NULL,
    device_id      BIGINT NOT NULL,
    seq            BIGINT NOT NULL,
    payload        BYTEA NOT NULL,
    relay_tag      BYTEA,
    received_at_ms BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (username, device_id, seq),
    FOREIGN KEY (username, device_id) REFERENCES devices(username, device_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS envelopes_by_expiry ON envelopes(expires_at_ms);
CREATE TABLE IF NOT EXISTS groups (
    group_id BYTEA PRIMARY KEY,
    epoch    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS profiles (
    username TEXT PRIMARY KEY REFERENCES accounts(username) ON DELETE CASCADE,
    blob     BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS server_secrets (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    id             BIGSERIAL PRIMARY KEY,
    reporter       TEXT NOT NULL,
    sender         TEXT NOT NULL,
    commitment     BYTEA NOT NULL,
    content        BYTEA NOT NULL,
    reason         TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    filed_at_ms    BIGINT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'open',
    UNIQUE (reporter, commitment)
);
CREATE INDEX IF NOT EXISTS reports_by_reporter ON reports(reporter, filed_at_ms);
CREATE TABLE IF NOT EXISTS leases (
    name          TEXT PRIMARY KEY,
    holder        TEXT NOT NULL,
    token         BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
"#;
