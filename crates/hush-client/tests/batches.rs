//! Receiving in batches and sending on the WebSocket (decision 0018), against
//! a real server: a crash before a batch's write loses and duplicates
//! nothing, a sender that restarts before its message left sends it once,
//! sends go on the device's socket and over HTTP only while it is down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hush_client::{Client, ClientError, Event, Target};
use hush_testkit::TestServer;
use hush_wire::api::SendRequest;
use hush_wire::{Bytes, DeviceAddress, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASS: &str = "correct horse battery staple";

async fn user(server: &str, root: &Path, name: &str) -> Client {
    Client::register(&root.join(name), PASS, server, name, None)
        .await
        .unwrap()
}

async fn sync(c: &mut Client) -> Vec<Event> {
    c.sync(Duration::ZERO, |_| {}).await.unwrap()
}

fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => m.text.clone(),
            _ => None,
        })
        .collect()
}

fn dm(name: &str) -> Target {
    Target::User(name.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_batch_write_loses_nothing_and_applies_nothing_twice() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server.url(), root.path(), "alice").await;
    drop(user(&server.url(), root.path(), "bob").await);
    let sent: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    for t in &sent {
        alice.send_text(&dm("bob"), t).await.unwrap();
    }

    let mut bob = Client::open(&root.path().join("bob"), PASS).unwrap();
    bob.crash_before_next_batch_write();
    assert!(bob.sync(Duration::ZERO, |_| {}).await.is_err());
    drop(bob);

    // The restarted client gets the same envelopes again and applies each once.
    let mut bob = Client::open(&root.path().join("bob"), PASS).unwrap();
    let written_before = bob.state_bytes_written();
    assert_eq!(texts(&sync(&mut bob).await), sent);
    // One state write per batch, not one per message: the whole 1:1 state
    // written 40 times would be far more.
    let per_message = (bob.state_bytes_written() - written_before) / 40;
    assert!(
        per_message < 2_000,
        "{per_message} bytes of state per message"
    );
    drop(bob);
    let mut bob = Client::open(&root.path().join("bob"), PASS).unwrap();
    assert!(texts(&sync(&mut bob).await).is_empty());
    assert_eq!(bob.history(&dm("alice")).unwrap().len(), 40);
    // And the conversation goes on both ways.
    bob.send_text(&dm("alice"), "all 40").await.unwrap();
    assert_eq!(texts(&sync(&mut alice).await), vec!["all 40".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_restarted_after_encrypting_without_sending_sends_once() {
    let mut server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server.url(), root.path(), "alice").await;
    let mut bob = user(&server.url(), root.path(), "bob").await;
    alice.send_text(&dm("bob"), "first").await.unwrap();
    assert_eq!(texts(&sync(&mut bob).await), vec!["first".to_string()]);

    // The server is down: the message is encrypted and stored, not sent.
    server.shutdown().await;
    let _ = alice.send_text(&dm("bob"), "while down").await;
    drop(alice);
    server.restart().await.unwrap();

    let mut alice = Client::open(&root.path().join("alice"), PASS).unwrap();
    sync(&mut alice).await; // sends the outbox
    alice.send_text(&dm("bob"), "after restart").await.unwrap();
    // Each opens once: no key was used twice.
    assert_eq!(
        texts(&sync(&mut bob).await),
        vec!["while down".to_string(), "after restart".to_string()]
    );
}

/// A TCP proxy in front of the server that counts WebSocket upgrades and
/// HTTP sends, and can refuse or cut WebSocket connections (the socket
/// "down") while HTTP still passes.
struct Proxy {
    url: String,
    ws_upgrades: Arc<AtomicUsize>,
    http_sends: Arc<AtomicUsize>,
    /// Other HTTP requests (the routine ones of a sync among them).
    http_other: Arc<AtomicUsize>,
    refuse_ws: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    /// WebSocket connections open through the proxy.
    ws_open: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(server: &str) -> Proxy {
        let target: SocketAddr = server.trim_start_matches("http://").parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let proxy = Proxy {
            url,
            ws_upgrades: Arc::default(),
            http_sends: Arc::default(),
            http_other: Arc::default(),
            refuse_ws: Arc::default(),
            cut,
            ws_open: Arc::default(),
        };
        let (ws, http, other, refuse, cut, open) = (
            proxy.ws_upgrades.clone(),
            proxy.http_sends.clone(),
            proxy.http_other.clone(),
            proxy.refuse_ws.clone(),
            proxy.cut.clone(),
            proxy.ws_open.clone(),
        );
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let counters = Counters {
                    ws: ws.clone(),
                    http: http.clone(),
                    other: other.clone(),
                    open: open.clone(),
                };
                let cut = cut.subscribe();
                tokio::spawn(pump(inbound, target, counters, refuse.clone(), cut));
            }
        });
        proxy
    }

    /// Closes every WebSocket connection through the proxy, and returns
    /// once they are closed.
    async fn cut_sockets(&self) {
        self.cut.send_modify(|n| *n += 1);
        let closed = async {
            while self.ws_open.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), closed)
            .await
            .expect("the proxy's WebSocket connections close");
    }
}

/// What a proxy counts: WebSocket upgrades, HTTP sends, other requests.
struct Counters {
    ws: Arc<AtomicUsize>,
    http: Arc<AtomicUsize>,
    other: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

/// Counts one WebSocket connection open while it lives.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn pump(
    inbound: TcpStream,
    target: SocketAddr,
    counters: Counters,
    refuse: Arc<AtomicBool>,
    mut cut: tokio::sync::watch::Receiver<u64>,
) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let (mut in_r, mut in_w) = inbound.into_split();
    let (mut out_r, mut out_w) = outbound.into_split();
    let is_ws = AtomicBool::new(false);
    let open = std::sync::Mutex::new(None::<Open>);
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match in_r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let upgraded = is_ws.load(Ordering::SeqCst);
            if !upgraded && contains(chunk, b"GET /v1/ws ") {
                if refuse.load(Ordering::SeqCst) {
                    return;
                }
                is_ws.store(true, Ordering::SeqCst);
                counters.ws.fetch_add(1, Ordering::SeqCst);
                counters.open.fetch_add(1, Ordering::SeqCst);
                *open.lock().unwrap() = Some(Open(counters.open.clone()));
            } else if !upgraded && contains(chunk, b"POST /v1/messages ") {
                counters.http.fetch_add(1, Ordering::SeqCst);
            } else if !upgraded && contains(chunk, b" HTTP/1.1\r\n") {
                counters.other.fetch_add(1, Ordering::SeqCst);
            }
            if out_w.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let down = tokio::io::copy(&mut out_r, &mut in_w);
    // A cut closes the WebSocket connections open at that moment.
    let cut_now = async {
        loop {
            if cut.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            if is_ws.load(Ordering::SeqCst) {
                return;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = cut_now => {}
    }
    // Both halves close with the sockets before the connection counts as
    // closed.
    drop((in_r, in_w, out_r, out_w));
    drop(open);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_go_on_the_socket_and_over_http_only_while_it_is_down() {
    let server = TestServer::start().await.unwrap();
    let proxy = Proxy::start(&server.url()).await;
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&proxy.url, root.path(), "alice").await;
    let mut bob = user(&server.url(), root.path(), "bob").await;

    // Socket up: the conversation's commit and the messages go on it.
    for t in ["one", "two"] {
        alice.send_text(&dm("bob"), t).await.unwrap();
    }
    assert!(proxy.ws_upgrades.load(Ordering::SeqCst) >= 1);
    assert_eq!(proxy.http_sends.load(Ordering::SeqCst), 0);
    assert_eq!(texts(&sync(&mut bob).await), vec!["one", "two"]);

    // Socket down (cut, and refused when reopened): HTTP carries the sends.
    proxy.refuse_ws.store(true, Ordering::SeqCst);
    proxy.cut_sockets().await;
    for t in ["three", "four"] {
        let sent = alice.send_text(&dm("bob"), t).await.unwrap();
        assert_eq!(sent.status, "sent");
    }
    assert!(proxy.http_sends.load(Ordering::SeqCst) >= 2);
    assert_eq!(texts(&sync(&mut bob).await), vec!["three", "four"]);

    // Back up: sends return to the socket.
    proxy.refuse_ws.store(false, Ordering::SeqCst);
    let http_before = proxy.http_sends.load(Ordering::SeqCst);
    let upgrades_before = proxy.ws_upgrades.load(Ordering::SeqCst);
    alice.send_text(&dm("bob"), "five").await.unwrap();
    assert_eq!(proxy.http_sends.load(Ordering::SeqCst), http_before);
    assert!(proxy.ws_upgrades.load(Ordering::SeqCst) > upgrades_before);
    assert_eq!(texts(&sync(&mut bob).await), vec!["five"]);

    // Sync and sends share the socket: bob's reply arrives on it.
    bob.send_text(&dm("alice"), "got five").await.unwrap();
    assert_eq!(texts(&sync(&mut alice).await), vec!["got five"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_and_missing_devices_read_the_same_on_the_socket_and_over_http() {
    let server = TestServer::start().await.unwrap();
    let proxy = Proxy::start(&server.url()).await;
    let root = tempfile::tempdir().unwrap();
    let alice = user(&proxy.url, root.path(), "alice").await;
    drop(user(&server.url(), root.path(), "bob").await);
    let to = |name: &str, device_id| DeviceAddress {
        username: name.into(),
        device_id,
    };
    let request = |recipients| SendRequest {
        recipients,
        payload: Bytes(b"not read by anyone".to_vec()),
        ephemeral: false,
        commit: None,
        franking_commitment: None,
    };
    let twice = request(vec![to("bob", 1), to("bob", 1)]);
    let with_missing = request(vec![to("bob", 1), to("nobody", 7)]);

    let mut answers = Vec::new();
    for down in [false, true] {
        proxy.refuse_ws.store(down, Ordering::SeqCst);
        proxy.cut_sockets().await;
        let refused = alice.transport().send_message(&twice).await.unwrap_err();
        let ClientError::Server(e) = refused else {
            panic!("not a refusal: {refused:?}");
        };
        assert_eq!(e.code, ErrorCode::BadRequest);
        let sent = alice.transport().send_message(&with_missing).await.unwrap();
        assert_eq!(sent.delivered_to, 1);
        assert_eq!(sent.missing, vec![to("nobody", 7)]);
        answers.push((e.message, sent.missing));
    }
    assert_eq!(answers[0], answers[1]);
    // The first round went on the socket, the second over HTTP.
    assert_eq!(proxy.http_sends.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_client_stays_connected_and_loses_nothing_when_the_connection_drops() {
    let server = TestServer::start().await.unwrap();
    let proxy = Proxy::start(&server.url()).await;
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server.url(), root.path(), "alice").await;
    let mut bob = user(&proxy.url, root.path(), "bob").await;
    let listen = Duration::from_millis(300);
    alice.send_text(&dm("bob"), "one").await.unwrap();
    assert_eq!(texts(&sync(&mut bob).await), vec!["one"]);

    // Listening: no new connection and no routine request per sync, and
    // what arrives is pushed on the kept connection, before or during the
    // sync.
    let (upgrades, other) = (
        proxy.ws_upgrades.load(Ordering::SeqCst),
        proxy.http_other.load(Ordering::SeqCst),
    );
    let mut got = Vec::new();
    for t in ["two", "three"] {
        alice.send_text(&dm("bob"), t).await.unwrap();
        got.extend(texts(&bob.sync(listen, |_| {}).await.unwrap()));
    }
    let (events, sent) = tokio::join!(bob.sync(Duration::from_secs(2), |_| {}), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice.send_text(&dm("bob"), "four").await.unwrap()
    });
    assert_eq!(sent.status, "sent");
    got.extend(texts(&events.unwrap()));
    assert_eq!(got, vec!["two", "three", "four"]);
    assert_eq!(proxy.ws_upgrades.load(Ordering::SeqCst), upgrades);
    assert_eq!(proxy.http_other.load(Ordering::SeqCst), other);

    // The connection drops: the next sync connects again and gets what
    // was sent meanwhile, once.
    proxy.cut_sockets().await;
    alice.send_text(&dm("bob"), "five").await.unwrap();
    assert_eq!(
        texts(&bob.sync(listen, |_| {}).await.unwrap()),
        vec!["five"]
    );
    assert!(proxy.ws_upgrades.load(Ordering::SeqCst) > upgrades);
    assert!(texts(&bob.sync(listen, |_| {}).await.unwrap()).is_empty());
    assert_eq!(bob.history(&dm("alice")).unwrap().len(), 5);
    // Bob's delivery receipts went back on his connection.
    sync(&mut alice).await;
    let history = alice.history(&dm("bob")).unwrap();
    assert!(
        history.iter().all(|m| m.status == "delivered"),
        "{history:?}"
    );
}
