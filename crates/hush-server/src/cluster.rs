//! Several nodes on one PostgreSQL and one NATS: the bus that carries
//! wake-ups, written envelopes, ephemeral payloads and "a newer connection
//! of this device opened" between nodes.
//!
//! PostgreSQL stays the source of truth for everything stored. NATS carries
//! only hints, so losing one never loses a message, it only delays one:
//!
//! - A node subscribes to one subject per device connected to it,
//!   `PREFIX.d.u<hex username>.<device id>`, and drops the subscription when
//!   the device leaves. NATS routes by interest, so a wake-up goes only to
//!   the node that holds the device (or nowhere, for an offline device) and
//!   the cost per message does not grow with the number of nodes. A subject
//!   per node would need a directory of which device is where, written on
//!   every connect and stale after every crash.
//! - A send hands its envelope to the recipients on its own node once it is
//!   written, and publishes one message per other recipient: the written
//!   envelope itself (up to 16 KiB of payload, while the outbox is not a
//!   quarter full), which the device's node hands to the connection as a
//!   local send does, so it is not read back from PostgreSQL; else a
//!   one-byte wake-up. Only written envelopes travel: one handed over
//!   elsewhere and then lost with its message is still in the database. A
//!   connection that gets one out of order reads its queue instead. The NATS
//!   connection is opened with `no_echo`, so a node never hears its own
//!   publications.
//! - When a device connects, its node first makes sure NATS has its
//!   subscription (a flush), then stamps the connection with the time and
//!   publishes that claim on the device's subject. A node holding an older
//!   connection of the device (earlier stamp; ties broken by node id) closes
//!   it, drops it from its hub at once and wakes the device's new node (so
//!   it reads what the old connection was handed meanwhile; a send does not
//!   wake other nodes for a device connected to its own). Both nodes
//!   compare the same pair, so at most one survives.
//! - When a device is removed or its token rotated, its node closes the
//!   connection it holds and publishes a revocation on the device's subject,
//!   so the node that holds it (if another) closes it too. Suspensions come
//!   from the operator's command, another process: every node looks them up
//!   in the shared database ([`crate::app::Settings::revocation_sweep`]).
//! - A channel post (decision 0038) wakes the fetches held on its node and
//!   publishes one message on the channels subject, `PREFIX.channels`: the
//!   channel id and the post's number, 41 bytes, one per post whatever the
//!   number of subscribers. Every node subscribes to it when it joins and
//!   wakes the fetches it holds on that channel, if any. One subject for all
//!   channels rather than one per channel: held fetches come and go with
//!   every post (each answered fetch is re-armed by a new request), and a
//!   subscription per channel would churn with them and race the first read
//!   of each new wait; a node with no fetch waiting on a channel drops its
//!   post's message after a map lookup.
//! - Wake-ups lost while NATS was unreachable are made good in two ways:
//!   when the node's NATS connection comes back, every local connection
//!   re-reads its queue and every held channel fetch its channel; and every
//!   [`ClusterConfig::recheck`] each local connection re-reads its queue
//!   anyway (spread over the period), which bounds the delay of any lost
//!   wake-up (a held channel fetch ends by its own `wait_ms`, at most 30 s).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event};
use bytes::Bytes;
use futures_util::StreamExt;
use rand::RngCore;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};

mod forward;
mod frames;

use self::forward::{FORWARD_TIMEOUT, Forwards};
pub use self::forward::{ForwardHandler, ForwardKey, Forwarded, ForwardedSend};

use self::frames::{
    CHANNEL_POSTED, CLAIM, Carried, EPHEMERAL, Frame, REVOKE, WAKE, decode, decode_channel_posted,
    encode_envelope, open_forward, seal_forward,
};
use crate::channel_watch::ChannelWatches;
use crate::hub::{Ephemeral, Hub, Pushed, Remote};
use crate::metrics::Exposition;
use crate::store::DeviceKey;

/// How the node joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `nats://host:port` (several, comma-separated, for a NATS cluster).
    pub url: String,
    /// First token of every subject, so that several deployments can share
    /// one NATS server (NATS accounts separate them more strictly).
    pub subject_prefix: String,
    /// Every local connection re-reads its queue at least this often, which
    /// bounds how long a lost wake-up can delay a message.
    pub recheck: Duration,
    /// Sends to devices connected to other nodes are asked of those nodes,
    /// which number them early (decision 0046); the node's store must
    /// number the devices connected to it
    /// ([`crate::store::postgres::PostgresStore::number_devices_here`]).
    pub early_across_nodes: bool,
}

impl ClusterConfig {
    /// Defaults for `url`: prefix `hush`, re-check every 30 s.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            subject_prefix: "hush".into(),
            recheck: Duration::from_secs(30),
            early_across_nodes: false,
        }
    }
}

/// Why the node could not join the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The subject prefix is not a plain NATS subject token.
    #[error("NATS subject prefix {0:?} must be letters, digits, '-' or '_'")]
    BadPrefix(String),
    /// The cluster's key for forwarded sends could not be read or stored.
    #[error("cannot read the cluster's key from the database")]
    Key,
    /// NATS did not answer.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The URL given.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// How long a node waits before it asks again for a device nobody listened
/// for (one that is connecting subscribes just after it registers).
const NOBODY_AGAIN: Duration = Duration::from_millis(50);

/// Wake-ups queued for NATS before new ones are dropped (the re-check
/// delivers what a dropped one would have announced).
const OUTBOX: usize = 65_536;
/// Bytes queued for NATS before new messages are dropped: an ephemeral
/// payload is counted once per recipient node subject, although recipients
/// of one send share its buffer.
const OUTBOX_BYTES: u64 = 64 << 20;
/// Bytes in the outbox beyond which written envelopes are announced by a
/// wake-up instead of carried.
const CARRY_BUDGET: u64 = OUTBOX_BYTES / 4;
/// Messages buffered per device subscription.
const SUBSCRIPTION_BUFFER: usize = 256;
/// The re-check period is walked in this many slices.
const RECHECK_SLICES: u64 = 16;

/// What the bus did, for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    outbox_bytes: AtomicU64,
    replaced: AtomicU64,
    rechecks: AtomicU64,
    carried_out: AtomicU64,
    carried_in: AtomicU64,
    forwarded_out: AtomicU64,
    forwarded_in: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// This node's membership in a cluster. Dropping it stops the bus.
pub struct Cluster {
    client: Client,
    node: Arc<str>,
    early_across_nodes: bool,
    tasks: Vec<JoinHandle<()>>,
    bus: Arc<Bus>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Cluster {
    /// Connects to NATS and attaches the bus to `hub` and `channels`. Fails
    /// if NATS does not answer now; afterwards the connection is retried
    /// forever.
    pub async fn join(
        config: ClusterConfig,
        hub: &Arc<Hub>,
        channels: &Arc<ChannelWatches>,
    ) -> Result<Self, ClusterError> {
        let prefix = config.subject_prefix.clone();
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ClusterError::BadPrefix(prefix));
        }
        // Several servers of a NATS cluster: "nats://a:4222,nats://b:4222".
        let servers: Vec<&str> = config
            .url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let mut raw = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let node: Arc<str> = hex(&raw).into();
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let client = ConnectOptions::new()
            .no_echo()
            .name(format!("hush-server {node}"))
            .subscription_capacity(SUBSCRIPTION_BUFFER)
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64).saturating_mul(100).min(2000))
            })
            .event_callback(move |event| {
                let tx = events_tx.clone();
                async move {
                    let _ = tx.send(event);
                }
            })
            .connect(servers.as_slice())
            .await
            .map_err(|e| ClusterError::Connect {
                url: config.url.clone(),
                reason: e.to_string(),
            })?;
        let (outbox, mut outgoing) = mpsc::channel::<(String, Bytes)>(OUTBOX);
        let counters = Arc::new(Counters::default());
        let bus = Arc::new(Bus {
            counters: counters.clone(),
            client: client.clone(),
            node: node.clone(),
            prefix,
            hub: Arc::downgrade(hub),
            outbox,
            forwards: Arc::default(),
            subs: Mutex::new(HashMap::new()),
        });
        let mut tasks = vec![follow_channels(&bus, channels, &config.url).await?];
        let publisher = client.clone();
        let sent = counters.clone();
        tasks.push(tokio::spawn(async move {
            while let Some((subject, payload)) = outgoing.recv().await {
                let len = payload.len() as u64;
                let published = publisher.publish(subject, payload).await;
                sent.outbox_bytes.fetch_sub(len, Ordering::Relaxed);
                match published {
                    Ok(()) => bump(&sent.published),
                    Err(e) => {
                        bump(&sent.dropped);
                        tracing::debug!(error = %e, "NATS publish failed");
                    }
                }
            }
        }));
        let weak = Arc::downgrade(hub);
        let watches = Arc::downgrade(channels);
        tasks.push(tokio::spawn(async move {
            while let Some(event) = events_rx.recv().await {
                match event {
                    Event::Connected => {
                        tracing::info!(
                            "NATS connected; local devices re-read their queues and held channel fetches their channels"
                        );
                        // Wake-ups may have been lost while disconnected.
                        if let Some(hub) = weak.upgrade() {
                            hub.wake_slice(0, 1);
                        }
                        if let Some(channels) = watches.upgrade() {
                            channels.wake_all();
                        }
                    }
                    Event::Disconnected => {
                        tracing::warn!("NATS disconnected; delivery across nodes is delayed")
                    }
                    other => tracing::debug!(event = %other, "NATS event"),
                }
            }
        }));
        let weak = Arc::downgrade(hub);
        let period = (config.recheck / RECHECK_SLICES as u32).max(Duration::from_millis(10));
        let rechecks = counters.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut slice = 0u64;
            loop {
                tick.tick().await;
                let Some(hub) = weak.upgrade() else { return };
                hub.wake_slice(slice, RECHECK_SLICES);
                bump(&rechecks.rechecks);
                slice = (slice + 1) % RECHECK_SLICES;
            }
        }));
        hub.set_remote(bus.clone());
        tracing::info!(node = %node, url = %config.url, "joined the cluster");
        Ok(Self {
            client,
            node,
            early_across_nodes: config.early_across_nodes,
            tasks,
            bus,
        })
    }

    /// Whether sends to devices on other nodes are asked of those nodes
    /// (decision 0046).
    pub fn asks_other_nodes(&self) -> bool {
        self.early_across_nodes
    }

    /// Whether NATS answers (for `/healthz`).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Tells the other nodes that post `number` of `channel_id` was stored,
    /// so that they wake the fetches they hold on it. Returns at once.
    pub fn channel_posted(&self, channel_id: &[u8; 32], number: u64) {
        let mut frame = Vec::with_capacity(41);
        frame.push(CHANNEL_POSTED);
        frame.extend_from_slice(channel_id);
        frame.extend_from_slice(&number.to_be_bytes());
        self.bus
            .queue_on(channels_subject(&self.bus.prefix), frame.into());
    }

    /// Serves the sends other nodes ask of this one for devices connected
    /// here with `handler` (until the cluster is dropped).
    pub fn on_forward(&self, handler: ForwardHandler, key: ForwardKey) {
        self.bus.forwards.set(Some((handler, key)));
    }

    /// Asks the node that holds `device` to take `send` for it (number it,
    /// hand it over, write it unless acknowledged first) and waits for the
    /// answer, at most [`FORWARD_TIMEOUT`].
    pub async fn forward(&self, device: &DeviceKey, send: &ForwardedSend) -> Forwarded {
        let Some((_, key)) = self.bus.forwards.get() else {
            return Forwarded::NotThere;
        };
        let subject = subject(&self.bus.prefix, device);
        let Some(frame) = seal_forward(&key, &subject, send) else {
            return Forwarded::NotThere;
        };
        bump(&self.bus.counters.forwarded_out);
        let frame = Bytes::from(frame);
        // A device that is connecting has its connection here before its
        // subscription: asked again a moment later, its node may answer.
        for pause in [Some(NOBODY_AGAIN), None] {
            let request = async_nats::Request::new()
                .payload(frame.clone())
                .timeout(Some(FORWARD_TIMEOUT));
            match self.client.send_request(subject.clone(), request).await {
                Ok(answer) => {
                    return match answer.payload.first() {
                        Some(b) => Forwarded::from_byte(*b),
                        None => Forwarded::Failed,
                    };
                }
                Err(e)
                    if matches!(e.kind(), async_nats::client::RequestErrorKind::NoResponders) =>
                {
                    match pause {
                        Some(p) => tokio::time::sleep(p).await,
                        None => return Forwarded::NotThere,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a send asked of another node got no answer");
                    return Forwarded::Busy;
                }
            }
        }
        Forwarded::NotThere
    }

    /// This node's random id, unique in the cluster (a lease holder name).
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Adds the bus's counters to a `/metrics` scrape.
    pub fn register_metrics(&self, out: &mut Exposition) {
        let c = &self.bus.counters;
        out.add(
            "hush_cluster_nats_connected",
            "1 while the node's NATS connection is up.",
            Exposition::gauge(u64::from(self.is_connected())),
        );
        let counters: [(&str, &str, &AtomicU64); 9] = [
            (
                "hush_cluster_messages_published_total",
                "Wake-ups, channel posts and ephemeral payloads published for other nodes.",
                &c.published,
            ),
            (
                "hush_cluster_messages_dropped_total",
                "Wake-ups, channel posts and ephemeral payloads not published (outbox full or NATS closed); the re-check (for a channel post, the held fetch's own wait) delivers what they announced.",
                &c.dropped,
            ),
            (
                "hush_cluster_messages_received_total",
                "Messages received from other nodes for devices connected here, and channel posts stored on other nodes.",
                &c.received,
            ),
            (
                "hush_cluster_envelopes_carried_total",
                "Written envelopes sent with their wake-up to the node of their device, which hands them over without reading them back.",
                &c.carried_out,
            ),
            (
                "hush_cluster_envelopes_received_total",
                "Envelopes received from other nodes for devices connected here.",
                &c.carried_in,
            ),
            (
                "hush_cluster_sends_forwarded_total",
                "Sends asked of the node that holds their recipient's connection.",
                &c.forwarded_out,
            ),
            (
                "hush_cluster_sends_taken_total",
                "Sends other nodes asked of this one for devices connected here.",
                &c.forwarded_in,
            ),
            (
                "hush_cluster_connections_replaced_total",
                "Connections closed here because the device connected to another node.",
                &c.replaced,
            ),
            (
                "hush_cluster_rechecks_total",
                "Re-check slices run (each wakes a share of the local connections).",
                &c.rechecks,
            ),
        ];
        for (name, help, value) in counters {
            out.add(
                name,
                help,
                Exposition::counter(value.load(Ordering::Relaxed)),
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The handler holds the node's state, which holds the hub and so
        // the bus: let go of it.
        self.bus.forwards.set(None);
        for t in &self.tasks {
            t.abort();
        }
        for (_, (_, task)) in self.bus.lock().drain() {
            task.abort();
        }
    }
}

/// The hub's view of the cluster.
struct Bus {
    counters: Arc<Counters>,
    client: Client,
    node: Arc<str>,
    prefix: String,
    hub: Weak<Hub>,
    outbox: mpsc::Sender<(String, Bytes)>,
    forwards: Arc<Forwards>,
    /// Device -> (connection id, its subscription task).
    subs: Mutex<HashMap<DeviceKey, (u64, AbortHandle)>>,
}

impl Bus {
    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceKey, (u64, AbortHandle)>> {
        self.subs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn queue(&self, device: &DeviceKey, payload: Bytes) {
        self.queue_on(subject(&self.prefix, device), payload);
    }

    fn queue_on(&self, subject: String, payload: Bytes) {
        let len = payload.len() as u64;
        let queued = self.counters.outbox_bytes.fetch_add(len, Ordering::Relaxed);
        if queued.saturating_add(len) > OUTBOX_BYTES
            || self.outbox.try_send((subject, payload)).is_err()
        {
            self.counters.outbox_bytes.fetch_sub(len, Ordering::Relaxed);
            bump(&self.counters.dropped);
            tracing::debug!("NATS outbox full: wake-up left to the re-check");
        }
    }
}

impl Remote for Bus {
    fn attached(&self, device: &DeviceKey, conn: u64) {
        let task = tokio::spawn(follow(
            Follower {
                counters: self.counters.clone(),
                client: self.client.clone(),
                node: self.node.clone(),
                hub: self.hub.clone(),
                forwards: self.forwards.clone(),
            },
            subject(&self.prefix, device),
            device.clone(),
            conn,
        ));
        if let Some((_, old)) = self
            .lock()
            .insert(device.clone(), (conn, task.abort_handle()))
        {
            old.abort();
        }
    }

    fn detached(&self, device: &DeviceKey, conn: u64) {
        let mut subs = self.lock();
        if subs.get(device).is_some_and(|(c, _)| *c == conn)
            && let Some((_, task)) = subs.remove(device)
        {
            task.abort();
        }
    }

    fn wake(&self, device: &DeviceKey) {
        self.queue(device, Bytes::from_static(&[WAKE]));
    }

    fn revoke(&self, device: &DeviceKey) {
        self.queue(device, Bytes::from_static(&[REVOKE]));
    }

    fn deliver(&self, device: &DeviceKey, envelope: &Pushed) {
        // Carried only while the outbox has room to spare: a dropped
        // envelope would leave its device to the re-check, a dropped
        // wake-up is rarer (one byte).
        let roomy = self.counters.outbox_bytes.load(Ordering::Relaxed) < CARRY_BUDGET;
        match encode_envelope(envelope).filter(|_| roomy) {
            Some(frame) => {
                bump(&self.counters.carried_out);
                self.queue(device, frame.into());
            }
            None => self.wake(device),
        }
    }

    fn ephemeral(&self, device: &DeviceKey, payload: &Ephemeral) {
        let frame = payload.framed(|p| {
            let mut frame = Vec::with_capacity(1 + p.len());
            frame.push(EPHEMERAL);
            frame.extend_from_slice(p);
            frame.into()
        });
        self.queue(device, frame);
    }
}

/// Follows one local connection's subject: claims the device for this
/// connection, then hands wake-ups and ephemeral payloads to the hub and
/// closes the connection when a newer one claims the device elsewhere.
/// What a device's subscription task works with.
struct Follower {
    counters: Arc<Counters>,
    client: Client,
    node: Arc<str>,
    hub: Weak<Hub>,
    forwards: Arc<Forwards>,
}

impl Follower {
    /// Takes a send asked of this node for `device` and answers on `reply`
    /// (in a task of its own: the subscription goes on meanwhile).
    fn take(&self, device: &DeviceKey, msg: &async_nats::Message, sealed: &[u8]) {
        let (Some(reply), Some((handler, key))) = (msg.reply.clone(), self.forwards.get()) else {
            return;
        };
        let Some(send) = open_forward(&key, &msg.subject, sealed) else {
            tracing::debug!("a send asked of this node did not open");
            return;
        };
        bump(&self.counters.forwarded_in);
        let client = self.client.clone();
        let device = device.clone();
        tokio::spawn(async move {
            let answer = handler(device, send).await;
            if let Err(e) = client.publish(reply, vec![answer as u8].into()).await {
                tracing::debug!(error = %e, "NATS publish failed");
            }
        });
    }
}

async fn follow(f: Follower, subject: String, device: DeviceKey, conn: u64) {
    let Follower {
        counters,
        client,
        node,
        hub,
        ..
    } = &f;
    let mut sub = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "NATS subscribe failed; the re-check delivers instead");
            return;
        }
    };
    // The claim is stamped only once NATS has the subscription: a node that
    // claims later (by the clock) then surely reaches this one.
    if let Err(e) = client.flush().await {
        tracing::debug!(error = %e, "NATS flush failed");
    }
    let at = crate::delivery::now_ms();
    let mut claim = Vec::with_capacity(9 + node.len());
    claim.push(CLAIM);
    claim.extend_from_slice(&at.to_be_bytes());
    claim.extend_from_slice(node.as_bytes());
    if let Err(e) = client.publish(subject, claim.into()).await {
        tracing::debug!(error = %e, "NATS publish failed");
    }
    while let Some(msg) = sub.next().await {
        let Some(hub) = hub.upgrade() else { return };
        bump(&counters.received);
        match decode(&msg.payload) {
            Some(Frame::Wake) => hub.wake_local(&device),
            Some(Frame::Envelope(e)) => {
                bump(&counters.carried_in);
                hub.deliver_local(&device, carried(e));
            }
            Some(Frame::Forward(sealed)) => f.take(&device, &msg, sealed),
            Some(Frame::Ephemeral(p)) => {
                hub.send_ephemeral_local(&device, msg.payload.slice_ref(p));
            }
            Some(Frame::Revoke) => {
                hub.revoke_local(&device);
            }
            Some(Frame::Claim {
                at: theirs,
                node: other,
            }) => {
                if (at, node.as_bytes()) < (theirs, other) {
                    bump(&counters.replaced);
                    hub.kick_replaced(&device, conn);
                }
            }
            None => tracing::debug!("malformed message on a device subject"),
        }
    }
}

/// An envelope carried from another node, as the hub hands it over.
fn carried(e: Carried<'_>) -> Pushed {
    Pushed {
        seq: e.seq,
        received_at_ms: e.received_at_ms,
        relay_tag: e.relay_tag.map(<[u8]>::to_vec),
        payload: e.payload.into(),
        early: None,
    }
}

/// Subscribes to the channels subject (confirmed by NATS before it returns,
/// so a post stored on another node once the node joined reaches it) and
/// wakes the fetches held here on each channel posted to elsewhere.
async fn follow_channels(
    bus: &Arc<Bus>,
    channels: &Arc<ChannelWatches>,
    url: &str,
) -> Result<JoinHandle<()>, ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::Connect {
        url: url.to_owned(),
        reason: format!("subscribing to {}: {e}", channels_subject(&bus.prefix)),
    };
    let mut sub = bus
        .client
        .subscribe(channels_subject(&bus.prefix))
        .await
        .map_err(|e| failed(&e))?;
    bus.client.flush().await.map_err(|e| failed(&e))?;
    let counters = bus.counters.clone();
    let channels = Arc::downgrade(channels);
    Ok(tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let Some(channels) = channels.upgrade() else {
                return;
            };
            bump(&counters.received);
            match decode_channel_posted(&msg.payload) {
                Some((id, number)) => channels.posted(&id, number),
                None => tracing::debug!("malformed message on the channels subject"),
            }
        }
    }))
}

/// The subject every node follows for channel posts stored elsewhere.
fn channels_subject(prefix: &str) -> String {
    format!("{prefix}.channels")
}

/// The device's subject. The username is hex-encoded: usernames may hold
/// `.`, the NATS token separator, and recipients of an ephemeral send are
/// not checked against the directory.
fn subject(prefix: &str, device: &DeviceKey) -> String {
    format!(
        "{prefix}.d.u{}.{}",
        hex(device.username.as_bytes()),
        device.device_id
    )
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_single_tokens_per_part() {
        let s = subject("hush", &DeviceKey::new("a.b-c", 7));
        assert_eq!(s, "hush.d.u612e622d63.7");
        // An empty username still makes a non-empty subject token.
        assert_eq!(subject("p", &DeviceKey::new("", 1)), "p.d.u.1");
        // No device subject is the channels subject.
        assert_eq!(channels_subject("hush"), "hush.channels");
    }
}
