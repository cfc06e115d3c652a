//! Nodes of a cluster on one PostgreSQL and one NATS: in this process or as
//! real `hush-server` processes, and what the cluster tests do with them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::pg::{Env, PgSchema, unique};
use super::{Ws, connect_ws, open_key_for};
use futures_util::StreamExt;
use hush_server::app::{AppState, Settings};
use hush_server::blobs::Blobs;
use hush_server::cluster::ClusterConfig;
use hush_server::ratelimit::Rate;
use hush_server::server::{ServerHandle, spawn_local};
use hush_server::store::postgres::PostgresStore;
use hush_wire::api::SendRequest;
use hush_wire::ws::ServerFrame;
use hush_wire::{Bytes, DeviceAddress};
use tokio_tungstenite::tungstenite::Message;

pub const BIN: &str = env!("CARGO_BIN_EXE_hush-server");
/// Longest wait for something that must happen (a bound, not a measurement).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The operator's token for `/metrics` on the public listener.
pub const METRICS_TOKEN: &str = "cluster-test-metrics-token";

/// One test at a time: each starts three nodes with their own pools, and the
/// machine has two cores and one PostgreSQL.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A node in this process.
pub struct Node {
    pub addr: SocketAddr,
    pub state: AppState,
    pub handle: Option<ServerHandle>,
}

impl Node {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub async fn node(
    pg: &PgSchema,
    nats: &str,
    prefix: &str,
    blobs: &Path,
    settings: Settings,
) -> Node {
    node_with(pg, nats, prefix, blobs, settings, false).await
}

/// [`node`], numbering the queues of its devices early if `early`
/// (`--early-across-nodes`, decision 0046).
pub async fn node_with(
    pg: &PgSchema,
    nats: &str,
    prefix: &str,
    blobs: &Path,
    settings: Settings,
    early: bool,
) -> Node {
    let store = PostgresStore::connect(&pg.node_url()).await.unwrap();
    store.join_cluster().await.unwrap();
    if early {
        store.number_devices_here().unwrap();
    }
    let mut cluster = ClusterConfig::new(nats);
    cluster.subject_prefix = prefix.to_owned();
    cluster.recheck = Duration::from_secs(3600);
    cluster.early_across_nodes = early;
    let shared = Blobs::open(&format!("file://{}", blobs.display())).unwrap();
    let state = AppState::new(Arc::new(store), shared, settings)
        .join_cluster(cluster)
        .await
        .unwrap_or_else(|e| panic!("HUSH_TEST_NATS_URL is set but NATS does not answer: {e}"));
    let (addr, handle) = spawn_local(state.clone()).await.unwrap();
    Node {
        addr,
        state,
        handle: Some(handle),
    }
}

pub fn settings() -> Settings {
    let unlimited = Rate {
        per_second: 0.0,
        burst: 0.0,
    };
    Settings {
        per_ip: unlimited,
        per_account: unlimited,
        metrics_token: Some(hush_server::app::MetricsToken(METRICS_TOKEN.into())),
        ..Settings::default()
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub http: reqwest::Client,
    pub _blobs: tempfile::TempDir,
    pub _pg: PgSchema,
}

pub async fn three_nodes(env: &Env, nats: &str) -> Cluster {
    three_nodes_with(env, nats, false).await
}

/// Three nodes that number their devices' queues early (decision 0046).
pub async fn three_nodes_early(env: &Env, nats: &str) -> Cluster {
    three_nodes_with(env, nats, true).await
}

async fn three_nodes_with(env: &Env, nats: &str, early: bool) -> Cluster {
    let pg = PgSchema::create(&env.pg).await;
    let prefix = unique("t");
    let blobs = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let n = node_with(&pg, nats, &prefix, blobs.path(), settings(), early).await;
        nodes.push(n);
    }
    Cluster {
        nodes,
        http: reqwest::Client::new(),
        _blobs: blobs,
        _pg: pg,
    }
}

pub fn to(devices: &[(&str, u32)]) -> Vec<DeviceAddress> {
    devices
        .iter()
        .map(|(u, d)| DeviceAddress {
            username: (*u).into(),
            device_id: *d,
        })
        .collect()
}

pub async fn send(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    req: SendRequest,
) -> reqwest::Response {
    http.post(format!("{base}/v1/messages"))
        .bearer_auth(token)
        .json(&req)
        .send()
        .await
        .unwrap()
}

pub fn message(recipients: &[(&str, u32)], payload: &[u8]) -> SendRequest {
    SendRequest {
        recipients: to(recipients),
        payload: Bytes(payload.to_vec()),
        ephemeral: false,
        commit: None,
        franking_commitment: None,
    }
}

/// What a connection sees next.
#[derive(Debug)]
pub enum Seen {
    Frame(ServerFrame),
    Closed(Option<u16>),
    Silent,
}

pub async fn next(ws: &mut Ws, wait: Duration) -> Seen {
    if let Some(f) = ws.pending.pop_front() {
        return Seen::Frame(f);
    }
    loop {
        let msg = match tokio::time::timeout(wait, ws.ws.next()).await {
            Err(_) => return Seen::Silent,
            Ok(None) | Ok(Some(Err(_))) => return Seen::Closed(None),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Binary(b) => return Seen::Frame(ws.split(ServerFrame::decode(&b).unwrap())),
            Message::Close(f) => return Seen::Closed(f.map(|f| u16::from(f.code))),
            _ => continue,
        }
    }
}

/// The next envelope (acknowledged), skipping other frames.
pub async fn envelope(ws: &mut Ws) -> hush_wire::ws::Envelope {
    loop {
        match next(ws, PATIENCE).await {
            Seen::Frame(ServerFrame::Envelope(e)) => {
                ws.ack(&[e.seq]).await;
                return e;
            }
            Seen::Frame(_) => continue,
            other => panic!("expected an envelope, got {other:?}"),
        }
    }
}

pub async fn connected(addr: SocketAddr, token: &str) -> Ws {
    let mut ws = connect_ws(addr, token).await;
    assert!(ws.drain().await.is_empty(), "nothing queued yet");
    ws
}

pub async fn health(http: &reqwest::Client, base: &str) -> u16 {
    http.get(format!("{base}/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Polls until `/healthz` answers `status` (bounded by [`PATIENCE`]).
pub async fn wait_health(http: &reqwest::Client, base: &str, status: u16) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while health(http, base).await != status {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{base}/healthz never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// --- real processes -------------------------------------------------------

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_node(
    pg: &PgSchema,
    nats: &str,
    prefix: &str,
    blobs: &Path,
    data: &Path,
) -> (Proc, String) {
    let port = free_port();
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--database")
        .arg(pg.node_url())
        .arg("--nats")
        .arg(nats)
        .arg("--nats-subject-prefix")
        .arg(prefix)
        .arg("--recheck-interval")
        .arg("1h")
        .arg("--attachments")
        .arg(blobs)
        .arg("--rate-limit-ip")
        .arg("0")
        .arg("--rate-limit-account")
        .arg("0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

/// `moto_server` (an S3 emulator, PyPI `moto[server]`) from
/// `HUSH_TEST_MOTO_SERVER` or the `PATH`; `.ci/run` installs it.
pub fn moto_server() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("HUSH_TEST_MOTO_SERVER") {
        return Some(p.into());
    }
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("moto_server"))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("moto_server is not installed: skipping the S3 attachment test");
    }
    found
}

pub fn addr_of(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

/// Receives for one device until it holds every payload in `want`,
/// reconnecting to the next node in `bases` whenever its connection drops.
/// Returns payload -> the seqs it arrived under, and how many arrivals there
/// were in all (redeliveries of a seq whose ack was lost included).
pub async fn receive_all(
    bases: Vec<String>,
    token: String,
    want: Arc<tokio::sync::Mutex<HashSet<Vec<u8>>>>,
    senders_done: Arc<std::sync::atomic::AtomicBool>,
) -> (HashMap<Vec<u8>, HashSet<u64>>, usize) {
    let mut got: HashMap<Vec<u8>, HashSet<u64>> = HashMap::new();
    let mut arrivals = 0;
    let mut which = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    'connect: loop {
        assert!(tokio::time::Instant::now() < deadline, "receiver gave up");
        let base = &bases[which % bases.len()];
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("ws://{}/v1/ws", addr_of(base)),
            )
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let Ok((ws, _)) = tokio_tungstenite::connect_async(req).await else {
            which += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut ws = Ws {
            ws,
            open: open_key_for(&token),
            pending: Default::default(),
        };
        loop {
            if senders_done.load(std::sync::atomic::Ordering::Acquire) {
                let want = want.lock().await;
                if want.iter().all(|p| got.contains_key(p)) {
                    return (got, arrivals);
                }
            }
            match next(&mut ws, Duration::from_millis(200)).await {
                Seen::Frame(ServerFrame::Envelope(e)) => {
                    arrivals += 1;
                    got.entry(e.payload.clone()).or_default().insert(e.seq);
                    use futures_util::SinkExt;
                    let ack = hush_wire::ws::ClientFrame::Ack(vec![e.seq]).encode();
                    if ws.ws.send(Message::Binary(ack.into())).await.is_err() {
                        which += 1;
                        continue 'connect;
                    }
                }
                Seen::Frame(_) | Seen::Silent => {
                    assert!(tokio::time::Instant::now() < deadline, "receiver gave up");
                }
                Seen::Closed(_) => {
                    which += 1;
                    continue 'connect;
                }
            }
        }
    }
}

// --- a NATS outage ----------------------------------------------------------

pub fn nats_server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("HUSH_NATS_SERVER") {
        return p.into();
    }
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin"])
    {
        let p = Path::new(dir).join("nats-server");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the NATS outage test runs its own nats-server: install it (Debian: apt-get install nats-server) or set HUSH_NATS_SERVER"
    );
}

pub fn start_nats(port: u16) -> Proc {
    Proc(
        Command::new(nats_server_binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

pub async fn wait_port(port: u16) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nats-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
