//! Profiles, abuse reports, server secrets, leases and statistics in the
//! SQLite backend: the SQL of their `Store` methods, run on the writer or a
//! read connection.

use rusqlite::{Connection, OptionalExtension, params};

use super::backend;
use super::sqlite::{is_unique_violation, require_changed};
use super::{LeaseInfo, NewReport, ReportRecord, Stats, StoreError, StoreResult, TRY_LEASE_SQL};

/// The secret stored under `name`, storing `fresh` if there is none yet.
pub(super) fn server_secret(conn: &Connection, name: &str, fresh: &[u8]) -> StoreResult<Vec<u8>> {
    conn.execute(
        "INSERT INTO server_secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![name, fresh],
    )
    .map_err(backend)?;
    conn.query_row(
        "SELECT value FROM server_secrets WHERE name = ?1",
        params![name],
        |r| r.get(0),
    )
    .map_err(backend)
}

/// Files a report; the same message reported twice is refused.
pub(super) fn file(conn: &Connection, report: &NewReport) -> StoreResult<i64> {
    conn.execute(
        "INSERT INTO reports (reporter, sender, commitment, content, reason, received_at_ms, filed_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            report.reporter,
            report.sender,
            report.commitment.as_slice(),
            report.content,
            report.reason,
            report.received_at_ms as i64,
            report.filed_at_ms as i64
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::DuplicateReport
        } else {
            backend(e)
        }
    })?;
    Ok(conn.last_insert_rowid())
}

/// The open reports (or all), newest first.
pub(super) fn list(conn: &Connection, all: bool) -> StoreResult<Vec<ReportRecord>> {
    let sql = if all {
        format!("SELECT {REPORT_COLUMNS} FROM reports ORDER BY id DESC")
    } else {
        format!("SELECT {REPORT_COLUMNS} FROM reports WHERE status = 'open' ORDER BY id DESC")
    };
    conn.prepare(&sql)
        .map_err(backend)?
        .query_map([], report_row)
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)
}

pub(super) fn get(conn: &Connection, id: i64) -> StoreResult<Option<ReportRecord>> {
    conn.query_row(
        &format!("SELECT {REPORT_COLUMNS} FROM reports WHERE id = ?1"),
        params![id],
        report_row,
    )
    .optional()
    .map_err(backend)
}

pub(super) fn resolve(conn: &Connection, id: i64, status: &str) -> StoreResult<()> {
    let n = conn
        .execute(
            "UPDATE reports SET status = ?2 WHERE id = ?1",
            params![id, status],
        )
        .map_err(backend)?;
    require_changed(n)
}

/// How many reports `reporter` filed since `since_ms`.
pub(super) fn since(conn: &Connection, reporter: &str, since_ms: u64) -> StoreResult<u64> {
    conn.query_row(
        "SELECT COUNT(*) FROM reports WHERE reporter = ?1 AND filed_at_ms >= ?2",
        params![reporter, since_ms as i64],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
    .map_err(backend)
}

const REPORT_COLUMNS: &str =
    "id, reporter, sender, commitment, content, reason, received_at_ms, filed_at_ms, status";

fn report_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReportRecord> {
    let commitment: Vec<u8> = r.get(3)?;
    Ok(ReportRecord {
        id: r.get(0)?,
        report: NewReport {
            reporter: r.get(1)?,
            sender: r.get(2)?,
            commitment: <[u8; 32]>::try_from(commitment.as_slice()).unwrap_or([0; 32]),
            content: r.get(4)?,
            reason: r.get(5)?,
            received_at_ms: r.get::<_, i64>(6)? as u64,
            filed_at_ms: r.get::<_, i64>(7)? as u64,
        },
        status: r.get(8)?,
    })
}

/// Stores (or replaces) an account's encrypted profile.
pub(super) fn put_profile(conn: &Connection, username: &str, blob: &[u8]) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO profiles (username, blob) VALUES (?1, ?2) \
         ON CONFLICT (username) DO UPDATE SET blob = excluded.blob",
        params![username, blob],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(err, _)
            if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::NotFound
        }
        e => backend(e),
    })?;
    Ok(())
}

pub(super) fn profile(conn: &Connection, username: &str) -> StoreResult<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT blob FROM profiles WHERE username = ?1",
        params![username],
        |r| r.get(0),
    )
    .optional()
    .map_err(backend)
}

/// Row counts for `/metrics` and the operator.
pub(super) fn stats(conn: &Connection) -> StoreResult<Stats> {
    let count = |sql: &str| -> StoreResult<u64> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(backend)
    };
    Ok(Stats {
        accounts: count("SELECT COUNT(*) FROM accounts")?,
        devices: count("SELECT COUNT(*) FROM devices")?,
        queued_envelopes: count("SELECT COUNT(*) FROM envelopes")?,
        payloads: count("SELECT COUNT(*) FROM payloads")?,
        payload_bytes: count("SELECT COALESCE(SUM(size), 0) FROM payloads")?,
        key_packages: count("SELECT COUNT(*) FROM key_packages WHERE last_resort = 0")?,
        groups: count("SELECT COUNT(*) FROM groups")?,
    })
}

/// Takes or renews the lease `name` for `holder`; its fencing token, or
/// None while another holder has it.
pub(super) fn try_lease(
    conn: &Connection,
    name: &str,
    holder: &str,
    expires: i64,
    now: i64,
) -> StoreResult<Option<u64>> {
    conn.query_row(TRY_LEASE_SQL, params![name, holder, expires, now], |r| {
        r.get::<_, i64>(0)
    })
    .optional()
    .map(|t| t.map(|t| t as u64))
    .map_err(backend)
}

pub(super) fn release_lease(conn: &Connection, name: &str, holder: &str) -> StoreResult<bool> {
    conn.execute(
        "UPDATE leases SET expires_at_ms = 0 WHERE name = ?1 AND holder = ?2 AND expires_at_ms > 0",
        params![name, holder],
    )
    .map(|n| n > 0)
    .map_err(backend)
}

pub(super) fn lease(conn: &Connection, name: &str, now: i64) -> StoreResult<Option<LeaseInfo>> {
    conn.query_row(
        "SELECT holder, token, expires_at_ms FROM leases WHERE name = ?1 AND expires_at_ms > ?2",
        params![name, now],
        |r| {
            Ok(LeaseInfo {
                holder: r.get(0)?,
                token: r.get::<_, i64>(1)? as u64,
                expires_at_ms: r.get::<_, i64>(2)? as u64,
            })
        },
    )
    .optional()
    .map_err(backend)
}
