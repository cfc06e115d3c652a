//! Sends asked of the node that holds their recipient's connection
//! (decision 0046): what the asking node hears back, and the handler the
//! asked node runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

pub use super::frames::ForwardKey;
use crate::store::DeviceKey;

/// How long a node waits for the node of a device to take a send for it
/// before the sender hears "busy". Longer than a node's own queue of writes
/// takes: that node answers "busy" at once when its queue is full, and one
/// that died drops its subscriptions, so NATS answers that nobody listens.
/// A send that timed out is not written here: the other node may still
/// store it, and the sender's retry would then make two.
pub(super) const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// What became of a send asked of the node that holds its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Forwarded {
    /// Stored for the device (written, or acknowledged by it).
    Stored = 0,
    /// No node holds the device: write it here.
    NotThere = 1,
    /// The device's node is overloaded: the sender tries again.
    Busy = 2,
    /// The device no longer exists.
    Gone = 3,
    /// The device's node failed to store it.
    Failed = 4,
}

impl Forwarded {
    pub(super) fn from_byte(b: u8) -> Self {
        match b {
            0 => Self::Stored,
            1 => Self::NotThere,
            2 => Self::Busy,
            3 => Self::Gone,
            _ => Self::Failed,
        }
    }
}

/// A send for one device, as its node receives it.
#[derive(Debug, Clone)]
pub struct ForwardedSend {
    /// The MLS message as the sender made it.
    pub message: Bytes,
    /// The device's relay tag, if the message carries a franking commitment.
    pub relay_tag: Option<[u8; 32]>,
    /// When the sender's node accepted it.
    pub received_at_ms: u64,
    /// When it expires undelivered.
    pub expires_at_ms: u64,
}

/// Takes a send asked of this node for a device connected to it.
pub type ForwardHandler =
    Arc<dyn Fn(DeviceKey, ForwardedSend) -> BoxFuture<'static, Forwarded> + Send + Sync>;

/// The handler of sends asked of this node and the cluster's key that
/// seals them, once the node serves them.
#[derive(Default)]
pub(super) struct Forwards(Mutex<Option<(ForwardHandler, ForwardKey)>>);

impl Forwards {
    pub(super) fn get(&self) -> Option<(ForwardHandler, ForwardKey)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set(&self, serving: Option<(ForwardHandler, ForwardKey)>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = serving;
    }
}
