//! Conversations of the legacy suite 65100 move to X-Wing 0x004D by
//! themselves (decision 0031): real clients, a real server on a loopback
//! port (hush-testkit), real MLS. The legacy groups are made as releases
//! before 0031 made them (the `test-hooks` feature: the server no longer
//! takes 65100 KeyPackages, so they are handed over directly). A group with
//! more devices than one Welcome carries a tree for (`BIG_GROUP_LEAVES`)
//! moves too: most of its members are accounts driven by hand (their 0x004D
//! KeyPackages wait on the server); the members who follow the move are
//! real clients, which check the successor as ever.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use hush_client::{Client, Event, Target};
use hush_proto::Suite;
use hush_proto::big_group::BIG_GROUP_LEAVES;
use hush_testkit::TestServer;

const TIMEOUT: Duration = Duration::from_secs(120);

fn crew() -> Target {
    Target::Group("old crew".into())
}

fn texts(c: &mut Client) -> Vec<String> {
    c.history(&crew())
        .unwrap()
        .into_iter()
        .filter_map(|m| m.text)
        .collect()
}

async fn synced(c: &mut Client) -> Vec<Event> {
    tokio::time::timeout(TIMEOUT, c.sync(Duration::ZERO, |_| {}))
        .await
        .expect("sync timed out")
        .unwrap()
}

/// `c` holds "old crew" in `suite`.
fn in_suite(c: &mut Client, suite: Suite) {
    assert_eq!(c.group_suite_for_tests("old crew").unwrap(), Some(suite));
}

/// `a` and `b` each send one text to "old crew"; both then hold both.
async fn both_ways(a: &mut Client, b: &mut Client, sent: [&str; 2]) {
    a.send_text(&crew(), sent[0]).await.unwrap();
    b.send_text(&crew(), sent[1]).await.unwrap();
    synced(a).await;
    synced(b).await;
    for c in [a, b] {
        let history = texts(c);
        for t in sent {
            assert!(history.iter().any(|x| x == t), "{t:?} missing: {history:?}");
        }
    }
}

/// "old crew" in the legacy suite, made by `members[0]` with the others.
async fn legacy_group(members: &mut [&mut Client]) {
    // Made and joined as by the previous release, which moved nothing.
    for m in members.iter_mut() {
        m.hold_suite_moves_for_tests(true);
    }
    let mut kps = Vec::new();
    for m in members.iter_mut().skip(1) {
        kps.push(m.legacy_key_package_for_tests().unwrap());
    }
    members[0]
        .create_legacy_group_for_tests("old crew", kps)
        .await
        .unwrap();
    for m in members.iter_mut().skip(1) {
        assert_eq!(joined(&synced(m).await), 1);
    }
    for m in members.iter_mut() {
        assert_eq!(
            m.group_suite_for_tests("old crew").unwrap(),
            Some(Suite::LegacyHybrid)
        );
    }
}

/// The members upgrade: their clients move legacy groups from now on.
fn upgrade(members: &mut [&mut Client]) {
    for m in members.iter_mut() {
        m.hold_suite_moves_for_tests(false);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_group_moves_and_then_takes_members_and_devices() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = user(&server, dir.path(), "alice").await;
    let mut bob = user(&server, dir.path(), "bob").await;
    let mut carol = user(&server, dir.path(), "carol").await;
    legacy_group(&mut [&mut alice, &mut bob]).await;
    alice.send_text(&crew(), "in 65100").await.unwrap();
    synced(&mut bob).await;
    upgrade(&mut [&mut alice, &mut bob]);

    // Alice's next sync moves the group; bob follows on his.
    synced(&mut alice).await;
    assert_eq!(
        alice.group_suite_for_tests("old crew").unwrap(),
        Some(Suite::Hybrid)
    );
    let events = synced(&mut bob).await;
    assert!(security_alarms(&events).is_empty(), "{events:?}");
    assert_eq!(joined(&events), 0, "the move is no new conversation");
    assert_eq!(
        bob.group_suite_for_tests("old crew").unwrap(),
        Some(Suite::Hybrid)
    );
    // Bob's own sync found nothing left to move.
    synced(&mut bob).await;
    synced(&mut alice).await;
    assert_eq!(
        alice.group_suite_for_tests("old crew").unwrap(),
        Some(Suite::Hybrid)
    );

    // A new member and a new device join the moved group.
    alice.group_add("old crew", "carol").await.unwrap();
    assert_eq!(joined(&synced(&mut carol).await), 1);
    synced(&mut bob).await;
    let mut laptop = link(&mut bob, &server, &dir.path().join("bob-laptop"), true).await;
    synced(&mut laptop).await;
    assert_eq!(
        laptop.group_suite_for_tests("old crew").unwrap(),
        Some(Suite::Hybrid)
    );
    synced(&mut alice).await;
    synced(&mut carol).await;

    // Messages flow every way, and the history stays one conversation.
    bob.send_text(&crew(), "from bob").await.unwrap();
    carol.send_text(&crew(), "from carol").await.unwrap();
    laptop.send_text(&crew(), "from the laptop").await.unwrap();
    alice.send_text(&crew(), "from alice").await.unwrap();
    for c in [&mut alice, &mut bob, &mut carol, &mut laptop] {
        synced(c).await;
    }
    for t in ["from bob", "from carol", "from the laptop", "from alice"] {
        for c in [&mut alice, &mut bob, &mut carol, &mut laptop] {
            assert!(texts(c).iter().any(|x| x == t), "{t:?} missing");
        }
    }
    for c in [&mut alice, &mut bob] {
        let history = texts(c);
        assert_eq!(history.first().map(String::as_str), Some("in 65100"));
        assert_eq!(c.groups().unwrap().len(), 1, "one conversation");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_moving_at_once_end_in_one_group() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = user(&server, dir.path(), "alice").await;
    let mut bob = user(&server, dir.path(), "bob").await;
    legacy_group(&mut [&mut alice, &mut bob]).await;
    upgrade(&mut [&mut alice, &mut bob]);
    // Both sync at once: one move wins the epoch, the other follows it.
    let (a, b) = tokio::join!(synced(&mut alice), synced(&mut bob));
    assert!(security_alarms(&a).is_empty() && security_alarms(&b).is_empty());
    synced(&mut alice).await;
    synced(&mut bob).await;
    for c in [&mut alice, &mut bob] {
        assert_eq!(
            c.group_suite_for_tests("old crew").unwrap(),
            Some(Suite::Hybrid)
        );
    }
    both_ways(&mut alice, &mut bob, ["one group", "indeed"]).await;
}

/// A member's "move" that brings a stranger in is refused by the others:
/// they join nothing, and move the group properly themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_that_brings_a_stranger_in_is_refused() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut mallory = user(&server, dir.path(), "mallory").await;
    let mut alice = user(&server, dir.path(), "alice").await;
    let mut bob = user(&server, dir.path(), "bob").await;
    let mut eve = user(&server, dir.path(), "eve").await;
    legacy_group(&mut [&mut mallory, &mut alice, &mut bob]).await;
    upgrade(&mut [&mut mallory, &mut alice, &mut bob]);

    mallory
        .hostile_move_for_tests("old crew", "eve")
        .await
        .unwrap();
    assert!(
        mallory
            .group_members("old crew")
            .unwrap()
            .contains(&"eve".to_owned()),
        "mallory's successor holds eve"
    );
    // Bob refuses it, then moves the group himself (his routine follows
    // the receiving), without eve.
    let events = synced(&mut bob).await;
    let alarms = security_alarms(&events);
    assert_eq!(alarms.len(), 1, "{events:?}");
    assert!(alarms[0].contains("move of a conversation"), "{alarms:?}");
    assert_eq!(joined(&events), 0);
    // Alice refuses mallory's and follows bob's.
    let events = synced(&mut alice).await;
    assert_eq!(security_alarms(&events).len(), 1, "{events:?}");
    assert_eq!(joined(&events), 0);
    for c in [&mut alice, &mut bob] {
        assert_eq!(
            c.group_suite_for_tests("old crew").unwrap(),
            Some(Suite::Hybrid)
        );
        assert_eq!(
            c.group_members("old crew").unwrap(),
            ["alice", "bob", "mallory"],
            "no stranger"
        );
    }
    synced(&mut eve).await;
    bob.send_text(&crew(), "members only").await.unwrap();
    synced(&mut alice).await;
    synced(&mut eve).await;
    assert!(texts(&mut alice).contains(&"members only".to_owned()));
    let eve_saw: Vec<String> = eve
        .history(&crew())
        .map(|h| h.into_iter().filter_map(|m| m.text).collect())
        .unwrap_or_default();
    assert!(!eve_saw.contains(&"members only".to_owned()), "{eve_saw:?}");
}

/// Takes a store back to schema version 6: what versions 7 (successors),
/// 8 (reactions, pins, polls, mentions, the search index), 9 (channels) and
/// 10 (mutes) added goes.
const UNDO_V7_TO_V10: &str = "
    ALTER TABLE conversations DROP COLUMN muted_until;
    DROP TABLE channel_posts; DROP TABLE channel_keys; DROP TABLE channels;
    DROP TRIGGER messages_fts_insert; DROP TRIGGER messages_fts_delete;
    DROP TRIGGER messages_fts_update; DROP TABLE messages_fts;
    DROP INDEX messages_unread_mentions;
    ALTER TABLE messages DROP COLUMN forwarded; ALTER TABLE messages DROP COLUMN mentions_me;
    ALTER TABLE messages DROP COLUMN mentions; ALTER TABLE messages DROP COLUMN poll;
    DROP TABLE votes; DROP TABLE pins; DROP TABLE reactions;
    DROP TABLE successors; PRAGMA user_version = 6;";

/// A store the version-6 release wrote (before the successors table),
/// holding a 65100 group, opens and moves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_the_previous_release_opens_and_moves_its_legacy_group() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = user(&server, dir.path(), "alice").await;
    let mut bob = user(&server, dir.path(), "bob").await;
    legacy_group(&mut [&mut alice, &mut bob]).await;
    alice
        .send_text(&crew(), "before the upgrade")
        .await
        .unwrap();
    synced(&mut bob).await;
    upgrade(&mut [&mut bob]);
    drop(alice);
    let alice_dir = dir.path().join("alice");
    {
        let store = hush_client::local::LocalStore::open(&alice_dir, PASS).unwrap();
        store.execute_for_tests(UNDO_V7_TO_V10).unwrap();
    }
    let mut alice = Client::open(&alice_dir, PASS).unwrap();
    assert_eq!(
        alice.group_suite_for_tests("old crew").unwrap(),
        Some(Suite::LegacyHybrid)
    );
    synced(&mut alice).await;
    synced(&mut bob).await;
    for c in [&mut alice, &mut bob] {
        assert_eq!(
            c.group_suite_for_tests("old crew").unwrap(),
            Some(Suite::Hybrid)
        );
    }
    bob.send_text(&crew(), "after the upgrade").await.unwrap();
    synced(&mut alice).await;
    assert_eq!(
        texts(&mut alice),
        ["before the upgrade", "after the upgrade"]
    );
}

/// A mover that dies between its announcement and the successor's Welcome
/// moves the conversation again at its next sync after restarting (not an
/// hour later, as a failed attempt is retried); the member left waiting for
/// the lost Welcome follows the new announcement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_cut_off_after_its_announcement_is_redone_at_the_next_sync() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = user(&server, dir.path(), "alice").await;
    let mut bob = user(&server, dir.path(), "bob").await;
    legacy_group(&mut [&mut alice, &mut bob]).await;
    alice.send_text(&crew(), "in 65100").await.unwrap();
    upgrade(&mut [&mut alice]);
    alice.crash_after_next_announcement_for_tests();
    synced(&mut alice).await;
    drop(alice);
    // Bob read the announcement; its Welcome never left alice's device.
    synced(&mut bob).await;
    in_suite(&mut bob, Suite::LegacyHybrid);

    let mut alice = Client::open(&dir.path().join("alice"), PASS).unwrap();
    synced(&mut alice).await;
    in_suite(&mut alice, Suite::Hybrid);
    let events = synced(&mut bob).await;
    assert!(security_alarms(&events).is_empty(), "{events:?}");
    in_suite(&mut bob, Suite::Hybrid);
    both_ways(&mut alice, &mut bob, ["after the restart", "from bob"]).await;
    for c in [&mut alice, &mut bob] {
        assert_eq!(texts(c).first().map(String::as_str), Some("in 65100"));
        assert_eq!(c.groups().unwrap().len(), 1, "one conversation");
    }
}

fn suite(c: &mut Client) -> Option<Suite> {
    c.group_suite_for_tests("old crew").unwrap()
}

/// The blobs on the server (trees, and commits too large for a message).
fn blobs(server: &TestServer) -> Vec<PathBuf> {
    let root = server.data_dir().join("blobs").join("blobs");
    match std::fs::read_dir(&root) {
        Ok(dir) => dir.map(|b| b.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_legacy_group_moves_with_its_tree_out_of_band() {
    let server = TestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut alice = user(&server, dir.path(), "alice").await;
    let mut bob = user(&server, dir.path(), "bob").await;
    let mut carol = user(&server, dir.path(), "carol").await;
    // A few devices more than the bound: the successor's tree cannot go
    // in its Welcome.
    let extras = BIG_GROUP_LEAVES - 3 + 4;
    let mut names = vec!["bob".to_owned(), "carol".to_owned()];
    let mut kps = Vec::new();
    for i in 0..extras {
        let mut raw = Raw::register(&server, &format!("m{i:03}")).await;
        raw.device.allow_legacy_writes_for_tests();
        let kp = raw
            .device
            .generate_key_package(Suite::LegacyHybrid, false, now())
            .unwrap();
        kps.push(kp.message);
        names.push(raw.name.clone());
    }
    // Made and joined as by the previous release, which moved nothing.
    for c in [&mut alice, &mut bob, &mut carol] {
        c.hold_suite_moves_for_tests(true);
    }
    kps.push(bob.legacy_key_package_for_tests().unwrap());
    kps.push(carol.legacy_key_package_for_tests().unwrap());
    alice
        .create_legacy_group_for_tests("old crew", kps)
        .await
        .unwrap();
    for c in [&mut bob, &mut carol] {
        assert_eq!(joined(&synced(c).await), 1);
        assert_eq!(suite(c), Some(Suite::LegacyHybrid));
    }
    let mut everyone = names.clone();
    everyone.push("alice".into());
    everyone.sort();
    assert_eq!(alice.group_members("old crew").unwrap(), everyone);
    assert!(everyone.len() > BIG_GROUP_LEAVES);
    alice.send_text(&crew(), "in 65100").await.unwrap();
    synced(&mut bob).await;
    synced(&mut carol).await;

    // Alice's next sync moves the group; its tree goes to the blob store.
    for c in [&mut alice, &mut bob, &mut carol] {
        c.hold_suite_moves_for_tests(false);
    }
    let before = blobs(&server).len();
    let events = synced(&mut alice).await;
    assert!(security_alarms(&events).is_empty(), "{events:?}");
    assert_eq!(
        suite(&mut alice),
        Some(Suite::Hybrid),
        "the big group moved"
    );
    assert_eq!(alice.group_members("old crew").unwrap(), everyone);
    assert_eq!(blobs(&server).len(), before + 1, "the successor's tree");

    // Bob and carol check the successor (the tree from the blob store) and
    // follow: the same conversation, the same devices.
    for c in [&mut bob, &mut carol] {
        let events = synced(c).await;
        assert!(security_alarms(&events).is_empty(), "{events:?}");
        assert_eq!(joined(&events), 0, "the move is no new conversation");
        assert_eq!(suite(c), Some(Suite::Hybrid));
        assert_eq!(c.group_members("old crew").unwrap(), everyone);
        assert_eq!(c.groups().unwrap().len(), 1, "one conversation");
    }

    // Messages flow every way in the moved group, after the old history.
    bob.send_text(&crew(), "from bob").await.unwrap();
    carol.send_text(&crew(), "from carol").await.unwrap();
    alice.send_text(&crew(), "from alice").await.unwrap();
    for c in [&mut alice, &mut bob, &mut carol] {
        synced(c).await;
    }
    for c in [&mut alice, &mut bob, &mut carol] {
        let history = texts(c);
        assert_eq!(history.first().map(String::as_str), Some("in 65100"));
        for t in ["from bob", "from carol", "from alice"] {
            assert!(history.iter().any(|x| x == t), "{t:?} missing: {history:?}");
        }
        assert_eq!(suite(c), Some(Suite::Hybrid));
    }
}
