//! A conversation of the legacy suite 65100 with more devices than one
//! Welcome carries a tree for (`BIG_GROUP_LEAVES`) moves to X-Wing 0x004D
//! as a small one does (decision 0031): real clients and a real server on a
//! loopback port (hush-testkit), real MLS. Most members are accounts driven
//! by hand (their 0x004D KeyPackages wait on the server); the members who
//! follow the move are real clients, which check the successor as ever.

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
