//! The device queues on PostgreSQL: a send's sealed body is stored once, in
//! `payloads`, and each recipient device's queue holds an `envelopes` row
//! that references it. A payload lives while an envelope references it:
//! every deletion of envelopes frees, in the same transaction, the payloads
//! it left unreferenced. Freeing locks the payload rows first (in id order,
//! so two freers never deadlock): of two nodes deleting a payload's last
//! two envelopes at once, the second to get the lock sees the first's
//! deletion committed and frees the payload. See
//! `docs/decisions/0015-payload-stored-once.md`.

use super::backend;
use sqlx::postgres::PgPool;
use sqlx::{PgConnection, Row};

use super::{DeviceKey, FETCH_MAX_BYTES, NewEnvelope, StoreResult, StoredEnvelope};

/// Schema version 4: the payload of a send stored once. Each row of the
/// version-3 `envelopes` (one copy of the payload per recipient) gets a
/// payload of its own with the same bytes, so rows written before sealing
/// (the bare MLS message, a 32-byte tag or none) are delivered as they were.
pub(super) const SCHEMA_V4: &str = r#"
CREATE TABLE payloads (
    id            BIGSERIAL PRIMARY KEY,
    body          BYTEA NOT NULL,
    size          BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
ALTER TABLE payloads ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE INDEX payloads_by_expiry ON payloads(expires_at_ms);
ALTER TABLE envelopes ADD COLUMN payload_id BIGINT;
UPDATE envelopes SET payload_id = nextval(pg_get_serial_sequence('payloads', 'id'));
INSERT INTO payloads (id, body, size, expires_at_ms)
    SELECT payload_id, payload, octet_length(payload), expires_at_ms FROM envelopes;
ALTER TABLE envelopes
    DROP COLUMN payload,
    ALTER COLUMN payload_id SET NOT NULL,
    ADD CONSTRAINT envelopes_payload_id_fkey FOREIGN KEY (payload_id) REFERENCES payloads(id);
ALTER TABLE envelopes RENAME COLUMN relay_tag TO header;
CREATE INDEX envelopes_by_payload ON envelopes(payload_id);
"#;

/// Stores the payload of a send with at least one recipient; its id.
pub(super) async fn insert_payload(
    tx: &mut PgConnection,
    envelope: &NewEnvelope,
) -> StoreResult<i64> {
    sqlx::query_scalar(
        "INSERT INTO payloads (body, size, expires_at_ms) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(&envelope.payload)
    .bind(envelope.payload.len() as i64)
    .bind(envelope.expires_at_ms as i64)
    .fetch_one(tx)
    .await
    .map_err(backend)
}

/// Deletes the payloads among `ids` that no envelope references any more.
pub(super) async fn free_payloads(tx: &mut PgConnection, ids: Vec<i64>) -> StoreResult<()> {
    free_payloads_sql(tx, ids).await.map_err(backend)
}

/// [`free_payloads`], with the database's error as it is (a batch tells a
/// lost deadlock from a failure).
pub(super) async fn free_payloads_sql(
    tx: &mut PgConnection,
    mut ids: Vec<i64>,
) -> Result<(), sqlx::Error> {
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT id FROM payloads WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM payloads p WHERE p.id = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM envelopes e WHERE e.payload_id = p.id)",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes the queues of `username`'s devices (or only of device
/// `device_id`) and the payloads only they referenced, before the devices
/// themselves go. Locks the devices' rows first, so that no send adds to
/// their queues meanwhile.
pub(super) async fn drop_queues(
    tx: &mut PgConnection,
    username: &str,
    device_id: Option<u32>,
) -> StoreResult<()> {
    let device_id = device_id.map(i64::from);
    sqlx::query(
        "SELECT 1 FROM devices WHERE username = $1 AND ($2::BIGINT IS NULL OR device_id = $2) \
         ORDER BY device_id FOR UPDATE",
    )
    .bind(username)
    .bind(device_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM envelopes WHERE username = $1 AND ($2::BIGINT IS NULL OR device_id = $2) \
         RETURNING payload_id",
    )
    .bind(username)
    .bind(device_id)
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?;
    free_payloads(tx, ids).await
}

/// Deletes `device`'s acknowledged envelopes and the payloads they were
/// the last references of, in the open transaction `tx`; returns how many
/// envelopes.
pub(super) async fn ack_in(
    tx: &mut PgConnection,
    device: &DeviceKey,
    seqs: &[i64],
) -> StoreResult<u64> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM envelopes WHERE username = $1 AND device_id = $2 AND seq = ANY($3) \
         RETURNING payload_id",
    )
    .bind(&device.username)
    .bind(i64::from(device.device_id))
    .bind(seqs)
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?;
    let n = ids.len() as u64;
    free_payloads(tx, ids).await?;
    Ok(n)
}

/// Deletes the envelopes that expired before `now_ms`, and the payloads
/// that expired with them; returns how many envelopes.
pub(super) async fn expire(pool: &PgPool, now_ms: u64) -> StoreResult<u64> {
    let mut tx = pool.begin().await.map_err(backend)?;
    let n = sqlx::query("DELETE FROM envelopes WHERE expires_at_ms < $1")
        .bind(now_ms as i64)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
    sqlx::query(
        "DELETE FROM payloads p WHERE p.expires_at_ms < $1 \
         AND NOT EXISTS (SELECT 1 FROM envelopes e WHERE e.payload_id = p.id)",
    )
    .bind(now_ms as i64)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(n)
}

/// Up to `limit` envelopes of `device` after `after`, stopping once the
/// batch holds [`FETCH_MAX_BYTES`] of payload.
pub(super) async fn fetch(
    pool: &PgPool,
    device: &DeviceKey,
    after: u64,
    limit: usize,
) -> StoreResult<Vec<StoredEnvelope>> {
    // The running payload total, over the first `limit` envelopes only.
    let rows = sqlx::query(
        "SELECT seq, body, header, received_at_ms FROM ( \
           SELECT *, SUM(size) OVER (ORDER BY seq) - size AS before FROM ( \
             SELECT e.seq, p.body, e.header, e.received_at_ms, p.size FROM envelopes e \
             JOIN payloads p ON p.id = e.payload_id \
             WHERE e.username = $1 AND e.device_id = $2 AND e.seq > $3 ORDER BY e.seq LIMIT $4 \
           ) AS first \
         ) AS counted WHERE before < $5 ORDER BY seq",
    )
    .bind(&device.username)
    .bind(i64::from(device.device_id))
    .bind(after as i64)
    .bind(limit as i64)
    .bind(FETCH_MAX_BYTES as i64)
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    Ok(rows
        .into_iter()
        .map(|r| StoredEnvelope {
            seq: r.get::<i64, _>(0) as u64,
            payload: r.get(1),
            relay_tag: r.get(2),
            received_at_ms: r.get::<i64, _>(3) as u64,
        })
        .collect())
}

/// The payload bytes each device's queue references, in the order given.
pub(super) async fn queue_bytes(pool: &PgPool, devices: &[DeviceKey]) -> StoreResult<Vec<u64>> {
    let names: Vec<&str> = devices.iter().map(|d| d.username.as_str()).collect();
    let ids: Vec<i64> = devices.iter().map(|d| i64::from(d.device_id)).collect();
    let rows = sqlx::query(
        "SELECT COALESCE((SELECT SUM(p.size) FROM envelopes e \
         JOIN payloads p ON p.id = e.payload_id \
         WHERE e.username = t.u AND e.device_id = t.d), 0)::BIGINT \
         FROM unnest($1::TEXT[], $2::BIGINT[]) WITH ORDINALITY AS t(u, d, n) ORDER BY t.n",
    )
    .bind(names)
    .bind(ids)
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    Ok(rows.iter().map(|r| r.get::<i64, _>(0) as u64).collect())
}
