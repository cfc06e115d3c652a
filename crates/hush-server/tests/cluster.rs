//! Three nodes on one PostgreSQL and one NATS, on loopback ports.
//!
//! Needs `HUSH_TEST_POSTGRES_URL` and `HUSH_TEST_NATS_URL` (`.ci/run` sets
//! both); each test skips with a notice when they are unset and fails when
//! they are set and the service does not answer. Every test has its own
//! PostgreSQL schema and its own NATS subject prefix, so tests share the
//! machine's services without seeing each other. The NATS outage test runs
//! its own `nats-server` on a free port and never touches the shared one;
//! the S3 test runs its own `moto_server` (an S3 emulator) the same way.
//!
//! Nodes re-check their queues only every hour here, so a message that
//! arrives on an open connection was brought by a NATS wake-up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::pg::{Env, PgSchema, env, unique};
use common::{Ws, connect_ws, open_key_for, register_at};
use futures_util::StreamExt;
use hush_server::app::{AppState, Settings};
use hush_server::blobs::Blobs;
use hush_server::cluster::ClusterConfig;
use hush_server::ratelimit::Rate;
use hush_server::server::{ServerHandle, spawn_local};
use hush_server::store::postgres::PostgresStore;
use hush_wire::api::{CommitClaim, SendRequest};
use hush_wire::ws::ServerFrame;
use hush_wire::{Bytes, DeviceAddress};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_hush-server");
/// Longest wait for something that must happen (a bound, not a measurement).
const PATIENCE: Duration = Duration::from_secs(20);

/// The operator's token for `/metrics` on the public listener.
const METRICS_TOKEN: &str = "cluster-test-metrics-token";

/// One test at a time: each starts three nodes with their own pools, and the
/// machine has two cores and one PostgreSQL.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A node in this process.
struct Node {
    addr: SocketAddr,
    state: AppState,
    handle: Option<ServerHandle>,
}

impl Node {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn node(pg: &PgSchema, nats: &str, prefix: &str, blobs: &Path, settings: Settings) -> Node {
    let store = PostgresStore::connect(&pg.node_url()).await.unwrap();
    let mut cluster = ClusterConfig::new(nats);
    cluster.subject_prefix = prefix.to_owned();
    cluster.recheck = Duration::from_secs(3600);
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

fn settings() -> Settings {
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

struct Cluster {
    nodes: Vec<Node>,
    http: reqwest::Client,
    _blobs: tempfile::TempDir,
    _pg: PgSchema,
}

async fn three_nodes(env: &Env, nats: &str) -> Cluster {
    let pg = PgSchema::create(&env.pg).await;
    let prefix = unique("t");
    let blobs = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(node(&pg, nats, &prefix, blobs.path(), settings()).await);
    }
    Cluster {
        nodes,
        http: reqwest::Client::new(),
        _blobs: blobs,
        _pg: pg,
    }
}

fn to(devices: &[(&str, u32)]) -> Vec<DeviceAddress> {
    devices
        .iter()
        .map(|(u, d)| DeviceAddress {
            username: (*u).into(),
            device_id: *d,
        })
        .collect()
}

async fn send(
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

fn message(recipients: &[(&str, u32)], payload: &[u8]) -> SendRequest {
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
enum Seen {
    Frame(ServerFrame),
    Closed(Option<u16>),
    Silent,
}

async fn next(ws: &mut Ws, wait: Duration) -> Seen {
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
async fn envelope(ws: &mut Ws) -> hush_wire::ws::Envelope {
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

async fn connected(addr: SocketAddr, token: &str) -> Ws {
    let mut ws = connect_ws(addr, token).await;
    assert!(ws.drain().await.is_empty(), "nothing queued yet");
    ws
}

async fn health(http: &reqwest::Client, base: &str) -> u16 {
    http.get(format!("{base}/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Polls until `/healthz` answers `status` (bounded by [`PATIENCE`]).
async fn wait_health(http: &reqwest::Client, base: &str, status: u16) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while health(http, base).await != status {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{base}/healthz never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_three_nodes_chat_one_to_one_and_in_a_group() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let c = three_nodes(&env, &env.nats).await;
    let [a, b, n3] = [&c.nodes[0], &c.nodes[1], &c.nodes[2]];
    let alice = register_at(&c.http, &a.url(), "alice", 1).await.devices[0]
        .token
        .clone();
    let bob = register_at(&c.http, &b.url(), "bob", 2).await.devices[0]
        .token
        .clone();
    let carol = register_at(&c.http, &n3.url(), "carol.c", 3).await.devices[0]
        .token
        .clone();
    for n in &c.nodes {
        assert_eq!(health(&c.http, &n.url()).await, 200);
    }
    let mut alice_ws = connected(a.addr, &alice).await;
    let mut bob_ws = connected(b.addr, &bob).await;
    let mut carol_ws = connected(n3.addr, &carol).await;

    // 1:1, both ways, each side on its own node.
    let r = send(&c.http, &a.url(), &alice, message(&[("bob", 1)], b"hi bob")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(envelope(&mut bob_ws).await.payload, b"hi bob");
    let r = send(
        &c.http,
        &b.url(),
        &bob,
        message(&[("alice", 1)], b"hi alice"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(envelope(&mut alice_ws).await.payload, b"hi alice");

    // A group: a commit for epoch 0, then messages from each member.
    let group = b"group-1".to_vec();
    let mut commit = message(&[("bob", 1), ("carol.c", 1)], b"commit 0");
    commit.commit = Some(CommitClaim {
        group_id: Bytes(group.clone()),
        epoch: 0,
        token: Bytes(vec![1; 32]),
        next_token_hash: Bytes(vec![2; 32]),
    });
    assert_eq!(send(&c.http, &a.url(), &alice, commit).await.status(), 200);
    // The same epoch claimed through another node loses.
    let mut late = message(&[("alice", 1), ("bob", 1)], b"late commit 0");
    late.commit = Some(CommitClaim {
        group_id: Bytes(group),
        epoch: 0,
        token: Bytes(vec![1; 32]),
        next_token_hash: Bytes(vec![3; 32]),
    });
    assert_eq!(send(&c.http, &n3.url(), &carol, late).await.status(), 409);
    assert_eq!(envelope(&mut bob_ws).await.payload, b"commit 0");
    assert_eq!(envelope(&mut carol_ws).await.payload, b"commit 0");
    let r = send(
        &c.http,
        &n3.url(),
        &carol,
        message(&[("alice", 1), ("bob", 1)], b"hello group"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(envelope(&mut alice_ws).await.payload, b"hello group");
    assert_eq!(envelope(&mut bob_ws).await.payload, b"hello group");

    // Typing crosses nodes too, and is not stored.
    let mut typing = message(&[("alice", 1)], b"carol is typing");
    typing.ephemeral = true;
    assert_eq!(send(&c.http, &n3.url(), &carol, typing).await.status(), 200);
    match next(&mut alice_ws, PATIENCE).await {
        Seen::Frame(ServerFrame::Ephemeral(p)) => assert_eq!(p, b"carol is typing"),
        other => panic!("expected the typing notice, got {other:?}"),
    }
    // Everything was acknowledged: the queues empty (acks are processed
    // after the test sent them, so wait for it).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while c.nodes[0]
        .state
        .store
        .stats()
        .await
        .unwrap()
        .queued_envelopes
        > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "acknowledged envelopes stay queued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_uploaded_through_two_nodes_downloads_from_the_third() {
    use hush_wire::api::{AttachmentStatus, CreateAttachmentRequest, CreateAttachmentResponse};
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let c = three_nodes(&env, &env.nats).await;
    let [a, b, n3] = [&c.nodes[0], &c.nodes[1], &c.nodes[2]];
    let alice = register_at(&c.http, &a.url(), "alice", 1).await.devices[0]
        .token
        .clone();
    let bob = register_at(&c.http, &b.url(), "bob", 2).await.devices[0]
        .token
        .clone();
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let created: CreateAttachmentResponse = c
        .http
        .post(format!("{}/v1/attachments", a.url()))
        .bearer_auth(&alice)
        .json(&CreateAttachmentRequest {
            size: data.len() as u64,
        })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = format!("/v1/attachments/{}", created.id);
    // The first half through node A, the rest (resumed) through node B.
    for (node, range) in [(a, 0..20_000), (b, 20_000..data.len())] {
        let r = c
            .http
            .patch(format!("{}{path}", node.url()))
            .bearer_auth(&alice)
            .header("upload-offset", range.start.to_string())
            .body(data[range].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let status: AttachmentStatus = c
        .http
        .get(format!("{}{path}/status", n3.url()))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(status.complete);
    let got = c
        .http
        .get(format!("{}{path}", n3.url()))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_moves_to_another_node_closes_its_older_connection() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let c = three_nodes(&env, &env.nats).await;
    let [a, b, n3] = [&c.nodes[0], &c.nodes[1], &c.nodes[2]];
    let alice = register_at(&c.http, &a.url(), "alice", 1).await.devices[0]
        .token
        .clone();
    let bob = register_at(&c.http, &a.url(), "bob", 2).await.devices[0]
        .token
        .clone();
    let mut first = connected(a.addr, &bob).await;
    let mut second = connected(b.addr, &bob).await;
    match next(&mut first, PATIENCE).await {
        Seen::Closed(code) => assert_eq!(code, Some(hush_server::hub::CLOSE_REPLACED)),
        other => panic!("the older connection on another node stays open: {other:?}"),
    }
    // Messages sent through any node reach the newer connection.
    for (i, n) in [a, n3].into_iter().enumerate() {
        let body = format!("m{i}");
        let r = send(
            &c.http,
            &n.url(),
            &alice,
            message(&[("bob", 1)], body.as_bytes()),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(envelope(&mut second).await.payload, body.as_bytes());
    }
    // And back: the newest connection wins again. (It may get the last
    // message again: the ack sent on the second may not be processed yet.)
    let mut third = connect_ws(n3.addr, &bob).await;
    third.drain().await;
    match next(&mut second, PATIENCE).await {
        Seen::Closed(code) => assert_eq!(code, Some(hush_server::hub::CLOSE_REPLACED)),
        other => panic!("the older connection stays open: {other:?}"),
    }
    let r = send(&c.http, &a.url(), &alice, message(&[("bob", 1)], b"last")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(envelope(&mut third).await.payload, b"last");
    // Node B counted the takeover in its metrics.
    let metrics = c
        .http
        .get(format!("{}/metrics", b.url()))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hush_cluster_connections_replaced_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hush_cluster_nats_connected 1\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_fails_health_and_sends_devices_elsewhere() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let c = three_nodes(&env, &env.nats).await;
    // A node that lingers after the signal, as behind a load balancer.
    let pg_url = c._pg.node_url();
    let slow = {
        let store = PostgresStore::connect(&pg_url).await.unwrap();
        let mut cluster = ClusterConfig::new(&env.nats);
        cluster.subject_prefix = unique("t");
        let settings = Settings {
            drain_delay: Duration::from_secs(4),
            ..settings()
        };
        let state = AppState::new(
            Arc::new(store),
            Blobs::local(c._blobs.path()).unwrap(),
            settings,
        )
        .join_cluster(cluster)
        .await
        .unwrap();
        let (addr, handle) = spawn_local(state.clone()).await.unwrap();
        Node {
            addr,
            state,
            handle: Some(handle),
        }
    };
    let base = slow.url();
    let alice = register_at(&c.http, &base, "alice", 1).await.devices[0]
        .token
        .clone();
    let mut ws = connected(slow.addr, &alice).await;
    assert_eq!(health(&c.http, &base).await, 200);
    let handle = slow.handle.unwrap();
    let stopping = tokio::spawn(handle.stop());
    match next(&mut ws, PATIENCE).await {
        Seen::Closed(code) => assert_eq!(code, Some(hush_server::hub::CLOSE_RESTART)),
        other => panic!("expected a 1012 close, got {other:?}"),
    }
    // While it lingers it says so, and refuses new device connections.
    assert_eq!(health(&c.http, &base).await, 503);
    let r = c
        .http
        .get(format!("{base}/v1/ws"))
        .bearer_auth(&alice)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // An HTTP request still gets an answer while it drains.
    // (To a device that does not exist: named in `missing`, stored nowhere.)
    let r = send(&c.http, &base, &alice, message(&[("alice", 2)], b"x")).await;
    assert_eq!(r.status(), 200, "a real answer, not a refused connection");
    stopping.await.unwrap();
    assert!(slow.state.is_draining());
    // The others were not affected.
    for n in &c.nodes {
        assert_eq!(health(&c.http, &n.url()).await, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_that_never_comes_only_delays_until_the_recheck() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let pg = PgSchema::create(&env.pg).await;
    let blobs = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    // The receiving node re-checks its connections every 800 ms.
    let receiver = {
        let store = PostgresStore::connect(&pg.node_url()).await.unwrap();
        let mut cluster = ClusterConfig::new(&env.nats);
        cluster.subject_prefix = unique("t");
        cluster.recheck = Duration::from_millis(800);
        let state = AppState::new(
            Arc::new(store),
            Blobs::local(blobs.path()).unwrap(),
            settings(),
        )
        .join_cluster(cluster)
        .await
        .unwrap();
        let (addr, handle) = spawn_local(state.clone()).await.unwrap();
        Node {
            addr,
            state,
            handle: Some(handle),
        }
    };
    // The sending node shares the database but is not on NATS: none of its
    // wake-ups reach the receiving node.
    let (sender_addr, _sender) = {
        let store = PostgresStore::connect(&pg.node_url()).await.unwrap();
        let state = AppState::new(
            Arc::new(store),
            Blobs::local(blobs.path()).unwrap(),
            settings(),
        );
        spawn_local(state).await.unwrap()
    };
    let sender = format!("http://{sender_addr}");
    let alice = register_at(&http, &sender, "alice", 1).await.devices[0]
        .token
        .clone();
    let bob = register_at(&http, &receiver.url(), "bob", 2).await.devices[0]
        .token
        .clone();
    let mut bob_ws = connected(receiver.addr, &bob).await;
    for i in 0..3 {
        let body = format!("unannounced {i}");
        let r = send(
            &http,
            &sender,
            &alice,
            message(&[("bob", 1)], body.as_bytes()),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(envelope(&mut bob_ws).await.payload, body.as_bytes());
    }
    drop(receiver.handle);
}

// --- real processes -------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_node(
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
fn moto_server() -> Option<PathBuf> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_in_an_s3_bucket_are_served_by_every_node() {
    use hush_wire::api::{CreateAttachmentRequest, CreateAttachmentResponse};
    let Some(env) = env() else { return };
    let Some(moto) = moto_server() else { return };
    let _serial = SERIAL.lock().await;
    let s3_port = free_port();
    let _s3 = Proc(
        Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &s3_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("HUSH_TEST_MOTO_SERVER is set but moto_server does not start"),
    );
    wait_port(s3_port).await;
    let http = reqwest::Client::new();
    let s3 = format!("http://127.0.0.1:{s3_port}");
    let r = http.put(format!("{s3}/hush-att")).send().await.unwrap();
    assert_eq!(r.status(), 200, "creating the bucket");

    let pg = PgSchema::create(&env.pg).await;
    let prefix = unique("t");
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for i in 0..2 {
        let port = free_port();
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path().join(format!("n{i}")))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--database", &pg.node_url()])
            .args(["--nats", &env.nats, "--nats-subject-prefix", &prefix])
            .args(["--attachments", "s3://hush-att/cluster-files"])
            .args(["--rate-limit-ip", "0", "--rate-limit-account", "0"])
            .env("AWS_ENDPOINT", &s3)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        nodes.push((Proc(child), base));
    }
    for (_, b) in &nodes {
        wait_health(&http, b, 200).await;
    }
    let (a, b) = (&nodes[0].1, &nodes[1].1);
    let alice = register_at(&http, a, "alice", 1).await.devices[0]
        .token
        .clone();
    let bob = register_at(&http, b, "bob", 2).await.devices[0]
        .token
        .clone();
    // Over 2 MiB, so that one upload is stored as several parts.
    let data: Vec<u8> = (0..2_600_000u32).map(|i| (i % 253) as u8).collect();
    let created: CreateAttachmentResponse = http
        .post(format!("{a}/v1/attachments"))
        .bearer_auth(&alice)
        .json(&CreateAttachmentRequest {
            size: data.len() as u64,
        })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = format!("/v1/attachments/{}", created.id);
    for (node, range) in [(a, 0..10_000), (b, 10_000..data.len())] {
        let r = http
            .patch(format!("{node}{path}"))
            .bearer_auth(&alice)
            .header("upload-offset", range.start.to_string())
            .body(data[range].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    for node in [a, b] {
        let got = http
            .get(format!("{node}{path}"))
            .bearer_auth(&bob)
            .header("range", "bytes=9000-10999")
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 206);
        assert_eq!(got.bytes().await.unwrap().as_ref(), &data[9000..11000]);
    }
    let whole = http
        .get(format!("{b}{path}"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &data[..]);
    // The parts are objects in the bucket, under the prefix.
    let listing = http
        .get(format!(
            "{s3}/hush-att?list-type=2&prefix=cluster-files/blobs/"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listing.contains(&format!("cluster-files/blobs/{}/part-", created.id)),
        "{listing}"
    );
    // The second upload was stored 1 MiB at a time as it arrived.
    assert!(
        listing.contains(&format!(
            "cluster-files/blobs/{}/part-{:020}",
            created.id,
            10_000 + (1 << 20)
        )),
        "{listing}"
    );
}

fn addr_of(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

/// Receives for one device until it holds every payload in `want`,
/// reconnecting to the next node in `bases` whenever its connection drops.
/// Returns payload -> the seqs it arrived under, and how many arrivals there
/// were in all (redeliveries of a seq whose ack was lost included).
async fn receive_all(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_and_duplicates_nothing() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let pg = PgSchema::create(&env.pg).await;
    let prefix = unique("t");
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("shared-blobs");
    let mut procs = Vec::new();
    let mut bases = Vec::new();
    for i in 0..3 {
        let (p, base) = start_node(
            &pg,
            &env.nats,
            &prefix,
            &blobs,
            &dir.path().join(format!("n{i}")),
        );
        procs.push(Some(p));
        bases.push(base);
    }
    let http = reqwest::Client::new();
    for b in &bases {
        wait_health(&http, b, 200).await;
    }
    // Receivers start on the victim (node 0) and move to node 1, then 2.
    let receivers = ["rx-a", "rx-b", "rx-c"];
    let mut rx_tokens = Vec::new();
    for (i, r) in receivers.iter().enumerate() {
        rx_tokens.push(
            register_at(&http, &bases[0], r, 10 + i as u64)
                .await
                .devices[0]
                .token
                .clone(),
        );
    }
    let mut tx_tokens = Vec::new();
    for i in 0..3 {
        let name = format!("tx-{i}");
        tx_tokens.push(
            register_at(&http, &bases[1], &name, 20 + i).await.devices[0]
                .token
                .clone(),
        );
    }
    let acked = Arc::new(tokio::sync::Mutex::new(HashSet::<Vec<u8>>::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut rx_tasks = Vec::new();
    for t in &rx_tokens {
        rx_tasks.push(tokio::spawn(receive_all(
            bases.clone(),
            t.clone(),
            acked.clone(),
            done.clone(),
        )));
    }
    // Three senders, one per node, each sending to all three receivers.
    let per_sender = 120;
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tx_tasks = Vec::new();
    for (i, token) in tx_tokens.iter().enumerate() {
        let (http, token, bases, acked, sent) = (
            http.clone(),
            token.clone(),
            bases.clone(),
            acked.clone(),
            sent.clone(),
        );
        tx_tasks.push(tokio::spawn(async move {
            let mut node = i;
            for m in 0..per_sender {
                for attempt in 0.. {
                    let payload = format!("from {i} #{m} try {attempt}").into_bytes();
                    let req = message(&[("rx-a", 1), ("rx-b", 1), ("rx-c", 1)], &payload);
                    let r = http
                        .post(format!("{}/v1/messages", bases[node % 3]))
                        .bearer_auth(&token)
                        .json(&req)
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            acked.lock().await.insert(payload.clone());
                            sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                        // The node died under this request: whether it was
                        // stored is unknown, so it is not counted as acked.
                        // The client retries through another node; the
                        // retry is told apart here by its payload (a real
                        // client dedupes the pair by message id).
                        _ => node += 1,
                    }
                }
            }
        }));
    }
    // Kill node 0 with SIGKILL a third of the way through.
    while sent.load(std::sync::atomic::Ordering::Relaxed) < per_sender {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut victim = procs[0].take().unwrap();
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    for t in tx_tasks {
        t.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let acked_now = acked.lock().await.clone();
    assert_eq!(acked_now.len(), 3 * per_sender);
    for (i, t) in rx_tasks.into_iter().enumerate() {
        let (got, arrivals) = t.await.unwrap();
        for p in &acked_now {
            let seqs = got.get(p).unwrap_or_else(|| {
                panic!("receiver {i} never got {:?}", String::from_utf8_lossy(p))
            });
            assert_eq!(seqs.len(), 1, "stored twice for receiver {i}: {seqs:?}");
        }
        for (p, seqs) in &got {
            assert_eq!(
                seqs.len(),
                1,
                "{:?} under two seqs",
                String::from_utf8_lossy(p)
            );
        }
        eprintln!(
            "receiver {i}: {} messages, {} arrivals ({} redelivered after a lost ack)",
            got.len(),
            arrivals,
            arrivals - got.len()
        );
    }
    drop(procs);
}

// --- a NATS outage ----------------------------------------------------------

fn nats_server_binary() -> PathBuf {
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

fn start_nats(port: u16) -> Proc {
    Proc(
        Command::new(nats_server_binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn wait_port(port: u16) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_delays_delivery_but_loses_nothing() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let nats = start_nats(port);
    wait_port(port).await;
    let url = format!("nats://127.0.0.1:{port}");
    let c = three_nodes(&env, &url).await;
    let [a, b, _] = [&c.nodes[0], &c.nodes[1], &c.nodes[2]];
    let alice = register_at(&c.http, &a.url(), "alice", 1).await.devices[0]
        .token
        .clone();
    let bob = register_at(&c.http, &b.url(), "bob", 2).await.devices[0]
        .token
        .clone();
    let mut bob_ws = connected(b.addr, &bob).await;
    let r = send(&c.http, &a.url(), &alice, message(&[("bob", 1)], b"before")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(envelope(&mut bob_ws).await.payload, b"before");

    drop(nats);
    wait_health(&c.http, &a.url(), 503).await;
    wait_health(&c.http, &b.url(), 503).await;
    // Sends still succeed: PostgreSQL has them.
    let mut want = Vec::new();
    for i in 0..20 {
        let body = format!("during {i}").into_bytes();
        let r = send(&c.http, &a.url(), &alice, message(&[("bob", 1)], &body)).await;
        assert_eq!(r.status(), 200);
        want.push(body);
    }
    let nats = start_nats(port);
    wait_port(port).await;
    wait_health(&c.http, &a.url(), 200).await;
    wait_health(&c.http, &b.url(), 200).await;
    // Late but complete, in order, on the connection that stayed open.
    for w in &want {
        assert_eq!(&envelope(&mut bob_ws).await.payload, w);
    }
    let r = send(&c.http, &a.url(), &alice, message(&[("bob", 1)], b"after")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(envelope(&mut bob_ws).await.payload, b"after");
    drop(nats);
}

#[tokio::test]
async fn a_node_refuses_to_start_without_its_cluster_services() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .args(args)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(!out.status.success(), "started with {args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A cluster shares PostgreSQL, not a node's own SQLite file.
    let err = run(&["--nats", "nats://127.0.0.1:4222"]);
    assert!(err.contains("postgres://"), "{err}");
    let err = run(&["--nats", "http://127.0.0.1:4222"]);
    assert!(err.contains("nats://"), "{err}");
    let err = run(&["--nats", "nats://127.0.0.1:4222,127.0.0.1:4223"]);
    assert!(err.contains("comma-separated"), "{err}");
    // NATS that does not answer: the node says so instead of serving alone.
    if let Some(env) = env() {
        let pg = PgSchema::create(&env.pg).await;
        let err = run(&[
            "--database",
            &pg.node_url(),
            "--nats",
            &format!(
                "nats://127.0.0.1:{},nats://127.0.0.1:{}",
                free_port(),
                free_port()
            ),
        ]);
        assert!(err.contains("cannot connect to NATS"), "{err}");
    }
}

/// Two nodes publish key-directory epochs at the same time (registrations
/// on both, and explicit publishes racing): the lease lets one writer in at a
/// time, so the directory stays one consistent append-only chain that every
/// node serves alike, with each account published exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_to_publish_keep_one_consistent_directory() {
    use hush_proto::kt::{SignedRoot, verify_history, verify_lookup};
    use hush_wire::kt::{KtAuditResponse, KtConfigResponse, KtProofResponse, KtRootsResponse};

    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let c = three_nodes(&env, &env.nats).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);

    // 24 registrations, alternating nodes, all at once.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24u64 {
        let http = c.http.clone();
        let url = if i % 2 == 0 { a.url() } else { b.url() };
        tasks.spawn(async move { register_at(&http, &url, &format!("user{i}"), 100 + i).await });
    }
    // Meanwhile both directories try to publish as fast as they can.
    let (ka, kb) = (a.state.kt.clone(), b.state.kt.clone());
    let racer = |kt: Arc<hush_server::kt::KeyDirectory>| async move {
        for _ in 0..20 {
            kt.publish_pending().await.unwrap();
            tokio::task::yield_now().await;
        }
    };
    let (ra, rb) = tokio::join!(racer(ka), racer(kb));
    let _ = (ra, rb);
    let mut users = Vec::new();
    while let Some(u) = tasks.join_next().await {
        users.push(u.unwrap());
    }

    let get = |url: String| {
        let http = c.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let cfg: KtConfigResponse = get(format!("{}/v1/kt/config", a.url()))
        .await
        .json()
        .await
        .unwrap();
    let cfg_b: KtConfigResponse = get(format!("{}/v1/kt/config", b.url()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cfg, cfg_b, "every node signs with the same key");
    let cfg = common::kt_config(&c.http, &a.url()).await;
    let root = common::signed_root;
    let ra: KtRootsResponse = get(format!("{}/v1/kt/roots?from=0", a.url()))
        .await
        .json()
        .await
        .unwrap();
    let rb: KtRootsResponse = get(format!("{}/v1/kt/roots?from=0", b.url()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ra, rb, "both nodes serve the same chain");
    let chain: Vec<SignedRoot> = ra.roots.iter().map(root).collect();
    assert!(chain.len() >= 2);
    for (i, r) in chain.iter().enumerate() {
        assert_eq!(r.epoch, i as u64, "epochs are consecutive");
        r.verify(&cfg.signing_key).unwrap();
    }
    // Every step is append-only.
    for w in chain.windows(2) {
        let audit: KtAuditResponse = get(format!(
            "{}/v1/kt/audit?from={}&to={}",
            b.url(),
            w[0].epoch,
            w[1].epoch
        ))
        .await
        .json()
        .await
        .unwrap();
        common::audit_verify(&[&w[0], &w[1]], &audit.proof.0)
            .await
            .unwrap();
    }
    // Every account is in it once, with its own keys, whichever node answers.
    for (i, u) in users.iter().enumerate() {
        let node = if i % 2 == 0 { b } else { a };
        let token = &u.devices[0].token;
        let name = hush_proto::Username::new(&u.name).unwrap();
        let p: KtProofResponse = c
            .http
            .get(format!("{}/v1/kt/lookup/{}", node.url(), u.name))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let v = verify_lookup(&cfg, &root(&p.root), &name, &p.proof.0).unwrap();
        assert_eq!(v.version, 1);
        assert_eq!(v.value.account_key, Some(u.account.public()));
        let h: KtProofResponse = c
            .http
            .get(format!("{}/v1/kt/history/{}", node.url(), u.name))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let versions = verify_history(&cfg, &root(&h.root), &name, &h.proof.0).unwrap();
        assert_eq!(versions.len(), 1, "{} was published once", u.name);
    }
}
