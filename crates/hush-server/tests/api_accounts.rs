//! Accounts, devices and KeyPackages through the HTTP API of a real server
//! on a loopback port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_proto::Suite;
use hush_wire::Bytes;
use hush_wire::api::*;

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
                "/v1/accounts/alice/key-packages/claim?suite=77",
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
            suite: 77,
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
