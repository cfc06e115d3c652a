//! Group commit for the PostgreSQL backend: sends are written by a few
//! tasks per node ([`super::postgres_batch`]), each of which takes every
//! send that is waiting, writes them in one transaction, commits once, and
//! only then answers each caller.
//!
//! Why tasks of their own: a send's transaction holds the recipients' queue
//! counters (row locks) and a pooled connection until it commits. Driven by
//! the caller's future, it advanced only when the caller polled it, and a
//! WebSocket session polls its sends between socket writes; a session
//! waiting on a slow socket stalled transactions that every other send to
//! the same devices waited for, until the pool ran dry (issue: "pool timed
//! out while waiting for an open connection" under the default relay load).
//! Here a transaction runs to its end whatever its callers do, a node holds
//! [`WRITERS`] connections for all its sends, and a batch costs one commit.
//!
//! A batch without commit claims (the common case) takes four round trips:
//! `BEGIN`, its payloads (one statement, no lock), the counters of all its
//! recipients locked in key order and raised together with the insertion of
//! its queue entries (one statement), `COMMIT`: the counters are held for
//! the last two only. A batch with claims writes each claim in a
//! savepoint of its own (a lost claim undoes only its send) and the runs of
//! sends between them together.
//!
//! Deadlock freedom across tasks and nodes: a batch locks the queue
//! counters of every recipient in it in one statement, in key order, before
//! any other lock another batch could wait for; its sends then take no
//! further counter locks. So the sequence numbers of
//! a device stay gap-free and ordered by commit. A send that still fails on
//! a deadlock or a serialization conflict (group rows of commit claims) is
//! written again alone after the batch.

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection as _, Row};
use tokio::sync::{mpsc, oneshot};

use super::postgres_batch::{Job, is_conflict, start_writers, submit};
use super::{DeviceKey, EpochClaim, NewEnvelope, StoreError, StoreResult, backend};

/// Writer tasks, each with a connection: one writes its payloads while
/// another holds the counters.
const WRITERS: usize = 2;
/// Most sends committed in one transaction.
const MAX_BATCH: usize = 256;
/// Sends waiting for the writer before more are refused as busy (503 with
/// `Retry-After`): a bound on the memory of a node behind its database.
pub(super) const MAX_WAITING: usize = 4096;

/// A send waiting for the writer.
pub(super) struct SendJob {
    pub recipients: Vec<DeviceKey>,
    pub envelope: NewEnvelope,
    pub claim: Option<EpochClaim>,
    pub reply: oneshot::Sender<StoreResult<Vec<u64>>>,
}

/// The writer's queue.
#[derive(Debug, Clone)]
pub(super) struct SendWriter {
    queue: mpsc::Sender<SendJob>,
}

impl SendWriter {
    /// Starts the writer tasks, connecting with `options`.
    pub(super) fn start(options: &PgConnectOptions) -> Self {
        let queue = start_writers(options, WRITERS, MAX_WAITING, MAX_BATCH, write_batch);
        Self { queue }
    }

    /// Writes a send durably; its sequence numbers, one per recipient.
    pub(super) async fn write(
        &self,
        recipients: Vec<DeviceKey>,
        envelope: NewEnvelope,
        claim: Option<EpochClaim>,
    ) -> StoreResult<Vec<u64>> {
        let (reply, answer) = oneshot::channel();
        let job = SendJob {
            recipients,
            envelope,
            claim,
            reply,
        };
        submit(&self.queue, job)?;
        answer
            .await
            .map_err(|_| backend("the send writer has stopped"))?
    }
}

impl Job for SendJob {
    fn fail(self, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Writes `batch` in one transaction and answers every job; the connection
/// back, unless it failed.
async fn write_batch(mut conn: PgConnection, mut batch: Vec<SendJob>) -> Option<PgConnection> {
    let written = match in_one_transaction(&mut conn, &batch).await {
        Ok(results) => results,
        Err(e) => {
            tracing::error!(error = %e, "a batch of sends failed");
            for job in batch {
                job.fail(backend(e.to_string()));
            }
            // A connection that failed a commit is not trusted again.
            return None;
        }
    };
    let mut again = Vec::new();
    for (job, result) in batch.drain(..).zip(written) {
        match result {
            Err(Retry) => again.push(job),
            Ok(r) => {
                let _ = job.reply.send(r);
            }
        }
    }
    // Conflicts with another node's transactions: each alone now.
    for job in again {
        let result = alone(&mut conn, &job).await;
        let _ = job.reply.send(result);
    }
    Some(conn)
}

/// A send that lost a deadlock or serialization conflict: written again.
struct Retry;

/// A job's outcome inside the batch: its result, or `Retry`.
type Outcome = Result<StoreResult<Vec<u64>>, Retry>;

/// Writes the batch in one transaction: commit claims one at a time (each
/// in a savepoint, since a lost claim undoes only its own send), and each
/// run of sends between them together, in a few set-based statements. The
/// order of the jobs is the order of their sequence numbers.
async fn in_one_transaction(
    conn: &mut PgConnection,
    batch: &[SendJob],
) -> Result<Vec<Outcome>, sqlx::Error> {
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    if batch.iter().all(|j| j.claim.is_none()) {
        if let Some(written) = plain(conn, batch).await? {
            return Ok(written);
        }
        // A recipient is gone: the general way, which refuses only its send.
        sqlx::query("BEGIN").execute(&mut *conn).await?;
    }
    let existing = lock_counters(conn, batch).await?;
    let mut results: Vec<Option<Outcome>> = batch.iter().map(|_| None).collect();
    let mut i = 0;
    while i < batch.len() {
        if batch[i].claim.is_some() {
            results[i] = Some(one_in_savepoint(conn, &batch[i]).await?);
            i += 1;
            continue;
        }
        let start = i;
        while i < batch.len() && batch[i].claim.is_none() {
            i += 1;
        }
        // A send to a device that is gone is refused (its sender drops the
        // device and sends again); the others are written.
        let run: Vec<usize> = (start..i)
            .filter(|&k| {
                let present = batch[k]
                    .recipients
                    .iter()
                    .all(|r| existing.contains(&key(r)));
                if !present {
                    results[k] = Some(Ok(Err(StoreError::NotFound)));
                }
                present
            })
            .collect();
        if run.is_empty() {
            continue;
        }
        let jobs: Vec<&SendJob> = run.iter().map(|&k| &batch[k]).collect();
        sqlx::query("SAVEPOINT run").execute(&mut *conn).await?;
        match write_run(conn, &jobs).await {
            Ok(Some(seqs)) => {
                sqlx::query("RELEASE SAVEPOINT run")
                    .execute(&mut *conn)
                    .await?;
                for (k, s) in run.into_iter().zip(seqs) {
                    results[k] = Some(Ok(Ok(s)));
                }
            }
            failed => {
                if let Err(e) = failed {
                    tracing::warn!(error = %e, "a run of sends failed together; writing each alone");
                }
                sqlx::query("ROLLBACK TO SAVEPOINT run")
                    .execute(&mut *conn)
                    .await?;
                for k in run {
                    results[k] = Some(Err(Retry));
                }
            }
        }
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Err(Retry)))
        .collect())
}

/// One send (a commit claim) in a savepoint of the open transaction.
async fn one_in_savepoint(conn: &mut PgConnection, job: &SendJob) -> Result<Outcome, sqlx::Error> {
    sqlx::query("SAVEPOINT send").execute(&mut *conn).await?;
    let result = write_send(conn, &job.recipients, &job.envelope, job.claim.as_ref()).await;
    let end = if result.is_ok() {
        "RELEASE SAVEPOINT send"
    } else {
        "ROLLBACK TO SAVEPOINT send"
    };
    sqlx::query(end).execute(&mut *conn).await?;
    Ok(match result {
        Err(Failed::Conflict) => Err(Retry),
        Err(Failed::Store(e)) => Ok(Err(e)),
        Ok(seqs) => Ok(Ok(seqs)),
    })
}

/// A batch with no commit claim in the open transaction, in its fewest
/// round trips (the counters, then the payloads with their envelopes, then
/// the commit): per job, its outcome. `None` when a recipient is gone
/// (rolled back); every job `Retry` when it lost a conflict.
async fn plain(
    conn: &mut PgConnection,
    batch: &[SendJob],
) -> Result<Option<Vec<Outcome>>, sqlx::Error> {
    let jobs: Vec<&SendJob> = batch.iter().collect();
    let written = match write_run(conn, &jobs).await {
        Ok(Some(seqs)) => sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map(|_| seqs),
        Ok(None) => {
            sqlx::query("ROLLBACK").execute(&mut *conn).await?;
            return Ok(None);
        }
        Err(e) => Err(e),
    };
    match written {
        Ok(seqs) => Ok(Some(seqs.into_iter().map(|s| Ok(Ok(s))).collect())),
        Err(e) if is_conflict(&e) => {
            sqlx::query("ROLLBACK").execute(&mut *conn).await?;
            Ok(Some(batch.iter().map(|_| Err(Retry)).collect()))
        }
        Err(e) => Err(e),
    }
}

/// A device's key as the database has it.
fn key(r: &DeviceKey) -> (String, i64) {
    (r.username.clone(), i64::from(r.device_id))
}

/// Writes a run of sends without claims: their payloads first (no lock
/// taken), then, in one statement, the counters of all their recipients
/// (locked in key order unless this transaction holds them already) and
/// the queue entries numbered from them. So a batch holds the counters for
/// one statement and its commit, and another task's batch writes its
/// payloads meanwhile. Per send, its sequence numbers; `None` when a
/// recipient does not exist (the caller rolls back what was written).
async fn write_run(
    conn: &mut PgConnection,
    jobs: &[&SendJob],
) -> Result<Option<Vec<Vec<u64>>>, sqlx::Error> {
    let payload_ids = insert_payloads(conn, jobs).await?;
    let mut rows = Rows::default();
    // Per entry, in order: its send and its recipient there.
    let mut slots = Vec::new();
    for (n, (job, id)) in jobs.iter().zip(&payload_ids).enumerate() {
        for (i, r) in job.recipients.iter().enumerate() {
            rows.push(r, *id, job, i);
            slots.push((n, i));
        }
    }
    let numbered = rows.insert(conn).await?;
    if numbered.len() != slots.len() {
        return Ok(None);
    }
    let mut seqs: Vec<Vec<u64>> = jobs.iter().map(|j| vec![0; j.recipients.len()]).collect();
    for (entry, seq) in numbered {
        let (n, i) = usize::try_from(entry - 1)
            .ok()
            .and_then(|k| slots.get(k))
            .copied()
            .ok_or(sqlx::Error::RowNotFound)?;
        seqs[n][i] = seq as u64;
    }
    Ok(Some(seqs))
}

/// Inserts the payloads of `jobs`; their ids, in order.
async fn insert_payloads(
    conn: &mut PgConnection,
    jobs: &[&SendJob],
) -> Result<Vec<i64>, sqlx::Error> {
    let bodies: Vec<&[u8]> = jobs.iter().map(|j| j.envelope.payload.as_slice()).collect();
    let sizes: Vec<i64> = bodies.iter().map(|b| b.len() as i64).collect();
    let expiries: Vec<i64> = jobs
        .iter()
        .map(|j| j.envelope.expires_at_ms as i64)
        .collect();
    sqlx::query_scalar(
        "WITH p AS (SELECT nextval(pg_get_serial_sequence('payloads', 'id')) AS id, n, b, s, x \
           FROM unnest($1::BYTEA[], $2::BIGINT[], $3::BIGINT[]) WITH ORDINALITY AS j(b, s, x, n)), \
         stored AS (INSERT INTO payloads (id, body, size, expires_at_ms) SELECT id, b, s, x FROM p) \
         SELECT id FROM p ORDER BY n",
    )
    .bind(&bodies)
    .bind(&sizes)
    .bind(&expiries)
    .fetch_all(&mut *conn)
    .await
}

/// Queue entries to insert, column by column.
#[derive(Default)]
struct Rows<'a> {
    names: Vec<&'a str>,
    ids: Vec<i64>,
    payloads: Vec<i64>,
    headers: Vec<Option<&'a [u8]>>,
    received: Vec<i64>,
    expires: Vec<i64>,
}

impl<'a> Rows<'a> {
    /// Recipient `i` of `job`, whose payload is `payload`.
    fn push(&mut self, r: &'a DeviceKey, payload: i64, job: &'a SendJob, i: usize) {
        self.names.push(&r.username);
        self.ids.push(i64::from(r.device_id));
        self.payloads.push(payload);
        self.headers
            .push(job.envelope.relay_tags.get(i).map(Vec::as_slice));
        self.received.push(job.envelope.received_at_ms as i64);
        self.expires.push(job.envelope.expires_at_ms as i64);
    }

    /// Locks (in key order) and raises the counters of the entries'
    /// devices and inserts the entries with the numbers taken, in the order
    /// pushed for each device, in one statement; per entry written, its
    /// place in the order pushed (from 1) and its sequence number. An
    /// entry for a device that does not exist is not written.
    async fn insert(&self, conn: &mut PgConnection) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        let rows = sqlx::query(
            "WITH k AS (SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], \
               $4::BYTEA[], $5::BIGINT[], $6::BIGINT[]) WITH ORDINALITY AS k(u, i, p, h, r, x, o)), \
             c AS (SELECT u, i, count(*) AS c FROM k GROUP BY u, i), \
             locked AS MATERIALIZED (SELECT d.username AS u, d.device_id AS i FROM devices d \
               JOIN c ON d.username = c.u AND d.device_id = c.i \
               ORDER BY d.username, d.device_id FOR UPDATE OF d), \
             raised AS (UPDATE devices d SET next_seq = d.next_seq + c.c, \
               owner = NULL, owner_token = d.owner_token + 1 FROM c, locked l \
               WHERE d.username = c.u AND d.device_id = c.i AND l.u = c.u AND l.i = c.i \
               RETURNING d.username AS u, d.device_id AS i, d.next_seq - c.c AS first), \
             numbered AS MATERIALIZED (SELECT k.*, \
               f.first + row_number() OVER (PARTITION BY k.u, k.i ORDER BY k.o) - 1 AS s \
               FROM k JOIN raised f ON f.u = k.u AND f.i = k.i), \
             stored AS (INSERT INTO envelopes (username, device_id, seq, payload_id, header, \
               received_at_ms, expires_at_ms) SELECT u, i, s, p, h, r, x FROM numbered) \
             SELECT o, s FROM numbered",
        )
        .bind(&self.names)
        .bind(&self.ids)
        .bind(&self.payloads)
        .bind(&self.headers)
        .bind(&self.received)
        .bind(&self.expires)
        .fetch_all(conn)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// Writes one job in a transaction of its own.
async fn alone(conn: &mut PgConnection, job: &SendJob) -> StoreResult<Vec<u64>> {
    let mut tx = conn.begin().await.map_err(backend)?;
    let result = write_send(&mut tx, &job.recipients, &job.envelope, job.claim.as_ref()).await;
    match result {
        Ok(seqs) => {
            tx.commit().await.map_err(backend)?;
            Ok(seqs)
        }
        Err(Failed::Store(e)) => Err(e),
        Err(Failed::Conflict) => Err(backend("a send lost a conflict twice")),
    }
}

/// Locks the queue counters of every recipient of the batch, in key order;
/// the devices that exist.
async fn lock_counters(
    conn: &mut PgConnection,
    batch: &[SendJob],
) -> Result<std::collections::HashSet<(String, i64)>, sqlx::Error> {
    let mut keys: Vec<(&str, i64)> = batch
        .iter()
        .flat_map(|j| &j.recipients)
        .map(|r| (r.username.as_str(), i64::from(r.device_id)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let (names, ids): (Vec<&str>, Vec<i64>) = keys.into_iter().unzip();
    let rows = sqlx::query(
        "SELECT d.username, d.device_id FROM devices d \
         JOIN unnest($1::TEXT[], $2::BIGINT[]) AS k(u, i) \
         ON d.username = k.u AND d.device_id = k.i \
         ORDER BY d.username, d.device_id FOR UPDATE OF d",
    )
    .bind(names)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Why a send was not written.
enum Failed {
    /// Lost a deadlock or serialization conflict: try again.
    Conflict,
    /// Refused or failed: the caller hears it.
    Store(StoreError),
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        if is_conflict(&e) {
            Failed::Conflict
        } else {
            Failed::Store(backend(e))
        }
    }
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Failed::Store(e)
    }
}

/// One send: its epoch claim, its payload once, and one queue entry per
/// recipient with the recipient's next sequence number.
async fn write_send(
    conn: &mut PgConnection,
    recipients: &[DeviceKey],
    envelope: &NewEnvelope,
    claim: Option<&EpochClaim>,
) -> Result<Vec<u64>, Failed> {
    if let Some(claim) = claim {
        super::epoch::claim_postgres(conn, claim).await?;
    }
    // Stored once, for every recipient; not at all for a commit that goes
    // to nobody.
    if recipients.is_empty() {
        return Ok(Vec::new());
    }
    let payload_id = super::postgres_queue::insert_payload(conn, envelope).await?;
    let names: Vec<&str> = recipients.iter().map(|r| r.username.as_str()).collect();
    let ids: Vec<i64> = recipients.iter().map(|r| i64::from(r.device_id)).collect();
    // Each recipient's next number, in the order given (a recipient is
    // listed once: the send path refuses repeats).
    let rows = sqlx::query(
        "UPDATE devices d SET next_seq = d.next_seq + 1, \
         owner = NULL, owner_token = d.owner_token + 1 \
         FROM unnest($1::TEXT[], $2::BIGINT[]) WITH ORDINALITY AS k(u, i, n) \
         WHERE d.username = k.u AND d.device_id = k.i \
         RETURNING k.n, d.next_seq - 1",
    )
    .bind(&names)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    if rows.len() != recipients.len() {
        return Err(Failed::Store(StoreError::NotFound));
    }
    let mut seqs = vec![0i64; recipients.len()];
    for row in rows {
        let n: i64 = row.get(0);
        let slot = usize::try_from(n - 1)
            .ok()
            .and_then(|i| seqs.get_mut(i))
            .ok_or_else(|| Failed::Store(backend("a recipient out of range")))?;
        *slot = row.get(1);
    }
    let headers: Vec<Option<&[u8]>> = (0..recipients.len())
        .map(|i| envelope.relay_tags.get(i).map(Vec::as_slice))
        .collect();
    sqlx::query(
        "INSERT INTO envelopes (username, device_id, seq, payload_id, header, \
         received_at_ms, expires_at_ms) \
         SELECT u, i, s, $4, h, $5, $6 \
         FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $7::BYTEA[]) AS k(u, i, s, h)",
    )
    .bind(&names)
    .bind(&ids)
    .bind(&seqs)
    .bind(payload_id)
    .bind(envelope.received_at_ms as i64)
    .bind(envelope.expires_at_ms as i64)
    .bind(&headers)
    .execute(&mut *conn)
    .await?;
    Ok(seqs.into_iter().map(|s| s as u64).collect())
}
