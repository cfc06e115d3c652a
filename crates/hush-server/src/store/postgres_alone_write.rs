//! The writes of a PostgreSQL node that serves its database alone
//! ([`super::postgres_alone`]): a batch of numbered sends, in order. Runs of
//! sends without a commit claim are written in one statement (the fence,
//! their payloads, their queue entries: one round trip, one commit); a
//! send with a claim is written in a transaction of its own. Each checks
//! the fence under a share lock on the lease's row, even when every copy
//! was acknowledged early and nothing is written.

use sqlx::postgres::PgConnection;

use super::postgres_alone::{EarlyJob, Fence, QUEUES_LEASE, Standing, current_holder};
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

/// The answer to a send written after another node took the queues: the
/// sender tries again, and is numbered in its write.
fn lost() -> StoreError {
    StoreError::Busy
}

/// Writes the batch in order and answers every send; the connection back,
/// unless it failed.
pub(super) async fn write_batch(
    mut conn: PgConnection,
    jobs: Vec<EarlyJob>,
    fence: &Fence,
    standing: &Standing,
) -> Option<PgConnection> {
    let mut step = Step::Done;
    let mut run = Vec::new();
    for job in jobs {
        if step != Step::Done {
            job.answer(Err(stopped(&step)));
            continue;
        }
        if job.claim.is_none() {
            run.push(job);
            continue;
        }
        step = flush(&mut conn, std::mem::take(&mut run), fence, standing).await;
        if step == Step::Done {
            step = claimed(&mut conn, job, fence, standing).await;
        } else {
            job.answer(Err(stopped(&step)));
        }
    }
    if step == Step::Done {
        step = flush(&mut conn, run, fence, standing).await;
    } else {
        for job in run {
            job.answer(Err(stopped(&step)));
        }
    }
    match step {
        Step::Done | Step::Fenced => Some(conn),
        Step::Broken => None,
    }
}

/// This node lost the queues: it says so before any sender hears of it,
/// so that a send tried again is not numbered the old way; `Fenced`.
async fn fenced(conn: &mut PgConnection, standing: &Standing) -> Step {
    let holder = current_holder(&mut *conn).await.unwrap_or_default();
    standing.lost_to(&holder);
    Step::Fenced
}

/// The error of a send the batch did not reach.
fn stopped(step: &Step) -> StoreError {
    match step {
        Step::Fenced => lost(),
        _ => backend("the database connection failed"),
    }
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
async fn flush(
    conn: &mut PgConnection,
    run: Vec<EarlyJob>,
    fence: &Fence,
    standing: &Standing,
) -> Step {
    if run.is_empty() {
        return Step::Done;
    }
    let all: Vec<&EarlyJob> = run.iter().collect();
    match insert(conn, &all, fence).await {
        Ok(true) => answer_all(run, || Ok(()), Step::Done),
        Ok(false) => {
            let step = fenced(conn, standing).await;
            answer_all(run, || Err(lost()), step)
        }
        Err(e) if broken(&e) || run.len() == 1 => {
            let step = if broken(&e) { Step::Broken } else { Step::Done };
            answer_all(run, || Err(refusal(&e)), step)
        }
        Err(_) => {
            let mut step = Step::Done;
            for job in run {
                if step != Step::Done {
                    job.answer(Err(stopped(&step)));
                    continue;
                }
                match insert(conn, &[&job], fence).await {
                    Ok(true) => job.answer(Ok(())),
                    Ok(false) => {
                        step = fenced(conn, standing).await;
                        job.answer(Err(lost()));
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
async fn claimed(
    conn: &mut PgConnection,
    job: EarlyJob,
    fence: &Fence,
    standing: &Standing,
) -> Step {
    if let Err(e) = sqlx::query("BEGIN").execute(&mut *conn).await {
        job.answer(Err(backend(e)));
        return Step::Broken;
    }
    let outcome = match job.claim.as_ref() {
        Some(claim) => super::epoch::claim_postgres(conn, claim).await,
        None => Ok(()),
    };
    let outcome = match outcome {
        Ok(()) => insert(conn, &[&job], fence).await.map_err(|e| refusal(&e)),
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
            let step = fenced(conn, standing).await;
            job.answer(Err(lost()));
            step
        }
        Err(e) => {
            job.answer(Err(e));
            Step::Done
        }
    }
}

/// Writes the payloads and queue entries of `jobs` (the recipients each
/// writes) in one statement, if this node still holds the queues; whether
/// it does. The lease's row is share-locked until the statement's commit,
/// so a node taking the lease waits for it.
async fn insert(
    conn: &mut PgConnection,
    jobs: &[&EarlyJob],
    fence: &Fence,
) -> Result<bool, sqlx::Error> {
    let mut c = Columns::default();
    for job in jobs {
        c.push(job);
    }
    let held: i64 = sqlx::query_scalar(
        "WITH f AS MATERIALIZED (SELECT 1 FROM leases \
           WHERE name = $1 AND holder = $2 AND token = $3 FOR SHARE), \
         p AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence('payloads', 'id')) AS id, \
           n, b, s, x FROM unnest($4::BYTEA[], $5::BIGINT[], $6::BIGINT[]) \
           WITH ORDINALITY AS j(b, s, x, n) WHERE EXISTS (SELECT 1 FROM f)), \
         stored AS (INSERT INTO payloads (id, body, size, expires_at_ms) \
           SELECT id, b, s, x FROM p), \
         queued AS (INSERT INTO envelopes (username, device_id, seq, payload_id, header, \
           received_at_ms, expires_at_ms) \
           SELECT k.u, k.i, k.q, p.id, k.h, k.r, k.x FROM unnest($7::TEXT[], $8::BIGINT[], \
           $9::BIGINT[], $10::BIGINT[], $11::BYTEA[], $12::BIGINT[], $13::BIGINT[]) \
           AS k(u, i, q, n, h, r, x) JOIN p ON p.n = k.n) \
         SELECT count(*) FROM f",
    )
    .bind(QUEUES_LEASE)
    .bind(&fence.holder)
    .bind(fence.token)
    .bind(&c.bodies)
    .bind(&c.sizes)
    .bind(&c.expiries)
    .bind(&c.names)
    .bind(&c.ids)
    .bind(&c.seqs)
    .bind(&c.payload_of)
    .bind(&c.headers)
    .bind(&c.received)
    .bind(&c.expires)
    .fetch_one(&mut *conn)
    .await?;
    Ok(held > 0)
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
