//! Access revoked on one node of a cluster ends the device's connection on
//! another, and a signed device request accepted by one node is refused as
//! a replay by another: two nodes on one PostgreSQL and one NATS, on
//! loopback ports.
//!
//! Needs `HUSH_TEST_POSTGRES_URL` and `HUSH_TEST_NATS_URL` (`.ci/run` sets
//! both); each test skips with a notice when they are unset. Every test has
//! its own PostgreSQL schema and its own NATS subject prefix. Nodes re-check
//! their queues only every hour, and the suspension sweep runs hourly too,
//! so a socket that closes was closed by the NATS revocation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::pg::{Env, PgSchema, env, unique};
use common::{add_request, expect_error, new_device, now_ms, register_at, remove_request};
use hush_server::app::{AppState, Settings};
use hush_server::blobs::Blobs;
use hush_server::cluster::ClusterConfig;
use hush_server::hub::CLOSE_REVOKED;
use hush_server::ratelimit::Rate;
use hush_server::server::{ServerHandle, spawn_local};
use hush_server::store::postgres::PostgresStore;
use hush_wire::api::{RegisterResponse, RotateTokenResponse};

struct Node {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl Node {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn node(pg: &PgSchema, nats: &str, prefix: &str, blobs: &std::path::Path) -> Node {
    let store = PostgresStore::connect(&pg.node_url()).await.unwrap();
    let mut cluster = ClusterConfig::new(nats);
    cluster.subject_prefix = prefix.to_owned();
    cluster.recheck = Duration::from_secs(3600);
    let unlimited = Rate {
        per_second: 0.0,
        burst: 0.0,
    };
    let settings = Settings {
        per_ip: unlimited,
        per_account: unlimited,
        revocation_sweep: Duration::from_secs(3600),
        ..Settings::default()
    };
    let blobs = Blobs::open(&format!("file://{}", blobs.display())).unwrap();
    let state = AppState::new(Arc::new(store), blobs, settings)
        .join_cluster(cluster)
        .await
        .unwrap_or_else(|e| panic!("HUSH_TEST_NATS_URL is set but NATS does not answer: {e}"));
    let (addr, handle) = spawn_local(state).await.unwrap();
    Node { addr, handle }
}

async fn two_nodes(pg: &PgSchema, nats: &str, blobs: &std::path::Path) -> (Node, Node) {
    let prefix = unique("acc");
    (
        node(pg, nats, &prefix, blobs).await,
        node(pg, nats, &prefix, blobs).await,
    )
}

#[tokio::test]
async fn removal_on_one_node_closes_the_socket_held_on_another() {
    let Some(Env { pg, nats }) = env() else {
        return;
    };
    let pg = PgSchema::create(&pg).await;
    let blobs = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&pg, &nats, blobs.path()).await;
    let http = reqwest::Client::new();
    let bob = register_at(&http, &a.url(), "bob", 2).await;
    let (_, cert) = new_device(&bob.account, "bob", 2, 22);
    let resp = http
        .post(format!("{}/v1/accounts/bob/devices", a.url()))
        .json(&add_request(&bob.account, "bob", 2, &cert, now_ms()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let token = resp.json::<RegisterResponse>().await.unwrap().token;
    // Device 2 holds a socket on node B...
    let mut ws = common::connect_ws(b.addr, &token).await;
    assert!(ws.drain().await.is_empty());
    // Let node B's subscription for it reach NATS.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...and is removed through node A.
    let resp = http
        .delete(format!("{}/v1/accounts/bob/devices/2", a.url()))
        .json(&remove_request(&bob.account, "bob", 2, &cert, now_ms()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    ws.expect_closed_with(CLOSE_REVOKED, 5000).await;
    a.handle.stop().await;
    b.handle.stop().await;
}

#[tokio::test]
async fn a_token_rotated_on_one_node_closes_the_old_tokens_socket_on_another() {
    let Some(Env { pg, nats }) = env() else {
        return;
    };
    let pg = PgSchema::create(&pg).await;
    let blobs = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&pg, &nats, blobs.path()).await;
    let http = reqwest::Client::new();
    let bob = register_at(&http, &a.url(), "bob", 2).await;
    let old = bob.devices[0].token.clone();
    let mut ws = common::connect_ws(b.addr, &old).await;
    assert!(ws.drain().await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = http
        .post(format!("{}/v1/token/rotate", a.url()))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _new = resp.json::<RotateTokenResponse>().await.unwrap();
    ws.expect_closed_with(CLOSE_REVOKED, 5000).await;
    let resp = http
        .get(format!("{}/v1/key-packages/count", b.url()))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    a.handle.stop().await;
    b.handle.stop().await;
}

#[tokio::test]
async fn a_signed_request_accepted_by_one_node_is_refused_when_replayed_to_another() {
    let Some(Env { pg, nats }) = env() else {
        return;
    };
    let pg = PgSchema::create(&pg).await;
    let blobs = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&pg, &nats, blobs.path()).await;
    let http = reqwest::Client::new();
    let alice = register_at(&http, &a.url(), "alice", 3).await;
    let (_, cert) = new_device(&alice.account, "alice", 3, 30);
    let add = add_request(&alice.account, "alice", 3, &cert, now_ms());
    let post = |base: String| {
        http.post(format!("{base}/v1/accounts/alice/devices"))
            .json(&add)
            .send()
    };
    assert_eq!(post(a.url()).await.unwrap().status(), 201);
    // Alice removes the device again, through node A.
    let remove = remove_request(&alice.account, "alice", 3, &cert, now_ms());
    let delete = |base: String| {
        http.delete(format!("{base}/v1/accounts/alice/devices/3"))
            .json(&remove)
            .send()
    };
    assert_eq!(delete(a.url()).await.unwrap().status(), 204);
    // The captured add, replayed to node B within its window, would bring
    // the device back with a fresh token for whoever replays it.
    expect_error(post(b.url()).await.unwrap(), 403, "forbidden").await;

    // A captured removal, replayed to node B after device id 3 was used
    // again, would remove the new device.
    let (_, cert2) = new_device(&alice.account, "alice", 3, 31);
    let resp = http
        .post(format!("{}/v1/accounts/alice/devices", a.url()))
        .json(&add_request(&alice.account, "alice", 3, &cert2, now_ms()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let token = resp.json::<RegisterResponse>().await.unwrap().token;
    expect_error(delete(b.url()).await.unwrap(), 403, "forbidden").await;
    let resp = http
        .get(format!("{}/v1/key-packages/count", b.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the new device 3 is still there");
    a.handle.stop().await;
    b.handle.stop().await;
}
