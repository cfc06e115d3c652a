//! The channel watch (decision 0038, "posts pushed"): a subscriber's
//! client holds one fetch per channel on the server, so a sync that
//! listens returns with a post as soon as the owner posts it; the watch
//! comes back after the server drops its fetches; leaving a channel (or
//! dropping the client) ends its fetch; and idle syncs no longer ask every
//! channel. Real clients and a real server (hush-testkit); the subscriber
//! reaches it through a TCP proxy that counts the channel fetches it
//! carries and can cut them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hush_client::{Client, Event};
use hush_proto::channel::ChannelLink;
use hush_testkit::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASS: &str = "correct horse battery staple";
/// Longer than any test waits for a post: a sync that returns with the
/// post was ended by it, not by its wait.
const LONG: Duration = Duration::from_secs(60);
/// How long a test gives the watch to do something (re-arm, stop).
const SOON: Duration = Duration::from_secs(15);

async fn user(server: &str, root: &Path, name: &str) -> Client {
    Client::register(&root.join(name), PASS, server, name, None)
        .await
        .unwrap()
}

fn posts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChannelPost(p) => Some(p.text.clone()),
            _ => None,
        })
        .collect()
}

/// The channel id of a link, as the fetch paths carry it.
fn hex_id(link: &str) -> String {
    hex::encode(ChannelLink::parse(link).unwrap().secret.channel_id())
}

/// What the proxy saw, per channel (hex id).
#[derive(Default)]
struct Seen {
    /// Requests for the channel's posts.
    fetches: HashMap<String, usize>,
    /// Held fetches (`wait_ms` above 0) whose answer has not come back and
    /// whose connection is open.
    held: HashMap<String, usize>,
}

/// A TCP proxy in front of the server that counts channel fetches and can
/// cut every HTTP connection (the WebSocket is left alone).
struct Proxy {
    url: String,
    seen: Arc<Mutex<Seen>>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(server: &str) -> Proxy {
        let target: SocketAddr = server.trim_start_matches("http://").parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let proxy = Proxy {
            url,
            seen: Arc::default(),
            cut,
        };
        let (seen, cut) = (proxy.seen.clone(), proxy.cut.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(pump(inbound, target, seen.clone(), cut.subscribe()));
            }
        });
        proxy
    }

    fn fetches(&self, channel: &str) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.fetches.get(channel).copied().unwrap_or(0)
    }

    fn all_fetches(&self) -> usize {
        self.seen.lock().unwrap().fetches.values().sum()
    }

    fn held(&self, channel: &str) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.held.get(channel).copied().unwrap_or(0)
    }

    /// Waits until `held(channel)` is `n`; false if it is not within
    /// [`SOON`].
    async fn held_becomes(&self, channel: &str, n: usize) -> bool {
        let until = Instant::now() + SOON;
        while Instant::now() < until {
            if self.held(channel) == n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Closes every HTTP connection open through the proxy, as a server
    /// restart or a balancer does to held requests.
    fn cut_http(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

/// The channel a request asks posts of, and whether it waits.
fn channel_fetch(chunk: &[u8]) -> Option<(String, bool)> {
    let text = std::str::from_utf8(chunk).ok()?;
    let rest = text.strip_prefix("GET /v1/channels/")?;
    let (id, rest) = rest.split_at_checked(64)?;
    let query = rest.strip_prefix("/posts?")?.split(' ').next()?;
    let held = query
        .split('&')
        .any(|kv| kv.starts_with("wait_ms=") && kv != "wait_ms=0");
    Some((id.to_owned(), held))
}

/// Counts one held fetch while it waits.
struct Held(Arc<Mutex<Seen>>, Mutex<Option<String>>);

impl Held {
    fn start(&self, channel: String) {
        self.end();
        *self
            .0
            .lock()
            .unwrap()
            .held
            .entry(channel.clone())
            .or_default() += 1;
        *self.1.lock().unwrap() = Some(channel);
    }

    fn end(&self) {
        if let Some(c) = self.1.lock().unwrap().take() {
            *self.0.lock().unwrap().held.entry(c).or_default() -= 1;
        }
    }
}

async fn pump(
    inbound: TcpStream,
    target: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    mut cut: tokio::sync::watch::Receiver<u64>,
) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let (mut in_r, mut in_w) = inbound.into_split();
    let (mut out_r, mut out_w) = outbound.into_split();
    let held = Held(seen.clone(), Mutex::new(None));
    let is_ws = AtomicBool::new(false);
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match in_r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            if chunk.starts_with(b"GET /v1/ws ") {
                is_ws.store(true, Ordering::SeqCst);
            } else if let Some((channel, waits)) = channel_fetch(chunk) {
                *seen
                    .lock()
                    .unwrap()
                    .fetches
                    .entry(channel.clone())
                    .or_default() += 1;
                if waits {
                    held.start(channel);
                }
            }
            if out_w.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match out_r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // The answer is coming: the fetch no longer waits.
            held.end();
            if in_w.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // A cut closes the HTTP connections open at that moment.
    let cut_now = async {
        loop {
            if cut.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            if !is_ws.load(Ordering::SeqCst) {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
        () = cut_now => {}
    }
    held.end();
}

/// A server, its owner `anna` (direct) and subscriber `bert` (through the
/// proxy) following anna's channels `names`; returns their hex ids.
/// What [`setup`] makes: the proxy in front of the server, anna (who
/// owns the channels, straight to the server), bert (subscribed through the
/// proxy), the channels' ids, and the server and the clients' directory,
/// kept for the test's length.
type Setup = (
    Proxy,
    Client,
    Client,
    Vec<String>,
    (TestServer, tempfile::TempDir),
);

async fn setup(names: &[&str]) -> Setup {
    let server = TestServer::start().await.unwrap();
    let proxy = Proxy::start(&server.url()).await;
    let root = tempfile::tempdir().unwrap();
    let mut anna = user(&server.url(), root.path(), "anna").await;
    let mut bert = user(&proxy.url, root.path(), "bert").await;
    let mut ids = Vec::new();
    for name in names {
        let link = anna.create_channel(name).await.unwrap();
        ids.push(hex_id(&link));
        // bert reaches the server through the proxy: so does his link.
        let link = link.replace(&server.url(), &proxy.url);
        assert_eq!(bert.join_channel(&link).await.unwrap(), *name);
    }
    (proxy, anna, bert, ids, (server, root))
}

/// Syncs `c` in a task with a long wait; the task returns the client,
/// what the sync returned and how long it took.
fn long_sync(mut c: Client) -> tokio::task::JoinHandle<(Client, Vec<Event>, Duration)> {
    tokio::spawn(async move {
        let started = Instant::now();
        let events = c.sync(LONG, |_| {}).await.unwrap();
        (c, events, started.elapsed())
    })
}

/// Waits for a [`long_sync`] that a post should end: it must return
/// within [`SOON`], well before its wait of [`LONG`] would have ended.
async fn ended_by_a_post(
    task: tokio::task::JoinHandle<(Client, Vec<Event>, Duration)>,
) -> (Client, Vec<Event>) {
    let (c, events, took) = tokio::time::timeout(SOON, task)
        .await
        .expect("the sync was still waiting: the post did not end it")
        .unwrap();
    assert!(took < LONG, "{took:?}");
    (c, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_sync_returns_with_a_post_as_soon_as_it_is_posted() {
    let (proxy, mut anna, mut bert, ids, _held) = setup(&["news"]).await;
    bert.watch_channels().unwrap();
    assert_eq!(bert.channels_watched(), 1);
    assert!(posts(&bert.sync(Duration::ZERO, |_| {}).await.unwrap()).is_empty());
    assert!(proxy.held_becomes(&ids[0], 1).await, "no held fetch");

    let task = long_sync(bert);
    tokio::time::sleep(Duration::from_millis(500)).await;
    anna.post_to_channel("news", "breaking").await.unwrap();
    let (bert, events) = ended_by_a_post(task).await;
    assert_eq!(posts(&events), ["breaking"]);
    // Passed on once, and the watch waits on the channel again.
    assert!(proxy.held_becomes(&ids[0], 1).await, "not re-armed");
    let task = long_sync(bert);
    tokio::time::sleep(Duration::from_millis(500)).await;
    anna.post_to_channel("news", "and more").await.unwrap();
    let (bert, events) = ended_by_a_post(task).await;
    assert_eq!(posts(&events), ["and more"]);
    let history: Vec<String> = bert
        .channel_history("news")
        .unwrap()
        .into_iter()
        .map(|p| p.text)
        .collect();
    assert_eq!(history, ["breaking", "and more"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_comes_back_after_its_held_fetches_are_cut() {
    let (proxy, mut anna, mut bert, ids, _held) = setup(&["news"]).await;
    bert.watch_channels().unwrap();
    bert.sync(Duration::ZERO, |_| {}).await.unwrap();
    assert!(proxy.held_becomes(&ids[0], 1).await, "no held fetch");
    let before = proxy.fetches(&ids[0]);

    // The server (or a balancer) drops the held fetch; the watch asks
    // again after its pause.
    proxy.cut_http();
    assert!(proxy.held_becomes(&ids[0], 0).await, "not cut");
    assert!(proxy.held_becomes(&ids[0], 1).await, "not re-armed");
    assert!(proxy.fetches(&ids[0]) > before);

    let task = long_sync(bert);
    tokio::time::sleep(Duration::from_millis(500)).await;
    anna.post_to_channel("news", "still pushed").await.unwrap();
    let (_bert, events) = ended_by_a_post(task).await;
    assert_eq!(posts(&events), ["still pushed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_a_channel_ends_its_fetch_and_dropping_the_client_ends_all() {
    let (proxy, mut anna, mut bert, ids, _held) = setup(&["news", "sport"]).await;
    bert.watch_channels().unwrap();
    bert.sync(Duration::ZERO, |_| {}).await.unwrap();
    assert!(proxy.held_becomes(&ids[0], 1).await);
    assert!(proxy.held_becomes(&ids[1], 1).await);

    bert.leave_channel("news").unwrap();
    assert!(
        proxy.held_becomes(&ids[0], 0).await,
        "the left channel is still fetched"
    );
    assert_eq!(bert.channels_watched(), 1);
    let after_leaving = proxy.fetches(&ids[0]);
    assert_eq!(proxy.held(&ids[1]), 1);

    // Posts to both: bert's sync ends with the one he follows, and the
    // server is asked nothing more about the other.
    let task = long_sync(bert);
    tokio::time::sleep(Duration::from_millis(500)).await;
    anna.post_to_channel("news", "unseen").await.unwrap();
    anna.post_to_channel("sport", "goal").await.unwrap();
    let (bert, events) = ended_by_a_post(task).await;
    assert_eq!(posts(&events), ["goal"]);
    assert!(proxy.held_becomes(&ids[1], 1).await);
    assert_eq!(proxy.fetches(&ids[0]), after_leaving);

    drop(bert);
    assert!(
        proxy.held_becomes(&ids[1], 0).await,
        "the watch outlived its client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_syncs_no_longer_ask_every_channel() {
    let (proxy, mut anna, mut bert, ids, _held) = setup(&["a", "b", "c"]).await;
    // Without the watch, every sync asks every channel.
    for round in 1..=2 {
        bert.sync(Duration::ZERO, |_| {}).await.unwrap();
        assert_eq!(proxy.all_fetches(), 3 * round);
    }

    bert.watch_channels().unwrap();
    bert.sync(Duration::ZERO, |_| {}).await.unwrap();
    for id in &ids {
        assert!(proxy.held_becomes(id, 1).await);
    }
    // The first sync with the watch still asked each channel (3), and the
    // watch holds one fetch per channel (3).
    let armed = proxy.all_fetches();
    assert_eq!(armed, 6 + 3 + 3);
    for _ in 0..3 {
        bert.sync(Duration::ZERO, |_| {}).await.unwrap();
        bert.sync(Duration::from_millis(300), |_| {}).await.unwrap();
    }
    assert_eq!(proxy.all_fetches(), armed, "idle syncs asked the channels");

    // A post: the sync it ends asks that channel alone for its posts,
    // and the watch holds a fetch on it again.
    anna.post_to_channel("b", "news").await.unwrap();
    let task = long_sync(bert);
    let (_bert, events) = ended_by_a_post(task).await;
    assert_eq!(posts(&events), ["news"]);
    assert!(proxy.held_becomes(&ids[1], 1).await);
    assert_eq!(proxy.all_fetches(), armed + 1 + 1);
    assert_eq!(proxy.fetches(&ids[0]), proxy.fetches(&ids[2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_holds_a_fetch_on_at_most_eight_channels() {
    let names = ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"];
    let (proxy, mut anna, mut bert, ids, _held) = setup(&names).await;
    bert.watch_channels().unwrap();
    assert_eq!(bert.channels_watched(), 8);
    bert.sync(Duration::ZERO, |_| {}).await.unwrap();
    // The first eight joined are held; the ninth is only fetched by the
    // syncs that fetch every channel (the first one, here).
    for id in &ids[..8] {
        assert!(proxy.held_becomes(id, 1).await);
    }
    assert_eq!(proxy.held(&ids[8]), 0);
    assert_eq!(proxy.fetches(&ids[8]), 1);
    // A post to the ninth is read at the routine interval, not pushed; a
    // post to a watched one is pushed.
    anna.post_to_channel("c9", "later").await.unwrap();
    anna.post_to_channel("c1", "now").await.unwrap();
    let (_bert, events) = ended_by_a_post(long_sync(bert)).await;
    assert_eq!(posts(&events), ["now"]);
}
