//! Quotas: what one account or device may make the server store or hold.
//!
//! - **Queue bytes per device**: the bytes waiting in a device's queue. A
//!   send that would take any recipient past the quota is refused whole
//!   (`queue_full`, nothing queued). Usage is read from the store (one
//!   `SUM` per device) and then counted in memory: every send accepted here
//!   adds to it, and an entry older than [`QUEUE_REFRESH`] is read again
//!   (acknowledgements and expiry make it shrink). Before a refusal the
//!   usage is read again if it is older than [`QUEUE_RECHECK`], so a device
//!   that just fetched its queue is not refused on a stale count.
//! - **Bytes per send**: what one send makes the server store, its payload
//!   once (the store keeps one copy for all recipients) plus
//!   [`ENTRY_BYTES`] per recipient's queue entry (`too_large`).
//! - **Attachment bytes per account**: the sizes announced at creation
//!   (plus [`BLOB_OVERHEAD`] each) of the account's attachments created in
//!   the retention period, counted in memory on this node: the server does
//!   not store who uploaded an attachment, so a restart starts the count
//!   afresh (`blob_quota_exceeded`).
//! - **KeyPackages per device and suite** (`key_package_quota_exceeded`).
//! - **Connections per account**: requests in progress (and WebSockets
//!   open) at once (`too_many_connections`).
//!
//! 0 disables a quota. The memory a single account can make the server
//! hold follows from these; see `docs/what-the-server-knows.md`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hush_wire::ErrorCode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::error::Failure;
use crate::metrics::Exposition;
use crate::store::{DeviceKey, Store};

/// How long a queue's counted usage is trusted before it is read again.
pub const QUEUE_REFRESH: Duration = Duration::from_secs(30);
/// A queue whose usage is older than this is read again before a refusal.
pub const QUEUE_RECHECK: Duration = Duration::from_secs(1);
/// What each attachment costs beyond its size (its metadata and parts).
pub const BLOB_OVERHEAD: u64 = 4096;
/// What each recipient of a send costs beyond the payload, which is stored
/// once: its queue entry (the 113-byte sealed header, the device, position
/// and times) and that entry's index rows, rounded up.
pub const ENTRY_BYTES: u64 = 256;

/// The bytes one send of a `len`-byte payload to `recipients` devices
/// stores: the payload once, and one queue entry per recipient.
pub fn send_cost(len: u64, recipients: usize) -> u64 {
    len.saturating_add(ENTRY_BYTES.saturating_mul(recipients as u64))
}

/// The quotas an operator sets (0: no limit).
#[derive(Debug, Clone)]
pub struct QuotaSettings {
    /// Bytes waiting in one device's queue.
    pub max_queue_bytes: u64,
    /// Bytes one send stores: its payload once, plus [`ENTRY_BYTES`] per
    /// recipient.
    pub max_send_bytes: u64,
    /// Bytes of one account's attachments within the retention period.
    pub max_blob_bytes: u64,
    /// One-time KeyPackages one device holds, per suite.
    pub max_key_packages: u64,
    /// Requests in progress and WebSockets open of one account.
    pub max_connections: usize,
    /// Longest a request body may take to arrive.
    pub body_timeout: Duration,
    /// Longest a connection may wait between request bytes: between body
    /// chunks, and for a request's headers (which covers an idle
    /// keep-alive connection).
    pub idle_timeout: Duration,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            max_queue_bytes: 256 << 20,
            max_send_bytes: 256 << 20,
            max_blob_bytes: 2 << 30,
            max_key_packages: 500,
            max_connections: 32,
            body_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Which quota refused something (a label of `hush_quota_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// A recipient's queue is full.
    QueueBytes,
    /// A send would store more than one send may.
    SendBytes,
    /// The account's attachments are at their quota.
    BlobBytes,
    /// The device holds its most KeyPackages.
    KeyPackages,
    /// The account has its most connections open.
    Connections,
    /// A request body was too slow.
    BodyTimeout,
}

const QUOTAS: [(Quota, &str); 6] = [
    (Quota::QueueBytes, "queue_bytes"),
    (Quota::SendBytes, "send_bytes"),
    (Quota::BlobBytes, "blob_bytes"),
    (Quota::KeyPackages, "key_packages"),
    (Quota::Connections, "connections"),
    (Quota::BodyTimeout, "body_timeout"),
];

static REFUSALS: [AtomicU64; QUOTAS.len()] = [const { AtomicU64::new(0) }; QUOTAS.len()];

/// Counts a refusal by `quota`.
pub fn refused(quota: Quota) {
    if let Some(i) = QUOTAS.iter().position(|(q, _)| *q == quota) {
        REFUSALS[i].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy)]
struct QueueUsage {
    bytes: u64,
    read_at: Instant,
}

/// The quotas and what they count.
#[derive(Debug, Default)]
pub struct Quotas {
    settings: QuotaSettings,
    queues: Mutex<HashMap<DeviceKey, QueueUsage>>,
    /// Account -> (expiry ms, bytes) of its attachments, oldest first.
    blobs: Mutex<HashMap<String, VecDeque<(u64, u64)>>>,
    conns: Arc<Mutex<HashMap<String, usize>>>,
    key_package_locks: [tokio::sync::Mutex<()>; 16],
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every map is consistent between statements.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Quotas {
    /// Quotas with `settings`.
    pub fn new(settings: QuotaSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// The settings.
    pub fn settings(&self) -> &QuotaSettings {
        &self.settings
    }

    /// Reserves `len` bytes in every recipient's queue for one send, or
    /// refuses it (nothing reserved). Dropping the reservation without
    /// [`QueueReservation::keep`] gives the bytes back.
    pub async fn reserve_queue(
        &self,
        store: &dyn Store,
        recipients: &[DeviceKey],
        len: usize,
    ) -> Result<QueueReservation<'_>, Failure> {
        let len = len as u64;
        let total = send_cost(len, recipients.len());
        let max_send = self.settings.max_send_bytes;
        if max_send > 0 && total > max_send {
            refused(Quota::SendBytes);
            return Err(Failure::new(
                ErrorCode::TooLarge,
                format!(
                    "this send would store {total} bytes (the payload once, plus {ENTRY_BYTES} \
                     per recipient); this server stores at most {max_send} per send: send a \
                     smaller message or to fewer devices"
                ),
            ));
        }
        let nothing = QueueReservation {
            quotas: self,
            recipients: Vec::new(),
            len,
        };
        if self.settings.max_queue_bytes == 0 {
            return Ok(nothing);
        }
        self.refresh(store, recipients, QUEUE_REFRESH).await?;
        if self.try_reserve(recipients, len).is_err() {
            // Read the full ones again, in case they were fetched meanwhile.
            self.refresh(store, recipients, QUEUE_RECHECK).await?;
            if let Err(full) = self.try_reserve(recipients, len) {
                refused(Quota::QueueBytes);
                return Err(Failure::new(
                    ErrorCode::QueueFull,
                    format!(
                        "the queue of {}/{} holds the most this server keeps for one device \
                         ({} bytes): nothing was queued; retry once it has fetched its messages",
                        full.username, full.device_id, self.settings.max_queue_bytes
                    ),
                ));
            }
        }
        Ok(QueueReservation {
            quotas: self,
            recipients: recipients.to_vec(),
            len,
        })
    }

    /// Reads from the store the usage of the recipients counted longer
    /// than `older_than` ago (or never).
    async fn refresh(
        &self,
        store: &dyn Store,
        recipients: &[DeviceKey],
        older_than: Duration,
    ) -> Result<(), Failure> {
        let stale: Vec<DeviceKey> = {
            let queues = lock(&self.queues);
            recipients
                .iter()
                .filter(|r| {
                    queues
                        .get(*r)
                        .is_none_or(|u| u.read_at.elapsed() >= older_than)
                })
                .cloned()
                .collect()
        };
        if stale.is_empty() {
            return Ok(());
        }
        let bytes = store.queue_bytes(&stale).await?;
        let read_at = Instant::now();
        let mut queues = lock(&self.queues);
        for (device, bytes) in stale.into_iter().zip(bytes) {
            queues.insert(device, QueueUsage { bytes, read_at });
        }
        Ok(())
    }

    /// Adds `len` to every recipient if none goes past the quota; else the
    /// first that would.
    fn try_reserve(&self, recipients: &[DeviceKey], len: u64) -> Result<(), DeviceKey> {
        let max = self.settings.max_queue_bytes;
        let mut queues = lock(&self.queues);
        for r in recipients {
            let used = queues.get(r).map_or(0, |u| u.bytes);
            if used.saturating_add(len) > max {
                return Err(r.clone());
            }
        }
        let now = Instant::now();
        for r in recipients {
            queues
                .entry(r.clone())
                .or_insert(QueueUsage {
                    bytes: 0,
                    read_at: now,
                })
                .bytes += len;
        }
        Ok(())
    }

    fn release_queue(&self, recipients: &[DeviceKey], len: u64) {
        let mut queues = lock(&self.queues);
        for r in recipients {
            if let Some(u) = queues.get_mut(r) {
                u.bytes = u.bytes.saturating_sub(len);
            }
        }
    }

    /// Forgets queue counts not read for a while, and expired attachments.
    pub fn prune(&self, now_ms: u64) {
        lock(&self.queues).retain(|_, u| u.read_at.elapsed() < QUEUE_REFRESH * 4);
        lock(&self.blobs).retain(|_, list| {
            while list.front().is_some_and(|(expires, _)| *expires <= now_ms) {
                list.pop_front();
            }
            !list.is_empty()
        });
    }

    /// Counts a new attachment of `size` bytes, kept until `expires_at_ms`,
    /// against `account`'s quota, or refuses it.
    pub fn reserve_blob(
        &self,
        account: &str,
        size: u64,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<(), Failure> {
        let max = self.settings.max_blob_bytes;
        if max == 0 {
            return Ok(());
        }
        let cost = size.saturating_add(BLOB_OVERHEAD);
        let mut blobs = lock(&self.blobs);
        let list = blobs.entry(account.to_owned()).or_default();
        while list.front().is_some_and(|(expires, _)| *expires <= now_ms) {
            list.pop_front();
        }
        let used: u64 = list.iter().map(|(_, b)| b).sum();
        if used.saturating_add(cost) > max {
            refused(Quota::BlobBytes);
            return Err(Failure::new(
                ErrorCode::BlobQuotaExceeded,
                format!(
                    "this account's attachments take {used} of the {max} bytes this server keeps \
                     per account: nothing was stored; retry once older attachments expired"
                ),
            ));
        }
        list.push_back((expires_at_ms, cost));
        Ok(())
    }

    /// Waits for the device's turn to change its KeyPackages, so that a
    /// count and the upload that follows it are not interleaved with
    /// another upload of the same device.
    pub async fn key_package_turn(&self, device: &DeviceKey) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        device.hash(&mut h);
        let i = (h.finish() % self.key_package_locks.len() as u64) as usize;
        self.key_package_locks[i].lock().await
    }

    /// Refuses an upload that would leave the device with more than its
    /// quota of one-time KeyPackages (it holds `held`, adds `adding`).
    pub fn check_key_packages(&self, held: u64, adding: u64) -> Result<(), Failure> {
        let max = self.settings.max_key_packages;
        if max > 0 && held.saturating_add(adding) > max {
            refused(Quota::KeyPackages);
            return Err(Failure::new(
                ErrorCode::KeyPackageQuotaExceeded,
                format!(
                    "this device holds {held} KeyPackages of this suite and this server keeps at \
                     most {max}: nothing was stored; upload again once some were claimed"
                ),
            ));
        }
        Ok(())
    }

    /// Takes one of `account`'s connection slots until the slot is dropped.
    pub fn connect(&self, account: &str) -> Result<ConnSlot, Failure> {
        let max = self.settings.max_connections;
        let mut conns = lock(&self.conns);
        let n = conns.entry(account.to_owned()).or_default();
        if max > 0 && *n >= max {
            drop(conns);
            refused(Quota::Connections);
            return Err(Failure::new(
                ErrorCode::TooManyConnections,
                format!(
                    "this account has {max} requests and connections open, the most this server \
                     allows: close one or wait for one to finish, then retry"
                ),
            ));
        }
        *n += 1;
        Ok(ConnSlot {
            conns: self.conns.clone(),
            account: account.to_owned(),
        })
    }

    /// Connection slots in use by `account`.
    pub fn connections(&self, account: &str) -> usize {
        lock(&self.conns).get(account).copied().unwrap_or(0)
    }

    /// Appends the quota metrics to a Prometheus exposition.
    pub fn register_metrics(&self, out: &mut Exposition) {
        let refusals = Family::<[(&str, &str); 1], Counter>::default();
        for ((_, name), n) in QUOTAS.iter().zip(&REFUSALS) {
            refusals
                .get_or_create(&[("quota", name)])
                .inc_by(n.load(Ordering::Relaxed));
        }
        out.add(
            "hush_quota_refusals_total",
            "Requests refused by a quota or a timeout.",
            refusals,
        );
        let (accounts, open) = {
            let conns = lock(&self.conns);
            (
                conns.values().filter(|n| **n > 0).count(),
                conns.values().sum::<usize>(),
            )
        };
        out.add(
            "hush_account_connections",
            "Requests in progress and WebSockets open, counted per account.",
            Exposition::gauge(open as u64),
        );
        out.add(
            "hush_accounts_connected",
            "Accounts with a request in progress or a WebSocket open.",
            Exposition::gauge(accounts as u64),
        );
    }
}

/// Bytes reserved in recipients' queues for one send.
#[derive(Debug)]
pub struct QueueReservation<'a> {
    quotas: &'a Quotas,
    recipients: Vec<DeviceKey>,
    len: u64,
}

impl QueueReservation<'_> {
    /// The send was queued: its bytes stay counted.
    pub fn keep(mut self) {
        self.recipients.clear();
    }
}

impl Drop for QueueReservation<'_> {
    fn drop(&mut self) {
        if !self.recipients.is_empty() {
            self.quotas.release_queue(&self.recipients, self.len);
        }
    }
}

/// One of an account's connection slots; freed when dropped.
#[derive(Debug)]
pub struct ConnSlot {
    conns: Arc<Mutex<HashMap<String, usize>>>,
    account: String,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut conns = lock(&self.conns);
        if let Some(n) = conns.get_mut(&self.account) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                conns.remove(&self.account);
            }
        }
    }
}

/// Where the request's connection slot goes once the request is
/// authenticated: the slot is held until the response body has been sent
/// (or, for a WebSocket, taken by the socket for its lifetime).
#[derive(Debug, Clone, Default)]
pub struct SlotCell(Arc<Mutex<Option<ConnSlot>>>);

impl SlotCell {
    /// Takes a slot of `account` for this request unless it has one.
    pub fn fill(&self, quotas: &Quotas, account: &str) -> Result<(), Failure> {
        let mut cell = lock(&self.0);
        if cell.is_none() {
            *cell = Some(quotas.connect(account)?);
        }
        Ok(())
    }

    /// Takes the slot out (a WebSocket keeps it for as long as it is open).
    pub fn take(&self) -> Option<ConnSlot> {
        lock(&self.0).take()
    }
}

/// A response body that keeps the request's connection slot until it has
/// been sent.
struct HoldSlot {
    inner: axum::body::Body,
    _slot: SlotCell,
}

impl axum::body::HttpBody for HoldSlot {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: gives every request a [`SlotCell`], which authentication
/// fills, and holds it until the response has been sent.
pub async fn hold_slot(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let cell = SlotCell::default();
    req.extensions_mut().insert(cell.clone());
    let response = next.run(req).await;
    if lock(&cell.0).is_none() {
        return response;
    }
    response.map(|inner| axum::body::Body::new(HoldSlot { inner, _slot: cell }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots_are_counted_and_freed() {
        let q = Quotas::new(QuotaSettings {
            max_connections: 2,
            ..QuotaSettings::default()
        });
        let a = q.connect("alice").unwrap();
        let _b = q.connect("alice").unwrap();
        assert!(q.connect("alice").is_err());
        assert!(q.connect("bob").is_ok());
        drop(a);
        assert_eq!(q.connections("alice"), 1);
        assert!(q.connect("alice").is_ok());
    }

    #[test]
    fn blob_bytes_expire_with_their_attachments() {
        let q = Quotas::new(QuotaSettings {
            max_blob_bytes: 10_000,
            ..QuotaSettings::default()
        });
        q.reserve_blob("a", 5000, 0, 100).unwrap();
        assert!(q.reserve_blob("a", 5000, 50, 150).is_err());
        q.reserve_blob("a", 5000, 100, 200).unwrap();
        q.prune(1000);
        assert!(lock(&q.blobs).is_empty());
    }

    #[test]
    fn a_send_costs_one_payload_and_an_entry_per_recipient() {
        // A 256 KiB message to 40 devices: one payload, 40 entries.
        assert_eq!(send_cost(256 << 10, 40), (256 << 10) + 40 * ENTRY_BYTES);
        assert!(send_cost(256 << 10, 40) < 2 * (256 << 10));
        assert_eq!(send_cost(u64::MAX, 2), u64::MAX);
    }
}
