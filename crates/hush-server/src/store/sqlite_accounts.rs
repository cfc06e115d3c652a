//! Accounts and devices in the SQLite backend: the SQL of their `Store`
//! methods, run on the writer or a read connection.

use rusqlite::{Connection, OptionalExtension, params};

use super::backend;
use super::sqlite::is_unique_violation;
use super::{
    AccountRecord, AccountState, Authenticated, DeviceKey, DeviceRecord, NewAccount, NewDevice,
    StoreError, StoreResult,
};

pub(super) fn state_to_int(state: AccountState) -> i64 {
    match state {
        AccountState::Active => 0,
        AccountState::Suspended => 1,
    }
}

pub(super) fn state_from_int(v: i64) -> AccountState {
    if v == 0 {
        AccountState::Active
    } else {
        AccountState::Suspended
    }
}

fn insert_device(conn: &Connection, username: &str, d: &NewDevice) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO devices (username, device_id, certificate, token_hash) VALUES (?1, ?2, ?3, ?4)",
        params![username, d.device_id, d.certificate, d.token_hash.as_slice()],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::DeviceExists
        } else {
            backend(e)
        }
    })?;
    Ok(())
}

pub(super) fn load(conn: &Connection, username: &str) -> StoreResult<Option<AccountRecord>> {
    let row = conn
        .query_row(
            "SELECT account_key, state, created_at_ms FROM accounts WHERE username = ?1",
            params![username],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )
        .optional()
        .map_err(backend)?;
    let Some((account_key, state, created)) = row else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT device_id, certificate FROM devices WHERE username = ?1 ORDER BY device_id",
        )
        .map_err(backend)?;
    let devices = stmt
        .query_map(params![username], |r| {
            Ok(DeviceRecord {
                device_id: r.get(0)?,
                certificate: r.get(1)?,
            })
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    Ok(Some(AccountRecord {
        username: username.to_owned(),
        account_key,
        state: state_from_int(state),
        created_at_ms: created as u64,
        devices,
    }))
}

/// Creates an account with its first device.
pub(super) fn create(conn: &Connection, account: &NewAccount) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO accounts (username, account_key, state, created_at_ms) VALUES (?1, ?2, 0, ?3)",
        params![account.username, account.account_key, account.now_ms as i64],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::UsernameTaken
        } else {
            backend(e)
        }
    })?;
    insert_device(conn, &account.username, &account.device)
}

/// Every account, by name.
pub(super) fn list(conn: &Connection) -> StoreResult<Vec<AccountRecord>> {
    let names: Vec<String> = conn
        .prepare("SELECT username FROM accounts ORDER BY username")
        .map_err(backend)?
        .query_map([], |r| r.get(0))
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(a) = load(conn, &name)? {
            out.push(a);
        }
    }
    Ok(out)
}

/// Adds a device to an existing account that has fewer than `max_devices`.
pub(super) fn add_device(
    conn: &Connection,
    username: &str,
    device: &NewDevice,
    max_devices: usize,
) -> StoreResult<()> {
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM accounts WHERE username = ?1",
            params![username],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    let count: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM devices WHERE username = ?1",
            params![username],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if count as usize >= max_devices {
        return Err(StoreError::TooManyDevices);
    }
    insert_device(conn, username, device)
}

/// The device whose token hashes to `hash`, and its account's state.
pub(super) fn authenticate(
    conn: &Connection,
    hash: &[u8; 32],
) -> StoreResult<Option<Authenticated>> {
    conn.query_row(
        "SELECT d.username, d.device_id, a.state FROM devices d \
         JOIN accounts a ON a.username = d.username WHERE d.token_hash = ?1",
        params![hash.as_slice()],
        |r| {
            Ok(Authenticated {
                device: DeviceKey {
                    username: r.get(0)?,
                    device_id: r.get(1)?,
                },
                state: state_from_int(r.get(2)?),
            })
        },
    )
    .optional()
    .map_err(backend)
}
