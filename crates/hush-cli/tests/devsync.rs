//! Two linked devices of one account stay in sync, through the real
//! binaries (decision 0025): what one sends shows on the other as sent by
//! the account, reading on one clears unread on the other, and a block or
//! a verification mark made on one holds on the other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::link::link;
use common::*;
use serde_json::Value;

fn events(user: &User, kind: &str) -> Vec<Value> {
    user.json(&["sync"])
        .into_iter()
        .filter(|e| e["event"] == kind)
        .collect()
}

fn contact(user: &User, name: &str) -> Value {
    user.json(&["contacts"])
        .into_iter()
        .find(|c| c["username"] == name)
        .unwrap_or_else(|| panic!("{} has no contact {name}", user.name))
}

#[test]
fn two_devices_share_sends_reads_blocks_and_verification() {
    let server = Server::start();
    let url = server.url();
    let phone = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    phone.ok(&["send", "bob", "hello bob"]);
    phone.json(&["group", "create", "team", "--members", "bob"]);
    bob.json(&["sync"]);
    let laptop = link(&phone, &url, "laptop");
    assert_eq!(events(&laptop, "joined").len(), 2);
    bob.json(&["sync"]);

    // Sent on the laptop: outgoing on the phone, in `sync --json` (a group
    // message of this account carries its receipt counts), in `history`
    // (with its status mark) and to bob as alice.
    laptop.ok(&["send", "bob", "from the laptop"]);
    laptop.ok(&["send", "--group", "team", "laptop to team"]);
    let got = phone.sync_messages();
    assert_eq!(texts(&got), ["from the laptop", "laptop to team"]);
    assert!(got.iter().all(|m| m["from"] == "alice"), "{got:?}");
    assert!(got[1].get("recipients").is_some(), "{got:?}");
    let history = phone.ok(&["history", "bob"]);
    let line = history
        .lines()
        .find(|l| l.contains("from the laptop"))
        .unwrap();
    assert!(line.contains("alice: from the laptop ✓"), "{history}");
    assert_eq!(bob.sync_texts(), ["from the laptop", "laptop to team"]);

    // Read on the laptop: no longer unread on the phone.
    bob.ok(&["send", "alice", "read me once"]);
    assert_eq!(phone.sync_texts(), ["read me once"]);
    assert_eq!(laptop.sync_texts(), ["read me once"]);
    laptop.ok(&["history", "bob"]);
    let read = events(&phone, "read_elsewhere");
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0]["ids"].as_array().unwrap().len(), 1, "{read:?}");
    // The phone has nothing left to read, so it tells the laptop nothing.
    phone.ok(&["history", "bob"]);
    assert!(events(&laptop, "read_elsewhere").is_empty());

    // A block on the phone holds on the laptop; a verification mark made
    // on the laptop holds on the phone.
    phone.ok(&["block", "bob"]);
    let synced = events(&laptop, "synced");
    assert_eq!(synced.len(), 1, "{synced:?}");
    assert_eq!(synced[0]["what"], "blocked");
    assert_eq!(contact(&laptop, "bob")["blocked"], true);
    laptop.ok(&["verify", "bob", "--mark-verified"]);
    events(&phone, "synced");
    assert_eq!(contact(&phone, "bob")["verified"], true);
    // What bob sends now is dropped on both.
    bob.ok(&["send", "alice", "blocked?"]);
    assert!(phone.sync_texts().is_empty());
    assert!(laptop.sync_texts().is_empty());
}

#[test]
fn a_contacts_display_name_read_on_one_device_shows_on_the_other() {
    let server = Server::start();
    let url = server.url();
    let phone = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    phone.ok(&["send", "bob", "hi"]);
    bob.json(&["sync"]);
    let laptop = link(&phone, &url, "laptop");
    laptop.json(&["sync"]);
    bob.json(&["sync"]);
    // Bob shares his profile; the phone reads his name first.
    bob.ok(&["profile", "set", "--name", "Bob B."]);
    phone.json(&["sync"]);
    laptop.json(&["sync"]);
    assert_eq!(contact(&phone, "bob")["display_name"], "Bob B.");
    // The laptop learns it from the phone: a synced change, not a fetch.
    let synced = events(&laptop, "synced");
    assert_eq!(synced.len(), 1, "{synced:?}");
    assert_eq!(synced[0]["what"], "contact_name", "{synced:?}");
    assert_eq!(synced[0]["subject"], "bob", "{synced:?}");
    // A name read again unchanged is not sent again.
    assert_eq!(contact(&laptop, "bob")["display_name"], "Bob B.");
    assert!(events(&phone, "synced").is_empty());
    // A later name read on the laptop wins on the phone.
    bob.ok(&["profile", "set", "--name", "Robert"]);
    laptop.json(&["sync"]);
    assert_eq!(contact(&laptop, "bob")["display_name"], "Robert");
    let synced = events(&phone, "synced");
    assert_eq!(synced.len(), 1, "{synced:?}");
    assert_eq!(synced[0]["what"], "contact_name", "{synced:?}");
}
