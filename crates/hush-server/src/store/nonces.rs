//! The nonces of signed device requests, shared by every node through the
//! store so that a captured request is refused on any node it is replayed
//! to (schema version 3, docs/decisions/0011-access-and-abuse-limits.md).

use super::backend;
use rusqlite::{Connection, params};
use sqlx::postgres::PgPool;

use super::StoreResult;

/// Schema version 3 on SQLite.
pub(super) const SQLITE_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS signed_nonces (\
    nonce         BLOB PRIMARY KEY, \
    expires_at_ms INTEGER NOT NULL);";

/// Schema version 3 on PostgreSQL.
pub(super) const POSTGRES_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS signed_nonces (\
    nonce         BYTEA PRIMARY KEY, \
    expires_at_ms BIGINT NOT NULL);";

/// One statement for both backends, so the check and the insert are atomic:
/// a new nonce is inserted, an expired one is taken over, a live one is left
/// alone (no row changed). Parameters: nonce, expiry, now.
const REMEMBER_SQL: &str = "\
INSERT INTO signed_nonces (nonce, expires_at_ms) VALUES ($1, $2) \
ON CONFLICT (nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms \
WHERE signed_nonces.expires_at_ms < $3";

const EXPIRE_SQL: &str = "DELETE FROM signed_nonces WHERE expires_at_ms < $1";

pub(super) fn sqlite_remember(
    conn: &Connection,
    nonce: &[u8; 32],
    expires_at_ms: u64,
    now_ms: u64,
) -> StoreResult<bool> {
    let n = conn
        .execute(
            REMEMBER_SQL,
            params![&nonce[..], expires_at_ms as i64, now_ms as i64],
        )
        .map_err(backend)?;
    Ok(n == 1)
}

pub(super) fn sqlite_expire(conn: &Connection, now_ms: u64) -> StoreResult<u64> {
    conn.execute(EXPIRE_SQL, params![now_ms as i64])
        .map(|n| n as u64)
        .map_err(backend)
}

pub(super) async fn postgres_remember(
    pool: &PgPool,
    nonce: &[u8; 32],
    expires_at_ms: u64,
    now_ms: u64,
) -> StoreResult<bool> {
    let n = sqlx::query(REMEMBER_SQL)
        .bind(&nonce[..])
        .bind(expires_at_ms as i64)
        .bind(now_ms as i64)
        .execute(pool)
        .await
        .map_err(backend)?
        .rows_affected();
    Ok(n == 1)
}

pub(super) async fn postgres_expire(pool: &PgPool, now_ms: u64) -> StoreResult<u64> {
    Ok(sqlx::query(EXPIRE_SQL)
        .bind(now_ms as i64)
        .execute(pool)
        .await
        .map_err(backend)?
        .rows_affected())
}
