//! Acknowledgements on the PostgreSQL backend, deleted in batches: one task
//! per node takes the acknowledgements of every connection waiting, deletes
//! their envelopes with one set-based statement, frees the payloads they
//! were the last references of, commits once and only then answers each
//! caller (as the SQLite backend answers after its group commit).
//!
//! Before, each connection deleted its own acknowledgements in a
//! transaction of its own through the pool: under the relay load most of
//! the database's transactions, and most of its commits, were these.
//!
//! Deadlock freedom: payloads are locked in id order before they are freed
//! (as every other freer does); the envelopes deleted belong to the devices
//! connected to this node. A batch that loses a deadlock or serialization
//! conflict anyway is rolled back and its acknowledgements are deleted one
//! connection at a time.

use std::collections::HashSet;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::{mpsc, oneshot};

use super::postgres_batch::{Job, is_conflict, start_writers, submit};
use super::postgres_queue::{ack_in, free_payloads_sql};
use super::{DeviceKey, StoreError, StoreResult, backend};

/// Tasks deleting acknowledgements, each with a connection.
const WRITERS: usize = 2;
/// Most connections' acknowledgements deleted in one transaction.
const MAX_BATCH: usize = 512;
/// Acknowledgements waiting for the task before more are refused as busy
/// (a connection waits a busy database out, see [`super::when_free`]).
const MAX_WAITING: usize = 4096;

/// One connection's acknowledgements waiting for the task.
struct AckJob {
    device: DeviceKey,
    seqs: Vec<i64>,
    reply: oneshot::Sender<StoreResult<u64>>,
}

impl Job for AckJob {
    fn fail(self, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// The acknowledgement task's queue.
#[derive(Debug, Clone)]
pub(super) struct AckWriter {
    queue: mpsc::Sender<AckJob>,
}

impl AckWriter {
    /// Starts the task, connecting with `options`.
    pub(super) fn start(options: &PgConnectOptions) -> Self {
        let queue = start_writers(options, WRITERS, MAX_WAITING, MAX_BATCH, write_batch);
        Self { queue }
    }

    /// Deletes `device`'s envelopes `seqs` (and the payloads only they
    /// referenced); how many there were. Returns once committed.
    pub(super) async fn ack(&self, device: &DeviceKey, seqs: &[u64]) -> StoreResult<u64> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let (reply, answer) = oneshot::channel();
        let job = AckJob {
            device: device.clone(),
            seqs: seqs.iter().map(|s| *s as i64).collect(),
            reply,
        };
        submit(&self.queue, job)?;
        answer
            .await
            .map_err(|_| backend("the acknowledgement writer has stopped"))?
    }
}

/// Deletes the batch's envelopes in one transaction and answers every job;
/// the connection back, unless it failed.
async fn write_batch(mut conn: PgConnection, batch: Vec<AckJob>) -> Option<PgConnection> {
    let error = match delete_together(&mut conn, &batch).await {
        Ok(counts) => {
            for (job, n) in batch.into_iter().zip(counts) {
                let _ = job.reply.send(Ok(n));
            }
            return Some(conn);
        }
        Err(e) => e,
    };
    if sqlx::query("ROLLBACK").execute(&mut conn).await.is_err() {
        for job in batch {
            job.fail(backend(error.to_string()));
        }
        return None;
    }
    if !is_conflict(&error) {
        tracing::error!(error = %error, "a batch of acknowledgements failed");
        for job in batch {
            job.fail(backend(error.to_string()));
        }
        return Some(conn);
    }
    // Lost a conflict with another node's transaction: each alone now.
    for job in batch {
        let result = alone(&mut conn, &job).await;
        let _ = job.reply.send(result);
    }
    Some(conn)
}

/// Deletes every job's envelopes and the payloads they freed, and commits;
/// per job, how many of its envelopes were deleted (an envelope listed by
/// two jobs counts for the first).
async fn delete_together(
    conn: &mut PgConnection,
    batch: &[AckJob],
) -> Result<Vec<u64>, sqlx::Error> {
    let (mut names, mut ids, mut seqs) = (Vec::new(), Vec::new(), Vec::new());
    for job in batch {
        for s in &job.seqs {
            names.push(job.device.username.as_str());
            ids.push(i64::from(job.device.device_id));
            seqs.push(*s);
        }
    }
    sqlx::query("BEGIN").execute(&mut *conn).await?;
    let rows = sqlx::query(
        "DELETE FROM envelopes e \
         USING unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) AS k(u, i, s) \
         WHERE e.username = k.u AND e.device_id = k.i AND e.seq = k.s \
         RETURNING e.username, e.device_id, e.seq, e.payload_id",
    )
    .bind(&names)
    .bind(&ids)
    .bind(&seqs)
    .fetch_all(&mut *conn)
    .await?;
    let mut deleted: HashSet<(String, i64, i64)> = HashSet::with_capacity(rows.len());
    let mut payloads = Vec::with_capacity(rows.len());
    for r in rows {
        deleted.insert((r.get(0), r.get(1), r.get(2)));
        payloads.push(r.get::<i64, _>(3));
    }
    free_payloads_sql(conn, payloads).await?;
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(batch
        .iter()
        .map(|job| {
            let id = i64::from(job.device.device_id);
            job.seqs
                .iter()
                .filter(|s| deleted.remove(&(job.device.username.clone(), id, **s)))
                .count() as u64
        })
        .collect())
}

/// One job's acknowledgements in a transaction of their own.
async fn alone(conn: &mut PgConnection, job: &AckJob) -> StoreResult<u64> {
    use sqlx::Connection as _;
    let mut tx = conn.begin().await.map_err(backend)?;
    let n = ack_in(&mut tx, &job.device, &job.seqs).await?;
    tx.commit().await.map_err(backend)?;
    Ok(n)
}
