//! What the [`crate::hub::Hub`] hands one device connection: its wake-up,
//! its kick, and two bounded queues (envelopes just stored, ephemeral
//! payloads), all in one allocation.
//!
//! Why not tokio's bounded channels: each allocates its first block of 32
//! slots and a cache-padded state up front, about 1.5 KB per channel, which
//! an idle connection paid twice (a third of its server memory). A queue
//! here is a `VecDeque` that allocates at its first item and gives its
//! memory back when emptied, behind a mutex that only the connection and a
//! sender holding the hub's lock take.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tokio::sync::Notify;

/// A queue emptied with more capacity than this gives it back.
const KEPT_CAPACITY: usize = 8;

/// A bounded queue of items with a byte budget, one reader.
#[derive(Debug)]
pub struct Queue<T> {
    items: Mutex<Items<T>>,
    ready: Notify,
    max_items: usize,
    max_bytes: usize,
}

#[derive(Debug)]
struct Items<T> {
    queue: VecDeque<(T, usize)>,
    bytes: usize,
    closed: bool,
}

impl<T> Queue<T> {
    /// At most `max_items` items and `max_bytes` bytes (one item always
    /// fits).
    pub fn new(max_items: usize, max_bytes: usize) -> Self {
        Queue {
            items: Mutex::new(Items {
                queue: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            ready: Notify::new(),
            max_items,
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Items<T>> {
        // Every statement leaves the queue consistent: a panic elsewhere
        // does not make it unusable.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` of `len` bytes, or gives it back if the queue is full
    /// or its reader has gone.
    pub fn try_send(&self, item: T, len: usize) -> Result<(), T> {
        {
            let mut items = self.lock();
            let over_bytes = items.bytes > 0 && items.bytes.saturating_add(len) > self.max_bytes;
            if items.closed || items.queue.len() >= self.max_items || over_bytes {
                return Err(item);
            }
            items.queue.push_back((item, len));
            items.bytes += len;
        }
        self.ready.notify_one();
        Ok(())
    }

    /// The oldest item, if any; it no longer counts against the budget.
    pub fn try_recv(&self) -> Option<T> {
        let mut items = self.lock();
        let (item, len) = items.queue.pop_front()?;
        items.bytes -= len;
        if items.queue.is_empty() && items.queue.capacity() > KEPT_CAPACITY {
            items.queue = VecDeque::new();
        }
        Some(item)
    }

    /// Waits for the next item. Cancel-safe: an item is taken only by the
    /// call that returns it.
    pub async fn recv(&self) -> T {
        loop {
            if let Some(item) = self.try_recv() {
                return item;
            }
            // A notification given before this wait is kept (one permit),
            // so an item queued between the check and here is not missed.
            self.ready.notified().await;
        }
    }

    /// Refuses every later item and drops those waiting.
    fn close(&self) {
        let mut items = self.lock();
        items.closed = true;
        items.queue = VecDeque::new();
        items.bytes = 0;
    }
}

/// One connection's mailbox, shared by the hub's map and the connection.
#[derive(Debug)]
pub struct Mailbox<P, E> {
    /// Notified when the device's queue has new envelopes in the store.
    pub wake: Notify,
    /// Notified when the connection must close (see `why`).
    pub kick: Notify,
    /// Why it was kicked.
    pub why: AtomicU8,
    /// Envelopes handed over to the connection.
    pub push: Queue<P>,
    /// Ephemeral payloads for the device.
    pub ephemeral: Queue<E>,
    closed: AtomicBool,
}

impl<P, E> Mailbox<P, E> {
    /// An empty mailbox; nothing is allocated for the queues yet.
    pub fn new(why: u8, push: (usize, usize), ephemeral: (usize, usize)) -> Self {
        Mailbox {
            wake: Notify::new(),
            kick: Notify::new(),
            why: AtomicU8::new(why),
            push: Queue::new(push.0, push.1),
            ephemeral: Queue::new(ephemeral.0, ephemeral.1),
            closed: AtomicBool::new(false),
        }
    }

    /// The connection has gone: later items are refused (their senders
    /// fall back to the store) and waiting ones are freed.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.push.close();
        self.ephemeral.close();
    }

    /// Whether [`Mailbox::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_keeps_its_bounds_and_gives_memory_back() {
        let q: Queue<Vec<u8>> = Queue::new(3, 100);
        // One item always fits, whatever its size.
        assert!(q.try_send(vec![0; 500], 500).is_ok());
        assert!(q.try_send(vec![1], 1).is_err(), "over the byte budget");
        assert_eq!(q.try_recv().map(|v| v.len()), Some(500));
        for i in 0..3 {
            assert!(q.try_send(vec![i], 1).is_ok());
        }
        assert!(q.try_send(vec![9], 1).is_err(), "over the item count");
        assert_eq!(q.try_recv(), Some(vec![0]));
        assert_eq!(q.try_recv(), Some(vec![1]));
        assert_eq!(q.try_recv(), Some(vec![2]));
        assert_eq!(q.try_recv(), None);
        for i in 0..50 {
            let _ = q.try_send(vec![i], 0);
        }
        let big: Queue<u8> = Queue::new(1000, 1000);
        for i in 0..100 {
            big.try_send(i, 1).unwrap();
        }
        while big.try_recv().is_some() {}
        assert_eq!(
            big.lock().queue.capacity(),
            0,
            "an emptied queue keeps no memory"
        );
    }

    #[tokio::test]
    async fn a_closed_mailbox_refuses_and_a_waiting_reader_wakes() {
        let m: std::sync::Arc<Mailbox<u32, u32>> =
            std::sync::Arc::new(Mailbox::new(0, (4, 4), (4, 4)));
        let reader = {
            let m = m.clone();
            tokio::spawn(async move { m.push.recv().await })
        };
        tokio::task::yield_now().await;
        m.push.try_send(7, 1).unwrap();
        assert_eq!(reader.await.unwrap(), 7);
        m.push.try_send(8, 1).unwrap();
        m.close();
        assert!(m.is_closed());
        assert_eq!(m.push.try_recv(), None, "closing frees what waited");
        assert_eq!(m.push.try_send(9, 1), Err(9));
        assert_eq!(m.ephemeral.try_send(1, 1), Err(1));
    }
}
