//! The batching writer tasks of the PostgreSQL backend (sends in
//! [`super::postgres_writer`], acknowledgements in [`super::postgres_acks`]):
//! a few tasks per node, each with a connection of its own outside the pool,
//! share one bounded queue of jobs; each takes every job waiting when it is
//! free and writes them in one transaction.

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::mpsc;

use super::{StoreError, StoreResult, backend};

/// A job of a batching writer task (sends, acknowledgements).
pub(super) trait Job: Send + 'static {
    /// Answers the job with `error`: nothing of it was written.
    fn fail(self, error: StoreError);
}

/// Queues `job` for its writer task; a full queue is [`StoreError::Busy`].
pub(super) fn submit<J>(queue: &mpsc::Sender<J>, job: J) -> StoreResult<()> {
    queue.try_send(job).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => StoreError::Busy,
        mpsc::error::TrySendError::Closed(_) => backend("a database writer has stopped"),
    })
}

/// The jobs of a batching writer, shared by its tasks: each takes what is
/// waiting when it is free.
pub(super) type Jobs<J> = std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<J>>>;

/// Starts `tasks` batching writer tasks on one queue of `capacity` jobs
/// (see [`batch_loop`]); the queue.
pub(super) fn start_writers<J, W, F>(
    options: &PgConnectOptions,
    tasks: usize,
    capacity: usize,
    max: usize,
    write: W,
) -> mpsc::Sender<J>
where
    J: Job,
    W: Fn(PgConnection, Vec<J>) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = Option<PgConnection>> + Send + 'static,
{
    let (queue, rx) = mpsc::channel(capacity);
    let jobs: Jobs<J> = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..tasks {
        tokio::spawn(batch_loop(
            options.clone(),
            jobs.clone(),
            max,
            write.clone(),
        ));
    }
    queue
}

/// A batching writer task: takes every job waiting (up to `max`), hands
/// them to `write` with the task's own connection (connecting first if it
/// has none), and keeps the connection `write` gives back. Several tasks
/// share one queue: while one waits for its commit, the next takes the
/// jobs that arrived meanwhile, so a node's throughput is not one
/// transaction's round trips and fsync at a time.
async fn batch_loop<J, W, F>(options: PgConnectOptions, jobs: Jobs<J>, max: usize, write: W)
where
    J: Job,
    W: Fn(PgConnection, Vec<J>) -> F,
    F: std::future::Future<Output = Option<PgConnection>>,
{
    let mut conn: Option<PgConnection> = None;
    loop {
        let batch = {
            let mut rx = jobs.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = Vec::with_capacity(max.min(rx.len() + 1));
            batch.push(first);
            while batch.len() < max {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let c = match conn.take() {
            Some(c) => c,
            None => match PgConnection::connect_with(&options).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "a database writer cannot connect");
                    for job in batch {
                        job.fail(StoreError::Busy);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        conn = write(c, batch).await;
    }
}

/// Whether `e` is a lost deadlock or serialization conflict (worth trying
/// again).
pub(super) fn is_conflict(e: &sqlx::Error) -> bool {
    let code = match e {
        sqlx::Error::Database(db) => db.code(),
        _ => None,
    };
    // deadlock_detected, serialization_failure
    matches!(code.as_deref(), Some("40P01" | "40001"))
}
