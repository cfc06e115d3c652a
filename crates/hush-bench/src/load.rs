//! The sending side of a run: open loop at a set rate or closed loop with a
//! window of unacknowledged sends per sender, bounded in messages and time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Mutex, Semaphore};

use crate::net::{Recipients, Sender};
use crate::stats::{histogram, now_us, payload};

/// How to send.
#[derive(Debug, Clone)]
pub struct Load {
    /// Messages per second over all senders (open loop); `None`: as fast as
    /// the window allows (closed loop).
    pub rate: Option<f64>,
    /// Unacknowledged sends per sender in closed loop.
    pub window: usize,
    /// Messages to send in all.
    pub messages: u64,
    /// Stop sending after this long even if not all were sent.
    pub max_seconds: f64,
    /// Payload bytes.
    pub size: usize,
    /// The first message id (ids are unique over a run).
    pub first_id: u64,
}

/// What the senders did.
#[derive(Debug)]
pub struct Sent {
    /// Messages acknowledged by the server.
    pub acked: u64,
    /// Sends that failed (no acknowledgement).
    pub failed: u64,
    /// From the first send to the last acknowledgement.
    pub seconds: f64,
    /// Send-to-acknowledgement latency in microseconds.
    pub ack_latency: Histogram<u64>,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Ids of acknowledged messages.
    pub acked_ids: Vec<u64>,
}

struct Shared {
    acked: AtomicU64,
    failed: AtomicU64,
    hist: Mutex<Histogram<u64>>,
    first_error: Mutex<Option<String>>,
    acked_ids: Mutex<Vec<u64>>,
}

impl Shared {
    async fn done(&self, id: u64, sent_us: u64, result: anyhow::Result<()>) {
        match result {
            Ok(()) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                let lat = now_us().saturating_sub(sent_us).max(1);
                let _ = self.hist.lock().await.record(lat);
                self.acked_ids.lock().await.push(id);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().await;
                if first.is_none() {
                    *first = Some(format!("{e:#}"));
                }
            }
        }
    }
}

/// Sends `load.messages` messages; message `k` goes from sender
/// `k % senders.len()` to `targets(k)`.
pub async fn drive(
    senders: &[Sender],
    targets: Arc<dyn Fn(u64) -> Arc<Recipients> + Send + Sync>,
    load: &Load,
) -> anyhow::Result<Sent> {
    let shared = Arc::new(Shared {
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        hist: Mutex::new(histogram()?),
        first_error: Mutex::new(None),
        acked_ids: Mutex::new(Vec::new()),
    });
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(load.max_seconds);
    let n = senders.len().max(1) as u64;
    match load.rate {
        Some(rate) => {
            // Open loop: message k is due at start + k / rate, and its latency
            // counts from then, however late the generator gets to it.
            let in_flight = Arc::new(Semaphore::new(8192));
            let start_us = now_us();
            let mut tasks = Vec::new();
            for k in 0..load.messages {
                let due = Duration::from_secs_f64(k as f64 / rate);
                if start + due > deadline {
                    break;
                }
                tokio::time::sleep_until((start + due).into()).await;
                let permit = in_flight.clone().acquire_owned().await?;
                let Some(sender) = senders.get((k % n) as usize).cloned() else {
                    break;
                };
                let to = targets(k);
                let shared = shared.clone();
                let id = load.first_id + k;
                let sent_us = start_us + u64::try_from(due.as_micros()).unwrap_or(0);
                let size = load.size;
                tasks.push(tokio::spawn(async move {
                    let _permit = permit;
                    let r = sender.send(&to, payload(id, sent_us, size)).await;
                    shared.done(id, sent_us, r).await;
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
        None => {
            let mut tasks = Vec::new();
            for (s, sender) in senders.iter().enumerate() {
                // Sender s sends messages s, s + n, s + 2n, ...: targets pair
                // with senders by index, as in open loop.
                let next = Arc::new(AtomicU64::new(0));
                for _ in 0..load.window.max(1) {
                    let sender = sender.clone();
                    let next = next.clone();
                    let shared = shared.clone();
                    let targets = targets.clone();
                    let load = load.clone();
                    tasks.push(tokio::spawn(async move {
                        loop {
                            let k = next.fetch_add(1, Ordering::Relaxed) * n + s as u64;
                            if k >= load.messages || Instant::now() > deadline {
                                return;
                            }
                            let id = load.first_id + k;
                            let sent_us = now_us();
                            let r = sender
                                .send(&targets(k), payload(id, sent_us, load.size))
                                .await;
                            shared.done(id, sent_us, r).await;
                        }
                    }));
                }
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let hist = shared.hist.lock().await.clone();
    let first_error = shared.first_error.lock().await.clone();
    let acked_ids = std::mem::take(&mut *shared.acked_ids.lock().await);
    Ok(Sent {
        acked: shared.acked.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        seconds,
        ack_latency: hist,
        first_error,
        acked_ids,
    })
}
