//! Batched directory lookups (`POST /v1/kt/lookup`) through the HTTP API of
//! a real server: entries in the order asked, every proof against the one
//! root and checked with the client-side verifier, proofs kept per epoch
//! and never served past it, and the bounds (size, duplicates, auth, rate).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_proto::Username;
use hush_proto::kt::{KtConfig, KtValue, verify_lookup};
use hush_server::app::Settings;
use hush_server::ratelimit::Rate;
use hush_wire::kt::{KtBatchLookupRequest, KtBatchLookupResponse, MAX_BATCH_LOOKUP};

async fn batch_raw(s: &TestServer, token: &str, names: &[&str]) -> reqwest::Response {
    s.http
        .post(s.url("/v1/kt/lookup"))
        .bearer_auth(token)
        .json(&KtBatchLookupRequest {
            usernames: names.iter().map(|n| (*n).to_owned()).collect(),
        })
        .send()
        .await
        .unwrap()
}

async fn batch(s: &TestServer, token: &str, names: &[&str]) -> KtBatchLookupResponse {
    let resp = batch_raw(s, token, names).await;
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

fn value(user: &User) -> KtValue {
    let certs: Vec<_> = user.devices.iter().map(|d| d.cert.clone()).collect();
    KtValue::from_certificates(user.account.public(), &certs)
}

/// Checks that `resp` proves exactly `users` (in order) against its root.
fn check(cfg: &KtConfig, resp: &KtBatchLookupResponse, users: &[&User]) {
    let root = signed_root(&resp.root);
    root.verify(&cfg.signing_key).unwrap();
    assert_eq!(resp.entries.len(), users.len());
    for (entry, user) in resp.entries.iter().zip(users) {
        assert_eq!(entry.username, user.name);
        let account = entry.account.as_ref().unwrap();
        assert_eq!(
            account.account_key.as_slice(),
            user.account.public().as_bytes()
        );
        let name = Username::new(&user.name).unwrap();
        let proof = entry.proof.as_ref().unwrap();
        let v = verify_lookup(cfg, &root, &name, proof.as_slice()).unwrap();
        assert_eq!(v.value, value(user));
    }
}

#[tokio::test]
async fn one_request_proves_many_accounts_against_one_root() {
    let s = TestServer::start().await;
    let cfg = kt_config(&s.http, &s.url("")).await;
    let alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let carol = s.register("carol", 3).await;
    let t = alice.devices[0].token.clone();

    let resp = batch(&s, &t, &["carol", "alice", "bob"]).await;
    check(&cfg, &resp, &[&carol, &alice, &bob]);

    // An unknown name gets an entry with neither account nor proof.
    let resp = batch(&s, &t, &["bob", "nobody"]).await;
    assert_eq!(resp.entries[1].username, "nobody");
    assert!(resp.entries[1].account.is_none() && resp.entries[1].proof.is_none());

    // No names: the newest root alone.
    let resp = batch(&s, &t, &[]).await;
    assert!(resp.entries.is_empty());
    signed_root(&resp.root).verify(&cfg.signing_key).unwrap();
}

#[tokio::test]
async fn kept_proofs_are_never_served_past_their_epoch() {
    let s = TestServer::start().await;
    let cfg = kt_config(&s.http, &s.url("")).await;
    let alice = s.register("alice", 1).await;
    let mut bob = s.register("bob", 2).await;
    let t = alice.devices[0].token.clone();

    let first = batch(&s, &t, &["alice", "bob"]).await;
    // The same question at the same epoch: the same (kept) proofs.
    let again = batch(&s, &t, &["bob", "alice"]).await;
    assert_eq!(first.root, again.root);
    assert_eq!(first.entries[1].proof, again.entries[0].proof);
    check(&cfg, &again, &[&bob, &alice]);

    // Bob adds a device: a new epoch, and proofs of it, for both.
    s.add_device(&mut bob, 2, 22).await;
    let after = batch(&s, &t, &["alice", "bob"]).await;
    assert!(after.root.epoch > first.root.epoch);
    check(&cfg, &after, &[&alice, &bob]);

    // Made afresh after the cache is dropped: the same proofs.
    s.state.kt.forget_cached_proofs();
    let fresh = batch(&s, &t, &["alice", "bob"]).await;
    assert_eq!(fresh, after);
}

#[tokio::test]
async fn a_batch_is_bounded_authenticated_and_names_each_account_once() {
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let t = alice.devices[0].token.clone();

    let names: Vec<String> = (0..=MAX_BATCH_LOOKUP).map(|i| format!("user{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let resp = batch_raw(&s, &t, &refs).await;
    expect_error(resp, 413, "too_large").await;
    // Exactly the limit is fine.
    assert_eq!(
        batch(&s, &t, &refs[..MAX_BATCH_LOOKUP]).await.entries.len(),
        MAX_BATCH_LOOKUP
    );

    expect_error(
        batch_raw(&s, &t, &["alice", "alice"]).await,
        400,
        "bad_request",
    )
    .await;
    expect_error(batch_raw(&s, &t, &["Not A Name"]).await, 400, "bad_request").await;
    let anonymous = s
        .http
        .post(s.url("/v1/kt/lookup"))
        .json(&KtBatchLookupRequest {
            usernames: vec!["alice".into()],
        })
        .send()
        .await
        .unwrap();
    expect_error(anonymous, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_batch_costs_a_tenth_of_a_request_per_name() {
    // 100 requests at once per account, refilled slowly.
    let s = TestServer::with_settings(Settings {
        per_account: Rate {
            per_second: 0.01,
            burst: 100.0,
        },
        ..Settings::default()
    })
    .await;
    let alice = s.register("alice", 1).await;
    let t = alice.devices[0].token.clone();
    let names: Vec<String> = (0..500).map(|i| format!("user{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    // 1 + 50 each: the first fits, the second does not.
    assert_eq!(batch(&s, &t, &refs).await.entries.len(), 500);
    expect_error(batch_raw(&s, &t, &refs).await, 429, "rate_limited").await;
}
