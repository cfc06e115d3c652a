//! Key-transparency tables of the PostgreSQL backend: akd's tree records, the
//! value states (username -> value per epoch) and the signed epoch roots.
//!
//! A [`Store::kt_write`](super::Store::kt_write) is one transaction of
//! multi-row `INSERT ... SELECT FROM UNNEST(...)` statements; batched reads
//! send every key at once as arrays (`= ANY`, `UNNEST ... LATERAL`), so each
//! call is a handful of round trips whatever its size. Lookups use the
//! primary key (username, epoch) or the (username, version) index.

use super::backend;
use std::collections::HashMap;

use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use super::{
    Fence, KT_ROOTS_LIMIT, KtRecord, KtRoot, KtStateQuery, KtValueState, StoreError, StoreResult,
};

/// Created with the rest of the schema when the store connects.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kt_records (
    key  BYTEA PRIMARY KEY,
    data BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS kt_value_states (
    username       BYTEA NOT NULL,
    epoch          BIGINT NOT NULL,
    version        BIGINT NOT NULL,
    node_label_len BIGINT NOT NULL,
    node_label     BYTEA NOT NULL,
    value          BYTEA NOT NULL,
    PRIMARY KEY (username, epoch)
);
CREATE INDEX IF NOT EXISTS kt_value_states_by_version ON kt_value_states(username, version);
CREATE TABLE IF NOT EXISTS kt_roots (
    epoch           BIGINT PRIMARY KEY,
    root_hash       BYTEA NOT NULL,
    signature       BYTEA NOT NULL,
    published_at_ms BIGINT NOT NULL
);
"#;

/// Rows per statement: bounds the size of one bind message.
const CHUNK: usize = 5000;

/// BIGINT is signed: epochs and versions past `i64::MAX` are refused.
fn to_i64(v: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| backend(format!("{what} {v} is out of range")))
}

fn get_u64(r: &PgRow, i: usize) -> StoreResult<u64> {
    let v: i64 = r.try_get(i).map_err(backend)?;
    u64::try_from(v).map_err(|_| backend("a stored number is negative"))
}

fn get_32(r: &PgRow, i: usize) -> StoreResult<[u8; 32]> {
    let v: Vec<u8> = r.try_get(i).map_err(backend)?;
    v.as_slice()
        .try_into()
        .map_err(|_| backend("a stored hash or label is not 32 bytes"))
}

const STATE_COLUMNS: &str = "username, epoch, version, node_label_len, node_label, value";

fn state_row(r: &PgRow) -> StoreResult<KtValueState> {
    let len: i64 = r.try_get(3).map_err(backend)?;
    Ok(KtValueState {
        username: r.try_get(0).map_err(backend)?,
        epoch: get_u64(r, 1)?,
        version: get_u64(r, 2)?,
        node_label_len: u32::try_from(len)
            .map_err(|_| backend("a stored label length is out of range"))?,
        node_label: get_32(r, 4)?,
        value: r.try_get(5).map_err(backend)?,
    })
}

const ROOT_COLUMNS: &str = "epoch, root_hash, signature, published_at_ms";

fn root_row(r: &PgRow) -> StoreResult<KtRoot> {
    Ok(KtRoot {
        epoch: get_u64(r, 0)?,
        root_hash: get_32(r, 1)?,
        signature: r.try_get(2).map_err(backend)?,
        published_at_ms: get_u64(r, 3)?,
    })
}

/// Keeps the last of each key, in first-seen order: one statement may not
/// upsert the same row twice.
fn last_wins<T, K: std::hash::Hash + Eq>(items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut index: HashMap<K, usize> = HashMap::with_capacity(items.len());
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        match index.get(&key(&item)).copied() {
            Some(i) => {
                if let Some(slot) = out.get_mut(i) {
                    *slot = item;
                }
            }
            None => {
                index.insert(key(&item), out.len());
                out.push(item);
            }
        }
    }
    out
}

/// Upserts records and states in one transaction.
pub(super) async fn write(
    pool: &PgPool,
    records: Vec<KtRecord>,
    states: Vec<KtValueState>,
    fence: Option<Fence>,
) -> StoreResult<()> {
    let records = last_wins(records, |r| r.key.clone());
    let states = last_wins(states, |s| (s.username.clone(), s.epoch));
    let mut tx = pool.begin().await.map_err(backend)?;
    if let Some(f) = fence {
        // Locks the lease row until the commit: a node that would take the
        // lease over waits for this write, and a lease already taken over
        // refuses it.
        let token = i64::try_from(f.token).map_err(|_| StoreError::LeaseLost {
            lease: f.lease.clone(),
            token: f.token,
        })?;
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT token FROM leases WHERE name = $1 AND holder = $2 AND token = $3 FOR UPDATE",
        )
        .bind(&f.lease)
        .bind(&f.holder)
        .bind(token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        if held.is_none() {
            return Err(StoreError::LeaseLost {
                lease: f.lease,
                token: f.token,
            });
        }
    }
    for chunk in records.chunks(CHUNK) {
        let keys: Vec<&[u8]> = chunk.iter().map(|r| r.key.as_slice()).collect();
        let data: Vec<&[u8]> = chunk.iter().map(|r| r.data.as_slice()).collect();
        sqlx::query(
            "INSERT INTO kt_records (key, data) SELECT * FROM UNNEST($1::bytea[], $2::bytea[]) \
             ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data",
        )
        .bind(keys)
        .bind(data)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    for chunk in states.chunks(CHUNK) {
        let mut usernames = Vec::with_capacity(chunk.len());
        let mut epochs = Vec::with_capacity(chunk.len());
        let mut versions = Vec::with_capacity(chunk.len());
        let mut lens = Vec::with_capacity(chunk.len());
        let mut labels = Vec::with_capacity(chunk.len());
        let mut values = Vec::with_capacity(chunk.len());
        for s in chunk {
            usernames.push(s.username.as_slice());
            epochs.push(to_i64(s.epoch, "epoch")?);
            versions.push(to_i64(s.version, "version")?);
            lens.push(i64::from(s.node_label_len));
            labels.push(s.node_label.as_slice());
            values.push(s.value.as_slice());
        }
        sqlx::query(
            "INSERT INTO kt_value_states \
             (username, epoch, version, node_label_len, node_label, value) \
             SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::int8[], $4::int8[], $5::bytea[], $6::bytea[]) \
             ON CONFLICT (username, epoch) DO UPDATE SET version = EXCLUDED.version, \
             node_label_len = EXCLUDED.node_label_len, node_label = EXCLUDED.node_label, \
             value = EXCLUDED.value",
        )
        .bind(usernames)
        .bind(epochs)
        .bind(versions)
        .bind(lens)
        .bind(labels)
        .bind(values)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

/// Records by key, [`CHUNK`] keys per query.
pub(super) async fn records(pool: &PgPool, keys: &[Vec<u8>]) -> StoreResult<Vec<KtRecord>> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        let rows = sqlx::query("SELECT key, data FROM kt_records WHERE key = ANY($1::bytea[])")
            .bind(chunk)
            .fetch_all(pool)
            .await
            .map_err(backend)?;
        for r in rows {
            out.push(KtRecord {
                key: r.try_get(0).map_err(backend)?,
                data: r.try_get(1).map_err(backend)?,
            });
        }
    }
    Ok(out)
}

/// States by (username, epoch).
pub(super) async fn states(
    pool: &PgPool,
    keys: &[(Vec<u8>, u64)],
) -> StoreResult<Vec<KtValueState>> {
    let mut out = Vec::with_capacity(keys.len());
    // Epochs past i64::MAX cannot be stored, so they cannot match.
    let keys: Vec<(&[u8], i64)> = keys
        .iter()
        .filter_map(|(u, e)| Some((u.as_slice(), i64::try_from(*e).ok()?)))
        .collect();
    for chunk in keys.chunks(CHUNK) {
        let (usernames, epochs): (Vec<&[u8]>, Vec<i64>) = chunk.iter().copied().unzip();
        let rows = sqlx::query(&format!(
            "SELECT {STATE_COLUMNS} FROM kt_value_states \
             WHERE (username, epoch) IN (SELECT * FROM UNNEST($1::bytea[], $2::int8[]))"
        ))
        .bind(usernames)
        .bind(epochs)
        .fetch_all(pool)
        .await
        .map_err(backend)?;
        for r in &rows {
            out.push(state_row(r)?);
        }
    }
    Ok(out)
}

/// All states of one username, by ascending epoch.
pub(super) async fn user_states(pool: &PgPool, username: &[u8]) -> StoreResult<Vec<KtValueState>> {
    let rows = sqlx::query(&format!(
        "SELECT {STATE_COLUMNS} FROM kt_value_states WHERE username = $1 ORDER BY epoch"
    ))
    .bind(username)
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    rows.iter().map(state_row).collect()
}

/// One indexed lookup per username, all in one statement per chunk.
pub(super) async fn user_state(
    pool: &PgPool,
    usernames: &[Vec<u8>],
    query: KtStateQuery,
) -> StoreResult<Vec<KtValueState>> {
    let (condition, order, arg) = match query {
        KtStateQuery::Version(v) => ("v.version = $2", "v.epoch", i64::try_from(v).ok()),
        KtStateQuery::Epoch(e) => ("v.epoch = $2", "v.epoch", i64::try_from(e).ok()),
        // Every stored epoch fits in an i64, so a larger bound means "any".
        KtStateQuery::AtOrBefore(e) => (
            "v.epoch <= $2",
            "v.epoch DESC",
            Some(i64::try_from(e).unwrap_or(i64::MAX)),
        ),
        KtStateQuery::Latest => ("$2::int8 IS NULL", "v.epoch DESC", None),
        KtStateQuery::Earliest => ("$2::int8 IS NULL", "v.epoch", None),
    };
    let needs_arg = !matches!(query, KtStateQuery::Latest | KtStateQuery::Earliest);
    if needs_arg && arg.is_none() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT s.username, s.epoch, s.version, s.node_label_len, s.node_label, s.value \
         FROM UNNEST($1::bytea[]) AS u(name) CROSS JOIN LATERAL ( \
             SELECT {STATE_COLUMNS} FROM kt_value_states v \
             WHERE v.username = u.name AND {condition} ORDER BY {order} LIMIT 1 \
         ) s"
    );
    let mut out = Vec::with_capacity(usernames.len());
    for chunk in usernames.chunks(CHUNK) {
        let rows = sqlx::query(&sql)
            .bind(chunk)
            .bind(arg)
            .fetch_all(pool)
            .await
            .map_err(backend)?;
        for r in &rows {
            out.push(state_row(r)?);
        }
    }
    Ok(out)
}

/// Every record and state, read in one snapshot.
pub(super) async fn dump(pool: &PgPool) -> StoreResult<(Vec<KtRecord>, Vec<KtValueState>)> {
    let mut tx = pool.begin().await.map_err(backend)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let rows = sqlx::query("SELECT key, data FROM kt_records ORDER BY key")
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
    let mut records = Vec::with_capacity(rows.len());
    for r in rows {
        records.push(KtRecord {
            key: r.try_get(0).map_err(backend)?,
            data: r.try_get(1).map_err(backend)?,
        });
    }
    let rows = sqlx::query(&format!(
        "SELECT {STATE_COLUMNS} FROM kt_value_states ORDER BY username, epoch"
    ))
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?;
    let states = rows
        .iter()
        .map(state_row)
        .collect::<StoreResult<Vec<_>>>()?;
    tx.commit().await.map_err(backend)?;
    Ok((records, states))
}

/// Inserts a root unless its epoch has one; the same root again is `Ok`.
pub(super) async fn put_root(pool: &PgPool, root: &KtRoot) -> StoreResult<()> {
    let inserted = sqlx::query(
        "INSERT INTO kt_roots (epoch, root_hash, signature, published_at_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (epoch) DO NOTHING",
    )
    .bind(to_i64(root.epoch, "epoch")?)
    .bind(root.root_hash.as_slice())
    .bind(&root.signature)
    .bind(to_i64(root.published_at_ms, "published_at_ms")?)
    .execute(pool)
    .await
    .map_err(backend)?
    .rows_affected();
    if inserted == 1 {
        return Ok(());
    }
    match root_by_epoch(pool, root.epoch).await? {
        Some(e) if e.root_hash == root.root_hash && e.signature == root.signature => Ok(()),
        _ => Err(StoreError::KtRootConflict { epoch: root.epoch }),
    }
}

/// The root of one epoch.
pub(super) async fn root_by_epoch(pool: &PgPool, epoch: u64) -> StoreResult<Option<KtRoot>> {
    let Ok(epoch) = i64::try_from(epoch) else {
        return Ok(None);
    };
    sqlx::query(&format!(
        "SELECT {ROOT_COLUMNS} FROM kt_roots WHERE epoch = $1"
    ))
    .bind(epoch)
    .fetch_optional(pool)
    .await
    .map_err(backend)?
    .as_ref()
    .map(root_row)
    .transpose()
}

/// Roots in `from..=to`, ascending, at most [`KT_ROOTS_LIMIT`].
pub(super) async fn roots(pool: &PgPool, from: u64, to: u64) -> StoreResult<Vec<KtRoot>> {
    let Ok(from) = i64::try_from(from) else {
        return Ok(Vec::new());
    };
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    let limit = i64::try_from(KT_ROOTS_LIMIT).unwrap_or(i64::MAX);
    let rows = sqlx::query(&format!(
        "SELECT {ROOT_COLUMNS} FROM kt_roots WHERE epoch >= $1 AND epoch <= $2 \
         ORDER BY epoch LIMIT $3"
    ))
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    rows.iter().map(root_row).collect()
}

/// The root of the greatest epoch.
pub(super) async fn latest_root(pool: &PgPool) -> StoreResult<Option<KtRoot>> {
    sqlx::query(&format!(
        "SELECT {ROOT_COLUMNS} FROM kt_roots ORDER BY epoch DESC LIMIT 1"
    ))
    .fetch_optional(pool)
    .await
    .map_err(backend)?
    .as_ref()
    .map(root_row)
    .transpose()
}
