//! Three nodes on one PostgreSQL and one NATS, on loopback ports.
//!
//! Needs `HUSH_TEST_POSTGRES_URL` and `HUSH_TEST_NATS_URL` (`.ci/run` sets
//! both); each test skips with a notice when they are unset and fails when
//! they are set and the service does not answer. Every test has its own
//! PostgreSQL schema and its own NATS subject prefix, so tests share the
//! machine's services without seeing each other. The tests with nodes as
//! real processes are in `cluster_processes.rs`.
//!
//! Nodes re-check their queues only every hour here, so a message that
//! arrives on an open connection was brought by a NATS wake-up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::cluster::*;
use common::pg::{PgSchema, env, unique};
use common::{Ws, connect_ws, register_at};
use hush_server::app::{AppState, Settings};
use hush_server::blobs::Blobs;
use hush_server::cluster::ClusterConfig;
use hush_server::server::spawn_local;
use hush_server::store::postgres::PostgresStore;
use hush_wire::Bytes;
use hush_wire::api::CommitClaim;
use hush_wire::ws::ServerFrame;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_three_nodes_chat_one_to_one_and_in_a_group() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    chat_on_three_nodes(three_nodes(&env, &env.nats).await).await;
}

/// The same with nodes that number their devices' queues (decision 0046).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_three_nodes_numbering_early_chat_alike() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    chat_on_three_nodes(three_nodes_early(&env, &env.nats).await).await;
}

async fn chat_on_three_nodes(c: Cluster) {
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

/// A send to a device connected to another node is taken by that node
/// (decision 0046): it hands it over before its write, and the device's
/// acknowledgement spares the write there, as on a node alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_another_node_is_acknowledged_there_before_its_write() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let c = three_nodes_early(&env, &env.nats).await;
    let [a, b] = [&c.nodes[0], &c.nodes[1]];
    let (alice, bob, mut bob_ws) = alice_on_a_bob_on_b(&c).await;
    let before = metric(&c, b, "hush_envelopes_unwritten_total").await;
    for i in 0..10 {
        let body = format!("early {i}");
        // Bob reads and acknowledges while the send waits for its answer.
        let sent = tokio::spawn({
            let (http, url, alice) = (c.http.clone(), a.url(), alice.clone());
            let req = message(&[("bob", 1)], body.as_bytes());
            async move { send(&http, &url, &alice, req).await.status() }
        });
        assert_eq!(envelope(&mut bob_ws).await.payload, body.as_bytes());
        assert_eq!(sent.await.unwrap(), 200);
    }
    assert_eq!(
        metric(&c, a, "hush_cluster_sends_forwarded_total").await,
        10
    );
    assert_eq!(metric(&c, b, "hush_cluster_sends_taken_total").await, 10);
    // Acknowledged within the window: never written (the counter is the
    // process's, and the tests of this file run one at a time).
    let spared = metric(&c, b, "hush_envelopes_unwritten_total").await - before;
    assert!(spared >= 8, "only {spared} of 10 spared their write");
    // An offline device's send is written by the sender's node instead.
    drop(bob_ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = send(
        &c.http,
        &a.url(),
        &alice,
        message(&[("bob", 1)], b"offline"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut bob_ws = connect_ws(b.addr, &bob).await;
    assert_eq!(envelope(&mut bob_ws).await.payload, b"offline");
}

/// Alice registered on the first node, Bob on the second and connected
/// there: their tokens and Bob's connection.
async fn alice_on_a_bob_on_b(c: &Cluster) -> (String, String, Ws) {
    let [a, b] = [&c.nodes[0], &c.nodes[1]];
    let alice = register_at(&c.http, &a.url(), "alice", 1).await.devices[0]
        .token
        .clone();
    let bob = register_at(&c.http, &b.url(), "bob", 2).await.devices[0]
        .token
        .clone();
    let bob_ws = connected(b.addr, &bob).await;
    (alice, bob, bob_ws)
}

/// A counter of a node's `/metrics`.
async fn metric(c: &Cluster, n: &Node, name: &str) -> u64 {
    let text = c
        .http
        .get(format!("{}/metrics", n.url()))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing: {text}"))
}

/// A send written on one node (here commits, which are never handed over
/// before their write) travels over NATS with its wake-up, and the
/// recipient's node hands it over as a local send would, without reading
/// it back from PostgreSQL; a payload too large to carry gets a plain
/// wake-up and is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_between_nodes_travels_with_its_wake_up() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    let c = three_nodes(&env, &env.nats).await;
    let [a, b] = [&c.nodes[0], &c.nodes[1]];
    let (alice, _, mut bob_ws) = alice_on_a_bob_on_b(&c).await;
    let big = vec![7u8; 20 << 10];
    let mut seqs = Vec::new();
    for epoch in 0..4u8 {
        let body = match epoch {
            3 => big.clone(),
            _ => format!("commit {epoch}").into_bytes(),
        };
        let mut commit = message(&[("bob", 1)], &body);
        commit.commit = Some(CommitClaim {
            group_id: Bytes(b"carried".to_vec()),
            epoch: u64::from(epoch),
            token: Bytes(vec![epoch; 32]),
            next_token_hash: Bytes(hush_proto::commit_token::token_hash(&[epoch + 1; 32]).to_vec()),
        });
        let r = send(&c.http, &a.url(), &alice, commit).await;
        assert_eq!(r.status(), 200);
        let e = envelope(&mut bob_ws).await;
        assert_eq!(e.payload, body);
        seqs.push(e.seq);
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(
        metric(&c, a, "hush_cluster_envelopes_carried_total").await,
        3
    );
    assert_eq!(
        metric(&c, b, "hush_cluster_envelopes_received_total").await,
        3
    );
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
    assert_eq!(
        metric(&c, b, "hush_cluster_connections_replaced_total").await,
        1
    );
    assert_eq!(metric(&c, b, "hush_cluster_nats_connected").await, 1);
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
