//! Which devices are connected to this node, and how to reach them.
//!
//! A stored message reaches a device by a wake-up: the connection's delivery
//! loop then reads the device's queue from the store, which is the source of
//! truth, so a lost wake-up only delays. Ephemeral messages go straight into
//! the connection's bounded channel and are dropped when it is full: typing
//! and presence are worthless late.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};

use crate::store::DeviceKey;

/// Ephemeral frames buffered per connection before new ones are dropped.
const EPHEMERAL_BUFFER: usize = 64;

struct Conn {
    id: u64,
    wake: Arc<Notify>,
    kick: Arc<Notify>,
    ephemeral: mpsc::Sender<Vec<u8>>,
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
        let wake = Arc::new(Notify::new());
        let kick = Arc::new(Notify::new());
        let old = self.lock().insert(
            device.clone(),
            Conn {
                id,
                wake: wake.clone(),
                kick: kick.clone(),
                ephemeral: tx,
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
