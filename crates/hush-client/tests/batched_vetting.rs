//! A device vets a Welcome's members, and a commit's added devices, with
//! one batched directory lookup (`POST /v1/kt/lookup`). Against a hostile
//! server (the `fault-injection` build) whose batched answer leaves out a
//! member, adds an account not asked for, swaps two members' proofs, carries
//! a proof of an older epoch, or serves a ghost entry beside the real proof,
//! the join (or the commit) is refused with a SecurityAlarm and nothing
//! changes, as when it vetted one member at a time. Real server, real
//! clients, real MLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{joined, security_alarms, sync, user};
use hush_client::Client;
use hush_testkit::TestServer;
use hush_testkit::hush_server::kt::faults::BatchFault;

struct Setup {
    server: TestServer,
    _root: tempfile::TempDir,
    carol: Client,
    bob: Client,
    dave: Client,
}

/// Carol, bob and dave, real clients.
async fn setup() -> Setup {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let carol = user(&server, root.path(), "carol").await;
    let bob = user(&server, root.path(), "bob").await;
    let dave = user(&server, root.path(), "dave").await;
    Setup {
        server,
        _root: root,
        carol,
        bob,
        dave,
    }
}

async fn tamper(server: &TestServer, fault: Option<BatchFault>) {
    let state = server.state().unwrap();
    state
        .kt
        .faults
        .tamper_batch(&state.kt, fault)
        .await
        .unwrap();
}

/// Carol invites bob and dave; the server tampers with the batched lookups
/// from then on (and `newcomer`, if any, registers, which moves the
/// directory on); bob must refuse the invitation, naming `named`.
async fn invitation_is_refused(fault: BatchFault, named: &str, newcomer: Option<&str>) {
    let mut s = setup().await;
    s.carol
        .create_group("club", &["bob".into(), "dave".into()])
        .await
        .unwrap();
    tamper(&s.server, Some(fault)).await;
    let root = tempfile::tempdir().unwrap();
    if let Some(name) = newcomer {
        user(&s.server, root.path(), name).await;
    }
    let events = sync(&mut s.bob).await;
    let alarms = security_alarms(&events);
    assert_eq!(alarms.len(), 1, "{events:?}");
    assert!(alarms[0].starts_with("SECURITY: refused"), "{}", alarms[0]);
    assert!(alarms[0].contains(named), "{}", alarms[0]);
    assert_eq!(joined(&events), 0, "{events:?}");
    assert!(s.bob.conversations().unwrap().is_empty());
    // The refused invitation is gone, not retried, even once the server
    // behaves again.
    tamper(&s.server, None).await;
    assert!(sync(&mut s.bob).await.is_empty());
    assert!(s.bob.conversations().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_leaves_out_a_member_is_refused() {
    invitation_is_refused(BatchFault::Omit("dave".into()), "dave", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_with_an_account_not_asked_for_is_refused() {
    invitation_is_refused(BatchFault::Add("erin".into()), "erin", Some("erin")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_with_another_members_proof_is_refused() {
    invitation_is_refused(
        BatchFault::Swap("carol".into(), "dave".into()),
        "carol",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_with_a_proof_from_an_older_epoch_is_refused() {
    // Dave's proof is kept from now; erin's registration then moves the
    // directory on, so the answer's root is newer than dave's proof.
    invitation_is_refused(BatchFault::Stale("dave".into()), "dave", Some("erin")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ghost_entry_beside_the_real_proof_is_refused() {
    let mut s = setup().await;
    s.carol
        .create_group("club", &["bob".into(), "dave".into()])
        .await
        .unwrap();
    // The server swaps dave's directory entry for a ghost it made; the
    // proof it serves is dave's real one.
    s.server
        .state()
        .unwrap()
        .kt
        .faults
        .serve_ghost("dave")
        .unwrap();
    let events = sync(&mut s.bob).await;
    let alarms = security_alarms(&events);
    assert_eq!(alarms.len(), 1, "{events:?}");
    assert!(alarms[0].contains("dave"), "{}", alarms[0]);
    assert_eq!(joined(&events), 0);
    assert!(s.bob.conversations().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_vetted_with_a_tampered_answer_is_refused() {
    let mut s = setup().await;
    s.carol.create_group("club", &["bob".into()]).await.unwrap();
    assert_eq!(joined(&sync(&mut s.bob).await), 1);
    // Dave is added; the server leaves him out of bob's lookup.
    s.carol.group_add("club", "dave").await.unwrap();
    tamper(&s.server, Some(BatchFault::Omit("dave".into()))).await;
    let events = sync(&mut s.bob).await;
    let alarms = security_alarms(&events);
    assert_eq!(alarms.len(), 1, "{events:?}");
    assert!(alarms[0].contains("dave"), "{}", alarms[0]);
    assert_eq!(
        s.bob.group_members("club").unwrap(),
        vec!["bob".to_string(), "carol".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_answer_lets_bob_in_with_one_lookup_for_all_members() {
    let mut s = setup().await;
    let root = tempfile::tempdir().unwrap();
    let mut others = vec!["bob".to_string(), "dave".to_string()];
    for i in 0..6 {
        let name = format!("member{i}");
        user(&s.server, root.path(), &name).await;
        others.push(name);
    }
    s.carol.create_group("club", &others).await.unwrap();
    let before = s.bob.transport().requests_made();
    let events = sync(&mut s.bob).await;
    assert_eq!(joined(&events), 1, "{events:?}");
    assert!(security_alarms(&events).is_empty(), "{events:?}");
    // Nine members vetted: one by one that was 18 requests at least.
    let made = s.bob.transport().requests_made() - before;
    eprintln!("bob made {made} HTTP requests to join a group of 9");
    assert!(made < 9, "{made} requests to join");
    assert_eq!(joined(&sync(&mut s.dave).await), 1);
    assert_eq!(s.bob.group_members("club").unwrap().len(), 9);
}
