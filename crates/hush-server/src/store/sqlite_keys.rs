//! KeyPackages in the SQLite backend: the SQL of the `Store` methods that
//! publish, claim and count them, run on the writer or a read connection.

use rusqlite::{Connection, OptionalExtension, params};

use super::backend;
use super::{DeviceKey, StoreError, StoreResult};

/// Stores a device's KeyPackages; a new last resort replaces the old one.
pub(super) fn put(
    conn: &Connection,
    device: &DeviceKey,
    suite: u16,
    key_packages: &[Vec<u8>],
    last_resort: Option<Vec<u8>>,
) -> StoreResult<()> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO key_packages (username, device_id, suite, last_resort, data) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(backend)?;
    for kp in key_packages {
        insert
            .execute(params![device.username, device.device_id, suite, 0, kp])
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(err, _)
                    if err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
                {
                    StoreError::NotFound
                }
                e => backend(e),
            })?;
    }
    if let Some(lr) = last_resort {
        conn.execute(
            "DELETE FROM key_packages WHERE username = ?1 AND device_id = ?2 \
             AND suite = ?3 AND last_resort = 1",
            params![device.username, device.device_id, suite],
        )
        .map_err(backend)?;
        insert
            .execute(params![device.username, device.device_id, suite, 1, lr])
            .map_err(backend)?;
    }
    Ok(())
}

/// Takes one KeyPackage of every device of `username` in `suite`:
/// ordinary ones first (oldest first, deleted when taken), the last resort
/// after (kept).
pub(super) fn claim(
    conn: &Connection,
    username: &str,
    suite: u16,
) -> StoreResult<Vec<(u32, Vec<u8>)>> {
    let devices: Vec<u32> = conn
        .prepare_cached("SELECT device_id FROM devices WHERE username = ?1 ORDER BY device_id")
        .map_err(backend)?
        .query_map(params![username], |r| r.get(0))
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    let mut out = Vec::with_capacity(devices.len());
    for device_id in devices {
        let row: Option<(i64, bool, Vec<u8>)> = conn
            .query_row(
                "SELECT id, last_resort, data FROM key_packages \
                 WHERE username = ?1 AND device_id = ?2 AND suite = ?3 \
                 ORDER BY last_resort, id LIMIT 1",
                params![username, device_id, suite],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(backend)?;
        if let Some((id, last_resort, data)) = row {
            if !last_resort {
                conn.execute("DELETE FROM key_packages WHERE id = ?1", params![id])
                    .map_err(backend)?;
            }
            out.push((device_id, data));
        }
    }
    Ok(out)
}

/// How many ordinary KeyPackages a device has left, per suite.
pub(super) fn counts(conn: &Connection, device: &DeviceKey) -> StoreResult<Vec<(u16, u64)>> {
    conn.prepare_cached(
        "SELECT suite, COUNT(*) FROM key_packages WHERE username = ?1 AND device_id = ?2 \
         AND last_resort = 0 GROUP BY suite ORDER BY suite",
    )
    .map_err(backend)?
    .query_map(params![device.username, device.device_id], |r| {
        Ok((r.get::<_, u16>(0)?, r.get::<_, i64>(1)? as u64))
    })
    .map_err(backend)?
    .collect::<Result<_, _>>()
    .map_err(backend)
}
