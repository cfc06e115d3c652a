//! One account cannot make the server store or hold without bound: queue
//! bytes per device, bytes per send, KeyPackages per device, attachment
//! bytes per account, connections per account, and slow bodies are all
//! refused with their own code, and a refusal changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use hush_proto::Suite;
use hush_server::app::Settings;
use hush_server::quota::QuotaSettings;
use hush_server::store::DeviceKey;
use hush_wire::Bytes;
use hush_wire::api::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const METRICS_TOKEN: &str = "quota-test-metrics-token";

fn with_quotas(quotas: QuotaSettings) -> Settings {
    Settings {
        quotas,
        metrics_token: Some(hush_server::app::MetricsToken(METRICS_TOKEN.into())),
        ..Settings::default()
    }
}

async fn queued(s: &TestServer, who: &[(&str, u32)]) -> Vec<u64> {
    let keys: Vec<DeviceKey> = who.iter().map(|(u, d)| DeviceKey::new(u, *d)).collect();
    s.state.store.queue_bytes(&keys).await.unwrap()
}

#[tokio::test]
async fn a_send_past_a_recipients_queue_quota_is_refused_and_queues_nothing() {
    let s = TestServer::with_settings(with_quotas(QuotaSettings {
        max_queue_bytes: 64 * 1024,
        ..QuotaSettings::default()
    }))
    .await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    s.register("carol", 3).await;
    let token = &alice.devices[0].token;
    let both = [("bob", 1), ("carol", 1)];
    let payload = vec![7u8; 20 * 1024];
    for _ in 0..3 {
        let resp = s.send(token, &both, &payload).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    let before = queued(&s, &both).await;
    // Three 20 KiB messages each, sealed (a few dozen bytes more apiece).
    assert_eq!(before[0], before[1]);
    assert!((60 * 1024..61 * 1024).contains(&before[0]), "{before:?}");
    let stats = s.state.store.stats().await.unwrap();

    // The attack: keep sending to a device that does not fetch.
    expect_error(s.send(token, &both, &payload).await, 429, "queue_full").await;
    // Even a recipient with room gets nothing from a refused send.
    expect_error(
        s.send(token, &[("carol", 1), ("bob", 1)], &payload).await,
        429,
        "queue_full",
    )
    .await;
    assert_eq!(queued(&s, &both).await, before);
    assert_eq!(s.state.store.stats().await.unwrap(), stats);
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("hush_quota_refusals_total{quota=\"queue_bytes\"} 2"),
        "{text}"
    );

    // Once bob has fetched his queue, sends reach him again.
    let mut ws = s.connect(&bob.devices[0].token).await;
    let got = ws.drain().await;
    assert_eq!(got.len(), 3);
    ws.ack(&got.iter().map(|e| e.seq).collect::<Vec<_>>()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while queued(&s, &[("bob", 1)]).await != vec![0] {
        assert!(
            Instant::now() < deadline,
            "the acknowledgement was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(hush_server::quota::QUEUE_RECHECK).await;
    let resp = s.send(token, &[("bob", 1)], &payload).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn one_send_cannot_store_more_than_the_send_quota() {
    use hush_server::quota::ENTRY_BYTES;
    let s = TestServer::with_settings(with_quotas(QuotaSettings {
        max_send_bytes: 100 * 1024,
        ..QuotaSettings::default()
    }))
    .await;
    let alice = s.register("alice", 1).await;
    let mut to = Vec::new();
    for (i, name) in ["bob0", "bob1", "bob2", "bob3"].iter().enumerate() {
        s.register(name, 10 + i as u64).await;
        to.push((*name, 1));
    }
    let token = &alice.devices[0].token;
    // The payload counts once, not once per recipient: 4 x 30 KiB would be
    // 120 KiB, but the server stores 30 KiB and four queue entries.
    let resp = s.send(token, &to, &[1u8; 30 * 1024]).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let stats = s.state.store.stats().await.unwrap();
    assert_eq!((stats.queued_envelopes, stats.payloads), (4, 1));
    assert!(
        (30 * 1024..31 * 1024).contains(&stats.payload_bytes),
        "{stats:?}"
    );
    // Each recipient's entry still counts: a payload that fits the quota
    // with two recipients' entries is refused with a third.
    let len = 100 * 1024 - 2 * ENTRY_BYTES as usize;
    let resp = s.send(token, &to[..2], &vec![2u8; len]).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let stats = s.state.store.stats().await.unwrap();
    expect_error(
        s.send(token, &to[..3], &vec![3u8; len]).await,
        413,
        "too_large",
    )
    .await;
    assert_eq!(s.state.store.stats().await.unwrap(), stats);
    assert_eq!((stats.queued_envelopes, stats.payloads), (6, 2));
}

async fn upload_kps(s: &TestServer, d: &UserDevice, n: usize) -> reqwest::Response {
    let kps = (0..n)
        .map(|_| Bytes(s.key_package(d, Suite::Classical, false)))
        .collect();
    s.http
        .put(s.url("/v1/key-packages"))
        .bearer_auth(&d.token)
        .json(&UploadKeyPackagesRequest {
            suite: Suite::Classical.cipher_suite().raw_value(),
            key_packages: kps,
            last_resort: None,
        })
        .send()
        .await
        .unwrap()
}

async fn kp_count(s: &TestServer, d: &UserDevice) -> u64 {
    let counts: KeyPackageCountResponse = s
        .get_as("/v1/key-packages/count", &d.token)
        .await
        .json()
        .await
        .unwrap();
    let n = Suite::Classical.cipher_suite().raw_value();
    counts.counts.iter().find(|c| c.suite == n).unwrap().count
}

#[tokio::test]
async fn key_packages_past_the_device_quota_are_refused_and_store_nothing() {
    let s = TestServer::with_settings(with_quotas(QuotaSettings {
        max_key_packages: 5,
        ..QuotaSettings::default()
    }))
    .await;
    let alice = s.register("alice", 1).await;
    let d = &alice.devices[0];
    assert_eq!(upload_kps(&s, d, 3).await.status(), 204);
    // The attack: upload again and again to fill the disk.
    expect_error(
        upload_kps(&s, d, 3).await,
        403,
        "key_package_quota_exceeded",
    )
    .await;
    assert_eq!(kp_count(&s, d).await, 3);
    assert_eq!(upload_kps(&s, d, 2).await.status(), 204);
    assert_eq!(kp_count(&s, d).await, 5);
    expect_error(
        upload_kps(&s, d, 1).await,
        403,
        "key_package_quota_exceeded",
    )
    .await;
    assert_eq!(kp_count(&s, d).await, 5);
}

fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                files_under(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test]
async fn attachments_past_the_account_quota_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let blobs_dir = dir.path().join("blobs");
    let store = hush_server::store::sqlite::SqliteStore::open(&dir.path().join("db")).unwrap();
    let state = hush_server::app::AppState::new(
        std::sync::Arc::new(store),
        hush_server::blobs::Blobs::local(&blobs_dir).unwrap(),
        with_quotas(QuotaSettings {
            max_blob_bytes: 1 << 20,
            ..QuotaSettings::default()
        }),
    );
    let (addr, handle) = hush_server::server::spawn_local(state).await.unwrap();
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let alice = register_at(&http, &base, "alice", 1).await;
    let bob = register_at(&http, &base, "bob", 2).await;
    let create = |token: String, size: u64| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.post(format!("{base}/v1/attachments"))
                .bearer_auth(token)
                .json(&CreateAttachmentRequest { size })
                .send()
                .await
                .unwrap()
        }
    };
    let a = alice.devices[0].token.clone();
    assert_eq!(create(a.clone(), 600 * 1024).await.status(), 201);
    let files = files_under(&blobs_dir);
    // The attack: announce attachment after attachment.
    expect_error(
        create(a.clone(), 600 * 1024).await,
        403,
        "blob_quota_exceeded",
    )
    .await;
    assert_eq!(
        files_under(&blobs_dir),
        files,
        "a refused create stored something"
    );
    // Other accounts are not affected.
    assert_eq!(
        create(bob.devices[0].token.clone(), 600 * 1024)
            .await
            .status(),
        201
    );
    handle.stop().await;
}

/// Sends the headers of a request whose body of `len` bytes is still to
/// come, and returns the open connection.
async fn start_request(
    s: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    len: usize,
) -> TcpStream {
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c
}

/// Everything the server sends until it closes the connection (or resets
/// it: closing with body bytes unread does that), read while `trickle`
/// writes to it.
async fn answer_while<F, Fut>(c: TcpStream, within: Duration, trickle: F) -> String
where
    F: FnOnce(tokio::net::tcp::OwnedWriteHalf) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (mut r, w) = c.into_split();
    let writer = tokio::spawn(trickle(w));
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .expect("the server kept the connection open");
    writer.abort();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_slow_loris_body_is_cut_by_the_timeout() {
    let s = TestServer::with_settings(with_quotas(QuotaSettings {
        body_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(1),
        ..QuotaSettings::default()
    }))
    .await;
    let alice = s.register("alice", 1).await;
    let token = &alice.devices[0].token;

    // A byte every 400 ms never trips the pause limit, but the body as a
    // whole is late.
    let started = Instant::now();
    let c = start_request(&s, "POST", "/v1/messages", token, 100_000).await;
    let answer = answer_while(c, Duration::from_secs(6), |mut w| async move {
        for _ in 0..50 {
            if w.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(8));

    // A body that stops: cut after the pause limit.
    let c = start_request(&s, "PUT", "/v1/key-packages", token, 1000).await;
    let answer = answer_while(c, Duration::from_secs(5), |mut w| async move {
        let _ = w.write_all(b"{").await;
        std::future::pending::<()>().await;
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Headers that never end: the connection is closed.
    let c = TcpStream::connect(s.addr).await.unwrap();
    answer_while(c, Duration::from_secs(5), |mut w| async move {
        let _ = w.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await;
        std::future::pending::<()>().await;
    })
    .await;
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("hush_quota_refusals_total{quota=\"body_timeout\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn one_account_cannot_hold_more_connections_than_its_quota() {
    const N: usize = 3;
    let s = TestServer::with_settings(with_quotas(QuotaSettings {
        max_connections: N,
        body_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        ..QuotaSettings::default()
    }))
    .await;
    let mut alice = s.register("alice", 1).await;
    s.add_device(&mut alice, 2, 50).await;
    let bob = s.register("bob", 2).await;
    let token = alice.devices[0].token.clone();

    // N held at once: a WebSocket of each device and a request whose body
    // never comes.
    let _ws1 = s.connect(&alice.devices[0].token).await;
    let _ws2 = s.connect(&alice.devices[1].token).await;
    let slow = start_request(&s, "POST", "/v1/messages", &token, 1000).await;
    // Until the server has read its headers.
    let deadline = Instant::now() + Duration::from_secs(2);
    while s.state.quotas.connections("alice") < N && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The N+1st is refused, whichever device it comes from.
    for d in &alice.devices {
        expect_error(
            s.get_as("/v1/key-packages/count", &d.token).await,
            429,
            "too_many_connections",
        )
        .await;
    }
    // Other accounts are not affected.
    let resp = s
        .get_as("/v1/key-packages/count", &bob.devices[0].token)
        .await;
    assert_eq!(resp.status(), 200);

    // Closing one frees its slot.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = s.get_as("/v1/key-packages/count", &token).await;
        if resp.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed request kept its slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn an_ephemeral_fan_out_shares_one_buffer_and_a_slow_reader_holds_little() {
    use hush_server::hub::{EPHEMERAL_BYTES, Ephemeral, Hub};
    let hub = Hub::default();
    let devices: Vec<DeviceKey> = (0..500).map(|i| DeviceKey::new("bob", i)).collect();
    let regs: Vec<_> = devices.iter().map(|d| hub.register(d)).collect();
    // 512 KiB to 500 devices: one buffer, not 250 MB of copies.
    let payload = Ephemeral::new(vec![9u8; 512 * 1024].into());
    for d in &devices {
        assert!(hub.send_ephemeral(d, &payload));
    }
    let first = regs[0].ephemeral.try_recv().unwrap();
    for r in &regs[1..] {
        let got = r.ephemeral.try_recv().unwrap();
        assert_eq!(got.as_ptr(), first.as_ptr());
        assert_eq!(got.len(), 512 * 1024);
    }
    // What a device has taken no longer counts.
    drop(first);
    // A device that does not read holds at most its budget (plus one).
    let d = &devices[0];
    let mut taken = 0;
    for _ in 0..64 {
        let one = Ephemeral::new(vec![1u8; 256 * 1024].into());
        if hub.send_ephemeral(d, &one) {
            taken += 1;
        }
    }
    assert_eq!(taken, EPHEMERAL_BYTES / (256 * 1024));
}
