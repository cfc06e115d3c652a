//! Versioned schema migrations of the SQLite backend.
//!
//! The version is SQLite's `PRAGMA user_version`. Each migration runs in its
//! own `BEGIN IMMEDIATE` transaction together with the version bump, so a
//! crash leaves the database at one version or the next, and two processes
//! opening it at once apply each migration once (the second re-reads the
//! version under the write lock). A database written before versions existed
//! has version 0 and its tables already: migration 1 is the schema of those
//! releases, written with `IF NOT EXISTS`, so it adopts them unchanged.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{StoreError, StoreResult, backend, sqlite_backup};

/// Migration `i` takes the schema from version `i` to `i + 1`. Never edit
/// one that has shipped: add the next.
const MIGRATIONS: &[&[&str]] = &[
    // 1: the schema of the releases before versioned migrations.
    &[SCHEMA_V1, super::sqlite_kt::SCHEMA],
    // 2: commit tokens (docs/decisions/0012-commit-tokens.md).
    &["ALTER TABLE groups ADD COLUMN token_hash BLOB; \
       ALTER TABLE groups ADD COLUMN prev_token_hash BLOB;"],
    // 3: signed-request nonces shared by every node (decision 0011).
    &[super::nonces::SQLITE_SCHEMA],
    // 4: a send's payload stored once (decision 0015).
    &[super::sqlite_queue::SCHEMA_V4],
    // 5: invite links and their mailboxes (decision 0033).
    &[super::links::SQLITE_SCHEMA_V5],
    // 6: server backups: one sealed blob per account under a locator
    // (decision 0035).
    &[super::backups::SQLITE_SCHEMA],
    // 7: channels and their posts, stored once (decision 0038).
    &[super::channels::SQLITE_SCHEMA_V7],
];

/// The schema version this code writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// What bringing a database to [`LATEST`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The schema version found.
    pub from: u32,
    /// The schema version left ([`LATEST`]).
    pub to: u32,
    /// The copy of the file taken before the first migration, if one ran on
    /// a database that held tables.
    pub backup: Option<PathBuf>,
}

/// Brings the database `conn` has open (the file at `path`) to [`LATEST`],
/// one transaction per migration. A database that already holds tables
/// is first copied next to itself (see [`sqlite_backup::pre_migration_path`]);
/// one newer than this code is refused untouched.
pub(super) fn migrate(conn: &Connection, path: &Path) -> StoreResult<Migration> {
    let from = version(conn)?;
    refuse_newer(from)?;
    let backup = if from < LATEST && holds_tables(conn)? {
        let dest = sqlite_backup::pre_migration_path(path, from);
        sqlite_backup::copy_to(conn, &dest)?;
        Some(dest)
    } else {
        None
    };
    migrate_to(conn, LATEST)?;
    let to = version(conn)?;
    if from != to {
        tracing::info!(from, to, backup = ?backup, "database schema migrated");
    }
    Ok(Migration { from, to, backup })
}

/// Opens (creating if needed) the database at `path` and brings it to
/// [`LATEST`], as a server start would, without serving: for
/// `hush-server migrate`.
pub fn migrate_file(path: &Path) -> StoreResult<Migration> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.pragma_update(None, "busy_timeout", 5000)
        .map_err(backend)?;
    prepare(&conn)?;
    migrate(&conn, path)
}

/// Refuses a database newer than this code before anything touches it,
/// then puts it in WAL mode with `synchronous = FULL` (a committed
/// transaction is on disk).
pub(super) fn prepare(conn: &Connection) -> StoreResult<()> {
    refuse_newer(version(conn)?)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(backend)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(backend)
}

/// The schema version of the database `conn` has open.
pub fn version(conn: &Connection) -> StoreResult<u32> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)
}

fn holds_tables(conn: &Connection) -> StoreResult<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table')",
        [],
        |r| r.get(0),
    )
    .map_err(backend)
}

fn refuse_newer(version: u32) -> StoreResult<()> {
    if version > LATEST {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, newer than this hush-server knows \
             ({LATEST}): run the hush-server release that wrote it, or a newer one"
        )));
    }
    Ok(())
}

/// Brings the database to schema `version` (at most [`LATEST`]), one
/// transaction per migration: what the release that wrote `version` would
/// have made of it. For tests that lay out an older release's database.
pub fn migrate_to(conn: &Connection, version: u32) -> StoreResult<()> {
    loop {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
        match step(conn, version) {
            Ok(more) => {
                conn.execute_batch("COMMIT").map_err(backend)?;
                if !more {
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}

/// Applies the next migration up to `target`, if any; true if it applied
/// one.
fn step(conn: &Connection, target: u32) -> StoreResult<bool> {
    let version = version(conn)?;
    refuse_newer(version)?;
    let Some(batches) = MIGRATIONS
        .get(version as usize)
        .filter(|_| version < target)
    else {
        return Ok(false);
    };
    for sql in *batches {
        conn.execute_batch(sql).map_err(|e| {
            StoreError::Backend(format!(
                "schema migration to version {} failed: {e}",
                version + 1
            ))
        })?;
    }
    conn.pragma_update(None, "user_version", version + 1)
        .map_err(backend)?;
    Ok(true)
}

/// Schema version 1: the tables of the releases before versioned
/// migrations. Never edit it: add a migration in `sqlite_migrate`.
pub const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS accounts (
    username      TEXT PRIMARY KEY,
    account_key   BLOB NOT NULL,
    state         INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    username    TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    device_id   INTEGER NOT NULL,
    certificate BLOB NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    next_seq    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (username, device_id)
);
CREATE TABLE IF NOT EXISTS key_packages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    username    TEXT NOT NULL,
    device_id   INTEGER NOT NULL,
    suite       INTEGER NOT NULL,
    last_resort INTEGER NOT NULL,
    data        BLOB NOT NULL,
    FOREIGN KEY (username, device_id) REFERENCES devices(username, device_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS key_packages_by_device
    ON key_packages(username, device_id, suite, last_resort, id);
CREATE TABLE IF NOT EXISTS envelopes (
    username       TEXT NOT NULL,
    device_id      INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    payload        BLOB NOT NULL,
    relay_tag      BLOB,
    received_at_ms INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (username, device_id, seq),
    FOREIGN KEY (username, device_id) REFERENCES devices(username, device_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS envelopes_by_expiry ON envelopes(expires_at_ms);
CREATE TABLE IF NOT EXISTS groups (
    group_id BLOB PRIMARY KEY,
    epoch    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS profiles (
    username TEXT PRIMARY KEY REFERENCES accounts(username) ON DELETE CASCADE,
    blob     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS server_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    reporter       TEXT NOT NULL,
    sender         TEXT NOT NULL,
    commitment     BLOB NOT NULL,
    content        BLOB NOT NULL,
    reason         TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    filed_at_ms    INTEGER NOT NULL,
    status         TEXT NOT NULL DEFAULT 'open',
    UNIQUE (reporter, commitment)
);
CREATE INDEX IF NOT EXISTS reports_by_reporter ON reports(reporter, filed_at_ms);
CREATE TABLE IF NOT EXISTS leases (
    name          TEXT PRIMARY KEY,
    holder        TEXT NOT NULL,
    token         INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
"#;
