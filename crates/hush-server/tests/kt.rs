//! Key transparency through the HTTP API of a real server: every account
//! change is published as a signed epoch, and the proofs it serves check out
//! with the client-side verifier in hush-proto, while a tampered proof, a
//! stale root and a root signed by another key do not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_proto::kt::{KtConfig, KtError, KtValue, SignedRoot, verify_history, verify_lookup};
use hush_proto::{AccountKey, Username};
use hush_wire::kt::{KtAuditResponse, KtConfigResponse, KtProofResponse, KtRoot, KtRootsResponse};

fn root(r: &KtRoot) -> SignedRoot {
    signed_root(r)
}

async fn config(s: &TestServer) -> KtConfig {
    kt_config(&s.http, &s.url("")).await
}

async fn lookup(s: &TestServer, token: &str, name: &str) -> (SignedRoot, Vec<u8>) {
    let resp = s.get_as(&format!("/v1/kt/lookup/{name}"), token).await;
    assert_eq!(resp.status().as_u16(), 200);
    let p: KtProofResponse = resp.json().await.unwrap();
    (root(&p.root), p.proof.0)
}

async fn history(s: &TestServer, token: &str, name: &str) -> (SignedRoot, Vec<u8>) {
    let resp = s.get_as(&format!("/v1/kt/history/{name}"), token).await;
    assert_eq!(resp.status().as_u16(), 200);
    let p: KtProofResponse = resp.json().await.unwrap();
    (root(&p.root), p.proof.0)
}

fn expected(user: &User) -> KtValue {
    let certs: Vec<_> = user.devices.iter().map(|d| d.cert.clone()).collect();
    KtValue::from_certificates(user.account.public(), &certs)
}

/// Checks the current lookup proof of `user` (as seen by `viewer`) and
/// returns its root.
async fn check_current(s: &TestServer, cfg: &KtConfig, viewer: &str, user: &User) -> SignedRoot {
    let (r, proof) = lookup(s, viewer, &user.name).await;
    r.verify(&cfg.signing_key).unwrap();
    let name = Username::new(&user.name).unwrap();
    let v = verify_lookup(cfg, &r, &name, &proof).unwrap();
    assert_eq!(v.value, expected(user));
    r
}

async fn remove_device(s: &TestServer, user: &mut User, id: u32) {
    let cert = &user.devices.iter().find(|d| d.id == id).unwrap().cert;
    let resp = s
        .http
        .delete(s.url(&format!("/v1/accounts/{}/devices/{id}", user.name)))
        .json(&common::remove_request(
            &user.account,
            &user.name,
            id,
            cert,
            now_ms(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    user.devices.retain(|d| d.id != id);
}

#[tokio::test]
async fn add_remove_and_rotate_devices_are_proven() {
    let s = TestServer::start().await;
    let cfg = config(&s).await;
    let mut alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let viewer = bob.devices[0].token.clone();

    let r1 = check_current(&s, &cfg, &viewer, &alice).await;
    s.add_device(&mut alice, 2, 3).await;
    let r2 = check_current(&s, &cfg, &viewer, &alice).await;
    assert!(r2.epoch > r1.epoch, "adding a device publishes an epoch");
    remove_device(&s, &mut alice, 2).await;
    let r3 = check_current(&s, &cfg, &viewer, &alice).await;
    assert!(r3.epoch > r2.epoch);
    // Rotate: the same device id comes back with a new key.
    s.add_device(&mut alice, 2, 4).await;
    let r4 = check_current(&s, &cfg, &viewer, &alice).await;
    assert!(r4.epoch > r3.epoch);

    // Alice's own history lists every version, newest first.
    let token = alice.devices[0].token.clone();
    let (hr, proof) = history(&s, &token, "alice").await;
    let versions = verify_history(&cfg, &hr, &Username::new("alice").unwrap(), &proof).unwrap();
    let device_counts: Vec<usize> = versions.iter().map(|v| v.value.devices.len()).collect();
    assert_eq!(device_counts, vec![2, 1, 2, 1]);
    assert_eq!(versions[0].value, expected(&alice));
    assert_ne!(
        versions[0].value, versions[2].value,
        "the rotated key differs"
    );

    // Another account reads the same history (a member checks that a device
    // a commit added was listed once, decision 0035), proven the same way.
    let (vr, proof) = history(&s, &viewer, "alice").await;
    let seen = verify_history(&cfg, &vr, &Username::new("alice").unwrap(), &proof).unwrap();
    assert_eq!(seen.len(), versions.len());

    // Every step from epoch 0 to now is append-only, and every root is signed.
    let roots: KtRootsResponse = s
        .get_as("/v1/kt/roots?from=0", &viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(roots.latest_epoch, r4.epoch);
    assert_eq!(roots.roots.len() as u64, r4.epoch + 1);
    for r in &roots.roots {
        root(r).verify(&cfg.signing_key).unwrap();
    }
    let audit: KtAuditResponse = s
        .get_as(
            &format!("/v1/kt/audit?from={}&to={}", r1.epoch, r4.epoch),
            &viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    let span: Vec<SignedRoot> = roots.roots[r1.epoch as usize..].iter().map(root).collect();
    let span_refs: Vec<&SignedRoot> = span.iter().collect();
    audit_verify(&span_refs, &audit.proof.0).await.unwrap();
    // The same proof does not vouch for a root the server did not publish.
    let mut forged = span.clone();
    forged.last_mut().unwrap().root_hash[0] ^= 1;
    let forged_refs: Vec<&SignedRoot> = forged.iter().collect();
    assert!(audit_verify(&forged_refs, &audit.proof.0).await.is_err());
    s.stop().await;
}

#[tokio::test]
async fn tampered_proofs_stale_roots_and_foreign_signatures_are_refused() {
    let s = TestServer::start().await;
    let cfg = config(&s).await;
    let mut alice = s.register("alice", 1).await;
    let bob = s.register("bob", 2).await;
    let viewer = bob.devices[0].token.clone();
    let name = Username::new("alice").unwrap();
    let (old_root, old_proof) = lookup(&s, &viewer, "alice").await;
    s.add_device(&mut alice, 2, 3).await;
    let (r, proof) = lookup(&s, &viewer, "alice").await;
    verify_lookup(&cfg, &r, &name, &proof).unwrap();

    // A flipped byte of the proof never makes it prove something else. Most
    // flips are refused outright; the few that are not land on bits the
    // encoding does not use (label bits past a node label's length) and
    // still prove exactly the same value.
    let step = (proof.len() / 97).max(1);
    let (mut refused, mut tried) = (0, 0);
    for i in (0..proof.len()).step_by(step) {
        let mut bad = proof.clone();
        bad[i] ^= 0x01;
        tried += 1;
        match verify_lookup(&cfg, &r, &name, &bad) {
            Err(_) => refused += 1,
            Ok(v) => {
                assert_eq!(
                    v.value,
                    expected(&alice),
                    "byte {i} flipped proves another value"
                );
                assert_eq!(v.version, 2, "byte {i} flipped proves another version");
            }
        }
    }
    assert!(
        refused * 10 >= tried * 9,
        "only {refused} of {tried} flips refused"
    );

    // The proof is for alice, not for bob.
    assert!(matches!(
        verify_lookup(&cfg, &r, &Username::new("bob").unwrap(), &proof),
        Err(KtError::BadLookupProof { .. })
    ));

    // A stale root: the old epoch's root does not vouch for the new proof,
    // and the new root does not vouch for the old proof.
    assert!(old_root.epoch < r.epoch);
    assert!(verify_lookup(&cfg, &old_root, &name, &proof).is_err());
    assert!(verify_lookup(&cfg, &r, &name, &old_proof).is_err());

    // A root signed by another key is refused by its signature check, and
    // a root whose hash was changed under the real signature too.
    let other = AccountKey::from_seed([9; 32]).unwrap();
    let resigned = SignedRoot {
        signature: other
            .sign(&SignedRoot::signed_bytes(r.epoch, &r.root_hash))
            .unwrap(),
        ..r
    };
    assert_eq!(
        resigned.verify(&cfg.signing_key),
        Err(KtError::BadRootSignature { epoch: r.epoch })
    );
    let mut moved = r;
    moved.root_hash[3] ^= 0x80;
    assert!(moved.verify(&cfg.signing_key).is_err());
    assert!(verify_lookup(&cfg, &moved, &name, &proof).is_err());

    // Garbage is a clean error, never a panic.
    for junk in [&b""[..], b"\x00", b"\xff\xff\xff\xff", &[0x0a; 300]] {
        assert!(verify_lookup(&cfg, &r, &name, junk).is_err());
    }
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_are_clear_errors() {
    let s = TestServer::start().await;
    let bob = s.register("bob", 2).await;
    let t = bob.devices[0].token.clone();
    expect_error(s.get_as("/v1/kt/lookup/nobody", &t).await, 404, "not_found").await;
    expect_error(
        s.http.get(s.url("/v1/kt/lookup/bob")).send().await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    expect_error(
        s.get_as("/v1/kt/audit?from=3&to=2", &t).await,
        400,
        "bad_request",
    )
    .await;
    expect_error(
        s.get_as("/v1/kt/audit?from=0&to=999", &t).await,
        400,
        "bad_request",
    )
    .await;
    expect_error(
        s.get_as("/v1/kt/audit?from=x&to=2", &t).await,
        400,
        "bad_request",
    )
    .await;
    let roots: KtRootsResponse = s
        .get_as("/v1/kt/roots?from=1000000", &t)
        .await
        .json()
        .await
        .unwrap();
    assert!(roots.roots.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_restarted_directory_goes_on_from_the_stored_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store =
            hush_server::store::sqlite::SqliteStore::open(&dir.path().join("hush.db")).unwrap();
        let blobs = hush_server::blobs::Blobs::local(&dir.path().join("blobs")).unwrap();
        hush_server::app::AppState::new(
            std::sync::Arc::new(store),
            blobs,
            hush_server::app::Settings::default(),
        )
    };
    let state = open();
    let (addr, handle) = hush_server::server::spawn_local(state).await.unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let alice = register_at(&http, &base, "alice", 1).await;
    let cfg_before: KtConfigResponse = http
        .get(format!("{base}/v1/kt/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    handle.stop().await;

    let state = open();
    // Accounts registered while the directory was not running are caught up.
    state
        .store
        .create_account(hush_server::store::NewAccount {
            username: "carol".into(),
            account_key: vec![5; 32],
            device: hush_server::store::NewDevice {
                device_id: 1,
                certificate: alice.devices[0].cert.encode(),
                token_hash: [1; 32],
            },
            now_ms: now_ms(),
        })
        .await
        .unwrap();
    let (addr, handle) = hush_server::server::spawn_local(state).await.unwrap();
    let base = format!("http://{addr}");
    let cfg_after: KtConfigResponse = http
        .get(format!("{base}/v1/kt/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg_before, cfg_after, "the pinned keys survive a restart");
    let t = alice.devices[0].token.clone();
    let mut found = false;
    for _ in 0..100 {
        let resp = http
            .get(format!("{base}/v1/kt/lookup/carol"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 200 {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        found,
        "an account the directory missed is published after a restart"
    );
    let roots: KtRootsResponse = http
        .get(format!("{base}/v1/kt/roots?from=0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cfg = kt_config(&http, &base).await;
    for (i, r) in roots.roots.iter().enumerate() {
        assert_eq!(r.epoch, i as u64);
        root(r).verify(&cfg.signing_key).unwrap();
    }
    handle.stop().await;
}
