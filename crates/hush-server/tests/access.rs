//! Attacks on access control, performed against a real server on a loopback
//! port: draining another account's KeyPackages, keeping access after a
//! device is removed, an account suspended or a token rotated, and
//! replaying signed device requests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_proto::{Suite, inspect_key_package};
use hush_server::app::{MetricsToken, Settings};
use hush_server::hub::CLOSE_REVOKED;
use hush_server::store::AccountState;
use hush_wire::api::*;
use hush_wire::ws::ServerFrame;
use hush_wire::{Bytes, DeviceAddress};

const METRICS_TOKEN: &str = "operator-metrics-token-for-tests";

async fn server() -> TestServer {
    TestServer::with_settings(Settings {
        metrics_token: Some(MetricsToken(METRICS_TOKEN.into())),
        ..Settings::default()
    })
    .await
}

/// Uploads `n` one-time KeyPackages (and a last resort) of `user`'s first
/// device for the classical suite.
async fn upload_key_packages(s: &TestServer, user: &User, n: usize) {
    let d = &user.devices[0];
    let kps = (0..n)
        .map(|_| Bytes(s.key_package(d, Suite::Classical, false)))
        .collect();
    let resp = s
        .http
        .put(s.url("/v1/key-packages"))
        .bearer_auth(&d.token)
        .json(&UploadKeyPackagesRequest {
            suite: Suite::Classical.cipher_suite().raw_value(),
            key_packages: kps,
            last_resort: Some(Bytes(s.key_package(d, Suite::Classical, true))),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

async fn claim(s: &TestServer, token: &str, target: &str) -> reqwest::Response {
    let suite = Suite::Classical.cipher_suite().raw_value();
    s.post_as(
        &format!("/v1/accounts/{target}/key-packages/claim?suite={suite}"),
        token,
    )
    .await
}

/// Whether a claim answer handed out a one-time KeyPackage.
async fn one_time(resp: reqwest::Response) -> bool {
    assert_eq!(resp.status(), 200);
    let body: ClaimResponse = resp.json().await.unwrap();
    let kp = &body.key_packages[0].key_package;
    !inspect_key_package(kp.as_slice()).unwrap().last_resort
}

async fn metric(s: &TestServer, line_start: &str) -> u64 {
    let text = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_stranger_claiming_in_a_loop_cannot_drain_anothers_key_packages() {
    let s = server().await;
    let bob = s.register("bob", 2).await;
    let mallory = s.register("mallory", 3).await;
    let alice = s.register("alice", 1).await;
    upload_key_packages(&s, &bob, 20).await;
    let pair = "hush_key_package_claims_refused_total{limit=\"pair\"}";
    let before = metric(&s, pair).await;

    let mut taken = 0;
    let mut refused = 0;
    for _ in 0..50 {
        let resp = claim(&s, &mallory.devices[0].token, "bob").await;
        if resp.status() == 429 {
            let wait: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(wait >= 1, "Retry-After {wait}");
            expect_error(resp, 429, "rate_limited").await;
            refused += 1;
        } else {
            assert!(one_time(resp).await);
            taken += 1;
        }
    }
    assert_eq!(taken, 5, "one claimer takes at most 5 at once");
    assert_eq!(refused, 45);
    assert_eq!(metric(&s, pair).await - before, 45);

    // Bob still has one-time KeyPackages for a legitimate claimer.
    assert!(one_time(claim(&s, &alice.devices[0].token, "bob").await).await);
    let counts: KeyPackageCountResponse = s
        .get_as("/v1/key-packages/count", &bob.devices[0].token)
        .await
        .json()
        .await
        .unwrap();
    let classical = Suite::Classical.cipher_suite().raw_value();
    let left = counts.counts.iter().find(|c| c.suite == classical).unwrap();
    assert_eq!(left.count, 14);
    s.stop().await;
}

#[tokio::test]
async fn many_stranger_accounts_together_take_at_most_the_per_target_share() {
    let s = server().await;
    let bob = s.register("bob", 2).await;
    upload_key_packages(&s, &bob, 20).await;
    let target = "hush_key_package_claims_refused_total{limit=\"target\"}";
    let before = metric(&s, target).await;
    let mut taken = 0;
    for i in 0..4 {
        let sybil = s.register(&format!("sybil{i}"), 10 + i).await;
        for _ in 0..5 {
            let resp = claim(&s, &sybil.devices[0].token, "bob").await;
            if resp.status() == 200 {
                assert!(one_time(resp).await);
                taken += 1;
            } else {
                expect_error(resp, 429, "rate_limited").await;
            }
        }
    }
    // Ten at once, however many accounts claim: ten of the device's twenty
    // one-time KeyPackages stay until it tops up.
    assert_eq!(taken, 10);
    assert_eq!(metric(&s, target).await - before, 10);
    s.stop().await;
}

/// Bob's second device, connected and drained, and the way to remove it.
async fn bob_with_two_devices(s: &TestServer) -> (User, Ws) {
    let mut bob = s.register("bob", 2).await;
    s.add_device(&mut bob, 2, 22).await;
    let mut ws = s.connect(&bob.devices[1].token).await;
    assert!(ws.drain().await.is_empty());
    (bob, ws)
}

fn ephemeral_to(username: &str, device_id: u32) -> SendRequest {
    SendRequest {
        recipients: vec![DeviceAddress {
            username: username.into(),
            device_id,
        }],
        payload: Bytes(b"typing".to_vec()),
        ephemeral: true,
        commit: None,
        franking_commitment: None,
    }
}

#[tokio::test]
async fn a_removed_device_with_an_open_socket_stops_receiving_at_once() {
    let s = server().await;
    let alice = s.register("alice", 1).await;
    let (bob, mut ws) = bob_with_two_devices(&s).await;
    // Before: ephemeral traffic reaches the device.
    s.send_req(&alice.devices[0].token, ephemeral_to("bob", 2))
        .await;
    assert!(matches!(
        ws.seen(3000).await,
        Seen::Frame(ServerFrame::Ephemeral(_))
    ));

    let resp = s
        .http
        .delete(s.url("/v1/accounts/bob/devices/2"))
        .json(&remove_request(
            &bob.account,
            "bob",
            2,
            &bob.devices[1].cert,
            now_ms(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // Right after the removal answered, more traffic for it...
    s.send_req(&alice.devices[0].token, ephemeral_to("bob", 2))
        .await;
    // ...never reaches it: the socket is closed, with nothing before.
    ws.expect_closed_with(CLOSE_REVOKED, 3000).await;
    // And it cannot come back.
    let resp = s
        .get_as("/v1/key-packages/count", &bob.devices[1].token)
        .await;
    expect_error(resp, 401, "unauthorized").await;
    s.stop().await;
}

#[tokio::test]
async fn a_suspended_accounts_open_socket_is_closed() {
    let s = server().await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let mut ws = s.connect(&bob.devices[0].token).await;
    assert!(ws.drain().await.is_empty());
    // What `hush-server admin accounts suspend bob` does, from its own
    // process: it only writes the database.
    s.state
        .store
        .set_account_state("bob", AccountState::Suspended)
        .await
        .unwrap();
    // Within the sweep (1 s), the socket closes.
    let started = std::time::Instant::now();
    ws.expect_closed_with(CLOSE_REVOKED, 3000).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // Stored messages for bob are not delivered on a new socket either.
    s.send(&alice.devices[0].token, &[("bob", 1)], b"hello")
        .await;
    let resp = s.get_as("/v1/ws", &bob.devices[0].token).await;
    expect_error(resp, 403, "suspended").await;
    s.stop().await;
}

#[tokio::test]
async fn an_old_token_after_rotation_gets_401_and_its_socket_closes() {
    let s = server().await;
    let bob = s.register("bob", 2).await;
    let old = bob.devices[0].token.clone();
    let mut ws = s.connect(&old).await;
    assert!(ws.drain().await.is_empty());
    let resp = s.post_as("/v1/token/rotate", &old).await;
    assert_eq!(resp.status(), 200);
    let new = resp.json::<RotateTokenResponse>().await.unwrap().token;
    assert_ne!(new, old);
    ws.expect_closed_with(CLOSE_REVOKED, 3000).await;
    expect_error(
        s.get_as("/v1/key-packages/count", &old).await,
        401,
        "unauthorized",
    )
    .await;
    // Rotating again with the old token does not work either.
    expect_error(
        s.post_as("/v1/token/rotate", &old).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(s.get_as("/v1/key-packages/count", &new).await.status(), 200);
    let mut ws = s.connect(&new).await;
    assert!(ws.drain().await.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_captured_signed_request_sent_again_is_refused() {
    let s = server().await;
    let mut alice = s.register("alice", 1).await;
    let (_, cert) = new_device(&alice.account, "alice", 3, 30);
    let add = add_request(&alice.account, "alice", 3, &cert, now_ms());
    let post = |body: &AddDeviceRequest| {
        s.http
            .post(s.url("/v1/accounts/alice/devices"))
            .json(body)
            .send()
    };
    assert_eq!(post(&add).await.unwrap().status(), 201);
    // Alice removes the device again.
    let remove = remove_request(&alice.account, "alice", 3, &cert, now_ms());
    let delete = |body: &RemoveDeviceRequest, id: u32| {
        s.http
            .delete(s.url(&format!("/v1/accounts/alice/devices/{id}")))
            .json(body)
            .send()
    };
    assert_eq!(delete(&remove, 3).await.unwrap().status(), 204);
    let replays = "hush_signed_requests_replayed_total ";
    let before = metric(&s, replays).await;
    // The captured add, sent again, would bring the device back with a
    // fresh token for whoever replays it.
    expect_error(post(&add).await.unwrap(), 403, "forbidden").await;
    assert_eq!(metric(&s, replays).await - before, 1);

    // A captured removal, replayed after the device id was used again,
    // would remove the new device.
    s.add_device(&mut alice, 3, 31).await;
    expect_error(delete(&remove, 3).await.unwrap(), 403, "forbidden").await;
    assert_eq!(
        s.get_as("/v1/key-packages/count", &alice.devices[1].token)
            .await
            .status(),
        200,
        "the new device 3 is still there"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_signature_moved_onto_another_certificate_is_refused() {
    let s = server().await;
    let alice = s.register("alice", 1).await;
    let (_, signed_cert) = new_device(&alice.account, "alice", 3, 30);
    let (_, other_cert) = new_device(&alice.account, "alice", 3, 31);
    let mut req = add_request(&alice.account, "alice", 3, &signed_cert, now_ms());
    req.device.certificate = Bytes(other_cert.encode());
    let resp = s
        .http
        .post(s.url("/v1/accounts/alice/devices"))
        .json(&req)
        .send()
        .await
        .unwrap();
    expect_error(resp, 403, "forbidden").await;
    // A request without a nonce (protocol version 1) is refused as such.
    let resp = s
        .http
        .post(s.url("/v1/accounts/alice/devices"))
        .json(&serde_json::json!({
            "device": req.device,
            "timestamp_ms": now_ms(),
            "signature": req.signature,
        }))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "bad_request").await;
    s.stop().await;
}

#[tokio::test]
async fn metrics_are_not_public_without_the_operators_token() {
    // By default /metrics is not on the public listener at all.
    let plain = TestServer::start().await;
    let resp = plain.http.get(plain.url("/metrics")).send().await.unwrap();
    expect_error(resp, 404, "not_found").await;
    // A device token does not open it either.
    let bob = plain.register("bob", 2).await;
    expect_error(
        plain.get_as("/metrics", &bob.devices[0].token).await,
        404,
        "not_found",
    )
    .await;
    // The operator listener serves it without a token.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let operator = listener.local_addr().unwrap();
    let task = tokio::spawn(hush_server::server::serve_operator(
        listener,
        plain.state.clone(),
        std::future::pending(),
    ));
    let text = plain
        .http
        .get(format!("http://{operator}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("hush_accounts 1"), "{text}");
    task.abort();
    plain.stop().await;

    // With a metrics token, the public /metrics needs exactly that token.
    let s = server().await;
    let bob = s.register("bob", 2).await;
    let resp = s.http.get(s.url("/metrics")).send().await.unwrap();
    expect_error(resp, 401, "unauthorized").await;
    expect_error(
        s.get_as("/metrics", &bob.devices[0].token).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(s.get_as("/metrics", METRICS_TOKEN).await.status(), 200);
    s.stop().await;
}

async fn healthz_from(s: &TestServer, forwarded_for: &str) -> u16 {
    s.http
        .get(s.url("/healthz"))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn two_per_network() -> Settings {
    Settings {
        per_ip: hush_server::ratelimit::Rate {
            per_second: 0.001,
            burst: 2.0,
        },
        ..Settings::default()
    }
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_buy_fresh_buckets() {
    let s = TestServer::with_settings(two_per_network()).await;
    assert_eq!(healthz_from(&s, "198.51.100.1").await, 200);
    assert_eq!(healthz_from(&s, "198.51.100.2").await, 200);
    // A third made-up client address is still this peer's third request.
    assert_eq!(healthz_from(&s, "198.51.100.3").await, 429);
    s.stop().await;
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_get_a_bucket_each() {
    let s = TestServer::with_settings(Settings {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..two_per_network()
    })
    .await;
    assert_eq!(healthz_from(&s, "198.51.100.1").await, 200);
    assert_eq!(healthz_from(&s, "198.51.100.1").await, 200);
    let resp = s
        .http
        .get(s.url("/healthz"))
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().contains_key("retry-after"));
    expect_error(resp, 429, "rate_limited").await;
    // Another client behind the same proxy is not held back...
    assert_eq!(healthz_from(&s, "198.51.100.2").await, 200);
    // ...and a client cannot escape by writing an address of its own in
    // front of what the proxy appended.
    assert_eq!(healthz_from(&s, "203.0.113.50, 198.51.100.1").await, 429);
    // Two addresses of one IPv6 /64 are one client.
    assert_eq!(healthz_from(&s, "2001:db8:5:6::1").await, 200);
    assert_eq!(healthz_from(&s, "2001:db8:5:6::2").await, 200);
    assert_eq!(healthz_from(&s, "2001:db8:5:6:abcd::3").await, 429);
    s.stop().await;
}

#[tokio::test]
async fn registrations_from_one_network_are_limited_more_strictly() {
    let s = TestServer::with_settings(Settings {
        strict: hush_server::ratelimit::StrictRates {
            costly_per_ip: hush_server::ratelimit::Rate {
                per_second: 0.001,
                burst: 3.0,
            },
            ..Default::default()
        },
        ..Settings::default()
    })
    .await;
    let mut devices_token = String::new();
    for (i, name) in ["ann", "ben", "cat"].into_iter().enumerate() {
        devices_token = s.register(name, i as u64).await.devices[0].token.clone();
    }
    let account = hush_proto::AccountKey::generate(&mut rng(9)).unwrap();
    let (_, cert) = new_device(&account, "dan", 1, 9);
    let resp = s
        .http
        .post(s.url("/v1/accounts"))
        .json(&RegisterRequest {
            username: "dan".into(),
            account_key: Bytes(account.public().as_bytes().to_vec()),
            device: NewDeviceBody {
                device_id: 1,
                certificate: Bytes(cert.encode()),
            },
        })
        .send()
        .await
        .unwrap();
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 60, "Retry-After {wait}");
    expect_error(resp, 429, "rate_limited").await;
    // The audit endpoint shares that limit; ordinary requests do not.
    let resp = s
        .http
        .get(s.url("/v1/kt/audit?from=0&to=1"))
        .send()
        .await
        .unwrap();
    expect_error(resp, 429, "rate_limited").await;
    assert_eq!(
        s.http.get(s.url("/healthz")).send().await.unwrap().status(),
        200
    );
    // A device's own audits (its client checking that the directory only
    // grew) count against its account, not the network it shares.
    let resp = s
        .http
        .get(s.url("/v1/kt/audit?from=0&to=1"))
        .bearer_auth(&devices_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_strangers_bad_signatures_do_not_lock_the_owner_out_of_device_requests() {
    let s = server().await;
    let mut alice = s.register("alice", 1).await;
    let mallory = hush_proto::AccountKey::generate(&mut rng(666)).unwrap();
    let (_, cert) = new_device(&alice.account, "alice", 3, 30);
    for _ in 0..12 {
        let resp = s
            .http
            .post(s.url("/v1/accounts/alice/devices"))
            .json(&add_request(&mallory, "alice", 3, &cert, now_ms()))
            .send()
            .await
            .unwrap();
        expect_error(resp, 403, "forbidden").await;
    }
    // More than the account's ten signed requests a minute were tried, none
    // valid: alice's own still goes through.
    s.add_device(&mut alice, 3, 30).await;
    s.stop().await;
}

/// A device added with the hash of a token it chose (device linking,
/// decision 0023) signs in with that token, and the answer carries none; a
/// hash that is not 32 bytes adds nothing.
#[tokio::test]
async fn a_device_added_with_its_own_token_hash_signs_in_with_that_token() {
    let s = server().await;
    let alice = s.register("alice", 1).await;
    let (_, cert) = new_device(&alice.account, "alice", 2, 20);
    let mut short = add_request(&alice.account, "alice", 2, &cert, now_ms());
    short.token_hash = Some(Bytes(vec![7; 31]));
    let post = |body: &AddDeviceRequest| {
        s.http
            .post(s.url("/v1/accounts/alice/devices"))
            .json(body)
            .send()
    };
    expect_error(post(&short).await.unwrap(), 400, "bad_request").await;
    let token = "chosen by the new device";
    let mut add = add_request(&alice.account, "alice", 2, &cert, now_ms());
    add.token_hash = Some(Bytes(hush_server::auth::token_hash(token).to_vec()));
    let resp = post(&add).await.unwrap();
    assert_eq!(resp.status(), 201);
    let body: hush_wire::api::RegisterResponse = resp.json().await.unwrap();
    assert_eq!(body.token, "", "the server made no token of its own");
    assert_eq!(
        s.get_as("/v1/key-packages/count", token).await.status(),
        200
    );
    s.stop().await;
}
