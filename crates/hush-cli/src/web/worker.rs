//! The client task of `hush web`: it owns the [`Client`], runs the API's
//! jobs one at a time and between them syncs with a short wait, so messages
//! arrive live. Every event goes to the event stream's subscribers.
//!
//! The client's methods take `&mut self`, so a job waits for the current
//! sync; sending a job wakes the sync's idle listening
//! ([`Client::sync_until_woken`]), so it waits only for what the sync is
//! actually doing, not for [`SYNC_WAIT`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hush_client::{Client, Event};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::{Notify, broadcast, oneshot};

/// How long each sync listens after the queue is drained (on the kept
/// connection, a ping per sync when idle; a job cuts it short). Delivery
/// receipts for what arrived go out at its end.
pub const SYNC_WAIT: Duration = Duration::from_secs(1);
/// How long to wait before trying again when the server is unreachable.
const RETRY: Duration = Duration::from_secs(2);

/// A future borrowing the client.
pub type ClientFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Job = Box<dyn for<'a> FnOnce(&'a mut Client) -> ClientFuture<'a, ()> + Send>;

/// What the event stream carries.
#[derive(Debug, Clone)]
pub enum Published {
    /// Something the client saw or did.
    Event(Box<Event>),
    /// The server connection: `None` when it works, else why not.
    Connection(Option<String>),
    /// A file upload's progress: the page's token, bytes done of total.
    Progress {
        /// The token the page gave with the upload.
        upload: String,
        /// Encrypted bytes uploaded so far.
        done: u64,
        /// Of.
        total: u64,
    },
}

/// The client task has stopped.
#[derive(Debug)]
pub struct Gone;

/// Where handlers send jobs for the client task.
#[derive(Debug, Clone)]
pub struct Jobs {
    tx: UnboundedSender<Job>,
    wake: Arc<Notify>,
}

impl Jobs {
    /// Jobs sent here run on the task reading the other end, which `wake`
    /// wakes.
    pub fn new(tx: UnboundedSender<Job>, wake: Arc<Notify>) -> Self {
        Jobs { tx, wake }
    }

    /// Runs `f` on the client task and returns what it returned.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Gone>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Client) -> ClientFuture<'a, T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                // The handler has gone (the browser closed the request).
                let _ = tx.send(f(client).await);
            })
        });
        self.tx.send(job).map_err(|_| Gone)?;
        self.wake.notify_one();
        rx.await.map_err(|_| Gone)
    }
}

/// The receiving end of [`Jobs`].
pub type JobQueue = UnboundedReceiver<Job>;

/// Runs until every [`Jobs`] handle is gone.
pub async fn run(
    mut client: Client,
    mut jobs: JobQueue,
    wake: Arc<Notify>,
    events: broadcast::Sender<Published>,
) {
    // Posts reach the channels' view as the server stores them, and the
    // syncs below fetch channels only when the watch has news.
    // (It fails only outside a Tokio runtime, which this task is not.)
    let _ = client.watch_channels();
    // Presence is best effort.
    let _ = client.announce_presence(true).await;
    let mut offline = false;
    loop {
        loop {
            match jobs.try_recv() {
                Ok(job) => job(&mut client).await,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = client.announce_presence(false).await;
                    return;
                }
            }
        }
        let tx = events.clone();
        let synced = client
            .sync_until_woken(SYNC_WAIT, &wake, |ev| {
                // No subscriber is fine: the app reloads what it shows.
                let _ = tx.send(Published::Event(Box::new(ev.clone())));
            })
            .await;
        match synced {
            Ok(_) => {
                if offline {
                    offline = false;
                    let _ = events.send(Published::Connection(None));
                }
            }
            Err(e) => {
                offline = true;
                let _ = events.send(Published::Connection(Some(e.to_string())));
                // Wait before retrying, but not when a request is waiting.
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    job = jobs.recv() => match job {
                        None => return,
                        Some(job) => job(&mut client).await,
                    },
                }
            }
        }
    }
}
