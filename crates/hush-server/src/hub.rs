//! Which devices are connected to this node, and how to reach them.
//!
//! A stored message reaches a device by a wake-up: the connection's delivery
//! loop then reads the device's queue from the store, which is the source of
//! truth, so a lost wake-up only delays. A message just stored for a device
//! connected here is also handed to its connection directly
//! ([`Hub::deliver_all`], every recipient of a send in one pass), which
//! sends it without reading it back when it is the next in the queue (see
//! [`crate::delivery::Connection`]); when the hand-over buffer is full it
//! falls back to a wake-up. Ephemeral messages go straight into the
//! connection's bounded queue ([`crate::mailbox`]) and are dropped when it
//! is full: typing and presence are worthless late.
//!
//! In a cluster a [`Remote`] (the NATS bus in [`crate::cluster`]) is
//! attached: the hub tells it which devices connect and leave here, and
//! passes it every wake-up, every written envelope and every ephemeral
//! payload for a device that is not connected here; what the bus receives
//! from other nodes comes back in through the `*_local` methods.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::extract::ws::CloseFrame;
use bytes::Bytes;

use crate::mailbox::Mailbox;
use crate::store::DeviceKey;

/// Ephemeral frames buffered per connection before new ones are dropped.
const EPHEMERAL_BUFFER: usize = 64;
/// Stored envelopes handed to a connection before the rest wait for a read.
const PUSH_BUFFER: usize = 256;
/// Payload bytes handed to a connection and not yet taken by it before
/// the rest wait for a read (one envelope always fits).
pub const PUSH_BYTES: usize = 1 << 20;
/// Ephemeral payload bytes buffered per connection before new ones are
/// dropped (one payload always fits).
pub const EPHEMERAL_BYTES: usize = 1 << 20;

/// An envelope for a device's queue, stored or about to be, handed to its
/// connection.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Its position in the device's queue.
    pub seq: u64,
    /// When the server accepted it.
    pub received_at_ms: u64,
    /// The sealed header for this recipient (see [`crate::sealing`]), or,
    /// with the message as the sender made it, its 32-byte relay tag.
    pub relay_tag: Option<Vec<u8>>,
    /// The sealed body or the MLS message, shared by every recipient of one
    /// send.
    pub payload: Arc<[u8]>,
    /// Set when the envelope is handed over before it is written: the
    /// device's acknowledgement, if it comes first, spares the write.
    pub early: Option<Arc<crate::delivery::EarlyAck>>,
}

/// An ephemeral payload, shared by every recipient of one send: one
/// buffer, and at most one cluster frame built from it.
#[derive(Debug)]
pub struct Ephemeral {
    payload: Bytes,
    framed: OnceLock<Bytes>,
}

impl Ephemeral {
    /// Shares `payload`.
    pub fn new(payload: Bytes) -> Self {
        Self {
            payload,
            framed: OnceLock::new(),
        }
    }

    /// The payload (a cheap clone of the shared buffer).
    pub fn payload(&self) -> Bytes {
        self.payload.clone()
    }

    /// The payload framed by `build`, built once for all recipients.
    pub fn framed(&self, build: impl FnOnce(&[u8]) -> Bytes) -> Bytes {
        self.framed.get_or_init(|| build(&self.payload)).clone()
    }
}

/// WebSocket close code when a newer connection of the same device, on this
/// node or another, replaced this one (private-use range 4000-4999).
pub const CLOSE_REPLACED: u16 = 4000;
/// WebSocket close code when the node shuts down: RFC 6455's 1012 "service
/// restart", which tells the client to reconnect (to another node).
pub const CLOSE_RESTART: u16 = 1012;

/// WebSocket close code when the device's access was revoked: the device
/// was removed, its account suspended, or its token rotated. Reconnecting
/// with the same token fails.
pub const CLOSE_REVOKED: u16 = 4001;

const KICK_REPLACED: u8 = 0;
const KICK_RESTART: u8 = 1;
const KICK_REVOKED: u8 = 2;

/// The rest of a cluster, as the hub sees it. Every method must return at
/// once (queue, never wait on the network).
pub trait Remote: Send + Sync + 'static {
    /// The device's connection `conn` registered on this node.
    fn attached(&self, device: &DeviceKey, conn: u64);
    /// The device's connection `conn` left this node.
    fn detached(&self, device: &DeviceKey, conn: u64);
    /// The device's queue has grown; wake it wherever it is connected.
    fn wake(&self, device: &DeviceKey);
    /// `envelope` was written to the device's queue (it is durable): hand
    /// it to the device's connection wherever it is, or at least wake it.
    fn deliver(&self, device: &DeviceKey, envelope: &Pushed);
    /// An ephemeral payload for a device not connected to this node.
    fn ephemeral(&self, device: &DeviceKey, payload: &Ephemeral);
    /// The device's access was revoked: close its connection wherever it is.
    fn revoke(&self, device: &DeviceKey);
}

struct Conn {
    id: u64,
    mailbox: Arc<ConnMailbox>,
}

/// A connection's mailbox: envelopes handed over (boxed, so that a waiting
/// one costs a pointer in the queue) and ephemeral payloads.
pub type ConnMailbox = Mailbox<Box<Pushed>, Bytes>;

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

/// A connection's handles, returned by [`Hub::register`]: its id and its
/// mailbox (wake-up, kick, envelopes handed over, ephemeral payloads), which
/// refuses further items once the registration is dropped.
#[derive(Debug)]
pub struct Registration {
    /// Identifies this connection when it unregisters.
    pub id: u64,
    mailbox: Arc<ConnMailbox>,
}

impl std::ops::Deref for Registration {
    type Target = ConnMailbox;

    fn deref(&self) -> &Self::Target {
        &self.mailbox
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.mailbox.close();
    }
}

impl Registration {
    /// Whether the device's access was revoked (its kick then closes the
    /// connection): nothing more may be sent to it.
    pub fn is_revoked(&self) -> bool {
        self.why.load(Ordering::Acquire) == KICK_REVOKED
    }

    /// The close frame to send once `kick` fired: replaced, or the node is
    /// shutting down (reconnect elsewhere).
    pub fn close_frame(&self) -> Option<CloseFrame> {
        Some(match self.why.load(Ordering::Acquire) {
            KICK_RESTART => CloseFrame {
                code: CLOSE_RESTART,
                reason: "server shutting down: reconnect".into(),
            },
            KICK_REVOKED => CloseFrame {
                code: CLOSE_REVOKED,
                reason: "access revoked: device removed, account suspended or token rotated".into(),
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
        let mailbox = Arc::new(Mailbox::new(
            KICK_REPLACED,
            (PUSH_BUFFER, PUSH_BYTES),
            (EPHEMERAL_BUFFER, EPHEMERAL_BYTES),
        ));
        let old = {
            let mut conns = self.lock();
            let old = conns.insert(
                device.clone(),
                Conn {
                    id,
                    mailbox: mailbox.clone(),
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
            old.mailbox.kick.notify_one();
        }
        Registration { id, mailbox }
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
    pub fn send_ephemeral(&self, device: &DeviceKey, payload: &Ephemeral) -> bool {
        let Some(r) = self.remote.get() else {
            return self.send_ephemeral_local(device, payload.payload());
        };
        if self.is_connected(device) {
            return self.send_ephemeral_local(device, payload.payload());
        }
        r.ephemeral(device, payload);
        false
    }

    /// Wakes the device's connection on this node only.
    pub fn wake_local(&self, device: &DeviceKey) {
        if let Some(c) = self.lock().get(device) {
            c.mailbox.wake.notify_one();
        }
    }

    /// Hands a send's envelopes to its recipients' connections on this node,
    /// in one pass under one lock: `envelope(i, seq)` makes the envelope of
    /// the `i`th recipient, whose sequence number is `seq` (called only for
    /// those connected here). Returns, per recipient, whether its connection
    /// took it. A connection whose buffer is full is woken instead (it then
    /// reads its queue), and so is, through the [`Remote`], every recipient
    /// not connected here.
    pub fn deliver_all(
        &self,
        recipients: &[DeviceKey],
        seqs: &[u64],
        mut envelope: impl FnMut(usize, u64) -> Pushed,
    ) -> Vec<bool> {
        let mut taken = Vec::with_capacity(recipients.len());
        {
            let conns = self.lock();
            for (i, (device, seq)) in recipients.iter().zip(seqs).enumerate() {
                let Some(c) = conns.get(device) else {
                    taken.push(false);
                    continue;
                };
                let e = envelope(i, *seq);
                let len = e.payload.len();
                let took = c.mailbox.push.try_send(Box::new(e), len).is_ok();
                if !took {
                    c.mailbox.wake.notify_one();
                }
                taken.push(took);
            }
        }
        // Those not here get the envelope itself if it is written (the node
        // that holds them then need not read it back), else a wake-up. One
        // here that just moved is woken on its new node when the old
        // connection is replaced ([`Hub::kick_replaced`]).
        if let Some(r) = self.remote.get() {
            for (i, ((device, seq), took)) in recipients.iter().zip(seqs).zip(&taken).enumerate() {
                if *took || self.is_connected(device) {
                    continue;
                }
                let e = envelope(i, *seq);
                if e.early.as_ref().is_none_or(|a| a.is_written()) {
                    r.deliver(device, &e);
                } else {
                    r.wake(device);
                }
            }
        }
        taken
    }

    /// Hands an envelope that arrived from another node to the device's
    /// connection here, or wakes it when its buffer is full (it then reads
    /// its queue). Nothing when the device is not connected here.
    pub fn deliver_local(&self, device: &DeviceKey, envelope: Pushed) {
        if let Some(c) = self.lock().get(device) {
            let len = envelope.payload.len();
            if c.mailbox.push.try_send(Box::new(envelope), len).is_err() {
                c.mailbox.wake.notify_one();
            }
        }
    }

    /// Hands an ephemeral payload to the device's connection on this node
    /// only; false if it is not here or its buffer is full.
    pub fn send_ephemeral_local(&self, device: &DeviceKey, payload: Bytes) -> bool {
        match self.lock().get(device) {
            Some(c) => {
                let len = payload.len();
                c.mailbox.ephemeral.try_send(payload, len).is_ok()
            }
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
    ///
    /// The connection leaves the hub at once, so that every send from then
    /// on reaches the device through the [`Remote`]; and the device's new
    /// node is woken, so that it reads what was handed to the old
    /// connection here and written since its own read (sends do not wake
    /// other nodes for a device connected here).
    pub fn kick_replaced(&self, device: &DeviceKey, id: u64) {
        let old = {
            let mut conns = self.lock();
            if conns.get(device).is_none_or(|c| c.id != id) {
                return;
            }
            let old = conns.remove(device);
            if let Some(r) = self.remote.get() {
                r.detached(device, id);
            }
            old
        };
        if let Some(c) = old {
            c.mailbox.why.store(KICK_REPLACED, Ordering::Release);
            c.mailbox.kick.notify_one();
        }
        if let Some(r) = self.remote.get() {
            r.wake(device);
        }
    }

    /// Closes the device's connection here and, through the [`Remote`], on
    /// any other node: its access was revoked. True if one was here.
    pub fn revoke(&self, device: &DeviceKey) -> bool {
        let here = self.revoke_local(device);
        if let Some(r) = self.remote.get() {
            r.revoke(device);
        }
        here
    }

    /// Closes the device's connection on this node only, whatever its id.
    pub fn revoke_local(&self, device: &DeviceKey) -> bool {
        let conns = self.lock();
        let Some(c) = conns.get(device) else {
            return false;
        };
        c.mailbox.why.store(KICK_REVOKED, Ordering::Release);
        c.mailbox.kick.notify_one();
        drop(conns);
        crate::metrics::METRICS.revoked(1);
        true
    }

    /// Closes, on this node, the connections of every account in
    /// `accounts`; returns how many.
    pub fn revoke_accounts(&self, accounts: &std::collections::HashSet<String>) -> usize {
        if accounts.is_empty() {
            return 0;
        }
        let mut n = 0;
        for (device, c) in self.lock().iter() {
            if accounts.contains(&device.username) {
                c.mailbox.why.store(KICK_REVOKED, Ordering::Release);
                c.mailbox.kick.notify_one();
                n += 1;
            }
        }
        crate::metrics::METRICS.revoked(n);
        n
    }

    /// Wakes the connections whose id is `slice` modulo `of` (all of them
    /// with `of == 1`): each re-reads its queue from the store. The cluster
    /// uses it to bound how long a lost wake-up can delay a message.
    pub fn wake_slice(&self, slice: u64, of: u64) {
        let of = of.max(1);
        for c in self.lock().values().filter(|c| c.id % of == slice % of) {
            c.mailbox.wake.notify_one();
        }
    }

    /// Connected devices on this node.
    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    /// Kicks every connection (on shutdown, so devices reconnect elsewhere).
    pub fn kick_all(&self) {
        for c in self.lock().values() {
            c.mailbox.why.store(KICK_RESTART, Ordering::Release);
            c.mailbox.kick.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::EarlyAck;

    /// What the hub passed to the rest of the cluster.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<(String, Option<u64>)>>);

    impl Remote for Recorded {
        fn attached(&self, _: &DeviceKey, _: u64) {}
        fn detached(&self, device: &DeviceKey, _: u64) {
            let gone = format!("{} left", device.username);
            self.0.lock().unwrap().push((gone, None));
        }
        fn wake(&self, device: &DeviceKey) {
            self.0.lock().unwrap().push((device.username.clone(), None));
        }
        fn deliver(&self, device: &DeviceKey, envelope: &Pushed) {
            let seq = Some(envelope.seq);
            self.0.lock().unwrap().push((device.username.clone(), seq));
        }
        fn ephemeral(&self, _: &DeviceKey, _: &Ephemeral) {}
        fn revoke(&self, _: &DeviceKey) {}
    }

    #[test]
    fn only_a_written_envelope_travels_to_another_node() {
        let hub = Hub::default();
        let remote = Arc::new(Recorded::default());
        hub.set_remote(remote.clone());
        let here = DeviceKey::new("here", 1);
        let _conn = hub.register(&here);
        let recipients = [
            here.clone(),
            DeviceKey::new("written", 1),
            DeviceKey::new("pending", 1),
            DeviceKey::new("taken", 1),
        ];
        let taken = Arc::new(EarlyAck::default());
        assert!(taken.take_for_write());
        let early = [None, None, Some(Arc::default()), Some(taken)];
        let took = hub.deliver_all(&recipients, &[1, 2, 3, 4], |i, seq| Pushed {
            seq,
            received_at_ms: 0,
            relay_tag: None,
            payload: vec![1u8].into(),
            early: early[i].clone(),
        });
        assert_eq!(took, [true, false, false, false]);
        let seen = remote.0.lock().unwrap().clone();
        let names = |v: &[(&str, Option<u64>)]| -> Vec<(String, Option<u64>)> {
            v.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect()
        };
        // Connected here: nothing for other nodes. Written: the envelope.
        // Not yet written (it may still be spared): a wake-up.
        assert_eq!(
            seen,
            names(&[("written", Some(2)), ("pending", None), ("taken", Some(4))])
        );
    }

    #[test]
    fn a_replaced_connection_leaves_the_hub_and_wakes_the_new_node() {
        let hub = Hub::default();
        let remote = Arc::new(Recorded::default());
        hub.set_remote(remote.clone());
        let moved = DeviceKey::new("moved", 1);
        let old = hub.register(&moved);
        // A newer connection elsewhere claims the device: the old one is
        // kicked and gone at once, and the new node hears to read again.
        hub.kick_replaced(&moved, old.id);
        assert!(!hub.is_connected(&moved));
        assert_eq!(old.why.load(Ordering::Acquire), KICK_REPLACED);
        let seen = remote.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            [("moved left".to_owned(), None), ("moved".to_owned(), None)]
        );
        // From then on a send reaches it through the other nodes.
        let took = hub.deliver_all(std::slice::from_ref(&moved), &[7], |_, seq| Pushed {
            seq,
            received_at_ms: 0,
            relay_tag: None,
            payload: vec![1u8].into(),
            early: None,
        });
        assert_eq!(took, [false]);
        assert_eq!(
            remote.0.lock().unwrap().last(),
            Some(&("moved".to_owned(), Some(7)))
        );
        // A stale kick (another connection id) changes nothing.
        let newer = hub.register(&moved);
        hub.kick_replaced(&moved, old.id);
        assert!(hub.is_connected(&moved));
        drop(newer);
    }
}
