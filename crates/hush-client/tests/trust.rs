//! What a device lets into its conversations, against members, strangers
//! and a hostile server: real server, real clients, real MLS, and accounts
//! driven by hand (`common::Raw`) to do what the `hush` client never would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Raw, forge, joined, now, security_alarms, sync, user};
use hush_client::Target;
use hush_proto::{ConversationInfo, MessageKind, Suite, peek_message};
use hush_testkit::TestServer;

fn texts(events: &[hush_client::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            hush_client::Event::Message(m) => m.text.clone(),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_chat_with_a_forged_alice_leaf_is_refused() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let _alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let mallory = Raw::register(&server, "mallory").await;

    // Mallory certifies a device as alice/1 under a key she made, builds a
    // "direct" chat from it with one of bob's KeyPackages, and posts it.
    let fake_alice = forge("alice", 1);
    let kps = mallory.claim("bob").await;
    let (_conv, pending) = fake_alice
        .create_conversation(Suite::Hybrid, &ConversationInfo::direct(), &kps, now())
        .unwrap();
    let welcome = pending.unwrap().welcome.unwrap();
    mallory.post(&["bob"], welcome).await;

    let events = sync(&mut bob).await;
    let alarms = security_alarms(&events);
    assert_eq!(alarms.len(), 1, "{events:?}");
    assert!(alarms[0].starts_with("SECURITY:"), "{}", alarms[0]);
    assert!(alarms[0].contains("alice"), "{}", alarms[0]);
    assert_eq!(joined(&events), 0, "{events:?}");
    assert!(bob.conversations().unwrap().is_empty());
    // The forged key was not recorded as alice's.
    assert!(
        bob.contacts()
            .unwrap()
            .iter()
            .all(|c| c.username != "alice" || !c.key_changed)
    );
    // The refused invitation is not retried.
    assert!(sync(&mut bob).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_adding_a_forged_alice_leaf_is_refused() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let _alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let carol = Raw::register(&server, "carol").await;

    // Carol, a real account, makes a group with bob: accepted.
    let kps = carol.claim("bob").await;
    let (mut club, pending) = carol
        .device
        .create_conversation(Suite::Hybrid, &ConversationInfo::group("club"), &kps, now())
        .unwrap();
    carol
        .post(&["bob"], pending.unwrap().welcome.unwrap())
        .await;
    let events = sync(&mut bob).await;
    assert_eq!(joined(&events), 1, "{events:?}");

    // Then she adds a device certified as alice under a key she made.
    let fake_alice = forge("alice", 1);
    let kp = fake_alice
        .generate_key_package(Suite::Hybrid, false, now())
        .unwrap()
        .message;
    let add = club.add_devices(&[kp], now()).unwrap();
    club.confirm_commit().unwrap();
    carol.post(&["bob"], add.commit).await;

    let events = sync(&mut bob).await;
    let alarms = security_alarms(&events);
    assert_eq!(alarms.len(), 1, "{events:?}");
    assert!(alarms[0].contains("alice"), "{}", alarms[0]);
    assert_eq!(
        bob.group_members("club").unwrap(),
        vec!["bob".to_string(), "carol".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_welcome_reusing_the_group_id_of_family_does_not_replace_it() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let mut mallory = Raw::register(&server, "mallory").await;

    alice
        .create_group("family", &["bob".into(), "mallory".into()])
        .await
        .unwrap();
    assert_eq!(joined(&sync(&mut bob).await), 1);
    // Mallory, a member, learns the group id and makes a group of her own
    // under it, with bob.
    let welcome = mallory.receive().await.pop().unwrap();
    let family_id = mallory.device.join(&welcome, now()).unwrap().id().to_vec();
    let kps = mallory.claim("bob").await;
    let (_conv, pending) = mallory
        .device
        .create_conversation_with_id(
            Suite::Hybrid,
            &ConversationInfo::group("family"),
            Some(family_id),
            &kps,
            now(),
        )
        .unwrap();
    mallory
        .post(&["bob"], pending.unwrap().welcome.unwrap())
        .await;

    let events = sync(&mut bob).await;
    assert_eq!(security_alarms(&events).len(), 1, "{events:?}");
    assert_eq!(joined(&events), 0, "{events:?}");
    assert_eq!(
        bob.group_members("family").unwrap(),
        vec!["alice".to_string(), "bob".into(), "mallory".into()]
    );
    // Family still works.
    alice
        .send_text(&Target::Group("family".into()), "dinner at 7")
        .await
        .unwrap();
    assert_eq!(
        texts(&sync(&mut bob).await),
        vec!["dinner at 7".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_alice_goes_to_the_first_chat_not_one_she_picked_the_id_of() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut bob = user(&server, root.path(), "bob").await;
    let mut mallory = Raw::register(&server, "mallory").await;

    // Bob starts a chat with mallory.
    bob.send_text(&Target::User("mallory".into()), "hi")
        .await
        .unwrap();
    let first = mallory.receive().await;
    let first_id = mallory.device.join(&first[0], now()).unwrap().id().to_vec();

    // Mallory starts a second one, with the smallest group id there is.
    let kps = mallory.claim("bob").await;
    let (_conv, pending) = mallory
        .device
        .create_conversation_with_id(
            Suite::Hybrid,
            &ConversationInfo::direct(),
            Some(vec![0u8; 32]),
            &kps,
            now(),
        )
        .unwrap();
    mallory
        .post(&["bob"], pending.unwrap().welcome.unwrap())
        .await;
    assert_eq!(joined(&sync(&mut bob).await), 1);

    bob.send_text(&Target::User("mallory".into()), "which chat?")
        .await
        .unwrap();
    let got = mallory.receive().await;
    let groups: Vec<Vec<u8>> = got
        .iter()
        .filter_map(|p| match peek_message(p) {
            Ok(MessageKind::Group { group_id, .. }) => Some(group_id),
            _ => None,
        })
        .collect();
    assert!(!groups.is_empty());
    assert!(
        groups.iter().all(|g| *g == first_id),
        "sent into a chat mallory picked"
    );
    // The second chat is not hidden: it is flagged on the first.
    let convs = bob.conversations().unwrap();
    assert_eq!(convs.len(), 1, "{convs:?}");
    assert_eq!(convs[0].other_chats, 1, "{convs:?}");
}

/// Hands out every one-time KeyPackage of `username` (as a drained or
/// hostile server would), so the next claim gets the last-resort one.
async fn drain_key_packages(server: &TestServer, username: &str) {
    let store = server.store().unwrap();
    let suite = Suite::Hybrid.cipher_suite().raw_value();
    for _ in 0..hush_client::client::KEY_PACKAGE_TARGET {
        store.claim_key_packages(username, suite).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_welcome_does_not_bring_a_removed_device_back() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let mut mallory = Raw::register(&server, "mallory").await;

    // Bob joins through his last-resort KeyPackage, which he keeps.
    drain_key_packages(&server, "bob").await;
    alice
        .create_group("club", &["bob".into(), "mallory".into()])
        .await
        .unwrap();
    assert_eq!(joined(&sync(&mut bob).await), 1);
    // One Welcome goes to every added device: mallory has bob's too.
    let welcome = mallory.receive().await.pop().unwrap();

    alice.group_remove("club", "bob").await.unwrap();
    sync(&mut bob).await;
    assert!(bob.groups().unwrap().is_empty());

    // Mallory re-posts the old Welcome.
    mallory.post(&["bob"], welcome).await;
    let events = sync(&mut bob).await;
    assert_eq!(security_alarms(&events).len(), 1, "{events:?}");
    assert_eq!(joined(&events), 0, "{events:?}");
    assert!(bob.groups().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_welcome_does_not_roll_a_member_back_to_an_old_epoch() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut bob = user(&server, root.path(), "bob").await;
    let mut mallory = Raw::register(&server, "mallory").await;

    drain_key_packages(&server, "bob").await;
    alice
        .create_group("club", &["bob".into(), "mallory".into()])
        .await
        .unwrap();
    assert_eq!(joined(&sync(&mut bob).await), 1);
    let welcome = mallory.receive().await.pop().unwrap();
    // The group moves on.
    alice.group_rename("club", "club2").await.unwrap();
    sync(&mut bob).await;

    mallory.post(&["bob"], welcome).await;
    let events = sync(&mut bob).await;
    assert_eq!(security_alarms(&events).len(), 1, "{events:?}");
    assert_eq!(joined(&events), 0, "{events:?}");
    // Bob is still at the new epoch: alice's next message opens.
    alice
        .send_text(&Target::Group("club2".into()), "still here")
        .await
        .unwrap();
    assert_eq!(texts(&sync(&mut bob).await), vec!["still here".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_mark_does_not_pass_to_a_swapped_key() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let _bob = user(&server, root.path(), "bob").await;

    // Alice reads out the safety number with bob...
    let compared = alice.safety_number("bob").await.unwrap();
    // ...and meanwhile the server swaps bob's key (published, so the
    // directory vouches for it).
    let state = server.state().unwrap();
    state
        .kt
        .faults
        .publish_ghost(&state.kt, "bob")
        .await
        .unwrap();
    alice.kt_status("bob").await.unwrap();
    // Marking the number she compared does not make the new key verified.
    assert!(alice.mark_verified("bob", &compared).is_err());
    let bob_contact = |a: &hush_client::Client| {
        a.contacts()
            .unwrap()
            .into_iter()
            .find(|c| c.username == "bob")
            .unwrap()
    };
    assert!(!bob_contact(&alice).verified);

    // Verified against the key it was compared with, then that key changes:
    // no longer verified.
    let current = alice.safety_number("bob").await.unwrap();
    alice.mark_verified("bob", &current).unwrap();
    assert!(bob_contact(&alice).verified);
    state.kt.faults.serve_ghost("bob").unwrap();
    state
        .kt
        .faults
        .publish_ghost(&state.kt, "bob")
        .await
        .unwrap();
    alice.kt_status("bob").await.unwrap();
    assert!(!bob_contact(&alice).verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_id_of_a_group_this_device_made_and_left_is_refused() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = user(&server, root.path(), "alice").await;
    let mut mallory = Raw::register(&server, "mallory").await;

    alice
        .create_group("family", &["mallory".into()])
        .await
        .unwrap();
    let welcome = mallory.receive().await.pop().unwrap();
    let family_id = mallory.device.join(&welcome, now()).unwrap().id().to_vec();
    alice.group_leave("family").await.unwrap();

    // Mallory makes a group of her own under the id, at a later epoch than
    // any alice saw, and invites alice "back".
    let kps = mallory.claim("alice").await;
    let (mut conv, _) = mallory
        .device
        .create_conversation_with_id(
            Suite::Hybrid,
            &ConversationInfo::group("family"),
            Some(family_id),
            &[],
            now(),
        )
        .unwrap();
    for _ in 0..3 {
        conv.self_update(now()).unwrap();
        conv.confirm_commit().unwrap();
    }
    let add = conv.add_devices(&kps, now()).unwrap();
    conv.confirm_commit().unwrap();
    mallory.post(&["alice"], add.welcome.unwrap()).await;

    let events = sync(&mut alice).await;
    assert_eq!(security_alarms(&events).len(), 1, "{events:?}");
    assert_eq!(joined(&events), 0, "{events:?}");
    assert!(alice.groups().unwrap().is_empty());
}
