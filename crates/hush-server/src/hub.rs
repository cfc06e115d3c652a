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
//!
//! In a cluster a [`Remote`] (the NATS bus in [`crate::cluster`]) is
//! attached: the hub tells it which devices connect and leave here, and
//! passes it every wake-up and every ephemeral payload for a device that is
//! not connected here; what the bus receives from other nodes comes back in
//! through the `*_local` methods.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::extract::ws::CloseFrame;

use tokio::sync::{Notify, mpsc};

use crate::store::DeviceKey;

/// Ephemeral frames buffered per connection before new ones are dropped.
const EPHEMERAL_BUFFER: usize = 64;
/// Stored envelopes handed to a connection before the rest wait for a read.
const PUSH_BUFFER: usize = 256;

/// An envelope for a device's queue, stored or about to be, handed to its
/// connection.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Its position in the device's queue.
    pub seq: u64,
    /// When the server accepted it.
    pub received_at_ms: u64,
    /// The sealed header for this recipient (see [`crate::sealing`]).
    pub relay_tag: Option<Vec<u8>>,
    /// The MLS message, shared by every recipient of one send.
    pub payload: Arc<[u8]>,
    /// Set when the envelope is handed over before it is written: the
    /// device's acknowledgement, if it comes first, spares the write.
    pub early: Option<Arc<crate::store::EarlyAck>>,
}

/// WebSocket close code when a newer connection of the same device, on this
/// node or another, replaced this one (private-use range 4000-4999).
pub const CLOSE_REPLACED: u16 = 4000;
/// WebSocket close code when the node shuts down: RFC 6455's 1012 "service
/// restart", which tells the client to reconnect (to another node).
pub const CLOSE_RESTART: u16 = 1012;

const KICK_REPLACED: u8 = 0;
const KICK_RESTART: u8 = 1;

/// The rest of a cluster, as the hub sees it. Every method must return at
/// once (queue, never wait on the network).
pub trait Remote: Send + Sync + 'static {
    /// The device's connection `conn` registered on this node.
    fn attached(&self, device: &DeviceKey, conn: u64);
    /// The device's connection `conn` left this node.
    fn detached(&self, device: &DeviceKey, conn: u64);
    /// The device's queue has grown; wake it wherever it is connected.
    fn wake(&self, device: &DeviceKey);
    /// An ephemeral payload for a device not connected to this node.
    fn ephemeral(&self, device: &DeviceKey, payload: &[u8]);
}

struct Conn {
    id: u64,
    wake: Arc<Notify>,
    kick: Arc<Notify>,
    why: Arc<AtomicU8>,
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
    remote: OnceLock<Arc<dyn Remote>>,
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
    why: Arc<AtomicU8>,
}

impl Registration {
    /// The close frame to send once `kick` fired: replaced, or the node is
    /// shutting down (reconnect elsewhere).
    pub fn close_frame(&self) -> Option<CloseFrame> {
        Some(match self.why.load(Ordering::Acquire) {
            KICK_RESTART => CloseFrame {
                code: CLOSE_RESTART,
                reason: "server shutting down: reconnect".into(),
            },
            _ => CloseFrame {
                code: CLOSE_REPLACED,
                reason: "replaced by a newer connection of this device".into(),
            },
        })
    }
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceKey, Conn>> {
        // The map is consistent between statements; a panic elsewhere does not
        // make it unusable.
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches the rest of the cluster; only the first call counts.
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        let _ = self.remote.set(remote);
    }

    /// Registers the device's connection, replacing (and kicking) an older
    /// one, here or, through the [`Remote`], on another node.
    pub fn register(&self, device: &DeviceKey) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(EPHEMERAL_BUFFER);
        let (push_tx, push_rx) = mpsc::channel(PUSH_BUFFER);
        let wake = Arc::new(Notify::new());
        let kick = Arc::new(Notify::new());
        let why = Arc::new(AtomicU8::new(KICK_REPLACED));
        let old = {
            let mut conns = self.lock();
            let old = conns.insert(
                device.clone(),
                Conn {
                    id,
                    wake: wake.clone(),
                    kick: kick.clone(),
                    why: why.clone(),
                    ephemeral: tx,
                    push: push_tx,
                },
            );
            // Under the lock, so the remote sees registrations of one device
            // in the order the map does.
            if let Some(r) = self.remote.get() {
                r.attached(device, id);
            }
            old
        };
        if let Some(old) = old {
            old.kick.notify_one();
        }
        Registration {
            id,
            wake,
            kick,
            ephemeral: rx,
            why,
            push: push_rx,
        }
    }

    /// Removes the connection `id` of `device`, unless a newer one replaced it.
    pub fn unregister(&self, device: &DeviceKey, id: u64) {
        let mut conns = self.lock();
        if conns.get(device).is_some_and(|c| c.id == id) {
            conns.remove(device);
            if let Some(r) = self.remote.get() {
                r.detached(device, id);
            }
        }
    }

    /// Tells the device's connection that its queue has grown: here if it
    /// is connected here, and through the [`Remote`] in case it is (or just
    /// moved) elsewhere.
    pub fn wake(&self, device: &DeviceKey) {
        self.wake_local(device);
        if let Some(r) = self.remote.get() {
            r.wake(device);
        }
    }

    /// Hands an ephemeral payload to the device's connection; false if the
    /// device is not connected here or its buffer is full. For a device not
    /// connected here the payload also goes to the [`Remote`] (and is not
    /// counted: another node delivers it, or nobody).
    pub fn send_ephemeral(&self, device: &DeviceKey, payload: Vec<u8>) -> bool {
        let Some(r) = self.remote.get() else {
            return self.send_ephemeral_local(device, payload);
        };
        if self.is_connected(device) {
            return self.send_ephemeral_local(device, payload);
        }
        r.ephemeral(device, &payload);
        false
    }

    /// Wakes the device's connection on this node only.
    pub fn wake_local(&self, device: &DeviceKey) {
        if let Some(c) = self.lock().get(device) {
            c.wake.notify_one();
        }
    }

    /// Hands an envelope for `device` to its connection on this node (true
    /// if it took it); wakes the device (which then reads its queue) when
    /// the connection's buffer is full or the device is not connected here
    /// (then, in a cluster, the wake-up reaches the node that holds it).
    pub fn deliver(&self, device: &DeviceKey, envelope: Pushed) -> bool {
        {
            let conns = self.lock();
            if let Some(c) = conns.get(device) {
                let taken = c.push.try_send(Box::new(envelope)).is_ok();
                if !taken {
                    c.wake.notify_one();
                }
                drop(conns);
                // In case it just moved to another node.
                if let Some(r) = self.remote.get() {
                    r.wake(device);
                }
                return taken;
            }
        }
        // Not connected here; `wake` is the path to wherever it is.
        self.wake(device);
        false
    }

    /// Hands an ephemeral payload to the device's connection on this node
    /// only; false if it is not here or its buffer is full.
    pub fn send_ephemeral_local(&self, device: &DeviceKey, payload: Vec<u8>) -> bool {
        match self.lock().get(device) {
            Some(c) => c.ephemeral.try_send(payload).is_ok(),
            None => false,
        }
    }

    /// Whether the device's connection on this node is `id`.
    pub fn is_current(&self, device: &DeviceKey, id: u64) -> bool {
        self.lock().get(device).is_some_and(|c| c.id == id)
    }

    /// Whether the device is connected to this node.
    pub fn is_connected(&self, device: &DeviceKey) -> bool {
        self.lock().contains_key(device)
    }

    /// Closes the device's connection `id` here, if it is still the current
    /// one: a newer connection of the device registered on another node.
    pub fn kick_replaced(&self, device: &DeviceKey, id: u64) {
        if let Some(c) = self.lock().get(device).filter(|c| c.id == id) {
            c.why.store(KICK_REPLACED, Ordering::Release);
            c.kick.notify_one();
        }
    }

    /// Wakes the connections whose id is `slice` modulo `of` (all of them
    /// with `of == 1`): each re-reads its queue from the store. The cluster
    /// uses it to bound how long a lost wake-up can delay a message.
    pub fn wake_slice(&self, slice: u64, of: u64) {
        let of = of.max(1);
        for c in self.lock().values().filter(|c| c.id % of == slice % of) {
            c.wake.notify_one();
        }
    }

    /// Connected devices on this node.
    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    /// Kicks every connection (on shutdown, so devices reconnect elsewhere).
    pub fn kick_all(&self) {
        for c in self.lock().values() {
            c.why.store(KICK_RESTART, Ordering::Release);
            c.kick.notify_one();
        }
    }
}
