//! Which devices are connected to this node, and how to reach them.
//!
//! A stored message reaches a device by a wake-up: the connection's delivery
//! loop then reads the device's queue from the store, which is the source of
//! truth, so a lost wake-up only delays. A message just stored for a device
//! connected here is also handed to its connection directly
//! ([`Hub::deliver`]), which sends it without reading it back when it is the
//! next in the queue; when the hand-over buffer is full it falls back to a
//! wake-up. Ephemeral messages go straight into
//! the connection's bounded channel and are dropped when it is full: typing
//! and presence are worthless late.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};

use crate::store::DeviceKey;

/// Ephemeral frames buffered per connection before new ones are dropped.
const EPHEMERAL_BUFFER: usize = 64;
/// Stored envelopes handed to a connection before the rest wait for a read.
const PUSH_BUFFER: usize = 256;

/// An envelope just stored in a device's queue, handed to its connection.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Its position in the device's queue.
    pub seq: u64,
    /// When the server accepted it.
    pub received_at_ms: u64,
    /// The franking tag for this recipient.
    pub relay_tag: Option<[u8; 32]>,
    /// The MLS message, shared by every recipient of one send.
    pub payload: Arc<[u8]>,
}

struct Conn {
    id: u64,
    wake: Arc<Notify>,
    kick: Arc<Notify>,
    ephemeral: mpsc::Sender<Vec<u8>>,
    // Boxed: a channel allocates its first block of slots up front, and an
    // idle connection should cost little.
    push: mpsc::Sender<Box<Pushed>>,
}

/// The connected devices of this node.
#[derive(Default)]
pub struct Hub {
    conns: Mutex<HashMap<DeviceKey, Conn>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("connected", &self.lock().len())
            .finish()
    }
}

/// A connection's handles, returned by [`Hub::register`].
#[derive(Debug)]
pub struct Registration {
    /// Identifies this connection when it unregisters.
    pub id: u64,
    /// Notified when the device's queue has new envelopes.
    pub wake: Arc<Notify>,
    /// Notified when a newer connection of the same device replaced this one.
    pub kick: Arc<Notify>,
    /// Ephemeral payloads for the device.
    pub ephemeral: mpsc::Receiver<Vec<u8>>,
    /// Envelopes just stored for the device (already durable).
    pub push: mpsc::Receiver<Box<Pushed>>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceKey, Conn>> {
        // The map is consistent between statements; a panic elsewhere does not
        // make it unusable.
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the device's connection, replacing (and kicking) an older one.
    pub fn register(&self, device: &DeviceKey) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(EPHEMERAL_BUFFER);
        let (push_tx, push_rx) = mpsc::channel(PUSH_BUFFER);
        let wake = Arc::new(Notify::new());
        let kick = Arc::new(Notify::new());
        let old = self.lock().insert(
            device.clone(),
            Conn {
                id,
                wake: wake.clone(),
                kick: kick.clone(),
                ephemeral: tx,
                push: push_tx,
            },
        );
        if let Some(old) = old {
            old.kick.notify_one();
        }
        Registration {
            id,
            wake,
            kick,
            ephemeral: rx,
            push: push_rx,
        }
    }

    /// Removes the connection `id` of `device`, unless a newer one replaced it.
    pub fn unregister(&self, device: &DeviceKey, id: u64) {
        let mut conns = self.lock();
        if conns.get(device).is_some_and(|c| c.id == id) {
            conns.remove(device);
        }
    }

    /// Tells the device's connection, if any, that its queue has grown.
    pub fn wake(&self, device: &DeviceKey) {
        if let Some(c) = self.lock().get(device) {
            c.wake.notify_one();
        }
    }

    /// Hands an envelope just stored for `device` to its connection on this
    /// node; wakes the device (which then reads its queue) when the
    /// connection's buffer is full or the device is not connected here.
    pub fn deliver(&self, device: &DeviceKey, envelope: Pushed) {
        if let Some(c) = self.lock().get(device) {
            if c.push.try_send(Box::new(envelope)).is_err() {
                c.wake.notify_one();
            }
            return;
        }
        // Not connected here; `wake` is the path to wherever it is.
        self.wake(device);
    }

    /// Hands an ephemeral payload to the device's connection; false if the
    /// device is offline or its buffer is full.
    pub fn send_ephemeral(&self, device: &DeviceKey, payload: Vec<u8>) -> bool {
        match self.lock().get(device) {
            Some(c) => c.ephemeral.try_send(payload).is_ok(),
            None => false,
        }
    }

    /// Connected devices on this node.
    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    /// Kicks every connection (on shutdown, so devices reconnect elsewhere).
    pub fn kick_all(&self) {
        for c in self.lock().values() {
            c.kick.notify_one();
        }
    }
}
