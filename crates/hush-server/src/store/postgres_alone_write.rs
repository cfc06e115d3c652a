//! The writes of a PostgreSQL node that serves its database alone
//! ([`super::postgres_alone`]): a batch of numbered sends, in order. Runs of
//! sends without a commit claim are written in one statement (the fence,
//! their payloads, their queue entries: one round trip, one commit); a
//! send with a claim is written in a transaction of its own. Each checks
//! the fence under a share lock (on the lease's row for a node alone, on the
//! rows of the devices numbered for a cluster node), even when every copy
//! was acknowledged early and nothing is written.

use sqlx::postgres::PgConnection;

use super::postgres_alone::{EarlyJob, Fence, QUEUES_LEASE, Writer, current_holder};
use super::{StoreError, StoreResult, backend};

/// How a step of the batch ended.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Written or refused, send by send; go on.
    Done,
    /// Another node holds the queues now: nothing more is written.
    Fenced,
    /// The connection failed: nothing more is written on it.
    Broken,
}

/// The answer to a send whose fence was gone when it was to be written: on
/// a node alone (another node took the queues), "busy": the sender tries
/// again, and is numbered in its write. On a cluster node (another node
/// took a device's claim), "lost", and the node numbers it again; a send
/// every recipient acknowledged early is delivered, and stored.
fn refused(writer: &Writer, job: &EarlyJob) -> StoreResult<()> {
    match &writer.fence {
        Fence::Lease { .. } => Err(StoreError::Busy),
        Fence::Owner { .. } if job.all_acknowledged() => Ok(()),
        Fence::Owner { .. } => Err(StoreError::LeaseLost {
            lease: "a device queue's claim".into(),
            token: 0,
        }),
    }
}

/// Answers a job the batch did not reach after `step`.
fn stop(job: EarlyJob, step: &Step, writer: &Writer) {
    let result = match step {
        Step::Fenced => refused(writer, &job),
        _ => Err(backend("the database connection failed")),
    };
    job.answer(result);
}

/// Writes the batch in order and answers every send; the connection back,
/// unless it failed.
pub(super) async fn write_batch(
    mut conn: PgConnection,
    jobs: Vec<EarlyJob>,
    writer: &Writer,
) -> Option<PgConnection> {
    let mut step = Step::Done;
    let mut run = Vec::new();
    for job in jobs {
        if step != Step::Done {
            stop(job, &step, writer);
            continue;
        }
        if job.claim.is_none() {
            run.push(job);
            continue;
        }
        step = flush(&mut conn, std::mem::take(&mut run), writer).await;
        if step == Step::Done {
            step = claimed(&mut conn, job, writer).await;
        } else {
            stop(job, &step, writer);
        }
    }
    if step == Step::Done {
        step = flush(&mut conn, run, writer).await;
    } else {
        for job in run {
            stop(job, &step, writer);
        }
    }
    match step {
        Step::Done | Step::Fenced => Some(conn),
        Step::Broken => None,
    }
}

/// A write found its fence gone: a node alone lost the queues, and says so
/// before any sender hears of it (so that a send tried again is not
/// numbered the old way); a cluster node lost the claims of some devices,
/// and forgets their blocks (its next send to each claims it again).
/// `Fenced`.
async fn fenced(conn: &mut PgConnection, writer: &Writer, jobs: &[&EarlyJob]) -> Step {
    match &writer.fence {
        Fence::Lease { .. } => {
            let holder = current_holder(&mut *conn).await.unwrap_or_default();
            writer.standing.lost_to(&holder);
        }
        Fence::Owner { node } => {
            let lost = super::postgres_owned::lost_claims(conn, node, jobs).await;
            tracing::info!(
                devices = lost.len(),
                "claims on device queues taken by other nodes"
            );
            writer.seqs.forget_claims(&lost);
        }
    }
    Step::Fenced
}

/// Whether `e` says the connection itself failed (not the statement).
fn broken(e: &sqlx::Error) -> bool {
    !matches!(e, sqlx::Error::Database(_))
}

/// A send's error from the database's.
fn refusal(e: &sqlx::Error) -> StoreError {
    match e {
        // A recipient's device was removed since its block was loaded.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23503") => StoreError::NotFound,
        _ => backend(e.to_string()),
    }
}

/// Writes a run of sends without claims together; if that fails (a
/// device removed meanwhile), each alone, so only its send is refused.
async fn flush(conn: &mut PgConnection, run: Vec<EarlyJob>, writer: &Writer) -> Step {
    if run.is_empty() {
        return Step::Done;
    }
    let all: Vec<&EarlyJob> = run.iter().collect();
    match insert(conn, &all, &writer.fence).await {
        Ok(true) => answer_all(run, || Ok(()), Step::Done),
        Ok(false) => {
            let step = fenced(conn, writer, &all).await;
            for job in run {
                stop(job, &step, writer);
            }
            step
        }
        Err(e) if broken(&e) || run.len() == 1 => {
            let step = if broken(&e) { Step::Broken } else { Step::Done };
            answer_all(run, || Err(refusal(&e)), step)
        }
        Err(_) => {
            let mut step = Step::Done;
            for job in run {
                if step != Step::Done {
                    stop(job, &step, writer);
                    continue;
                }
                match insert(conn, &[&job], &writer.fence).await {
                    Ok(true) => job.answer(Ok(())),
                    Ok(false) => {
                        step = fenced(conn, writer, &[&job]).await;
                        stop(job, &step, writer);
                    }
                    Err(e) => {
                        if broken(&e) {
                            step = Step::Broken;
                        }
                        job.answer(Err(refusal(&e)));
                    }
                }
            }
            step
        }
    }
}

/// Answers every job with what `result` makes; `step`.
fn answer_all(jobs: Vec<EarlyJob>, result: impl Fn() -> StoreResult<()>, step: Step) -> Step {
    for job in jobs {
        job.answer(result());
    }
    step
}

/// A send with a commit claim, in a transaction of its own: the claim,
/// then its queue entries (with the fence).
async fn claimed(conn: &mut PgConnection, job: EarlyJob, writer: &Writer) -> Step {
    if let Err(e) = sqlx::query("BEGIN").execute(&mut *conn).await {
        job.answer(Err(backend(e)));
        return Step::Broken;
    }
    let outcome = match job.claim.as_ref() {
        Some(claim) => super::epoch::claim_postgres(conn, claim).await,
        None => Ok(()),
    };
    let outcome = match outcome {
        Ok(()) => insert(conn, &[&job], &writer.fence)
            .await
            .map_err(|e| refusal(&e)),
        Err(e) => Err(e),
    };
    let end = if matches!(outcome, Ok(true)) {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    if let Err(e) = sqlx::query(end).execute(&mut *conn).await {
        job.answer(Err(backend(e)));
        return Step::Broken;
    }
    match outcome {
        Ok(true) => {
            job.answer(Ok(()));
            Step::Done
        }
        Ok(false) => {
            let step = fenced(conn, writer, &[&job]).await;
            stop(job, &step, writer);
            step
        }
        Err(e) => {
            job.answer(Err(e));
            Step::Done
        }
    }
}

/// The fence of a node alone: the lease's row, share-locked.
const LEASE_FENCE: &str = "\
    f AS MATERIALIZED (SELECT 1 FROM leases \
      WHERE name = $1 AND holder = $2 AND token = $3 FOR SHARE), \
    held AS MATERIALIZED (SELECT count(*) > 0 AS ok FROM f), ";

/// The fence of a cluster node: the rows of the devices numbered, each
/// share-locked (in key order) if it still names this node ($14) under
/// the token its numbers were taken with.
const OWNER_FENCE: &str = "\
    o AS (SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) AS o(u, i, t)), \
    f AS MATERIALIZED (SELECT 1 FROM devices d JOIN o ON d.username = o.u AND d.device_id = o.i \
      WHERE d.owner = $14 AND d.owner_token = o.t \
      ORDER BY d.username, d.device_id FOR SHARE OF d), \
    held AS MATERIALIZED (SELECT count(*) = (SELECT count(*) FROM o) AS ok FROM f), ";

/// What a batch writes once its fence holds: payloads, queue entries.
const WRITES: &str = "\
    p AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('payloads', 'id')) AS id, \
      n, b, s, x FROM unnest($4::BYTEA[], $5::BIGINT[], $6::BIGINT[]) \
      WITH ORDINALITY AS j(b, s, x, n) WHERE (SELECT ok FROM held)), \
    stored AS (INSERT INTO payloads (id, body, size, expires_at_ms) \
      SELECT id, b, s, x FROM p), \
    queued AS (INSERT INTO envelopes (username, device_id, seq, payload_id, header, \
      received_at_ms, expires_at_ms) \
      SELECT k.u, k.i, k.q, p.id, k.h, k.r, k.x FROM unnest($7::TEXT[], $8::BIGINT[], \
      $9::BIGINT[], $10::BIGINT[], $11::BYTEA[], $12::BIGINT[], $13::BIGINT[]) \
      AS k(u, i, q, n, h, r, x) JOIN p ON p.n = k.n) \
    SELECT ok FROM held";

/// Writes the payloads and queue entries of `jobs` (the recipients each
/// writes) in one statement, if this node's fence still holds; whether it
/// does. The fence's rows are share-locked until the statement's commit,
/// so a node taking them over waits for it.
async fn insert(
    conn: &mut PgConnection,
    jobs: &[&EarlyJob],
    fence: &Fence,
) -> Result<bool, sqlx::Error> {
    let mut c = Columns::default();
    for job in jobs {
        c.push(job);
    }
    let fence_sql = match fence {
        Fence::Lease { .. } => LEASE_FENCE,
        Fence::Owner { .. } => OWNER_FENCE,
    };
    let sql = format!("WITH {fence_sql}{WRITES}");
    // The claims only a cluster node's fence needs (none for a node alone).
    let claims = match fence {
        Fence::Owner { .. } => super::postgres_owned::claims_of(jobs),
        Fence::Lease { .. } => Default::default(),
    };
    let query = sqlx::query_scalar(&sql);
    let query = match fence {
        Fence::Lease { holder, token } => query.bind(QUEUES_LEASE).bind(holder).bind(*token),
        Fence::Owner { .. } => query.bind(&claims.0).bind(&claims.1).bind(&claims.2),
    };
    let query = query
        .bind(&c.bodies)
        .bind(&c.sizes)
        .bind(&c.expiries)
        .bind(&c.names)
        .bind(&c.ids)
        .bind(&c.seqs)
        .bind(&c.payload_of)
        .bind(&c.headers)
        .bind(&c.received)
        .bind(&c.expires);
    let query = match fence {
        Fence::Owner { node } => query.bind(node),
        Fence::Lease { .. } => query,
    };
    query.fetch_one(&mut *conn).await
}

/// The rows of a statement, column by column: one payload per send with a
/// recipient left to write, one queue entry per such recipient.
#[derive(Default)]
struct Columns<'a> {
    bodies: Vec<&'a [u8]>,
    sizes: Vec<i64>,
    expiries: Vec<i64>,
    names: Vec<&'a str>,
    ids: Vec<i64>,
    seqs: Vec<i64>,
    /// The entry's payload: its place among `bodies`, from 1.
    payload_of: Vec<i64>,
    headers: Vec<Option<&'a [u8]>>,
    received: Vec<i64>,
    expires: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, job: &'a EarlyJob) {
        if !job.written.contains(&true) {
            // Every copy acknowledged early: nothing of it is stored.
            return;
        }
        let env = &job.envelope;
        self.bodies.push(&env.payload);
        self.sizes.push(env.payload.len() as i64);
        self.expiries.push(env.expires_at_ms as i64);
        let n = self.bodies.len() as i64;
        for (i, (r, seq)) in job.recipients.iter().zip(&job.seqs).enumerate() {
            if !job.written.get(i).is_some_and(|w| *w) {
                continue;
            }
            self.names.push(&r.username);
            self.ids.push(i64::from(r.device_id));
            self.seqs.push(*seq as i64);
            self.payload_of.push(n);
            self.headers.push(env.relay_tags.get(i).map(Vec::as_slice));
            self.received.push(env.received_at_ms as i64);
            self.expires.push(env.expires_at_ms as i64);
        }
    }
}
