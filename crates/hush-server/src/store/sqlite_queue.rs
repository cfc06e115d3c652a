//! The device queues on SQLite: a send's sealed body is stored once, in
//! `payloads`, and each recipient device's queue holds an `envelopes` row
//! (its position, its sealed header) that references it. A payload lives
//! while an envelope references it: every deletion of envelopes
//! (acknowledgement, expiry, device removal, account deletion) frees the
//! payloads it left unreferenced in the same transaction. See
//! `docs/decisions/0015-payload-stored-once.md`.

use super::backend;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::group_commit::WriteJob;
use super::{
    DeviceKey, EarlyAck, EpochClaim, FETCH_MAX_BYTES, NewEnvelope, StoreError, StoreResult,
    StoredEnvelope,
};

/// Schema version 4: the payload of a send stored once. The version-3
/// `envelopes` (one copy of the payload per recipient row) is rebuilt: each
/// of its rows becomes a payload of its own and an envelope referencing it,
/// bytes unchanged, so rows written before sealing (the bare MLS message, a
/// 32-byte tag or none) are delivered as they were.
pub(super) const SCHEMA_V4: &str = r#"
ALTER TABLE envelopes RENAME TO envelopes_v3;
DROP INDEX IF EXISTS envelopes_by_expiry;
CREATE TABLE payloads (
    id            INTEGER PRIMARY KEY,
    body          BLOB NOT NULL,
    size          INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX payloads_by_expiry ON payloads(expires_at_ms);
CREATE TABLE envelopes (
    username       TEXT NOT NULL,
    device_id      INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    payload_id     INTEGER NOT NULL REFERENCES payloads(id),
    header         BLOB,
    received_at_ms INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (username, device_id, seq),
    FOREIGN KEY (username, device_id) REFERENCES devices(username, device_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX envelopes_by_expiry ON envelopes(expires_at_ms);
CREATE INDEX envelopes_by_payload ON envelopes(payload_id);
INSERT INTO payloads (id, body, size, expires_at_ms)
    SELECT ROW_NUMBER() OVER (ORDER BY username, device_id, seq),
           payload, length(payload), expires_at_ms
    FROM envelopes_v3;
INSERT INTO envelopes (username, device_id, seq, payload_id, header, received_at_ms, expires_at_ms)
    SELECT username, device_id, seq, ROW_NUMBER() OVER (ORDER BY username, device_id, seq),
           relay_tag, received_at_ms, expires_at_ms
    FROM envelopes_v3;
DROP TABLE envelopes_v3;
"#;

/// The writer's half of an enqueue: the commit claim, then, unless every
/// recipient acknowledged it early, the payload once and an envelope for
/// each recipient that did not (their headers sealed now if the send left
/// them to [`NewEnvelope::seal_later`]). Returns, per recipient, whether it
/// was written.
pub(super) fn write_envelopes(
    conn: &Connection,
    recipients: &[DeviceKey],
    seqs: &[u64],
    mut envelope: NewEnvelope,
    claim: Option<EpochClaim>,
    early: Option<Vec<Arc<EarlyAck>>>,
) -> StoreResult<Vec<bool>> {
    if let Some(claim) = &claim {
        super::epoch::claim_sqlite(conn, claim)?;
    }
    let written: Vec<bool> = (0..recipients.len())
        .map(|i| match &early {
            Some(e) => e.get(i).is_none_or(|e| e.take_for_write()),
            None => true,
        })
        .collect();
    if !written.contains(&true) {
        // Nobody left to deliver it to: the payload is never written.
        return Ok(written);
    }
    // Sealed only now, and only for the recipients written.
    envelope.seal_missing(recipients.len(), &written)?;
    let payload_id: i64 = conn
        .prepare_cached(
            "INSERT INTO payloads (body, size, expires_at_ms) VALUES (?1, ?2, ?3) RETURNING id",
        )
        .and_then(|mut st| {
            st.query_row(
                params![
                    envelope.payload,
                    envelope.payload.len() as i64,
                    envelope.expires_at_ms as i64
                ],
                |r| r.get(0),
            )
        })
        .map_err(backend)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO envelopes (username, device_id, seq, payload_id, header, \
             received_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(backend)?;
    for (i, (r, seq)) in recipients.iter().zip(seqs).enumerate() {
        if !written[i] {
            continue;
        }
        let header = envelope.relay_tags.get(i).map(|t| t.as_slice());
        insert
            .execute(params![
                r.username,
                r.device_id,
                *seq as i64,
                payload_id,
                header,
                envelope.received_at_ms as i64,
                envelope.expires_at_ms as i64,
            ])
            .map_err(|e| match e {
                // The device was removed since its numbers were loaded.
                rusqlite::Error::SqliteFailure(f, _)
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
                {
                    StoreError::NotFound
                }
                e => backend(e),
            })?;
    }
    Ok(written)
}

/// Deletes the payloads among `ids` that no envelope references any more.
pub(super) fn free_payloads(conn: &Connection, ids: &BTreeSet<i64>) -> StoreResult<()> {
    let mut free = conn
        .prepare_cached(
            "DELETE FROM payloads WHERE id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM envelopes WHERE payload_id = ?1)",
        )
        .map_err(backend)?;
    for id in ids {
        free.execute(params![id]).map_err(backend)?;
    }
    Ok(())
}

/// The payloads the queues of `username`'s devices (or only of device
/// `device_id`) reference: those a deletion of the devices may free.
pub(super) fn payloads_of(
    conn: &Connection,
    username: &str,
    device_id: Option<u32>,
) -> StoreResult<BTreeSet<i64>> {
    let mut q = conn
        .prepare_cached(
            "SELECT DISTINCT payload_id FROM envelopes \
             WHERE username = ?1 AND (?2 IS NULL OR device_id = ?2)",
        )
        .map_err(backend)?;
    let ids = q
        .query_map(params![username, device_id], |r| r.get(0))
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    Ok(ids)
}

/// Up to `limit` envelopes of `device` after `after`, stopping once the
/// batch holds [`FETCH_MAX_BYTES`] of payload.
pub(super) fn fetch(
    conn: &Connection,
    device: &DeviceKey,
    after: u64,
    limit: usize,
) -> StoreResult<Vec<StoredEnvelope>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT e.seq, p.body, e.header, e.received_at_ms FROM envelopes e \
             JOIN payloads p ON p.id = e.payload_id \
             WHERE e.username = ?1 AND e.device_id = ?2 AND e.seq > ?3 \
             ORDER BY e.seq LIMIT ?4",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(
            params![
                device.username,
                device.device_id,
                after as i64,
                limit as i64
            ],
            |r| {
                Ok(StoredEnvelope {
                    seq: r.get::<_, i64>(0)? as u64,
                    payload: r.get(1)?,
                    relay_tag: r.get(2)?,
                    received_at_ms: r.get::<_, i64>(3)? as u64,
                })
            },
        )
        .map_err(backend)?;
    // Stop once the batch holds FETCH_MAX_BYTES (rows are read one at a
    // time).
    let mut out = Vec::new();
    let mut bytes = 0u64;
    for env in rows {
        if bytes >= FETCH_MAX_BYTES {
            break;
        }
        let env = env.map_err(backend)?;
        bytes += env.payload.len() as u64;
        out.push(env);
    }
    Ok(out)
}

/// Deletes the envelopes that expired before `now_ms`, and the payloads
/// that expired with them; returns how many envelopes.
pub(super) fn expire(conn: &Connection, now_ms: u64) -> StoreResult<u64> {
    let n = conn
        .execute(
            "DELETE FROM envelopes WHERE expires_at_ms < ?1",
            params![now_ms as i64],
        )
        .map_err(backend)?;
    conn.execute(
        "DELETE FROM payloads WHERE expires_at_ms < ?1 \
         AND NOT EXISTS (SELECT 1 FROM envelopes WHERE payload_id = payloads.id)",
        params![now_ms as i64],
    )
    .map_err(backend)?;
    Ok(n as u64)
}

/// The payload bytes each device's queue references, in the order given.
pub(super) fn queue_bytes(conn: &Connection, devices: &[DeviceKey]) -> StoreResult<Vec<u64>> {
    let mut q = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(p.size), 0) FROM envelopes e \
             JOIN payloads p ON p.id = e.payload_id \
             WHERE e.username = ?1 AND e.device_id = ?2",
        )
        .map_err(backend)?;
    devices
        .iter()
        .map(|d| {
            q.query_row(params![d.username, d.device_id], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(backend)
        })
        .collect()
}

/// Acknowledgements waiting for their deletion.
pub(super) struct AckEntry {
    pub(super) device: DeviceKey,
    pub(super) seqs: Vec<u64>,
    pub(super) reply: oneshot::Sender<StoreResult<u64>>,
    pub(super) result: Option<StoreResult<u64>>,
}

pub(super) type AckQueue = Arc<Mutex<Vec<AckEntry>>>;

/// Deletes, in one savepoint of the batch, the acknowledged envelopes of
/// every device whose acknowledgements wait when it runs (a message to a
/// group of a thousand is acknowledged by a thousand devices at once), then
/// the payloads the last of their devices acknowledged.
pub(super) struct AckJob {
    pub(super) waiting: AckQueue,
    pub(super) taken: Vec<AckEntry>,
}

/// Deletes one device's acknowledged envelopes; adds their payloads to
/// `touched`.
fn delete_acked(conn: &Connection, e: &AckEntry, touched: &mut BTreeSet<i64>) -> StoreResult<u64> {
    let mut del = conn
        .prepare_cached(
            "DELETE FROM envelopes WHERE username = ?1 AND device_id = ?2 AND seq = ?3 \
             RETURNING payload_id",
        )
        .map_err(backend)?;
    let mut n = 0u64;
    for s in &e.seqs {
        let mut rows = del
            .query(params![e.device.username, e.device.device_id, *s as i64])
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            touched.insert(row.get(0).map_err(backend)?);
            n += 1;
        }
    }
    Ok(n)
}

impl AckJob {
    /// Runs every taken acknowledgement; the first failure's message.
    fn delete_all(&mut self, conn: &Connection) -> Option<String> {
        let mut touched = BTreeSet::new();
        let mut failed = None;
        for t in &mut self.taken {
            let r = delete_acked(conn, t, &mut touched);
            if let Err(e) = &r {
                failed = Some(e.to_string());
            }
            t.result = Some(r);
        }
        if failed.is_none() {
            failed = free_payloads(conn, &touched).err().map(|e| e.to_string());
        }
        failed
    }
}

impl WriteJob for AckJob {
    fn run(&mut self, conn: &Connection) {
        self.taken = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        let savepoint = conn
            .prepare_cached("SAVEPOINT acks")
            .and_then(|mut st| st.execute([]));
        if let Err(e) = savepoint {
            for t in &mut self.taken {
                t.result = Some(Err(backend(e.to_string())));
            }
            return;
        }
        let failed = self.delete_all(conn);
        let end = match &failed {
            None => conn
                .prepare_cached("RELEASE acks")
                .and_then(|mut st| st.execute([]))
                .map(|_| ()),
            Some(_) => conn.execute_batch("ROLLBACK TO acks; RELEASE acks"),
        };
        let failed = match (failed, end) {
            (Some(f), _) => Some(f),
            (None, Err(e)) => Some(e.to_string()),
            (None, Ok(())) => None,
        };
        if let Some(f) = failed {
            // Undone together: none of them is deleted.
            for t in &mut self.taken {
                t.result = Some(Err(StoreError::Backend(f.clone())));
            }
        }
    }

    fn complete(self: Box<Self>, committed: Result<(), String>) {
        for t in self.taken {
            let result = match (&committed, t.result) {
                (Err(e), _) => Err(StoreError::Backend(e.clone())),
                (Ok(()), Some(r)) => r,
                (Ok(()), None) => Err(backend("acknowledgement was not run")),
            };
            let _ = t.reply.send(result);
        }
    }

    fn awaits_acks(&self) -> bool {
        false
    }
}
