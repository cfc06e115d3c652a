//! Channels in a cluster (decision 0038): a post stored on one node wakes
//! the fetches held on another at once, by one message on the bus; a post
//! stored while NATS was down reaches them once it is back (even when the
//! node that took it is gone by then); and a message
//! forged on the bus shows a subscriber nothing that is not stored.
//!
//! Needs `HUSH_TEST_POSTGRES_URL` and `HUSH_TEST_NATS_URL` (`.ci/run` sets
//! both); each test skips with a notice when they are unset and fails when
//! they are set and the service does not answer. Nodes run in this process
//! on loopback ports, on a PostgreSQL schema and a NATS subject prefix of
//! the test's own; the outage test runs a nats-server of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::channel::Channel;
use common::cluster::{
    Node, PATIENCE, SERIAL, free_port, node, settings, start_nats, wait_health, wait_port,
};
use common::pg::{PgSchema, env, unique};
use common::register_at;
use hush_wire::Bytes;
use hush_wire::api::{
    ChannelPostRequest, ChannelPostResponse, ChannelPostsResponse, PutChannelRequest,
};
use tokio::task::JoinHandle;

/// How long a held fetch on another node may take to see a post: far below
/// its 20 s wait, so only a wake-up over the bus answers it in time.
const PROMPTLY: Duration = Duration::from_secs(3);

struct Two {
    a: Node,
    b: Node,
    http: reqwest::Client,
    prefix: String,
    _blobs: tempfile::TempDir,
    _pg: PgSchema,
}

async fn two_nodes(env: &common::pg::Env, nats: &str) -> Two {
    let pg = PgSchema::create(&env.pg).await;
    let prefix = unique("t");
    let blobs = tempfile::tempdir().unwrap();
    let a = node(&pg, nats, &prefix, blobs.path(), settings()).await;
    let b = node(&pg, nats, &prefix, blobs.path(), settings()).await;
    Two {
        a,
        b,
        http: reqwest::Client::new(),
        prefix,
        _blobs: blobs,
        _pg: pg,
    }
}

/// Files `ch` through `base` as the holder of `token`.
async fn file(http: &reqwest::Client, base: &str, token: &str, ch: &Channel) {
    let status = http
        .put(format!("{base}/v1/channels/{}", ch.id()))
        .bearer_auth(token)
        .json(&PutChannelRequest {
            descriptor: Bytes(ch.descriptor("news")),
            post_token: Bytes(ch.token.to_vec()),
        })
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 201);
}

async fn post(http: &reqwest::Client, base: &str, token: &str, ch: &Channel, text: &str) -> u64 {
    let resp = http
        .post(format!("{base}/v1/channels/{}/posts", ch.id()))
        .bearer_auth(token)
        .json(&ChannelPostRequest {
            post_token: Bytes(ch.token.to_vec()),
            post: Bytes(ch.post(text)),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json::<ChannelPostResponse>().await.unwrap().number
}

/// A fetch of `ch` after post `after`, held on `on` for up to 20 s; returns
/// once the node holds it.
async fn hold(
    http: &reqwest::Client,
    on: &Node,
    token: &str,
    ch: &Channel,
    after: u64,
) -> JoinHandle<ChannelPostsResponse> {
    let url = format!(
        "{}/v1/channels/{}/posts?after={after}&wait_ms=20000",
        on.url(),
        ch.id()
    );
    let (http, token) = (http.clone(), token.to_owned());
    let held = tokio::spawn(async move {
        let resp = http.get(url).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.unwrap()
    });
    let deadline = Instant::now() + PATIENCE;
    while on.state.channels.channels() == 0 {
        assert!(Instant::now() < deadline, "the fetch was never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    held
}

/// Waits for a held fetch's answer, at most [`PROMPTLY`].
async fn answered(held: JoinHandle<ChannelPostsResponse>, what: &str) -> ChannelPostsResponse {
    match tokio::time::timeout(PROMPTLY, held).await {
        Ok(got) => got.unwrap(),
        Err(_) => panic!("{what}: the held fetch was not answered within {PROMPTLY:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_on_one_node_wakes_fetches_held_on_another() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let c = two_nodes(&env, &env.nats).await;
    let owner = register_at(&c.http, &c.a.url(), "owner", 1).await.devices[0]
        .token
        .clone();
    let reader = register_at(&c.http, &c.b.url(), "reader", 2).await.devices[0]
        .token
        .clone();
    let ch = Channel::new(31);
    file(&c.http, &c.a.url(), &owner, &ch).await;

    // A fetch held on B and one on A, then a post through A.
    let on_b = hold(&c.http, &c.b, &reader, &ch, 0).await;
    let on_a = hold(&c.http, &c.a, &reader, &ch, 0).await;
    let sent = Instant::now();
    assert_eq!(post(&c.http, &c.a.url(), &owner, &ch, "first").await, 1);
    let got = answered(on_b, "post on A, fetch on B").await;
    let took = sent.elapsed();
    assert_eq!(got.latest, 1);
    assert_eq!(got.posts.len(), 1);
    assert_eq!(got.posts[0].number, 1);
    assert_eq!(ch.open(&got.posts[0].post.0), b"first");
    let got = answered(on_a, "post on A, fetch on A").await;
    assert_eq!(got.posts[0].number, 1);
    eprintln!("a fetch held on node B saw the post filed on node A after {took:?}");

    // And the other way round, re-armed after the post just read.
    let on_a = hold(&c.http, &c.a, &reader, &ch, 1).await;
    assert_eq!(post(&c.http, &c.b.url(), &owner, &ch, "second").await, 2);
    let got = answered(on_a, "post on B, fetch on A").await;
    assert_eq!(got.posts.len(), 1);
    assert_eq!(ch.open(&got.posts[0].post.0), b"second");
    // Nobody waits any more: both nodes forgot the channel's watch.
    assert_eq!(c.a.state.channels.channels(), 0);
    assert_eq!(c.b.state.channels.channels(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_forged_on_the_bus_shows_nothing_that_is_not_stored() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let c = two_nodes(&env, &env.nats).await;
    let owner = register_at(&c.http, &c.a.url(), "owner", 1).await.devices[0]
        .token
        .clone();
    let ch = Channel::new(32);
    file(&c.http, &c.a.url(), &owner, &ch).await;
    let held = hold(&c.http, &c.b, &owner, &ch, 0).await;

    // Someone on the NATS network announces post 99 of the channel, and
    // sends junk on the same subject.
    let nats = async_nats::connect(&env.nats)
        .await
        .unwrap_or_else(|e| panic!("HUSH_TEST_NATS_URL is set but NATS does not answer: {e}"));
    let subject = format!("{}.channels", c.prefix);
    let mut forged = vec![5u8];
    forged.extend_from_slice(&ch.secret.channel_id());
    forged.extend_from_slice(&99u64.to_be_bytes());
    nats.publish(subject.clone(), forged.into()).await.unwrap();
    nats.publish(subject, vec![5, 1, 2].into()).await.unwrap();
    nats.flush().await.unwrap();

    // The woken fetch re-read the store, found nothing and waits on: the
    // next real post is what it answers with.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a forged wake-up ended the wait");
    assert_eq!(post(&c.http, &c.a.url(), &owner, &ch, "real").await, 1);
    let got = answered(held, "post on A after a forged wake-up").await;
    assert_eq!(got.latest, 1);
    assert_eq!(got.posts.len(), 1);
    assert_eq!(ch.open(&got.posts[0].post.0), b"real");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_during_a_nats_outage_reaches_fetches_held_elsewhere_once_it_is_back() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let nats = start_nats(port);
    wait_port(port).await;
    let Two {
        a,
        b,
        http,
        _blobs,
        _pg,
        ..
    } = two_nodes(&env, &format!("nats://127.0.0.1:{port}")).await;
    let owner = register_at(&http, &a.url(), "owner", 1).await.devices[0]
        .token
        .clone();
    let ch = Channel::new(33);
    file(&http, &a.url(), &owner, &ch).await;
    let held = hold(&http, &b, &owner, &ch, 0).await;

    drop(nats);
    wait_health(&http, &a.url(), 503).await;
    wait_health(&http, &b.url(), 503).await;
    // Stored (PostgreSQL has it); its wake-up cannot cross now, and node A
    // stops before NATS is back, so the wake-up it kept for later is lost
    // with it.
    assert_eq!(post(&http, &a.url(), &owner, &ch, "during").await, 1);
    let Node { handle, state, .. } = a;
    handle.unwrap().stop().await;
    drop(state);
    let nats = start_nats(port);
    wait_port(port).await;
    wait_health(&http, &b.url(), 200).await;
    // Back on NATS, node B wakes its held fetches: long before their wait
    // (20 s) ends.
    let got = answered(held, "post during the outage, fetch on B").await;
    assert_eq!(got.posts.len(), 1);
    assert_eq!(ch.open(&got.posts[0].post.0), b"during");
    drop(nats);
}
