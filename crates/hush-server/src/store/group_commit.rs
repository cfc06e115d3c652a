//! Group commit for the SQLite backend: one writer thread takes every write
//! that is waiting, runs each in its own savepoint inside one transaction,
//! commits once (one fsync for the batch), and only then answers each caller.

use super::backend;
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{EarlyAck, StoreError, StoreResult};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;
/// Longest a batch with envelopes handed to online recipients before their
/// write waits for those recipients' acknowledgements, which spare the
/// write: a round trip to a device on a good network, and the time to hand
/// one message to a group of a thousand on one core. The wait ends as soon
/// as none is pending; writes that join a waiting batch wait with it, and
/// batches with nothing handed over never wait.
pub(super) const EARLY_ACK_WINDOW: std::time::Duration = std::time::Duration::from_millis(10);
/// How often a waiting batch looks again.
pub(super) const EARLY_ACK_POLL: std::time::Duration = std::time::Duration::from_micros(500);

/// A write for the writer thread; `reply` hears the outcome after commit.
pub(super) fn job<R, F>(f: F, reply: oneshot::Sender<StoreResult<R>>) -> Box<dyn WriteJob>
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
{
    Box::new(Job {
        f: Some(f),
        result: None,
        reply,
        early: Vec::new(),
    })
}

/// A write of envelopes handed to recipients before it: while one of
/// `early` is still pending, its batch waits up to [`EARLY_ACK_WINDOW`].
pub(super) fn early_job<R, F>(
    f: F,
    reply: oneshot::Sender<StoreResult<R>>,
    early: Vec<Arc<EarlyAck>>,
) -> Box<dyn WriteJob>
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
{
    Box::new(Job {
        f: Some(f),
        result: None,
        reply,
        early,
    })
}

/// One write waiting for the writer thread.
pub(super) trait WriteJob: Send {
    /// Runs the write inside the open transaction.
    fn run(&mut self, conn: &Connection);
    /// Reports the outcome once the transaction committed (or failed).
    fn complete(self: Box<Self>, committed: Result<(), String>);
    /// Whether an early acknowledgement could still spare part of it.
    fn awaits_acks(&self) -> bool;
}

struct Job<R, F> {
    f: Option<F>,
    result: Option<StoreResult<R>>,
    reply: oneshot::Sender<StoreResult<R>>,
    early: Vec<Arc<EarlyAck>>,
}

impl<R, F> WriteJob for Job<R, F>
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) {
        let Some(f) = self.f.take() else { return };
        if let Err(e) = conn
            .prepare_cached("SAVEPOINT job")
            .and_then(|mut st| st.execute([]))
        {
            self.result = Some(Err(backend(e)));
            return;
        }
        // A panicking write must not take the writer thread (and with it
        // every later write) down: it fails alone and its savepoint is undone.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(backend("a database write panicked")));
        let end = if result.is_ok() {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        let ended = if result.is_ok() {
            conn.prepare_cached(end)
                .and_then(|mut st| st.execute([]))
                .map(|_| ())
        } else {
            conn.execute_batch(end)
        };
        self.result = Some(match ended {
            Ok(()) => result,
            Err(e) => Err(backend(e)),
        });
    }

    fn awaits_acks(&self) -> bool {
        self.early.iter().any(|e| e.is_pending())
    }

    fn complete(self: Box<Self>, committed: Result<(), String>) {
        let result = match (committed, self.result) {
            (Err(e), _) => Err(StoreError::Backend(e)),
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(backend("write was not run")),
        };
        // The caller may have gone away; the write stands either way.
        let _ = self.reply.send(result);
    }
}

pub(super) fn writer_loop(conn: Connection, mut rx: mpsc::UnboundedReceiver<Box<dyn WriteJob>>) {
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        let start = std::time::Instant::now();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Envelopes handed to online recipients: give their acknowledgements
        // the window, taking in what arrives meanwhile.
        while batch.iter().any(|j| j.awaits_acks()) {
            let left = EARLY_ACK_WINDOW.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(EARLY_ACK_POLL));
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        let committed = match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                for job in batch.iter_mut() {
                    job.run(&conn);
                }
                conn.execute_batch("COMMIT").map_err(|e| {
                    let _ = conn.execute_batch("ROLLBACK");
                    e.to_string()
                })
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &committed {
            tracing::error!(error = %e, "database batch failed");
        }
        for job in batch.drain(..) {
            job.complete(committed.clone());
        }
    }
}
