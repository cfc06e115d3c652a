//! A real server on a loopback port, and users with real keys.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod channel;
pub mod cluster;
pub mod pg;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};

use futures_util::{SinkExt, StreamExt};
use hush_proto::{AccountKey, DeviceCertificate, DeviceId, DeviceSigningKey, Suite, Username};
use hush_server::app::{AppState, Settings};
use hush_server::blobs::Blobs;
use hush_server::server::{ServerHandle, spawn_local};
use hush_server::store::sqlite::SqliteStore;
use hush_wire::api::*;
use hush_wire::ws::{ClientFrame, ServerFrame};
use hush_wire::{ApiError, Bytes, DeviceAddress};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    pub http: reqwest::Client,
    handle: Option<ServerHandle>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_settings(Settings::default()).await
    }

    pub async fn with_settings(settings: Settings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("hush.db")).unwrap();
        let blobs = Blobs::local(&dir.path().join("blobs")).unwrap();
        let state = AppState::new(Arc::new(store), blobs, settings);
        let (addr, handle) = spawn_local(state.clone()).await.unwrap();
        Self {
            addr,
            state,
            http: reqwest::Client::new(),
            handle: Some(handle),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The server's data directory (its SQLite database).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.stop().await;
        }
    }
}

pub struct User {
    pub name: String,
    pub account: AccountKey,
    pub devices: Vec<UserDevice>,
}

pub struct UserDevice {
    pub id: u32,
    pub key: DeviceSigningKey,
    pub cert: DeviceCertificate,
    pub token: String,
}

/// Every test device's signing key seed by bearer token: a test's WebSocket
/// opens the sealed envelopes of the device it connects as, as the client
/// does (see `hush_proto::sealed`).
static DEVICE_SEEDS: LazyLock<Mutex<HashMap<String, [u8; 32]>>> = LazyLock::new(Default::default);

fn remember(token: &str, key: &DeviceSigningKey) {
    DEVICE_SEEDS
        .lock()
        .unwrap()
        .insert(token.to_owned(), *key.to_seed());
}

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub fn new_device(
    account: &AccountKey,
    name: &str,
    id: u32,
    seed: u64,
) -> (DeviceSigningKey, DeviceCertificate) {
    let key = DeviceSigningKey::generate(&mut rng(seed)).unwrap();
    let cert = DeviceCertificate::issue(
        account,
        &Username::new(name).unwrap(),
        DeviceId(id),
        &key,
        now_ms(),
    )
    .unwrap();
    (key, cert)
}

pub async fn expect_error(resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status().as_u16(), status, "status");
    let body: serde_json::Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    // The body is exactly the documented shape.
    let _: ApiError = serde_json::from_value(body).unwrap();
}

/// A fresh nonce for a signed device request.
pub fn fresh_nonce() -> Bytes {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut n = [0u8; DEVICE_REQUEST_NONCE_LEN];
    n[..8].copy_from_slice(
        &NEXT
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_be_bytes(),
    );
    n[8..].copy_from_slice(&(now_ms() ^ u64::from(std::process::id())).to_be_bytes());
    Bytes(n.to_vec())
}

/// A request to add device `id` with `cert` to `name`, signed by `signer`.
pub fn add_request(
    signer: &AccountKey,
    name: &str,
    id: u32,
    cert: &DeviceCertificate,
    ts: u64,
) -> AddDeviceRequest {
    let nonce = fresh_nonce();
    let cert = cert.encode();
    let msg = device_request_message(
        "add",
        name,
        id,
        ts,
        nonce.as_slice(),
        &hush_server::auth::certificate_hash(&cert),
    );
    AddDeviceRequest {
        device: NewDeviceBody {
            device_id: id,
            certificate: Bytes(cert),
        },
        timestamp_ms: ts,
        nonce,
        signature: Bytes(signer.sign(&msg).unwrap().to_vec()),
        token_hash: None,
    }
}

/// A request to remove device `id` (whose certificate is `cert`) from
/// `name`, signed by `signer`.
pub fn remove_request(
    signer: &AccountKey,
    name: &str,
    id: u32,
    cert: &DeviceCertificate,
    ts: u64,
) -> RemoveDeviceRequest {
    let nonce = fresh_nonce();
    let msg = device_request_message(
        "remove",
        name,
        id,
        ts,
        nonce.as_slice(),
        &hush_server::auth::certificate_hash(&cert.encode()),
    );
    RemoveDeviceRequest {
        timestamp_ms: ts,
        nonce,
        signature: Bytes(signer.sign(&msg).unwrap().to_vec()),
    }
}

/// Registers `name` with real keys on the server at `base`.
pub async fn register_at(http: &reqwest::Client, base: &str, name: &str, seed: u64) -> User {
    let account = AccountKey::generate(&mut rng(seed)).unwrap();
    let (key, cert) = new_device(&account, name, 1, seed + 1000);
    let resp = http
        .post(format!("{base}/v1/accounts"))
        .json(&RegisterRequest {
            username: name.into(),
            account_key: Bytes(account.public().as_bytes().to_vec()),
            device: NewDeviceBody {
                device_id: 1,
                certificate: Bytes(cert.encode()),
            },
        })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let token = resp.json::<RegisterResponse>().await.unwrap().token;
    remember(&token, &key);
    User {
        name: name.into(),
        account,
        devices: vec![UserDevice {
            id: 1,
            key,
            cert,
            token,
        }],
    }
}

impl TestServer {
    pub async fn register(&self, name: &str, seed: u64) -> User {
        register_at(&self.http, &format!("http://{}", self.addr), name, seed).await
    }

    pub async fn add_device(&self, user: &mut User, id: u32, seed: u64) {
        let (key, cert) = new_device(&user.account, &user.name, id, seed);
        let resp = self
            .http
            .post(self.url(&format!("/v1/accounts/{}/devices", user.name)))
            .json(&add_request(&user.account, &user.name, id, &cert, now_ms()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let token = resp.json::<RegisterResponse>().await.unwrap().token;
        remember(&token, &key);
        user.devices.push(UserDevice {
            id,
            key,
            cert,
            token,
        });
    }

    pub async fn send(&self, token: &str, to: &[(&str, u32)], payload: &[u8]) -> reqwest::Response {
        self.send_req(token, send_request(to, payload)).await
    }

    pub async fn send_req(&self, token: &str, req: SendRequest) -> reqwest::Response {
        self.http
            .post(self.url("/v1/messages"))
            .bearer_auth(token)
            .json(&req)
            .send()
            .await
            .unwrap()
    }

    pub async fn connect(&self, token: &str) -> Ws {
        connect_ws(self.addr, token).await
    }

    /// `GET path` as the device with `token`.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `POST path` without a body as the device with `token`.
    pub async fn post_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub fn key_package(&self, device: &UserDevice, suite: Suite, last_resort: bool) -> Vec<u8> {
        let d = hush_proto::Device::new(device.cert.clone(), &device.key).unwrap();
        d.generate_key_package(
            suite,
            last_resort,
            hush_proto::Timestamp::from_millis(now_ms()),
        )
        .unwrap()
        .message
    }
}

/// An ordinary (stored, non-commit) send of `payload` to `to`.
pub fn send_request(to: &[(&str, u32)], payload: &[u8]) -> SendRequest {
    SendRequest {
        recipients: to
            .iter()
            .map(|(u, d)| DeviceAddress {
                username: (*u).into(),
                device_id: *d,
            })
            .collect(),
        payload: Bytes(payload.to_vec()),
        ephemeral: false,
        commit: None,
        franking_commitment: None,
    }
}

/// Opens the device WebSocket of the server at `addr`.
pub async fn connect_ws(addr: SocketAddr, token: &str) -> Ws {
    let mut req = format!("ws://{addr}/v1/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let connecting = tokio_tungstenite::connect_async(req);
    let (ws, _) = tokio::time::timeout(std::time::Duration::from_secs(60), connecting)
        .await
        .unwrap_or_else(|_| panic!("no WebSocket answer from {addr} within 60 s"))
        .unwrap();
    Ws {
        ws,
        open: open_key_for(token),
        pending: Default::default(),
    }
}

/// The sealed-envelope key of the test device with `token`, if known.
pub fn open_key_for(token: &str) -> Option<hush_proto::sealed::OpenKey> {
    DEVICE_SEEDS.lock().unwrap().get(token).map(|s| {
        hush_proto::sealed::OpenKey::of(&DeviceSigningKey::from_seed(*s).unwrap()).unwrap()
    })
}

/// The MLS message of an envelope as the store holds it (sealed to the
/// device: header in `relay_tag`, body in `payload`), opened with `device`'s
/// key as the device would.
pub fn open_stored(device: &UserDevice, env: &hush_server::store::StoredEnvelope) -> Vec<u8> {
    let header = env
        .relay_tag
        .as_deref()
        .expect("a sealed envelope has a header");
    let sealed = hush_proto::sealed::sealed_envelope(header, &env.payload);
    let key = hush_proto::sealed::OpenKey::of(&device.key).unwrap();
    hush_proto::sealed::open_envelope(&key, &sealed)
        .unwrap()
        .message
}

pub struct Ws {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The device's key for sealed envelopes, when the test knows it.
    pub open: Option<hush_proto::sealed::OpenKey>,
    /// The rest of a batch of envelopes, given out one by one.
    pub pending: std::collections::VecDeque<ServerFrame>,
}

impl Ws {
    /// The next frame, or None after `ms` milliseconds of silence. The
    /// envelopes of a batch come one by one, as envelope frames.
    pub async fn next_frame(&mut self, ms: u64) -> Option<ServerFrame> {
        if let Some(f) = self.pending.pop_front() {
            return Some(f);
        }
        loop {
            let msg = tokio::time::timeout(std::time::Duration::from_millis(ms), self.ws.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Binary(b) => return Some(self.split(ServerFrame::decode(&b).unwrap())),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// A frame opened; a batch's envelopes one by one: the first now, the
    /// rest left in `pending`.
    pub fn split(&mut self, frame: ServerFrame) -> ServerFrame {
        let ServerFrame::Envelopes(batch) = frame else {
            return self.unseal(frame);
        };
        let mut opened: std::collections::VecDeque<ServerFrame> = batch
            .into_iter()
            .map(|e| self.unseal(ServerFrame::Envelope(e)))
            .collect();
        let first = opened.pop_front().unwrap();
        self.pending.extend(opened);
        first
    }

    /// A sealed envelope opened, as the device would; anything else as is.
    pub fn unseal(&self, frame: ServerFrame) -> ServerFrame {
        match (frame, &self.open) {
            (ServerFrame::Envelope(e), Some(key)) if hush_proto::sealed::is_sealed(&e.payload) => {
                let opened = hush_proto::sealed::open_envelope(key, &e.payload).unwrap();
                ServerFrame::Envelope(hush_wire::ws::Envelope {
                    payload: opened.message,
                    relay_tag: opened.relay_tag,
                    ..e
                })
            }
            (frame, _) => frame,
        }
    }

    /// Envelopes until `Drained` (or silence).
    pub async fn drain(&mut self) -> Vec<hush_wire::ws::Envelope> {
        let mut out = Vec::new();
        while let Some(f) = self.next_frame(3000).await {
            match f {
                ServerFrame::Envelope(e) => out.push(e),
                ServerFrame::Drained => break,
                ServerFrame::Envelopes(_) => panic!("next_frame splits batches"),
                ServerFrame::Ephemeral(_)
                | ServerFrame::Sent { .. }
                | ServerFrame::Refused { .. } => {}
            }
        }
        out
    }

    /// Sends `to` the payload on this socket as send `id`.
    pub async fn send_frame(&mut self, id: u64, to: &[(&str, u32)], payload: &[u8]) {
        let request = send_request(to, payload);
        self.send_raw(&ClientFrame::Send { id, request }.encode())
            .await;
    }

    /// Sends `bytes` as one binary frame.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .unwrap();
    }

    pub async fn ack(&mut self, seqs: &[u64]) {
        self.ws
            .send(Message::Binary(
                ClientFrame::Ack(seqs.to_vec()).encode().into(),
            ))
            .await
            .unwrap();
    }
}

/// What a connection sees next: a frame, its close (with the code), or
/// nothing for `ms` milliseconds.
#[derive(Debug)]
pub enum Seen {
    Frame(ServerFrame),
    Closed(Option<u16>),
    Silent,
}

impl Ws {
    pub async fn seen(&mut self, ms: u64) -> Seen {
        loop {
            let wait = std::time::Duration::from_millis(ms);
            let msg = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return Seen::Silent,
                Ok(None) | Ok(Some(Err(_))) => return Seen::Closed(None),
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Binary(b) => return Seen::Frame(ServerFrame::decode(&b).unwrap()),
                Message::Close(f) => return Seen::Closed(f.map(|f| u16::from(f.code))),
                _ => continue,
            }
        }
    }

    /// Asserts that the next thing on the socket is its close with `code`
    /// (within `ms`), with no frame before it.
    pub async fn expect_closed_with(&mut self, code: u16, ms: u64) {
        match self.seen(ms).await {
            Seen::Closed(c) => assert_eq!(c, Some(code), "close code"),
            other => panic!("expected the socket to close with {code}, got {other:?}"),
        }
    }
}

/// A signed key-directory root from its wire form.
pub fn signed_root(r: &hush_wire::kt::KtRoot) -> hush_proto::kt::SignedRoot {
    hush_proto::kt::SignedRoot {
        epoch: r.epoch,
        root_hash: r.root_hash.as_slice().try_into().unwrap(),
        signature: r.signature.as_slice().try_into().unwrap(),
    }
}

/// The server's key-directory keys, as a client pins them.
pub async fn kt_config(http: &reqwest::Client, base: &str) -> hush_proto::kt::KtConfig {
    let c: hush_wire::kt::KtConfigResponse = http
        .get(format!("{base}/v1/kt/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    hush_proto::kt::KtConfig {
        signing_key: c.signing_key.as_slice().try_into().unwrap(),
        vrf_public_key: c.vrf_public_key.0,
    }
}

/// akd's auditor over consecutive roots and an append-only proof (what
/// hush-client runs).
pub async fn audit_verify(
    span: &[&hush_proto::kt::SignedRoot],
    proof: &[u8],
) -> Result<(), String> {
    use protobuf::Message;
    let msg = akd::proto::specs::types::AppendOnlyProof::parse_from_bytes(proof)
        .map_err(|e| e.to_string())?;
    let proof = akd::AppendOnlyProof::try_from(&msg).map_err(|e| e.to_string())?;
    let hashes: Vec<[u8; 32]> = span.iter().map(|r| r.root_hash).collect();
    akd::auditor::audit_verify::<hush_proto::kt::KtConfiguration>(hashes, proof)
        .await
        .map_err(|e| e.to_string())
}
