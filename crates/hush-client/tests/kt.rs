//! Key transparency against a malicious server: real clients, a real server
//! whose test-only fault hooks (`fault-injection`, never in a release build)
//! make it swap keys or fork its directory, and real MLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use hush_client::{Client, ClientError, Event, Target};
use hush_proto::kt::KtError;
use hush_testkit::TestServer;

const PASS: &str = "correct horse battery staple";

async fn user(server: &TestServer, root: &Path, name: &str) -> Client {
    Client::register(&root.join(name), PASS, &server.url(), name, None)
        .await
        .unwrap()
}

async fn sync(c: &mut Client) -> Vec<Event> {
    c.sync(Duration::ZERO, |_| {}).await.unwrap()
}

fn alarms(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::KeyTransparencyAlarm { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => m.text.clone(),
            _ => None,
        })
        .collect()
}

fn dm(name: &str) -> Target {
    Target::User(name.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ghost_device_the_directory_does_not_prove_stops_the_send() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let state = server.state().unwrap();
    // The server answers for bob with an identity of its own making.
    state.kt.faults.serve_ghost("bob").unwrap();

    let err = alice
        .send_text(&dm("bob"), "for bob only")
        .await
        .unwrap_err();
    match &err {
        ClientError::KeyTransparency(KtError::KeysNotInDirectory { username, .. }) => {
            assert_eq!(username, "bob")
        }
        other => panic!("expected a key-transparency error, got {other:?}"),
    }
    assert!(
        err.to_string().contains("bob"),
        "the error names the contact: {err}"
    );
    // Nothing went out, nothing was recorded about the ghost.
    let stats = server.store().unwrap().stats().await.unwrap();
    assert_eq!(stats.queued_envelopes, 0);
    assert!(alice.conversations().unwrap().is_empty());
    assert!(
        alice
            .contacts()
            .unwrap()
            .iter()
            .all(|c| c.username != "bob")
    );
    // Bob's own view of his keys is clean.
    assert!(alarms(&sync(&mut bob).await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ghost_device_the_server_publishes_raises_the_owners_alarm() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let state = server.state().unwrap();
    state
        .kt
        .faults
        .publish_ghost(&state.kt, "bob")
        .await
        .unwrap();

    // The directory now vouches for the ghost, so alice cannot tell...
    alice.send_text(&dm("bob"), "hello").await.unwrap();
    // ...but bob's next sync checks his own history and sees a key he never
    // added.
    let got = alarms(&sync(&mut bob).await);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("bob"), "{}", got[0]);
    assert_eq!(bob.kt_alarm().unwrap().as_deref(), Some(got[0].as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_directory_is_caught_by_both_sides() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let state = server.state().unwrap();

    // Alice is shown a directory in which dave has a ghost device; everyone
    // else the real one, which moves on when carol registers. (A fork that
    // swaps bob himself stops at the first Welcome: alice refuses bob's
    // real device, which her view does not vouch for.)
    state
        .kt
        .faults
        .fork(&state.kt, "alice", "dave")
        .await
        .unwrap();
    let _carol = user(&server, root.path(), "carol").await;

    // Bob writes first (his view is the real one), so the chat has his real
    // device; his message carries the root he saw.
    bob.send_text(&dm("alice"), "hi alice").await.unwrap();
    let got = sync(&mut alice).await;
    assert_eq!(texts(&got), vec!["hi alice".to_string()]);
    let a = alarms(&got);
    assert_eq!(a.len(), 1, "alice's alarm: {a:?}");
    assert!(a[0].contains("different key directories"), "{}", a[0]);
    assert!(a[0].contains("bob"), "{}", a[0]);

    // Alice's answer carries her (forked) root: bob catches it too.
    alice.send_text(&dm("bob"), "hi bob").await.unwrap();
    let got = sync(&mut bob).await;
    assert!(texts(&got).contains(&"hi bob".to_string()));
    let b = alarms(&got);
    assert_eq!(b.len(), 1, "bob's alarm: {b:?}");
    assert!(b[0].contains("alice"), "{}", b[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_server_raises_no_alarm_and_vouches_for_keys() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    alice.send_text(&dm("bob"), "one").await.unwrap();
    let _carol = user(&server, root.path(), "carol").await;
    let got = sync(&mut bob).await;
    assert_eq!(texts(&got), vec!["one".to_string()]);
    assert!(alarms(&got).is_empty());
    bob.send_text(&dm("alice"), "two").await.unwrap();
    assert!(alarms(&sync(&mut alice).await).is_empty());
    let status = alice.kt_status("bob").await.unwrap();
    assert_eq!(status.devices, vec![1]);
    assert_eq!(status.version, 1);
    // Roots only move forward: the newest is the one alice holds.
    let latest = alice.kt_latest_root().unwrap().unwrap();
    assert!(latest.epoch >= status.published_epoch);
    // An independent auditor agrees the whole chain is append-only.
    let t = hush_client::transport::Transport::new(&server.url(), None).unwrap();
    let checked = hush_client::audit_server(&t, 0, None, |_| {})
        .await
        .unwrap();
    assert!(checked >= latest.epoch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roots_only_move_forward_and_only_by_proof() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let _bob = user(&server, root.path(), "bob").await;
    let state = server.state().unwrap();
    // Alice's view moves to the newest epoch.
    alice.kt_status("bob").await.unwrap();
    let seen = alice.kt_latest_root().unwrap().unwrap();
    assert!(seen.epoch >= 2);

    // An older root, even genuinely signed, is refused.
    let older = state.kt.root(seen.epoch - 1).await.unwrap();
    match alice.kt_accept_root(&older).await {
        Err(ClientError::KeyTransparency(KtError::StaleRoot { got, seen: s })) => {
            assert_eq!((got, s), (seen.epoch - 1, seen.epoch))
        }
        other => panic!("expected a stale-root refusal, got {other:?}"),
    }
    // A second root for the epoch alice holds is a fork.
    let twin = state.kt.sign(seen.epoch, [7; 32]).await.unwrap();
    assert!(matches!(
        alice.kt_accept_root(&twin).await,
        Err(ClientError::KeyTransparency(KtError::Fork { .. }))
    ));
    // A newer root the server never published does not extend alice's view:
    // no chain of roots and audit proofs leads to it.
    let ahead = state.kt.sign(seen.epoch + 1, [8; 32]).await.unwrap();
    assert!(matches!(
        alice.kt_accept_root(&ahead).await,
        Err(ClientError::KeyTransparency(_))
    ));
    // After a real publish, a forged root for that epoch is a fork too, and
    // the real one is accepted.
    let _carol = user(&server, root.path(), "carol").await;
    let real = state.kt.latest_root().await.unwrap();
    assert!(real.epoch > seen.epoch);
    let forged = state.kt.sign(real.epoch, [9; 32]).await.unwrap();
    assert!(matches!(
        alice.kt_accept_root(&forged).await,
        Err(ClientError::KeyTransparency(KtError::Fork { .. }))
    ));
    alice.kt_accept_root(&real).await.unwrap();
    assert_eq!(alice.kt_latest_root().unwrap(), Some(real));
    // A root signed by a key other than the pinned one is refused.
    let mut other = real;
    other.signature[0] ^= 1;
    assert!(matches!(
        alice.kt_accept_root(&other).await,
        Err(ClientError::KeyTransparency(
            KtError::BadRootSignature { .. }
        ))
    ));
}

/// Decision 0024: an append-only step proven by one client is remembered
/// for the whole process, keyed by the two roots. A server cannot use that
/// to slip another root past a client of the same process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_proven_in_the_process_vouches_only_for_the_same_two_roots() {
    use hush_client::kt::verify_audit;
    use hush_wire::kt::KtAuditResponse;

    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let _bob = user(&server, root.path(), "bob").await;
    let state = server.state().unwrap();
    // Alice proves the chain up to the newest root: its steps are remembered.
    alice.kt_status("bob").await.unwrap();
    let b = alice.kt_latest_root().unwrap().unwrap();
    let a = state.kt.root(b.epoch - 1).await.unwrap();
    let t = hush_client::transport::Transport::new(&server.url(), None).unwrap();
    let audit: KtAuditResponse = t
        .json::<(), _>(
            reqwest::Method::GET,
            &format!("/v1/kt/audit?from={}&to={}", a.epoch, b.epoch),
            None,
        )
        .await
        .unwrap();
    let proof = audit.proof.as_slice();
    verify_audit(&[&a, &b], proof).await.unwrap();

    // The remembered step does not vouch for another root at either end.
    let mut other_end = b;
    other_end.root_hash = [9; 32];
    assert!(verify_audit(&[&a, &other_end], proof).await.is_err());
    let mut other_start = a;
    other_start.root_hash[0] ^= 1;
    assert!(verify_audit(&[&other_start, &b], proof).await.is_err());

    // Another client of the same process still refuses a root that no
    // chain of proofs leads to, and a forged twin of a root it holds.
    let mut carol = user(&server, root.path(), "carol").await;
    carol.kt_status("alice").await.unwrap();
    let seen = carol.kt_latest_root().unwrap().unwrap();
    let ahead = state.kt.sign(seen.epoch + 1, [8; 32]).await.unwrap();
    assert!(matches!(
        carol.kt_accept_root(&ahead).await,
        Err(ClientError::KeyTransparency(_))
    ));
    let twin = state.kt.sign(seen.epoch, [7; 32]).await.unwrap();
    assert!(matches!(
        carol.kt_accept_root(&twin).await,
        Err(ClientError::KeyTransparency(KtError::Fork { .. }))
    ));
}
