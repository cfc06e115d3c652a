//! The real `hush-server` binary holds a bounded amount of memory for an
//! attachment, whatever its size: uploads and downloads are streamed.
//! Measured as the process's peak resident set (`VmHWM`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use hush_wire::api::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_hush-server");
const MIB: u64 = 1 << 20;
/// The attachment: several times the bound below.
const BLOB: u64 = 96 * MIB;
/// How much the server's peak memory may grow while it moves the blob.
const BOUND: u64 = 24 * MIB;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Peak resident set of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// The byte at `i` of the test blob.
fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(31) >> 3) as u8
}

/// Reads a response head; returns the status and the Content-Length.
async fn read_head(c: &mut TcpStream) -> (u16, u64) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut b).await.unwrap(), 1, "connection closed early");
        head.push(b[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let status = text[9..12].parse().unwrap();
    let len = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    (status, len)
}

/// Uploads `size` bytes of the test blob in one request, as it is produced.
async fn upload(addr: SocketAddr, token: &str, id: &str, size: u64) {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PATCH /v1/attachments/{id} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         upload-offset: 0\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let mut chunk = vec![0u8; MIB as usize];
    let mut at = 0u64;
    while at < size {
        let n = MIB.min(size - at) as usize;
        for (j, b) in chunk[..n].iter_mut().enumerate() {
            *b = byte_at(at + j as u64);
        }
        c.write_all(&chunk[..n]).await.unwrap();
        at += n as u64;
    }
    let (status, _) = read_head(&mut c).await;
    assert_eq!(status, 204);
}

/// Downloads the blob and checks every byte.
async fn download(addr: SocketAddr, token: &str, id: &str, size: u64) {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /v1/attachments/{id} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         connection: close\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let (status, len) = read_head(&mut c).await;
    assert_eq!((status, len), (200, size));
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = 0u64;
    loop {
        let n = c.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        for (j, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, byte_at(at + j as u64), "byte {}", at + j as u64);
        }
        at += n as u64;
        // A slow reader: the server must not read ahead of it.
        if at % (8 * MIB) < n as u64 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(at, size);
}

async fn create(http: &reqwest::Client, base: &str, token: &str, size: u64) -> String {
    let resp = http
        .post(format!("{base}/v1/attachments"))
        .bearer_auth(token)
        .json(&CreateAttachmentRequest { size })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<CreateAttachmentResponse>().await.unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_attachment_moves_through_bounded_server_memory() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--listen")
        .arg(addr.to_string())
        .args(["--max-attachment-size", "512MiB"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _server = Server(child);
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alice = register_at(&http, &base, "alice", 1).await;
    let token = alice.devices[0].token.clone();

    // Warm up every path with a small attachment first.
    let small = create(&http, &base, &token, 4 * MIB).await;
    upload(addr, &token, &small, 4 * MIB).await;
    download(addr, &token, &small, 4 * MIB).await;
    let before = peak_rss(pid);

    let id = create(&http, &base, &token, BLOB).await;
    upload(addr, &token, &id, BLOB).await;
    let after_upload = peak_rss(pid);
    download(addr, &token, &id, BLOB).await;
    let after_download = peak_rss(pid);
    assert!(
        after_upload <= before + BOUND,
        "uploading {} MiB raised the server's peak memory by {} MiB (bound {} MiB)",
        BLOB / MIB,
        (after_upload - before) / MIB,
        BOUND / MIB
    );
    assert!(
        after_download <= before + BOUND,
        "downloading {} MiB raised the server's peak memory by {} MiB (bound {} MiB)",
        BLOB / MIB,
        (after_download - before) / MIB,
        BOUND / MIB
    );
}
