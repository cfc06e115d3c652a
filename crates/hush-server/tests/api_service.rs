//! Attachments, profiles, health and metrics, connections, JSON errors and
//! rate limits through the API of a real server on a loopback port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_server::app::Settings;
use hush_wire::api::*;
use hush_wire::ws::ServerFrame;
use hush_wire::{Bytes, DeviceAddress};

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
