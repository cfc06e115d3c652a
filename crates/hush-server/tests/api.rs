//! The HTTP and WebSocket API against a real server on a loopback port:
//! delivery, queues, commits and their refusals. Accounts and KeyPackages
//! are in `api_accounts.rs`; attachments, profiles, health, errors and rate
//! limits in `api_service.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_server::app::Settings;
use hush_server::store::{AccountState, DeviceKey};
use hush_wire::api::*;
use hush_wire::ws::ServerFrame;
use hush_wire::{Bytes, DeviceAddress};

async fn wait_for_queue_len(server: &TestServer, device: &DeviceKey, len: usize) {
    for _ in 0..100 {
        if server
            .state
            .store
            .fetch(device, 0, 1000)
            .await
            .unwrap()
            .len()
            == len
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("queue of {device:?} never reached {len}");
}

#[tokio::test]
async fn online_delivery_and_ack() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let mut ws = s.connect(&bob.devices[0].token).await;
    assert!(ws.drain().await.is_empty());
    let resp = s
        .send(&alice.devices[0].token, &[("bob", 1)], b"hello")
        .await;
    assert_eq!(resp.status(), 200);
    let sent: SendResponse = resp.json().await.unwrap();
    assert_eq!(sent.delivered_to, 1);
    match ws.next_frame(3000).await {
        Some(ServerFrame::Envelope(e)) => {
            assert_eq!(e.payload, b"hello");
            assert_eq!(e.received_at_ms, sent.received_at_ms);
            ws.ack(&[e.seq]).await;
        }
        other => panic!("expected an envelope, got {other:?}"),
    }
    wait_for_queue_len(&s, &DeviceKey::new("bob", 1), 0).await;
    drop(ws);
    let mut ws = s.connect(&bob.devices[0].token).await;
    assert!(ws.drain().await.is_empty());
}

/// Envelopes handed straight to a connection and envelopes read back from
/// the store mix: the device still gets its queue once, in order.
#[tokio::test]
async fn online_delivery_keeps_queue_order_under_concurrent_sends() {
    // 200 requests of one account at once: more than its connection quota.
    let s = TestServer::with_settings(Settings {
        quotas: hush_server::quota::QuotaSettings {
            max_connections: 0,
            ..Default::default()
        },
        ..Settings::default()
    })
    .await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    for i in 0..5u16 {
        let resp = s
            .send(&alice.devices[0].token, &[("bob", 1)], &i.to_be_bytes())
            .await;
        assert_eq!(resp.status(), 200);
    }
    let mut ws = s.connect(&bob.devices[0].token).await;
    let mut got: Vec<hush_wire::ws::Envelope> = ws.drain().await;
    assert_eq!(got.len(), 5);
    let sends = (5..205u16).map(|i| {
        let token = alice.devices[0].token.clone();
        let s = &s;
        async move {
            let resp = s.send(&token, &[("bob", 1)], &i.to_be_bytes()).await;
            assert_eq!(resp.status(), 200);
        }
    });
    futures_util::future::join_all(sends).await;
    while got.len() < 205 {
        match ws.next_frame(5000).await {
            Some(ServerFrame::Envelope(e)) => got.push(e),
            other => panic!("expected an envelope, got {other:?} after {}", got.len()),
        }
    }
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in queue order: {seqs:?}"
    );
    let mut payloads: Vec<Vec<u8>> = got.iter().map(|e| e.payload.clone()).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 205, "each message once");
    ws.ack(&seqs).await;
    wait_for_queue_len(&s, &DeviceKey::new("bob", 1), 0).await;
    // A new connection on an empty queue whose next envelope is not seq 1.
    drop(ws);
    let mut ws = s.connect(&bob.devices[0].token).await;
    assert!(ws.drain().await.is_empty());
    let resp = s
        .send(&alice.devices[0].token, &[("bob", 1)], b"late")
        .await;
    assert_eq!(resp.status(), 200);
    match ws.next_frame(3000).await {
        Some(ServerFrame::Envelope(e)) => {
            assert_eq!(e.payload, b"late");
            assert!(e.seq > *seqs.last().unwrap());
        }
        other => panic!("expected an envelope, got {other:?}"),
    }
}

#[tokio::test]
async fn offline_queue_drains_in_order_and_keeps_unacked() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    for i in 0..20u8 {
        let resp = s.send(&alice.devices[0].token, &[("bob", 1)], &[i]).await;
        assert_eq!(resp.status(), 200);
    }
    let mut ws = s.connect(&bob.devices[0].token).await;
    let got = ws.drain().await;
    assert_eq!(
        got.iter().map(|e| e.payload[0]).collect::<Vec<_>>(),
        (0..20).collect::<Vec<u8>>()
    );
    // Ack the first half only; the rest comes again on the next connection.
    let half: Vec<u64> = got[..10].iter().map(|e| e.seq).collect();
    ws.ack(&half).await;
    wait_for_queue_len(&s, &DeviceKey::new("bob", 1), 10).await;
    drop(ws);
    let mut ws = s.connect(&bob.devices[0].token).await;
    let again = ws.drain().await;
    assert_eq!(
        again.iter().map(|e| e.payload[0]).collect::<Vec<_>>(),
        (10..20).collect::<Vec<u8>>()
    );
}

#[tokio::test]
async fn a_device_cannot_ack_another_devices_queue() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let carol = s.register("carol", 3).await;
    s.send(&alice.devices[0].token, &[("bob", 1), ("carol", 1)], b"x")
        .await;
    // Carol acks seq 1, which is also the seq of bob's envelope.
    let mut ws = s.connect(&carol.devices[0].token).await;
    let got = ws.drain().await;
    ws.ack(&[got[0].seq]).await;
    wait_for_queue_len(&s, &DeviceKey::new("carol", 1), 0).await;
    assert_eq!(
        s.state
            .store
            .fetch(&DeviceKey::new("bob", 1), 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    drop(bob);
}

#[tokio::test]
async fn ephemeral_reaches_online_devices_only_and_is_never_stored() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let _carol = s.register("carol", 3).await;
    let mut ws = s.connect(&bob.devices[0].token).await;
    ws.drain().await;
    let resp = s
        .send_req(
            &alice.devices[0].token,
            SendRequest {
                recipients: vec![
                    DeviceAddress {
                        username: "bob".into(),
                        device_id: 1,
                    },
                    DeviceAddress {
                        username: "carol".into(),
                        device_id: 1,
                    },
                ],
                payload: Bytes(b"typing".to_vec()),
                ephemeral: true,
                commit: None,
                franking_commitment: None,
            },
        )
        .await;
    let sent: SendResponse = resp.json().await.unwrap();
    assert_eq!(sent.delivered_to, 1);
    assert_eq!(
        ws.next_frame(3000).await,
        Some(ServerFrame::Ephemeral(b"typing".to_vec()))
    );
    assert_eq!(s.state.store.stats().await.unwrap().queued_envelopes, 0);
}

#[tokio::test]
async fn the_first_commit_for_an_epoch_wins() {
    use hush_proto::commit_token::token_hash;
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    // Tokens stand in for the epochs' MLS exporter secrets.
    let commit = |token: String, epoch: u64, to: &'static str, tok: u8, next: u8| {
        let s = &s;
        async move {
            s.send_req(
                &token,
                SendRequest {
                    recipients: vec![DeviceAddress {
                        username: to.into(),
                        device_id: 1,
                    }],
                    payload: Bytes(b"commit".to_vec()),
                    ephemeral: false,
                    commit: Some(CommitClaim {
                        group_id: Bytes(b"g1".to_vec()),
                        epoch,
                        token: Bytes(vec![tok; 32]),
                        next_token_hash: Bytes(token_hash(&[next; 32]).to_vec()),
                    }),
                    franking_commitment: None,
                },
            )
            .await
        }
    };
    assert_eq!(
        commit(alice.devices[0].token.clone(), 1, "bob", 1, 2)
            .await
            .status(),
        200
    );
    expect_error(
        commit(bob.devices[0].token.clone(), 1, "alice", 1, 9).await,
        409,
        "epoch_conflict",
    )
    .await;
    // The loser's commit was not queued.
    assert!(
        s.state
            .store
            .fetch(&DeviceKey::new("alice", 1), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The next epoch goes to the holder of its token.
    assert_eq!(
        commit(bob.devices[0].token.clone(), 2, "alice", 2, 3)
            .await
            .status(),
        200
    );
    // A commit token that is not 32 bytes is bad input.
    let mut bad = send_request(&[("alice", 1)], b"commit");
    bad.commit = Some(CommitClaim {
        group_id: Bytes(b"g1".to_vec()),
        epoch: 3,
        token: Bytes(vec![3; 31]),
        next_token_hash: Bytes(vec![4; 32]),
    });
    expect_error(
        s.send_req(&bob.devices[0].token, bad).await,
        400,
        "bad_request",
    )
    .await;
}

#[tokio::test]
async fn sends_refuse_bad_input_and_store_nothing() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let _bob = s.register("bob", 2).await;
    let token = &alice.devices[0].token;
    expect_error(s.send(token, &[], b"x").await, 400, "bad_request").await;
    expect_error(s.send(token, &[("bob", 1)], b"").await, 400, "bad_request").await;
    expect_error(
        s.send(token, &[("alice", 1)], b"x").await,
        400,
        "bad_request",
    )
    .await;
    expect_error(
        s.send(token, &[("bob", 1), ("bob", 1)], b"x").await,
        400,
        "bad_request",
    )
    .await;
    // A recipient that does not exist is named in the answer, not an error.
    let resp = s.send(token, &[("nobody", 1)], b"x").await;
    assert_eq!(resp.status(), 200);
    let sent: SendResponse = resp.json().await.unwrap();
    assert_eq!(sent.delivered_to, 0);
    assert_eq!(sent.missing[0].username, "nobody");
    expect_error(
        s.send("not-a-token", &[("bob", 1)], b"x").await,
        401,
        "unauthorized",
    )
    .await;
    let big = vec![0u8; hush_wire::limits::MAX_JSON_BODY + 1];
    let resp = s
        .http
        .post(s.url("/v1/messages"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, "too_large").await;
    assert_eq!(s.state.store.stats().await.unwrap().queued_envelopes, 0);

    let resp = s.http.get(s.url("/v1/nothing-here")).send().await.unwrap();
    expect_error(resp, 404, "not_found").await;
}

#[tokio::test]
async fn suspended_accounts_cannot_act() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let _bob = s.register("bob", 2).await;
    s.state
        .store
        .set_account_state("alice", AccountState::Suspended)
        .await
        .unwrap();
    expect_error(
        s.send(&alice.devices[0].token, &[("bob", 1)], b"x").await,
        403,
        "suspended",
    )
    .await;
}

#[tokio::test]
async fn undelivered_envelopes_expire() {
    let s = TestServer::with_settings(Settings {
        retention: std::time::Duration::from_millis(1),
        ..Settings::default()
    })
    .await;
    let alice = s.register("alice", 1).await;
    let _bob = s.register("bob", 2).await;
    s.send(&alice.devices[0].token, &[("bob", 1)], b"x").await;
    assert_eq!(s.state.store.stats().await.unwrap().queued_envelopes, 1);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    hush_server::server::run_expiry(&s.state).await;
    assert_eq!(s.state.store.stats().await.unwrap().queued_envelopes, 0);
}
