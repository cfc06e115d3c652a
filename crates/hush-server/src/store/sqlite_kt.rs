//! Key-transparency tables of the SQLite backend: akd's tree records, the
//! value states (username -> value per epoch) and the signed epoch roots.
//!
//! Writes run inside the caller's group-commit savepoint, so a whole
//! [`Store::kt_write`](super::Store::kt_write) is one transaction. Every
//! statement is prepared once and cached; reads by key use the primary key
//! (username, epoch) or the (username, version) index, never a scan.

use super::backend;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Fence, KT_ROOTS_LIMIT, KtRecord, KtRoot, KtStateQuery, KtValueState, StoreError, StoreResult,
};

/// Created with the rest of the schema when the store opens.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kt_records (
    key  BLOB PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS kt_value_states (
    username       BLOB NOT NULL,
    epoch          INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    node_label_len INTEGER NOT NULL,
    node_label     BLOB NOT NULL,
    value          BLOB NOT NULL,
    PRIMARY KEY (username, epoch)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kt_value_states_by_version ON kt_value_states(username, version);
CREATE TABLE IF NOT EXISTS kt_roots (
    epoch           INTEGER PRIMARY KEY,
    root_hash       BLOB NOT NULL,
    signature       BLOB NOT NULL,
    published_at_ms INTEGER NOT NULL
);
"#;

/// Keys looked up per `IN (...)` statement.
const CHUNK: usize = 256;

/// SQLite integers are signed: epochs and versions past `i64::MAX` are refused.
fn to_i64(v: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| backend(format!("{what} {v} is out of range")))
}

fn to_u64(v: i64) -> rusqlite::Result<u64> {
    u64::try_from(v).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

const STATE_COLUMNS: &str = "username, epoch, version, node_label_len, node_label, value";

fn state_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KtValueState> {
    let label: Vec<u8> = r.get(4)?;
    let node_label: [u8; 32] = label.as_slice().try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Blob,
            "a stored node label is not 32 bytes".into(),
        )
    })?;
    Ok(KtValueState {
        username: r.get(0)?,
        epoch: to_u64(r.get(1)?)?,
        version: to_u64(r.get(2)?)?,
        node_label_len: r.get(3)?,
        node_label,
        value: r.get(5)?,
    })
}

fn root_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KtRoot> {
    let hash: Vec<u8> = r.get(1)?;
    let root_hash: [u8; 32] = hash.as_slice().try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Blob,
            "a stored root hash is not 32 bytes".into(),
        )
    })?;
    Ok(KtRoot {
        epoch: to_u64(r.get(0)?)?,
        root_hash,
        signature: r.get(2)?,
        published_at_ms: to_u64(r.get(3)?)?,
    })
}

/// Rows per multi-row `INSERT`.
const WRITE_CHUNK: usize = 64;

/// A multi-row upsert statement for `rows` rows of `columns` columns.
fn upsert_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let row = format!("({})", vec!["?"; columns].join(","));
    format!("{head} VALUES {} {tail}", vec![row; rows].join(","))
}

const RECORDS_HEAD: &str = "INSERT INTO kt_records (key, data)";
const RECORDS_TAIL: &str = "ON CONFLICT (key) DO UPDATE SET data = excluded.data";
const STATES_HEAD: &str = "INSERT INTO kt_value_states \
    (username, epoch, version, node_label_len, node_label, value)";
const STATES_TAIL: &str = "ON CONFLICT (username, epoch) DO UPDATE SET version = excluded.version, \
    node_label_len = excluded.node_label_len, node_label = excluded.node_label, \
    value = excluded.value";

/// Upserts records and states; runs inside the writer's transaction. Rows
/// go in key order (B-tree pages are visited once, in order) and
/// [`WRITE_CHUNK`] to a statement. Within one call the last of equal keys
/// wins (a stable sort keeps their order, and a multi-row upsert applies
/// its rows in order).
pub(super) fn write(
    conn: &Connection,
    records: &[KtRecord],
    states: &[KtValueState],
    fence: Option<&Fence>,
) -> StoreResult<()> {
    if let Some(f) = fence {
        // Inside the writer's transaction: nobody changes the lease between
        // this check and the commit.
        let held: Option<(String, i64)> = conn
            .query_row(
                "SELECT holder, token FROM leases WHERE name = ?1",
                rusqlite::params![f.lease],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend)?;
        if held != Some((f.holder.clone(), to_i64(f.token, "token")?)) {
            return Err(StoreError::LeaseLost {
                lease: f.lease.clone(),
                token: f.token,
            });
        }
    }
    let mut records: Vec<&KtRecord> = records.iter().collect();
    records.sort_by(|a, b| a.key.cmp(&b.key));
    for chunk in records.chunks(WRITE_CHUNK) {
        let sql = upsert_sql(RECORDS_HEAD, 2, chunk.len(), RECORDS_TAIL);
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let params: Vec<&dyn rusqlite::ToSql> = chunk
            .iter()
            .flat_map(|r| [&r.key as &dyn rusqlite::ToSql, &r.data])
            .collect();
        stmt.execute(params.as_slice()).map_err(backend)?;
    }
    let mut rows = Vec::with_capacity(states.len());
    for s in states {
        rows.push((
            s.username.as_slice(),
            to_i64(s.epoch, "epoch")?,
            to_i64(s.version, "version")?,
            s.node_label_len,
            s.node_label.as_slice(),
            s.value.as_slice(),
        ));
    }
    rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for chunk in rows.chunks(WRITE_CHUNK) {
        let sql = upsert_sql(STATES_HEAD, 6, chunk.len(), STATES_TAIL);
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let params: Vec<&dyn rusqlite::ToSql> = chunk
            .iter()
            .flat_map(|r| [&r.0 as &dyn rusqlite::ToSql, &r.1, &r.2, &r.3, &r.4, &r.5])
            .collect();
        stmt.execute(params.as_slice()).map_err(backend)?;
    }
    Ok(())
}

/// Records by key, `CHUNK` keys per statement (the last chunk padded with
/// a repeated key so one cached statement serves every chunk).
pub(super) fn records(conn: &Connection, keys: &[Vec<u8>]) -> StoreResult<Vec<KtRecord>> {
    let mut out = Vec::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(out);
    }
    let placeholders = vec!["?"; CHUNK].join(",");
    let sql = format!("SELECT key, data FROM kt_records WHERE key IN ({placeholders})");
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    for chunk in keys.chunks(CHUNK) {
        let Some(last) = chunk.last() else { continue };
        let params = rusqlite::params_from_iter(
            chunk
                .iter()
                .chain(std::iter::repeat_n(last, CHUNK - chunk.len())),
        );
        let rows = stmt
            .query_map(params, |r| {
                Ok(KtRecord {
                    key: r.get(0)?,
                    data: r.get(1)?,
                })
            })
            .map_err(backend)?;
        for row in rows {
            out.push(row.map_err(backend)?);
        }
    }
    Ok(out)
}

/// States by (username, epoch), one primary-key lookup each.
pub(super) fn states(conn: &Connection, keys: &[(Vec<u8>, u64)]) -> StoreResult<Vec<KtValueState>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {STATE_COLUMNS} FROM kt_value_states WHERE username = ?1 AND epoch = ?2"
        ))
        .map_err(backend)?;
    let mut out = Vec::with_capacity(keys.len());
    for (username, epoch) in keys {
        let Ok(epoch) = i64::try_from(*epoch) else {
            continue;
        };
        if let Some(s) = stmt
            .query_row(params![username, epoch], state_row)
            .optional()
            .map_err(backend)?
        {
            out.push(s);
        }
    }
    Ok(out)
}

/// All states of one username, by ascending epoch.
pub(super) fn user_states(conn: &Connection, username: &[u8]) -> StoreResult<Vec<KtValueState>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {STATE_COLUMNS} FROM kt_value_states WHERE username = ?1 ORDER BY epoch"
        ))
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![username], state_row)
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

/// One indexed lookup per username.
pub(super) fn user_state(
    conn: &Connection,
    usernames: &[Vec<u8>],
    query: KtStateQuery,
) -> StoreResult<Vec<KtValueState>> {
    // (condition, order, the query's argument)
    let (condition, order, arg) = match query {
        KtStateQuery::Version(v) => ("AND version = ?2", "epoch", i64::try_from(v).ok()),
        KtStateQuery::Epoch(e) => ("AND epoch = ?2", "epoch", i64::try_from(e).ok()),
        // Every stored epoch fits in an i64, so a larger bound means "any".
        KtStateQuery::AtOrBefore(e) => (
            "AND epoch <= ?2",
            "epoch DESC",
            Some(i64::try_from(e).unwrap_or(i64::MAX)),
        ),
        KtStateQuery::Latest => ("AND ?2 IS NULL", "epoch DESC", None),
        KtStateQuery::Earliest => ("AND ?2 IS NULL", "epoch", None),
    };
    let needs_arg = !matches!(query, KtStateQuery::Latest | KtStateQuery::Earliest);
    if needs_arg && arg.is_none() {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {STATE_COLUMNS} FROM kt_value_states WHERE username = ?1 {condition} \
             ORDER BY {order} LIMIT 1"
        ))
        .map_err(backend)?;
    let mut out = Vec::with_capacity(usernames.len());
    for username in usernames {
        if let Some(s) = stmt
            .query_row(params![username, arg], state_row)
            .optional()
            .map_err(backend)?
        {
            out.push(s);
        }
    }
    Ok(out)
}

/// Every record and state.
pub(super) fn dump(conn: &Connection) -> StoreResult<(Vec<KtRecord>, Vec<KtValueState>)> {
    let records = conn
        .prepare("SELECT key, data FROM kt_records ORDER BY key")
        .map_err(backend)?
        .query_map([], |r| {
            Ok(KtRecord {
                key: r.get(0)?,
                data: r.get(1)?,
            })
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let states = conn
        .prepare(&format!(
            "SELECT {STATE_COLUMNS} FROM kt_value_states ORDER BY username, epoch"
        ))
        .map_err(backend)?
        .query_map([], state_row)
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    Ok((records, states))
}

/// Inserts a root unless its epoch has one; the same root again is `Ok`.
pub(super) fn put_root(conn: &Connection, root: &KtRoot) -> StoreResult<()> {
    let epoch = to_i64(root.epoch, "epoch")?;
    let inserted = conn
        .execute(
            "INSERT INTO kt_roots (epoch, root_hash, signature, published_at_ms) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (epoch) DO NOTHING",
            params![
                epoch,
                root.root_hash.as_slice(),
                root.signature,
                to_i64(root.published_at_ms, "published_at_ms")?
            ],
        )
        .map_err(backend)?;
    if inserted == 1 {
        return Ok(());
    }
    let existing = root_by_epoch(conn, root.epoch)?;
    match existing {
        Some(e) if e.root_hash == root.root_hash && e.signature == root.signature => Ok(()),
        _ => Err(StoreError::KtRootConflict { epoch: root.epoch }),
    }
}

const ROOT_COLUMNS: &str = "epoch, root_hash, signature, published_at_ms";

/// The root of one epoch.
pub(super) fn root_by_epoch(conn: &Connection, epoch: u64) -> StoreResult<Option<KtRoot>> {
    let Ok(epoch) = i64::try_from(epoch) else {
        return Ok(None);
    };
    conn.prepare_cached(&format!(
        "SELECT {ROOT_COLUMNS} FROM kt_roots WHERE epoch = ?1"
    ))
    .map_err(backend)?
    .query_row(params![epoch], root_row)
    .optional()
    .map_err(backend)
}

/// Roots in `from..=to`, ascending, at most [`KT_ROOTS_LIMIT`].
pub(super) fn roots(conn: &Connection, from: u64, to: u64) -> StoreResult<Vec<KtRoot>> {
    let Ok(from) = i64::try_from(from) else {
        return Ok(Vec::new());
    };
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    let limit = i64::try_from(KT_ROOTS_LIMIT).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ROOT_COLUMNS} FROM kt_roots WHERE epoch >= ?1 AND epoch <= ?2 \
             ORDER BY epoch LIMIT ?3"
        ))
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![from, to, limit], root_row)
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

/// The root of the greatest epoch.
pub(super) fn latest_root(conn: &Connection) -> StoreResult<Option<KtRoot>> {
    conn.prepare_cached(&format!(
        "SELECT {ROOT_COLUMNS} FROM kt_roots ORDER BY epoch DESC LIMIT 1"
    ))
    .map_err(backend)?
    .query_row([], root_row)
    .optional()
    .map_err(backend)
}

/// The writer connection's page cache, in KiB (as a negative `cache_size`).
pub(super) const WRITER_CACHE_KIB: i64 = -65536;
