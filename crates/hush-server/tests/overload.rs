//! Overload on PostgreSQL is backpressure, not failure: the relay load that
//! once starved a PostgreSQL node's connection pool (32 sender/recipient
//! pairs, 8 sends in flight each, over device WebSockets) is carried by one
//! node and by a cluster of two with no refusal but "busy, retry" (503), no
//! connection reset, and every acknowledged message delivered exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use common::cluster::*;
use common::pg::{PgSchema, env, unique};
use common::*;
use futures_util::SinkExt;
use hush_wire::ErrorCode;
use hush_wire::ws::{ClientFrame, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

/// Pairs of the default `hush-bench relay` load.
const PAIRS: usize = 32;
/// Sends in flight per sender (the default window).
const WINDOW: usize = 8;
/// Messages per sender.
const PER_SENDER: usize = 60;
/// Longest the whole load may take (a bound, not a measurement).
const LOAD_LIMIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_load_on_one_postgresql_node_is_carried_without_errors() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    carry_the_load(&env, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_load_on_a_cluster_of_two_is_carried_without_errors() {
    let Some(env) = env() else { return };
    let _serial = SERIAL.lock().await;
    carry_the_load(&env, 2).await;
}

/// Senders connect to the first node, receivers to the last.
async fn carry_the_load(env: &common::pg::Env, nodes: usize) {
    let pg = PgSchema::create(&env.pg).await;
    let prefix = unique("o");
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    let mut procs = Vec::new();
    let mut bases = Vec::new();
    for i in 0..nodes {
        let data = dir.path().join(format!("n{i}"));
        let (p, base) = if nodes == 1 {
            single_node(&pg, &data)
        } else {
            start_node(&pg, &env.nats, &prefix, &blobs, &data)
        };
        procs.push(p);
        bases.push(base);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    for b in &bases {
        wait_health(&http, b, 200).await;
    }
    let (first, last) = (addr_of(&bases[0]), addr_of(&bases[nodes - 1]));
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for p in 0..PAIRS {
        let (tx, rx) = (format!("tx{p}"), format!("rx{p}"));
        let tx_token = register_at(&http, &bases[0], &tx, 1000 + p as u64)
            .await
            .devices[0]
            .token
            .clone();
        let rx_token = register_at(&http, &bases[0], &rx, 2000 + p as u64)
            .await
            .devices[0]
            .token
            .clone();
        receivers.push(tokio::spawn(receive(last, rx_token)));
        senders.push(tokio::spawn(send_all(first, tx_token, rx)));
    }
    let mut sent = 0;
    for s in senders {
        sent += tokio::time::timeout(LOAD_LIMIT, s)
            .await
            .expect("the senders finish in time")
            .unwrap();
    }
    let mut delivered = 0;
    for r in receivers {
        let got = tokio::time::timeout(LOAD_LIMIT, r)
            .await
            .expect("the receivers finish in time")
            .unwrap();
        for (payload, times) in &got {
            assert_eq!(*times, 1, "{payload:?} delivered {times} times");
        }
        delivered += got.len();
    }
    assert_eq!(sent, PAIRS * PER_SENDER);
    assert_eq!(delivered, sent, "every acknowledged message is delivered");
    drop(procs);
}

/// A node on PostgreSQL alone (no NATS), as an operator runs one.
fn single_node(pg: &PgSchema, data: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let child = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--database")
        .arg(pg.node_url())
        .args(["--rate-limit-ip", "0", "--rate-limit-account", "0"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

/// Sends [`PER_SENDER`] messages to `to` with [`WINDOW`] in flight; a
/// refusal as busy is sent again after a pause, any other refusal or a
/// dropped connection fails the test. Returns how many were accepted.
async fn send_all(node: std::net::SocketAddr, token: String, to: String) -> usize {
    let mut ws = connect_ws(node, &token).await;
    let mut waiting: VecDeque<u64> = (0..PER_SENDER as u64).collect();
    let mut in_flight = 0;
    let mut accepted = 0;
    while accepted < PER_SENDER {
        while in_flight < WINDOW
            && let Some(id) = waiting.pop_front()
        {
            let payload = format!("{to} #{id}").into_bytes();
            ws.send_frame(id, &[(&to, 1)], &payload).await;
            in_flight += 1;
        }
        match ws.next_frame(60_000).await {
            Some(ServerFrame::Sent { .. }) => {
                in_flight -= 1;
                accepted += 1;
            }
            Some(ServerFrame::Refused { id, error }) => {
                assert_eq!(
                    error.code,
                    ErrorCode::Unavailable,
                    "send {id} to {to} refused: {error:?}"
                );
                in_flight -= 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                waiting.push_back(id);
            }
            Some(_) => {}
            None => panic!("the sender of {to} lost its connection after {accepted} sends"),
        }
    }
    accepted
}

/// Receives and acknowledges until [`PER_SENDER`] distinct messages came;
/// each payload with the number of times it came.
async fn receive(node: std::net::SocketAddr, token: String) -> HashMap<Vec<u8>, usize> {
    let mut ws = connect_ws(node, &token).await;
    let mut got: HashMap<Vec<u8>, usize> = HashMap::new();
    while got.len() < PER_SENDER {
        match ws.next_frame(60_000).await {
            Some(ServerFrame::Envelope(e)) => {
                *got.entry(e.payload.clone()).or_default() += 1;
                let ack = ClientFrame::Ack(vec![e.seq]).encode();
                ws.ws.send(Message::Binary(ack.into())).await.unwrap();
            }
            Some(_) => {}
            None => panic!(
                "a receiver lost its connection after {} messages",
                got.len()
            ),
        }
    }
    // Anything more would be a duplicate: give it a moment to show.
    while let Some(f) = ws.next_frame(300).await {
        if let ServerFrame::Envelope(e) = f {
            *got.entry(e.payload.clone()).or_default() += 1;
        }
    }
    got
}
