//! `hush report` and `hush block` through the real binaries, and the
//! operator's moderation queue (`hush-server admin reports`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;

fn admin_json(server: &Server, args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(server_bin())
        .arg("--data-dir")
        .arg(server.data_dir())
        .arg("admin")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_reported_message_reaches_the_moderators_with_its_proven_sender() {
    let server = Server::start();
    let mallory = User::register(&server, "mallory");
    let bob = User::register(&server, "bob");
    mallory.ok(&["send", "bob", "buy my spam"]);
    let got = bob.sync_messages();
    let id = got[0]["id"].as_str().unwrap();

    let filed = bob.json(&["report", id, "--reason", "spam"]);
    assert_eq!(filed[0]["id"], id);
    assert!(filed[0]["report"].as_i64().is_some());
    // Reporting twice is refused with one line.
    let err = bob.fails(&["report", id]);
    assert!(err.contains("already reported"), "{err}");
    // One's own messages cannot be reported.
    let mine = mallory.json(&["history", "bob"]);
    mallory.fails(&["report", mine[0]["id"].as_str().unwrap()]);

    let queue = admin_json(&server, &["reports", "list", "--json"]);
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0]["sender"], "mallory");
    assert_eq!(queue[0]["reporter"], "bob");
    assert_eq!(queue[0]["text"], "buy my spam");
    assert_eq!(queue[0]["reason"], "spam");
    let report = queue[0]["id"].as_i64().unwrap().to_string();
    let shown = admin_json(&server, &["reports", "show", &report, "--json"]);
    assert_eq!(shown[0]["status"], "open");

    // The operator suspends the proven sender; the queue empties.
    server.admin(&["reports", "resolve", &report, "--action", "suspend"]);
    assert!(admin_json(&server, &["reports", "list", "--json"]).is_empty());
    let err = mallory.fails(&["send", "bob", "more spam"]);
    assert!(err.contains("suspended"), "{err}");
}

#[test]
fn blocked_contacts_are_not_heard() {
    let server = Server::start();
    let mallory = User::register(&server, "mallory");
    let bob = User::register(&server, "bob");
    mallory.ok(&["send", "bob", "first"]);
    assert_eq!(bob.sync_texts(), ["first"]);
    bob.ok(&["block", "mallory"]);
    mallory.ok(&["send", "bob", "second"]);
    assert!(bob.sync_texts().is_empty());
    bob.ok(&["unblock", "mallory"]);
    mallory.ok(&["send", "bob", "third"]);
    assert_eq!(bob.sync_texts(), ["third"]);
}
