//! A group of four through the real binaries: create, add, remove (the
//! removed member reads nothing sent after), leave, rename.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;

fn members(user: &User, group: &str) -> Vec<String> {
    user.json(&["group", "members", group])
        .iter()
        .map(|m| m["username"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_group_of_four_adds_removes_and_loses_a_member() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let carol = User::register(&server, "carol");
    let dave = User::register(&server, "dave");

    let created = alice.json(&["group", "create", "team", "--members", "bob,carol"]);
    assert_eq!(created[0]["name"], "team");
    assert_eq!(
        created[0]["members"],
        serde_json::json!(["alice", "bob", "carol"])
    );
    alice.json(&["group", "add", "team", "dave"]);
    assert_eq!(members(&alice, "team"), ["alice", "bob", "carol", "dave"]);

    let hello = alice.json(&["send", "--group", "team", "hello all"]);
    assert_eq!(hello[0]["group"], "team");
    for u in [&bob, &carol, &dave] {
        let got = u.sync_messages();
        assert_eq!(texts(&got), ["hello all"], "{}", u.name);
        assert_eq!(got[0]["group"], "team");
        assert_eq!(got[0]["from"], "alice");
    }
    bob.ok(&["send", "--group", "team", "hi from bob"]);
    for u in [&alice, &carol, &dave] {
        assert_eq!(u.sync_texts(), ["hi from bob"], "{}", u.name);
    }

    // Remove carol: she learns it, and reads nothing sent after.
    alice.json(&["group", "remove", "team", "carol"]);
    alice.ok(&["send", "--group", "team", "carol is gone"]);
    let events = carol.json(&["sync"]);
    assert!(events.iter().any(|e| e["event"] == "removed"), "{events:?}");
    assert!(
        texts(&events).is_empty(),
        "carol read after removal: {events:?}"
    );
    let line = carol.fails(&["send", "--group", "team", "let me in"]);
    assert!(line.contains("no group named"), "{line}");
    for u in [&bob, &dave] {
        assert_eq!(u.sync_texts(), ["carol is gone"], "{}", u.name);
    }

    // Dave leaves; the others commit his departure when they sync.
    dave.json(&["group", "leave", "team"]);
    alice.ok(&["sync"]);
    bob.ok(&["sync"]);
    assert_eq!(members(&alice, "team"), ["alice", "bob"]);
    alice.ok(&["send", "--group", "team", "just us"]);
    assert_eq!(bob.sync_texts(), ["just us"]);
    assert!(dave.sync_texts().is_empty());
    assert!(carol.sync_texts().is_empty());

    // Rename: both remaining members see the new name.
    alice.json(&["group", "rename", "team", "duo"]);
    let events = bob.json(&["sync"]);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "renamed" && e["name"] == "duo"),
        "{events:?}"
    );
    let groups: Vec<Value> = bob.json(&["group", "list"]);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["name"], "duo");
    bob.ok(&["send", "--group", "duo", "nice name"]);
    assert_eq!(alice.sync_texts(), ["nice name"]);
}

#[test]
fn admins_and_announcement_groups_through_the_binary() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.json(&["group", "create", "news", "--members", "bob"]);
    bob.ok(&["sync"]);
    let info = bob.json(&["group", "info", "news"]);
    assert_eq!(info[0]["admins"], serde_json::json!(["alice"]));
    assert_eq!(info[0]["only_admins_send"], false);
    let line = bob.fails(&["group", "rename", "news", "mine"]);
    assert!(line.contains("admins"), "{line}");

    let set = alice.json(&["group", "settings", "news", "--only-admins-send", "on"]);
    assert_eq!(set[0]["only_admins_send"], true);
    bob.ok(&["sync"]);
    let line = bob.fails(&["send", "--group", "news", "hi"]);
    assert!(line.contains("only admins"), "{line}");

    alice.json(&["group", "admin", "add", "news", "bob"]);
    bob.ok(&["sync"]);
    let info = bob.json(&["group", "info", "news"]);
    assert_eq!(info[0]["admins"], serde_json::json!(["alice", "bob"]));
    bob.ok(&["send", "--group", "news", "now I can"]);
    assert_eq!(alice.sync_texts(), ["now I can"]);
}
