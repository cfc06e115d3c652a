//! Backups stored on the server (decision 0035): one opaque sealed blob per
//! account, found by a 32-byte locator the client derives from its recovery
//! key. The server never sees the key and cannot open the blob.
//!
//! The schema is its own migration step on both backends ("server backups");
//! an account's backup goes with the account.

use rusqlite::{Connection, OptionalExtension, params};
use sqlx::PgPool;

use super::{StoreError, StoreResult, backend};

/// The migration step that adds the table (SQLite).
pub const SQLITE_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS backups (
    username      TEXT PRIMARY KEY REFERENCES accounts(username) ON DELETE CASCADE,
    locator       BLOB NOT NULL UNIQUE,
    data          BLOB NOT NULL,
    updated_at_ms INTEGER NOT NULL
);";

/// The migration step that adds the table (PostgreSQL).
pub const POSTGRES_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS backups (
    username      TEXT PRIMARY KEY REFERENCES accounts(username) ON DELETE CASCADE,
    locator       BYTEA NOT NULL UNIQUE,
    data          BYTEA NOT NULL,
    updated_at_ms BIGINT NOT NULL
);";

/// What the server holds of an account's backup, without the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The blob's size in bytes.
    pub size: u64,
    /// When it was last replaced.
    pub updated_at_ms: u64,
}

const UPSERT: &str = "INSERT INTO backups (username, locator, data, updated_at_ms) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (username) DO UPDATE SET locator = excluded.locator, \
         data = excluded.data, updated_at_ms = excluded.updated_at_ms";

const INFO: &str = "SELECT length(data), updated_at_ms FROM backups WHERE username = $1";

// ------------------------------------------------------------------ SQLite

/// Stores (or replaces) the account's backup under `locator`.
pub(super) fn sqlite_put(
    conn: &Connection,
    username: &str,
    locator: &[u8; 32],
    data: &[u8],
    now_ms: u64,
) -> StoreResult<()> {
    conn.execute(
        UPSERT,
        params![username, locator.as_slice(), data, now_ms as i64],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(err, _)
            if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::NotFound
        }
        rusqlite::Error::SqliteFailure(err, _)
            if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::LocatorTaken
        }
        e => backend(e),
    })?;
    Ok(())
}

/// The backup stored under `locator`.
pub(super) fn sqlite_get(conn: &Connection, locator: &[u8; 32]) -> StoreResult<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT data FROM backups WHERE locator = ?1",
        params![locator.as_slice()],
        |r| r.get(0),
    )
    .optional()
    .map_err(backend)
}

/// The size and time of the account's backup.
pub(super) fn sqlite_info(conn: &Connection, username: &str) -> StoreResult<Option<BackupInfo>> {
    conn.query_row(INFO, params![username], |r| {
        Ok(BackupInfo {
            size: r.get::<_, i64>(0)? as u64,
            updated_at_ms: r.get::<_, i64>(1)? as u64,
        })
    })
    .optional()
    .map_err(backend)
}

/// Deletes the account's backup; false when it had none.
pub(super) fn sqlite_delete(conn: &Connection, username: &str) -> StoreResult<bool> {
    conn.execute("DELETE FROM backups WHERE username = ?1", params![username])
        .map(|n| n > 0)
        .map_err(backend)
}

// -------------------------------------------------------------- PostgreSQL

fn pg_code(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Stores (or replaces) the account's backup under `locator`.
pub(super) async fn pg_put(
    pool: &PgPool,
    username: &str,
    locator: &[u8; 32],
    data: Vec<u8>,
    now_ms: u64,
) -> StoreResult<()> {
    sqlx::query(UPSERT)
        .bind(username)
        .bind(locator.as_slice())
        .bind(data)
        .bind(now_ms as i64)
        .execute(pool)
        .await
        .map_err(|e| match pg_code(&e).as_deref() {
            Some("23505") => StoreError::LocatorTaken,
            Some("23503") => StoreError::NotFound,
            _ => backend(e),
        })?;
    Ok(())
}

/// The backup stored under `locator`.
pub(super) async fn pg_get(pool: &PgPool, locator: &[u8; 32]) -> StoreResult<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT data FROM backups WHERE locator = $1")
        .bind(locator.as_slice())
        .fetch_optional(pool)
        .await
        .map_err(backend)
}

/// The size and time of the account's backup.
pub(super) async fn pg_info(pool: &PgPool, username: &str) -> StoreResult<Option<BackupInfo>> {
    let row: Option<(i32, i64)> = sqlx::query_as(INFO)
        .bind(username)
        .fetch_optional(pool)
        .await
        .map_err(backend)?;
    Ok(row.map(|(size, at)| BackupInfo {
        size: size as u64,
        updated_at_ms: at as u64,
    }))
}

/// Deletes the account's backup; false when it had none.
pub(super) async fn pg_delete(pool: &PgPool, username: &str) -> StoreResult<bool> {
    sqlx::query("DELETE FROM backups WHERE username = $1")
        .bind(username)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() > 0)
        .map_err(backend)
}
