//! The HTTP and WebSocket API against a real server on a loopback port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_proto::Suite;
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
async fn register_and_look_up() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let resp = s.get_as("/v1/accounts/alice", &bob.devices[0].token).await;
    assert_eq!(resp.status(), 200);
    let entry: AccountResponse = resp.json().await.unwrap();
    assert_eq!(entry.account_key.0, alice.account.public().as_bytes());
    assert_eq!(entry.devices.len(), 1);
    assert_eq!(
        entry.devices[0].certificate.0,
        alice.devices[0].cert.encode()
    );

    // The directory needs a registered device.
    let resp = s
        .http
        .get(s.url("/v1/accounts/alice"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "unauthorized").await;
    let resp = s.get_as("/v1/accounts/nobody", &bob.devices[0].token).await;
    expect_error(resp, 404, "not_found").await;
}

#[tokio::test]
async fn registration_refuses_bad_input_and_changes_nothing() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let post = |body: serde_json::Value| s.http.post(s.url("/v1/accounts")).json(&body).send();
    let (_, cert) = new_device(&alice.account, "alice", 1, 77);
    let good = |name: &str, cert: &[u8]| {
        serde_json::json!({
            "username": name,
            "account_key": Bytes(alice.account.public().as_bytes().to_vec()),
            "device": {"device_id": 1, "certificate": Bytes(cert.to_vec())}
        })
    };
    // Taken.
    expect_error(
        post(good("alice", &cert.encode())).await.unwrap(),
        409,
        "username_taken",
    )
    .await;
    // A certificate for another username.
    expect_error(
        post(good("alicia", &cert.encode())).await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    // A bad username.
    expect_error(
        post(good("A!", &cert.encode())).await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    // A corrupt certificate.
    let mut bad = cert.encode();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    expect_error(post(good("alice", &bad)).await.unwrap(), 400, "bad_request").await;
    // Malformed JSON, unknown fields, wrong types.
    let resp = s
        .http
        .post(s.url("/v1/accounts"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "bad_request").await;
    expect_error(
        post(serde_json::json!({"username": "x", "extra": 1}))
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    // Nothing changed: still one account, one device.
    let stats = s.state.store.stats().await.unwrap();
    assert_eq!((stats.accounts, stats.devices), (1, 1));
}

#[tokio::test]
async fn devices_are_added_and_removed_with_the_account_key() {
    let s = TestServer::start().await;
    let mut alice = s.register("alice", 1).await;
    s.add_device(&mut alice, 2, 50).await;
    assert_eq!(
        s.state
            .store
            .account("alice")
            .await
            .unwrap()
            .unwrap()
            .devices
            .len(),
        2
    );

    // A signature by another key is refused.
    let mallory = hush_proto::AccountKey::generate(&mut rng(666)).unwrap();
    let (_, cert) = new_device(&alice.account, "alice", 3, 51);
    let resp = s
        .http
        .post(s.url("/v1/accounts/alice/devices"))
        .json(&add_request(&mallory, "alice", 3, &cert, now_ms()))
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "forbidden").await;

    // A stale timestamp is refused.
    let cert2 = alice.devices[1].cert.clone();
    let ts = now_ms() - 3_600_000;
    let resp = s
        .http
        .delete(s.url("/v1/accounts/alice/devices/2"))
        .json(&remove_request(&alice.account, "alice", 2, &cert2, ts))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "bad_request").await;

    let resp = s
        .http
        .delete(s.url("/v1/accounts/alice/devices/2"))
        .json(&remove_request(
            &alice.account,
            "alice",
            2,
            &cert2,
            now_ms(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // The removed device's token no longer works.
    let resp = s
        .get_as("/v1/key-packages/count", &alice.devices[1].token)
        .await;
    expect_error(resp, 401, "unauthorized").await;
}

#[tokio::test]
async fn key_packages_upload_count_claim() {
    let s = TestServer::start().await;
    let mut alice = s.register("alice", 1).await;
    s.add_device(&mut alice, 2, 60).await;
    let bob = s.register("bob", 2).await;
    for d in &alice.devices {
        for suite in Suite::ALL {
            let n = suite.cipher_suite().raw_value();
            let kps: Vec<Bytes> = (0..2)
                .map(|_| Bytes(s.key_package(d, suite, false)))
                .collect();
            let resp = s
                .http
                .put(s.url("/v1/key-packages"))
                .bearer_auth(&d.token)
                .json(&UploadKeyPackagesRequest {
                    suite: n,
                    key_packages: kps,
                    last_resort: Some(Bytes(s.key_package(d, suite, true))),
                })
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 204, "{}", resp.text().await.unwrap());
        }
    }
    let counts: KeyPackageCountResponse = s
        .get_as("/v1/key-packages/count", &alice.devices[0].token)
        .await
        .json()
        .await
        .unwrap();
    assert!(counts.counts.iter().all(|c| c.count == 2));

    let claim = || async {
        let resp = s
            .post_as(
                "/v1/accounts/alice/key-packages/claim?suite=65100",
                &bob.devices[0].token,
            )
            .await;
        assert_eq!(resp.status(), 200);
        resp.json::<ClaimResponse>().await.unwrap()
    };
    let first = claim().await;
    assert_eq!(first.key_packages.len(), 2);
    let second = claim().await;
    assert_ne!(first, second);
    // Then the last-resort ones, again and again.
    let third = claim().await;
    assert_eq!(third, claim().await);
    for kp in &third.key_packages {
        assert!(
            hush_proto::inspect_key_package(kp.key_package.as_slice())
                .unwrap()
                .last_resort
        );
    }

    // Uploading another device's KeyPackage is refused; so is garbage.
    let resp = s
        .http
        .put(s.url("/v1/key-packages"))
        .bearer_auth(&bob.devices[0].token)
        .json(&UploadKeyPackagesRequest {
            suite: 65100,
            key_packages: vec![Bytes(s.key_package(
                &alice.devices[0],
                Suite::Hybrid,
                false,
            ))],
            last_resort: None,
        })
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "forbidden").await;
    let resp = s
        .http
        .put(s.url("/v1/key-packages"))
        .bearer_auth(&bob.devices[0].token)
        .json(&UploadKeyPackagesRequest {
            suite: 1,
            key_packages: vec![Bytes(b"garbage".to_vec())],
            last_resort: None,
        })
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "bad_request").await;
    let resp = s
        .post_as(
            "/v1/accounts/alice/key-packages/claim?suite=7",
            &bob.devices[0].token,
        )
        .await;
    expect_error(resp, 400, "bad_request").await;
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

#[tokio::test]
async fn attachments_resume_and_serve_ranges() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let created: CreateAttachmentResponse = s
        .http
        .post(s.url("/v1/attachments"))
        .bearer_auth(&alice.devices[0].token)
        .json(&CreateAttachmentRequest {
            size: data.len() as u64,
        })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = s.url(&format!("/v1/attachments/{}", created.id));
    let patch = |offset: usize, bytes: &[u8]| {
        s.http
            .patch(&url)
            .bearer_auth(&alice.devices[0].token)
            .header("upload-offset", offset.to_string())
            .body(bytes.to_vec())
            .send()
    };
    let resp = patch(0, &data[..4000]).await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["upload-offset"], "4000");
    // The connection "dropped"; a retry at the wrong offset is refused.
    expect_error(
        patch(0, &data[..4000]).await.unwrap(),
        409,
        "offset_mismatch",
    )
    .await;
    // Not downloadable before it is complete.
    let resp = s
        .http
        .get(&url)
        .bearer_auth(&bob.devices[0].token)
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    let status: AttachmentStatus = s
        .http
        .get(format!("{url}/status"))
        .bearer_auth(&alice.devices[0].token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((status.offset, status.complete), (4000, false));
    assert_eq!(patch(4000, &data[4000..]).await.unwrap().status(), 204);
    // Past the announced size.
    expect_error(patch(10_000, b"more").await.unwrap(), 413, "too_large").await;

    let all = s
        .http
        .get(&url)
        .bearer_auth(&bob.devices[0].token)
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), 200);
    assert_eq!(all.bytes().await.unwrap().to_vec(), data);
    let part = s
        .http
        .get(&url)
        .bearer_auth(&bob.devices[0].token)
        .header("range", "bytes=3990-4009")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 3990-4009/10000");
    assert_eq!(part.bytes().await.unwrap().to_vec(), data[3990..4010]);
    let resp = s
        .http
        .get(&url)
        .bearer_auth(&bob.devices[0].token)
        .header("range", "bytes=20000-")
        .send()
        .await
        .unwrap();
    expect_error(resp, 416, "range_not_satisfiable").await;

    // Too large at creation; unknown ids.
    let resp = s
        .http
        .post(s.url("/v1/attachments"))
        .bearer_auth(&alice.devices[0].token)
        .json(&CreateAttachmentRequest { size: 1 << 40 })
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, "too_large").await;
    let resp = s
        .get_as(
            "/v1/attachments/AAAAAAAAAAAAAAAAAAAAAA",
            &bob.devices[0].token,
        )
        .await;
    expect_error(resp, 404, "not_found").await;
    let resp = s
        .get_as("/v1/attachments/..%2F..%2Fetc", &bob.devices[0].token)
        .await;
    expect_error(resp, 404, "not_found").await;
}

#[tokio::test]
async fn profiles_are_opaque_blobs() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let resp = s
        .http
        .put(s.url("/v1/profile"))
        .bearer_auth(&alice.devices[0].token)
        .body(b"ciphertext".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let got = s
        .get_as("/v1/accounts/alice/profile", &bob.devices[0].token)
        .await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"ciphertext");
    let resp = s
        .get_as("/v1/accounts/bob/profile", &alice.devices[0].token)
        .await;
    expect_error(resp, 404, "not_found").await;
}

#[tokio::test]
async fn health_and_metrics() {
    let s = TestServer::with_settings(Settings {
        metrics_token: Some(hush_server::app::MetricsToken(
            "a-metrics-token-of-the-operator".into(),
        )),
        ..Settings::default()
    })
    .await;
    let resp = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let alice = s.register("alice", 1).await;
    let _bob = s.register("bob", 2).await;
    s.send(&alice.devices[0].token, &[("bob", 1)], b"x").await;
    let text = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth("a-metrics-token-of-the-operator")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("hush_queue_depth 1"), "{text}");
    assert!(text.contains("hush_accounts 2"));
    assert!(text.contains("hush_delivery_latency_ms_bucket"));
}

#[tokio::test]
async fn a_newer_connection_replaces_the_older() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let mut first = s.connect(&bob.devices[0].token).await;
    first.drain().await;
    let mut second = s.connect(&bob.devices[0].token).await;
    second.drain().await;
    assert_eq!(first.next_frame(3000).await, None, "the old one is closed");
    s.send(&alice.devices[0].token, &[("bob", 1)], b"to the new one")
        .await;
    assert!(matches!(
        second.next_frame(3000).await,
        Some(ServerFrame::Envelope(_))
    ));
}

/// Refusals that used to be axum's plain text (or a dead database writer)
/// are JSON errors like every other.
#[tokio::test]
async fn edge_refusals_are_json_errors() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let _bob = s.register("bob", 2).await;
    let token = &alice.devices[0].token;

    // A GET of the WebSocket endpoint that is not an upgrade.
    let resp = s.get_as("/v1/ws", token).await;
    expect_error(resp, 400, "bad_request").await;

    // A binary body over the route's limit.
    let resp = s
        .http
        .put(s.url("/v1/profile"))
        .bearer_auth(token)
        .body(vec![7u8; hush_wire::limits::MAX_PROFILE_LEN + 1])
        .send()
        .await
        .unwrap();
    expect_error(resp, 413, "too_large").await;

    // A commit claiming an epoch whose successor does not fit the store is
    // refused, and the server keeps accepting writes afterwards.
    for epoch in [u64::MAX, i64::MAX as u64] {
        let resp = s
            .send_req(
                token,
                SendRequest {
                    recipients: vec![DeviceAddress {
                        username: "bob".into(),
                        device_id: 1,
                    }],
                    payload: Bytes(b"commit".to_vec()),
                    ephemeral: false,
                    commit: Some(CommitClaim {
                        group_id: Bytes(b"g".to_vec()),
                        epoch,
                        token: Bytes(vec![1; 32]),
                        next_token_hash: Bytes(vec![2; 32]),
                    }),
                    franking_commitment: None,
                },
            )
            .await;
        expect_error(resp, 400, "bad_request").await;
    }
    assert_eq!(s.send(token, &[("bob", 1)], b"x").await.status(), 200);

    // A zero-length suffix range selects nothing.
    let created: CreateAttachmentResponse = s
        .http
        .post(s.url("/v1/attachments"))
        .bearer_auth(token)
        .json(&CreateAttachmentRequest { size: 4 })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = s.url(&format!("/v1/attachments/{}", created.id));
    let resp = s
        .http
        .patch(&url)
        .bearer_auth(token)
        .header("upload-offset", "0")
        .body(b"abcd".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = s
        .http
        .get(&url)
        .bearer_auth(token)
        .header("range", "bytes=-0")
        .send()
        .await
        .unwrap();
    expect_error(resp, 416, "range_not_satisfiable").await;
}

#[tokio::test]
async fn rate_limits_hold_per_ip_and_per_account() {
    use hush_server::ratelimit::Rate;
    let s = TestServer::with_settings(Settings {
        per_ip: Rate {
            per_second: 0.001,
            burst: 8.0,
        },
        ..Settings::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            s.http
                .get(s.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        8,
        "{statuses:?}"
    );
    let resp = s.http.get(s.url("/healthz")).send().await.unwrap();
    expect_error(resp, 429, "rate_limited").await;

    let s = TestServer::with_settings(Settings {
        per_account: Rate {
            per_second: 0.001,
            burst: 3.0,
        },
        ..Settings::default()
    })
    .await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    for _ in 0..3 {
        assert_eq!(
            s.send(&alice.devices[0].token, &[("bob", 1)], b"x")
                .await
                .status(),
            200
        );
    }
    expect_error(
        s.send(&alice.devices[0].token, &[("bob", 1)], b"x").await,
        429,
        "rate_limited",
    )
    .await;
    // Another account is not affected.
    assert_eq!(
        s.send(&bob.devices[0].token, &[("alice", 1)], b"x")
            .await
            .status(),
        200
    );
}
