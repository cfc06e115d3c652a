//! Sending over the device's WebSocket: the same rules and the same
//! guarantee as `POST /v1/messages`, answered on the socket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::*;
use futures_util::SinkExt;
use hush_server::store::{AccountState, DeviceKey};
use hush_wire::ws::{ClientFrame, ServerFrame};
use tokio_tungstenite::tungstenite::Message;

/// Frames until one answers send `id` (envelopes and the rest are skipped).
async fn answer(ws: &mut Ws, id: u64) -> ServerFrame {
    loop {
        match ws.next_frame(5000).await {
            Some(f @ (ServerFrame::Sent { id: i, .. } | ServerFrame::Refused { id: i, .. }))
                if i == id =>
            {
                return f;
            }
            Some(_) => continue,
            None => panic!("no answer to send {id}"),
        }
    }
}

async fn refused_code(ws: &mut Ws, id: u64) -> String {
    match answer(ws, id).await {
        ServerFrame::Refused { error, .. } => serde_json::to_value(error.code)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned(),
        other => panic!("send {id} was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn sends_on_the_socket_are_stored_delivered_and_answered() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let _carol = s.register("carol", 3).await;
    let mut a = s.connect(&alice.devices[0].token).await;
    assert!(a.drain().await.is_empty());
    let mut b = s.connect(&bob.devices[0].token).await;
    assert!(b.drain().await.is_empty());

    // Many at once, to an online and an offline recipient.
    for id in 1..=50u64 {
        a.send_frame(id, &[("bob", 1), ("carol", 1)], format!("m{id}").as_bytes())
            .await;
    }
    let mut answered = HashMap::new();
    while answered.len() < 50 {
        match a.next_frame(5000).await {
            Some(ServerFrame::Sent { id, response }) => {
                assert_eq!(response.delivered_to, 2);
                assert!(answered.insert(id, response).is_none(), "answered twice");
            }
            other => panic!("expected answers, got {other:?}"),
        }
    }
    // Bob gets all 50, in queue order, and acknowledges them.
    let mut got = Vec::new();
    while got.len() < 50 {
        match b.next_frame(5000).await {
            Some(ServerFrame::Envelope(e)) => {
                b.ack(&[e.seq]).await;
                got.push(e);
            }
            other => panic!("expected envelopes, got {other:?}"),
        }
    }
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    let mut payloads: Vec<_> = got.iter().map(|e| e.payload.clone()).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 50);
    // Carol was offline: her 50 wait in her queue.
    let carol = DeviceKey::new("carol", 1);
    assert_eq!(
        s.state.store.fetch(&carol, 0, 1000).await.unwrap().len(),
        50
    );
    // Bob's acknowledgements empty his queue.
    let bob_key = DeviceKey::new("bob", 1);
    for _ in 0..100 {
        if s.state
            .store
            .fetch(&bob_key, 0, 1000)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        s.state
            .store
            .fetch(&bob_key, 0, 1000)
            .await
            .unwrap()
            .is_empty()
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_sends_on_the_socket_are_refused_and_store_nothing() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let _bob = s.register("bob", 2).await;
    let mut a = s.connect(&alice.devices[0].token).await;
    assert!(a.drain().await.is_empty());
    a.send_frame(1, &[], b"x").await;
    assert_eq!(refused_code(&mut a, 1).await, "bad_request");
    a.send_frame(2, &[("bob", 1)], b"").await;
    assert_eq!(refused_code(&mut a, 2).await, "bad_request");
    a.send_frame(3, &[("alice", 1)], b"x").await;
    assert_eq!(refused_code(&mut a, 3).await, "bad_request");
    a.send_frame(4, &[("bob", 1), ("bob", 1)], b"x").await;
    assert_eq!(refused_code(&mut a, 4).await, "bad_request");
    // A recipient that does not exist is named, not an error.
    a.send_frame(5, &[("nobody", 1)], b"x").await;
    match answer(&mut a, 5).await {
        ServerFrame::Sent { response, .. } => {
            assert_eq!(response.delivered_to, 0);
            assert_eq!(response.missing.len(), 1);
        }
        other => panic!("expected an answer, got {other:?}"),
    }
    assert_eq!(s.state.store.stats().await.unwrap().queued_envelopes, 0);
    // The connection still works after refusals.
    a.send_frame(6, &[("bob", 1)], b"fine").await;
    assert!(matches!(answer(&mut a, 6).await, ServerFrame::Sent { .. }));
    assert_eq!(s.state.store.stats().await.unwrap().queued_envelopes, 1);
    // A malformed frame ends the connection, and stores nothing.
    a.send_raw(&[0x02, 0, 0]).await;
    assert!(a.next_frame(3000).await.is_none());
    assert_eq!(s.state.store.stats().await.unwrap().queued_envelopes, 1);
    s.stop().await;
}

#[tokio::test]
async fn a_suspended_account_stops_sending_on_an_open_socket() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let _bob = s.register("bob", 2).await;
    let mut a = s.connect(&alice.devices[0].token).await;
    assert!(a.drain().await.is_empty());
    a.send_frame(1, &[("bob", 1)], b"before").await;
    assert!(matches!(answer(&mut a, 1).await, ServerFrame::Sent { .. }));
    s.state
        .store
        .set_account_state("alice", AccountState::Suspended)
        .await
        .unwrap();
    // Suspensions are looked up every second; the socket then closes, so
    // nothing sent on it afterwards is taken.
    a.expect_closed_with(hush_server::hub::CLOSE_REVOKED, 3000)
        .await;
    assert_eq!(s.state.store.stats().await.unwrap().queued_envelopes, 1);
    s.stop().await;
}

/// Envelopes that queue up for a device reach it in one `envelopes` frame,
/// and one acknowledgement frame deletes them all.
#[tokio::test]
async fn queued_envelopes_come_in_one_batch_and_one_ack_clears_them() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    for i in 0..5 {
        let resp = s
            .send(
                &alice.devices[0].token,
                &[("bob", 1)],
                format!("m{i}").as_bytes(),
            )
            .await;
        assert_eq!(resp.status(), 200);
    }
    let bob_key = DeviceKey::new("bob", 1);
    assert_eq!(
        s.state.store.fetch(&bob_key, 0, 100).await.unwrap().len(),
        5
    );

    let mut b = s.connect(&bob.devices[0].token).await;
    // The raw frame: one batch of the five, in queue order.
    let raw = match b.ws.next().await.unwrap().unwrap() {
        Message::Binary(bytes) => bytes,
        other => panic!("expected a binary frame, got {other:?}"),
    };
    let ServerFrame::Envelopes(batch) = ServerFrame::decode(&raw).unwrap() else {
        panic!(
            "expected one envelopes frame, got {:?}",
            ServerFrame::decode(&raw)
        );
    };
    assert_eq!(batch.len(), 5);
    assert!(batch.windows(2).all(|w| w[0].seq < w[1].seq));
    let opened: Vec<Vec<u8>> = batch
        .iter()
        .map(|e| match b.unseal(ServerFrame::Envelope(e.clone())) {
            ServerFrame::Envelope(e) => e.payload,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        opened,
        (0..5)
            .map(|i| format!("m{i}").into_bytes())
            .collect::<Vec<_>>()
    );
    assert!(matches!(
        b.next_frame(3000).await,
        Some(ServerFrame::Drained)
    ));
    // One acknowledgement frame for the batch.
    let seqs: Vec<u64> = batch.iter().map(|e| e.seq).collect();
    b.ack(&seqs).await;
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = s.state.store.fetch(&bob_key, 0, 100).await.unwrap().len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "one ack deleted the whole batch");
    // A new connection gets nothing again.
    drop(b);
    let mut b = s.connect(&bob.devices[0].token).await;
    assert!(b.drain().await.is_empty());
    s.stop().await;
}

/// Envelopes handed over while a device is online and slow to read also go
/// out batched: every one arrives once, in order, whatever the framing.
#[tokio::test]
async fn a_burst_to_an_online_device_arrives_whole_and_in_order() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let mut a = s.connect(&alice.devices[0].token).await;
    assert!(a.drain().await.is_empty());
    let mut b = s.connect(&bob.devices[0].token).await;
    assert!(b.drain().await.is_empty());
    for id in 1..=200u64 {
        a.send_frame(id, &[("bob", 1)], format!("m{id}").as_bytes())
            .await;
    }
    let mut got = Vec::new();
    while got.len() < 200 {
        match b.next_frame(5000).await {
            Some(ServerFrame::Envelope(e)) => got.push(e),
            other => panic!("expected envelopes, got {other:?}"),
        }
    }
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    let mut payloads: Vec<_> = got.iter().map(|e| e.payload.clone()).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 200);
    b.ack(&got.iter().map(|e| e.seq).collect::<Vec<_>>()).await;
    assert!(
        b.next_frame(300).await.is_none(),
        "nothing more, nothing twice"
    );
    s.stop().await;
}

/// A device that writes while the server writes to it, each reading
/// nothing until its write is done, stalled both for good: the server read
/// its socket only between writes. 48 MB each way is more than both
/// sockets' buffers hold on loopback (the kernel's autotuning stops at 32 MB
/// for reading and 4 MB for writing).
#[tokio::test]
async fn a_device_writing_while_the_server_writes_to_it_does_not_stall_both() {
    const PAYLOAD: usize = 400 * 1024;
    const EACH_WAY: usize = 120;
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let mut b = s.connect(&bob.devices[0].token).await;
    assert!(b.drain().await.is_empty());
    let mut a = s.connect(&alice.devices[0].token).await;
    assert!(a.drain().await.is_empty());
    // Alice's messages are pushed to bob, who reads nothing for now.
    for id in 0..EACH_WAY as u64 {
        a.send_frame(id, &[("bob", 1)], &vec![id as u8; PAYLOAD])
            .await;
    }
    let mut sent = 0;
    while sent < EACH_WAY {
        match a.next_frame(30_000).await {
            Some(ServerFrame::Sent { .. }) => sent += 1,
            other => panic!("alice's send {sent} was answered {other:?}"),
        }
    }
    drop(a);
    // Bob writes as much before reading anything.
    let writing = async {
        for id in 0..EACH_WAY as u64 {
            let request = send_request(&[("alice", 1)], &vec![7; PAYLOAD]);
            let frame = ClientFrame::Send { id, request }.encode();
            b.ws.feed(Message::Binary(frame.into())).await.unwrap();
        }
        b.ws.flush().await.unwrap();
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), writing)
        .await
        .expect("the server took nothing more from bob while he did not read: stalled");
    // Everything arrives, once each, and every send is answered.
    // Alice's sends commit concurrently: the queue's order is the order
    // they were stored in, not their ids'.
    let (mut got, mut answered, mut last_seq) = (Vec::new(), 0, 0);
    while got.len() < EACH_WAY || answered < EACH_WAY {
        match b.next_frame(30_000).await {
            Some(ServerFrame::Envelope(e)) => {
                b.ack(&[e.seq]).await;
                assert_eq!(e.payload.len(), PAYLOAD);
                assert!(e.seq > last_seq, "in queue order");
                last_seq = e.seq;
                got.push(e.payload[0]);
            }
            Some(ServerFrame::Sent { .. } | ServerFrame::Refused { .. }) => answered += 1,
            Some(_) => {}
            None => panic!(
                "{} envelopes and {answered} answers, then silence",
                got.len()
            ),
        }
    }
    got.sort_unstable();
    assert_eq!(got, (0..EACH_WAY).map(|i| i as u8).collect::<Vec<_>>());
}
