//! The real `hush-server` binary: durability across `kill -9`, TLS, admin.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use hush_wire::Bytes;
use hush_wire::api::*;

const BIN: &str = env!("CARGO_BIN_EXE_hush-server");

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Longest a test waits for one answer of the server: a server that hangs
/// fails the test with the step it hung at instead of stalling the run.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// A `hush-server` process, killed when the test ends, passed or failed.
struct Server(Child);

impl Server {
    /// Kills the process with SIGKILL and waits for it to die.
    fn kill_9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data: &Path, addr: SocketAddr, extra: &[&str]) -> Server {
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(addr.to_string())
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Server(child)
}

/// An HTTP client whose every request gives up after [`ANSWER_WITHIN`].
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(ANSWER_WITHIN)
        .build()
        .unwrap()
}

async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        let asked = http
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if let Ok(r) = asked
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server at {base} never became healthy");
}

/// `step` within [`ANSWER_WITHIN`], or a failure naming it.
async fn within<T>(what: &str, step: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(ANSWER_WITHIN, step)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {ANSWER_WITHIN:?}"))
}

async fn register(http: &reqwest::Client, base: &str, name: &str, seed: u64) -> String {
    register_at(http, base, name, seed).await.devices[0]
        .token
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let http = http_client();
    // 300 requests of one account at once: more than its connection quota.
    let mut server = start(dir.path(), addr, &["--max-account-connections", "0"]);
    wait_healthy(&http, &base).await;
    let alice = register(&http, &base, "alice", 1).await;
    let bob = register(&http, &base, "bob", 2).await;

    // Concurrent sends, each acknowledged; then the process dies hard.
    let mut tasks = Vec::new();
    for i in 0..300u32 {
        let http = http.clone();
        let base = base.clone();
        let alice = alice.clone();
        tasks.push(tokio::spawn(async move {
            let resp = http
                .post(format!("{base}/v1/messages"))
                .bearer_auth(&alice)
                .json(&SendRequest {
                    recipients: vec![hush_wire::DeviceAddress {
                        username: "bob".into(),
                        device_id: 1,
                    }],
                    payload: Bytes(i.to_be_bytes().to_vec()),
                    ephemeral: false,
                    commit: None,
                    franking_commitment: None,
                })
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            i
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap());
    }
    server.kill_9();

    let mut server = start(dir.path(), addr, &[]);
    wait_healthy(&http, &base).await;
    let mut ws = within("bob's socket after the restart", connect_ws(addr, &bob)).await;
    let got = within("bob's queue after the restart", ws.drain()).await;
    let mut payloads: Vec<u32> = got
        .iter()
        .map(|e| u32::from_be_bytes(e.payload[..4].try_into().unwrap()))
        .collect();
    payloads.sort();
    acked.sort();
    assert_eq!(payloads, acked, "every acknowledged message is there, once");
    server.kill_9();
}

#[tokio::test]
async fn serves_tls_with_a_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let addr = free_addr();
    let _server = start(
        &dir.path().join("data"),
        addr,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap()])
        .resolve("localhost", addr)
        .timeout(ANSWER_WITHIN)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", addr.port());
    wait_healthy(&http, &base).await;
    // Plain HTTP on the TLS port does not work.
    let plain = http_client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // The fingerprint command reads the given certificate.
    let out = Command::new(BIN)
        .args(["fingerprint", "--tls-cert", cert.to_str().unwrap()])
        .args(["--tls-key", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let fp = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        fp.trim(),
        hush_server::tls::fingerprint_der(certified.cert.der())
    );
}

#[tokio::test]
async fn admin_commands_act_on_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let http = http_client();
    let _server = start(dir.path(), addr, &[]);
    wait_healthy(&http, &base).await;
    let alice = register(&http, &base, "alice", 1).await;
    register(&http, &base, "bob", 2).await;

    let admin = |args: &[&str]| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("admin")
            .args(args)
            .output()
            .unwrap()
    };
    let out = admin(&["accounts", "list", "--json"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["username"], "alice");
    assert_eq!(lines[0]["state"], "active");

    assert!(admin(&["accounts", "suspend", "alice"]).status.success());
    let resp = http
        .get(format!("{base}/v1/key-packages/count"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(admin(&["accounts", "unsuspend", "alice"]).status.success());
    assert!(admin(&["accounts", "delete", "bob"]).status.success());
    let out = admin(&["accounts", "delete", "bob"]);
    assert!(!out.status.success());
    assert!(!out.stderr.is_empty());
    let out = admin(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["accounts"], 1);
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let out = Command::new(BIN)
        .args(["--database", "mysql://nope", "admin", "stats"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--database must be"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hush.toml");
    std::fs::write(&cfg, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "admin", "stats"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("unknown field")
    );
}

/// Runs `hush-server admin accounts ACTION bob` against a running server
/// while bob's device holds a WebSocket open: the socket must close as
/// revoked within `within_ms`, and bob's token is then answered `refused`.
async fn admin_action_closes_bobs_socket(action: &str, within_ms: u64, refused: u16) {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let http = http_client();
    let _server = start(dir.path(), addr, &[]);
    wait_healthy(&http, &base).await;
    let bob = register(&http, &base, "bob", 2).await;
    let mut ws = connect_ws(addr, &bob).await;
    assert!(ws.drain().await.is_empty());
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["admin", "accounts", action, "bob"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    ws.expect_closed_with(hush_server::hub::CLOSE_REVOKED, within_ms)
        .await;
    let answer = http
        .get(format!("{base}/v1/accounts/bob"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), refused);
}

#[tokio::test]
async fn an_operator_suspension_closes_the_accounts_open_socket() {
    admin_action_closes_bobs_socket("suspend", 3000, 403).await;
}

#[tokio::test]
async fn an_operator_deletion_closes_the_accounts_open_socket() {
    // The socket is already closed when the command returns.
    admin_action_closes_bobs_socket("delete", 1000, 401).await;
}

#[tokio::test]
async fn metrics_are_served_on_the_operator_listener_not_the_public_one() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, operator) = (free_addr(), free_addr());
    let base = format!("http://{addr}");
    let http = http_client();
    let _server = start(
        dir.path(),
        addr,
        &["--metrics-listen", &operator.to_string()],
    );
    wait_healthy(&http, &base).await;
    let public = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    let private = http
        .get(format!("http://{operator}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), 200);
    assert!(private.text().await.unwrap().contains("hush_accounts 0"));
}
