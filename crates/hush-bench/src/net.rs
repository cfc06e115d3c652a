//! Simulated devices: Hush devices (registered accounts, HTTP sends, a
//! per-device WebSocket) and raw-relay clients, behind one interface so every
//! scenario runs the same load against either.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use hush_proto::{AccountKey, DeviceCertificate, DeviceId, DeviceSigningKey, Username};
use hush_wire::api::{NewDeviceBody, RegisterRequest, RegisterResponse, SendRequest};
use hush_wire::ws::{ClientFrame, ServerFrame};
use hush_wire::{Bytes, DeviceAddress};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Mutex, Notify, Semaphore, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::stats::{Deliveries, parse_payload};

/// WebSocket buffers on both sides of both systems: 4 KiB.
pub const WS_BUFFER: usize = 4096;

/// The tungstenite configuration every client and the raw relay use.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_BUFFER)
        .write_buffer_size(WS_BUFFER)
        .max_message_size(Some(hush_wire::limits::MAX_FRAME_LEN))
        .max_frame_size(Some(hush_wire::limits::MAX_FRAME_LEN))
}

/// A TCP connection from source address 127.0.0.(2 + n % 250), so that many
/// connections do not run out of ports of one source address.
pub async fn connect_from(n: usize, addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let last = u8::try_from(2 + n % 250).unwrap_or(2);
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
        0,
    ))?;
    let stream = socket
        .connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Which system a run talks to.
#[derive(Debug, Clone)]
pub enum System {
    /// Hush servers (base URLs, devices spread round-robin).
    Hush(Vec<String>),
    /// The raw relay at this address.
    Raw(SocketAddr),
}

/// One simulated device: its address on the system.
#[derive(Debug, Clone)]
pub struct Device {
    /// Index in the run; raw-relay id.
    pub index: usize,
    /// Hush username (`None` for the raw relay).
    pub username: Option<String>,
    /// Hush bearer token.
    pub token: Option<String>,
    /// The server it uses.
    pub server: String,
    /// Its key for the sealed envelopes a Hush server delivers.
    pub open: Option<Arc<hush_proto::sealed::OpenKey>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An HTTP client for the generator: no proxy, keep-alive, no timeouts
/// beyond `timeout`.
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(4096)
        .timeout(timeout)
        .build()?)
}

/// Registers `count` Hush accounts (one device each) named `{prefix}{i}`,
/// `concurrency` at a time, spread round-robin over `servers`.
pub async fn register_devices(
    http: &reqwest::Client,
    servers: &[String],
    prefix: &str,
    first_index: usize,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Device>> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let index = first_index + i;
        let server = servers
            .get(index % servers.len().max(1))
            .cloned()
            .context("no server")?;
        let http = http.clone();
        let name = format!("{prefix}{index}");
        let permit = sem.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let (token, open) = register(&http, &server, &name).await?;
            anyhow::Ok(Device {
                index,
                username: Some(name),
                token: Some(token),
                server,
                open: Some(Arc::new(open)),
            })
        }));
    }
    let mut out = Vec::with_capacity(count);
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

async fn register(
    http: &reqwest::Client,
    server: &str,
    name: &str,
) -> anyhow::Result<(String, hush_proto::sealed::OpenKey)> {
    let username = Username::new(name).context("bench username")?;
    let mut rng = rand::rngs::OsRng;
    let account = AccountKey::generate(&mut rng).context("account key")?;
    let device_key = DeviceSigningKey::generate(&mut rng).context("device key")?;
    let certificate =
        DeviceCertificate::issue(&account, &username, DeviceId(1), &device_key, now_ms())
            .context("device certificate")?;
    let resp = http
        .post(format!("{server}/v1/accounts"))
        .json(&RegisterRequest {
            username: name.to_owned(),
            account_key: Bytes(account.public().as_bytes().to_vec()),
            device: NewDeviceBody {
                device_id: 1,
                certificate: Bytes(certificate.encode()),
            },
        })
        .send()
        .await
        .with_context(|| format!("POST {server}/v1/accounts"))?;
    if resp.status().as_u16() != 201 {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        bail!("registration of {name} refused: {status}: {body}");
    }
    let open = hush_proto::sealed::OpenKey::of(&device_key).context("sealing key")?;
    Ok((resp.json::<RegisterResponse>().await?.token, open))
}

/// Raw-relay devices need no registration: an id is enough.
pub fn raw_devices(addr: SocketAddr, first_index: usize, count: usize) -> Vec<Device> {
    (first_index..first_index + count)
        .map(|index| Device {
            index,
            username: None,
            token: None,
            server: addr.to_string(),
            open: None,
        })
        .collect()
}

type Ws = WebSocketStream<TcpStream>;

/// Opens a device's WebSocket: Hush `/v1/ws` with its token, or the raw
/// relay's `/ID`.
pub async fn open_ws(device: &Device) -> anyhow::Result<Ws> {
    let (url, addr) = match &device.token {
        Some(_) => {
            let host = device
                .server
                .strip_prefix("http://")
                .context("hush-bench speaks plain HTTP on loopback only")?;
            (format!("ws://{host}/v1/ws"), host.to_owned())
        }
        None => (
            format!("ws://{}/{}", device.server, device.index),
            device.server.clone(),
        ),
    };
    let addr: SocketAddr = addr.parse().context("server address")?;
    let mut req = url.as_str().into_client_request()?;
    if let Some(token) = &device.token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let tcp = connect_from(device.index, addr).await?;
    let (ws, _) = client_async_with_config(req, tcp, Some(ws_config())).await?;
    Ok(ws)
}

/// How a receiver ended.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Envelopes delivered again under the same sequence number (after a
    /// reconnect, before the ack was durable): allowed, the device dedupes.
    pub redelivered: AtomicU64,
    /// Reconnects after the connection broke.
    pub reconnects: AtomicU64,
}

/// Receives for `device` until `stop`: records every first delivery in
/// `deliveries`, acknowledges Hush envelopes, and reconnects when
/// `reconnect` (else ends at the first error). `ready` is notified once the
/// stored queue has drained (Hush) or the connection is open (raw).
pub async fn receive(
    device: Device,
    deliveries: Arc<Deliveries>,
    stats: Arc<ReceiverStats>,
    ready: Arc<Notify>,
    stop: Arc<AtomicBool>,
    reconnect: bool,
) -> anyhow::Result<()> {
    // Message id -> sequence number it came under.
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut first = true;
    loop {
        let result = receive_once(
            &device,
            &deliveries,
            &stats,
            &ready,
            &stop,
            &mut seen,
            first,
        )
        .await;
        first = false;
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        match result {
            Ok(()) if !reconnect => return Ok(()),
            Err(e) if !reconnect => return Err(e),
            _ => {
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn receive_once(
    device: &Device,
    deliveries: &Deliveries,
    stats: &ReceiverStats,
    ready: &Notify,
    stop: &AtomicBool,
    seen: &mut HashMap<u64, u64>,
    first: bool,
) -> anyhow::Result<()> {
    let ws = open_ws(device).await?;
    let hush = device.token.is_some();
    if !hush && first {
        ready.notify_one();
    }
    let (mut sink, mut stream) = ws.split();
    let mut acks: Vec<u64> = Vec::new();
    let mut announced = !first;
    loop {
        let msg = if acks.is_empty() {
            tokio::select! {
                m = stream.next() => m,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    continue;
                }
            }
        } else {
            // Acknowledge once nothing more is waiting.
            match futures_util::FutureExt::now_or_never(stream.next()) {
                Some(m) => m,
                None => {
                    flush_acks(&mut sink, &mut acks).await?;
                    continue;
                }
            }
        };
        let bytes = match msg {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(_))) | None => return Ok(()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        };
        if !hush {
            if let Some((id, sent)) = parse_payload(&bytes) {
                if seen.insert(id, 0).is_some() {
                    deliveries.duplicate();
                } else {
                    deliveries.record(id, sent);
                }
            }
            continue;
        }
        let envelopes = match ServerFrame::decode(&bytes)? {
            ServerFrame::Envelope(env) => vec![env],
            ServerFrame::Envelopes(envs) => envs,
            ServerFrame::Drained => {
                if !announced {
                    announced = true;
                    ready.notify_one();
                }
                continue;
            }
            ServerFrame::Ephemeral(_) | ServerFrame::Sent { .. } | ServerFrame::Refused { .. } => {
                continue;
            }
        };
        // One acknowledgement for the frame (sent once nothing more waits).
        for env in envelopes {
            acks.push(env.seq);
            record(device, deliveries, stats, seen, env);
            if acks.len() >= hush_wire::limits::MAX_ACKS_PER_FRAME {
                flush_acks(&mut sink, &mut acks).await?;
            }
        }
    }
}

/// Records a Hush envelope's delivery: first, again under the same
/// sequence number (a redelivery), or a duplicate.
fn record(
    device: &Device,
    deliveries: &Deliveries,
    stats: &ReceiverStats,
    seen: &mut HashMap<u64, u64>,
    env: hush_wire::ws::Envelope,
) {
    // A real device opens what the server sealed to it; so does the
    // benchmark, at the same cost.
    let payload = match &device.open {
        Some(key) if hush_proto::sealed::is_sealed(&env.payload) => {
            hush_proto::sealed::open_envelope(key, &env.payload)
                .map(|o| o.message)
                .unwrap_or_default()
        }
        _ => env.payload,
    };
    if let Some((id, sent)) = parse_payload(&payload) {
        match seen.insert(id, env.seq) {
            None => deliveries.record(id, sent),
            Some(seq) if seq == env.seq => {
                stats.redelivered.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => deliveries.duplicate(),
        }
    }
}

async fn flush_acks(
    sink: &mut futures_util::stream::SplitSink<Ws, Message>,
    acks: &mut Vec<u64>,
) -> anyhow::Result<()> {
    let frame = ClientFrame::Ack(std::mem::take(acks)).encode();
    sink.send(Message::Binary(frame.into())).await?;
    Ok(())
}

/// How a Hush device sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SendOver {
    /// Send frames on the device's own WebSocket.
    Ws,
    /// `POST /v1/messages`, one request per message.
    Http,
}

/// Sends messages for one sending device.
#[derive(Debug, Clone)]
pub enum Sender {
    /// Hush over the device's WebSocket: send frames, answered once durable.
    HushWs(Arc<HushWsSender>),
    /// Hush: `POST /v1/messages`, acknowledged when durable.
    Hush {
        /// The HTTP client (a pool of keep-alive connections).
        http: reqwest::Client,
        /// `{server}/v1/messages`.
        url: String,
        /// `Bearer {token}`.
        auth: String,
    },
    /// The raw relay: one WebSocket, acknowledged when relayed.
    Raw(Arc<RawSender>),
}

impl Sender {
    /// A sender for `device`.
    pub async fn new(
        device: &Device,
        http: &reqwest::Client,
        over: SendOver,
    ) -> anyhow::Result<Self> {
        Ok(match &device.token {
            Some(_) if over == SendOver::Ws => {
                Sender::HushWs(Arc::new(HushWsSender::connect(device).await?))
            }
            Some(token) => Sender::Hush {
                http: http.clone(),
                url: format!("{}/v1/messages", device.server),
                auth: format!("Bearer {token}"),
            },
            None => Sender::Raw(Arc::new(RawSender::connect(device).await?)),
        })
    }

    /// Sends `payload` to `recipients` and waits for the acknowledgement.
    pub async fn send(&self, recipients: &Recipients, payload: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Sender::Hush { http, url, auth } => {
                let body = send_request(&recipients.hush, payload);
                let resp = http
                    .post(url)
                    .header("authorization", auth)
                    .json(&body)
                    .send()
                    .await?;
                if !resp.status().is_success() {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    bail!("send refused: {status}: {text}");
                }
                // Read the body so the connection goes back to the pool.
                let _ = resp.bytes().await?;
                Ok(())
            }
            Sender::HushWs(ws) => ws.send(&recipients.hush, payload).await,
            Sender::Raw(raw) => raw.send(&recipients.raw, payload).await,
        }
    }
}

/// A task that writes what the returned channel gets to `sink`, flushing
/// once nothing more is waiting; it ends when the connection fails.
fn spawn_writer(mut sink: futures_util::stream::SplitSink<Ws, Message>) -> mpsc::Sender<Message> {
    let (out, mut rx) = mpsc::channel::<Message>(1024);
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    out
}

/// The Hush send request of `payload` to `recipients`.
fn send_request(recipients: &[DeviceAddress], payload: Vec<u8>) -> SendRequest {
    SendRequest {
        recipients: recipients.to_vec(),
        payload: Bytes(payload),
        ephemeral: false,
        commit: None,
        franking_commitment: None,
    }
}

/// A Hush device's WebSocket used for sending: send frames out, `sent` and
/// `refused` answers matched to them by id. A send after the connection
/// broke (the server was killed) opens a new one.
#[derive(Debug)]
pub struct HushWsSender {
    device: Device,
    conn: Mutex<Arc<WsConn>>,
    next_id: AtomicU64,
}

type Waiting = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Result<(), String>>>>>;

#[derive(Debug)]
struct WsConn {
    out: mpsc::Sender<Message>,
    waiting: Waiting,
    alive: Arc<AtomicBool>,
}

impl WsConn {
    async fn open(device: &Device) -> anyhow::Result<Self> {
        let ws = open_ws(device).await?;
        let (sink, mut stream) = ws.split();
        let out = spawn_writer(sink);
        let waiting: Waiting = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let (w, a) = (waiting.clone(), alive.clone());
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Binary(b) = msg else { continue };
                let (id, result) = match ServerFrame::decode(&b) {
                    Ok(ServerFrame::Sent { id, .. }) => (id, Ok(())),
                    Ok(ServerFrame::Refused { id, error }) => (id, Err(error.to_string())),
                    _ => continue,
                };
                let tx = w.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                if let Some(tx) = tx {
                    let _ = tx.send(result);
                }
            }
            // The connection ended: every waiting send fails unanswered.
            a.store(false, Ordering::Release);
            w.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        Ok(Self {
            out,
            waiting,
            alive,
        })
    }
}

impl HushWsSender {
    async fn connect(device: &Device) -> anyhow::Result<Self> {
        Ok(Self {
            device: device.clone(),
            conn: Mutex::new(Arc::new(WsConn::open(device).await?)),
            next_id: AtomicU64::new(1),
        })
    }

    async fn current(&self) -> anyhow::Result<Arc<WsConn>> {
        let mut conn = self.conn.lock().await;
        if !conn.alive.load(Ordering::Acquire) {
            *conn = Arc::new(WsConn::open(&self.device).await?);
        }
        Ok(conn.clone())
    }

    async fn send(&self, recipients: &[DeviceAddress], payload: Vec<u8>) -> anyhow::Result<()> {
        let conn = self.current().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = ClientFrame::Send {
            id,
            request: send_request(recipients, payload),
        }
        .encode();
        let (tx, rx) = oneshot::channel();
        conn.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        // Ended meanwhile: its reader may have cleared the map already.
        if !conn.alive.load(Ordering::Acquire) {
            bail!("WebSocket closed");
        }
        conn.out
            .send(Message::Binary(frame.into()))
            .await
            .map_err(|_| anyhow::anyhow!("WebSocket closed"))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => bail!("send refused: {e}"),
            Err(_) => bail!("WebSocket closed before the answer"),
        }
    }
}

/// The recipients of a message in both systems' terms.
#[derive(Debug, Clone)]
pub struct Recipients {
    hush: Vec<DeviceAddress>,
    raw: Vec<u64>,
}

impl Recipients {
    /// The recipients `devices`.
    pub fn new(devices: &[Device]) -> Self {
        Self {
            hush: devices
                .iter()
                .filter_map(|d| {
                    d.username.as_ref().map(|u| DeviceAddress {
                        username: u.clone(),
                        device_id: 1,
                    })
                })
                .collect(),
            raw: devices.iter().map(|d| d.index as u64).collect(),
        }
    }
}

/// A raw-relay sending connection: frames `u32 count | count x u64 id |
/// payload`; the relay answers each with the payload's first 8 bytes.
#[derive(Debug)]
pub struct RawSender {
    out: mpsc::Sender<Message>,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>,
}

impl RawSender {
    async fn connect(device: &Device) -> anyhow::Result<Self> {
        let ws = open_ws(device).await?;
        let (sink, mut stream) = ws.split();
        let out = spawn_writer(sink);
        let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>> = Arc::default();
        let w = waiting.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Binary(b) = msg
                    && let Some(id) = b.get(..8).and_then(|h| <[u8; 8]>::try_from(h).ok())
                    && let Some(tx) = w.lock().await.remove(&u64::from_be_bytes(id))
                {
                    let _ = tx.send(());
                }
            }
        });
        Ok(Self { out, waiting })
    }

    async fn send(&self, recipients: &[u64], payload: Vec<u8>) -> anyhow::Result<()> {
        let id = parse_payload(&payload).map_or(0, |(id, _)| id);
        let mut frame = Vec::with_capacity(4 + 8 * recipients.len() + payload.len());
        frame.extend_from_slice(&u32::try_from(recipients.len())?.to_be_bytes());
        for r in recipients {
            frame.extend_from_slice(&r.to_be_bytes());
        }
        frame.extend_from_slice(&payload);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().await.insert(id, tx);
        self.out
            .send(Message::Binary(frame.into()))
            .await
            .map_err(|_| anyhow::anyhow!("raw relay connection closed"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("raw relay connection closed"))?;
        Ok(())
    }
}
