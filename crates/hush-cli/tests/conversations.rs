//! 1:1 chats through the real binaries: both ways, offline delivery, a
//! server restart in the middle, the passphrase, a closed stdout pipe.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;

use common::*;

#[test]
fn one_to_one_both_ways_with_receipts() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");

    let sent = alice.json(&["send", "bob", "hi bob"]);
    assert_eq!(sent.len(), 1);
    assert_message_shape(&sent[0]);
    assert_eq!(sent[0]["from"], "alice");

    let got = bob.sync_messages();
    assert_eq!(texts(&got), ["hi bob"]);
    assert_eq!(got[0]["from"], "alice");
    assert_eq!(got[0]["group"], serde_json::Value::Null);
    assert_eq!(got[0]["id"], sent[0]["id"]);

    // A reply, answering the first message.
    let id = sent[0]["id"].as_str().unwrap();
    bob.json(&["send", "alice", "hi alice", "--reply-to", id]);
    let events = alice.json(&["sync"]);
    let messages: Vec<_> = events.iter().filter(|e| e.get("event").is_none()).collect();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["text"], "hi alice");
    assert_eq!(messages[0]["reply_to"], id);
    assert_eq!(messages[0]["quoted"]["from"], "alice");
    assert_eq!(messages[0]["quoted"]["text"], "hi bob");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "receipt" && e["status"] == "delivered"),
        "alice sees bob's device got it: {events:?}"
    );

    // Reading the conversation sends read receipts.
    let history = bob.json(&["history", "alice"]);
    assert_eq!(texts(&history), ["hi bob", "hi alice"]);
    history.iter().for_each(assert_message_shape);
    let events = alice.json(&["sync"]);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "receipt" && e["status"] == "read"),
        "{events:?}"
    );
    // The human history shows the marks of outgoing messages.
    let human = alice.ok(&["history", "bob"]);
    assert!(human.contains("alice: hi bob ✔✔"), "{human}");
    assert!(human.contains("bob: hi alice"), "{human}");
}

#[test]
fn messages_wait_for_an_offline_recipient() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    for i in 0..3 {
        alice.ok(&["send", "bob", &format!("message {i}")]);
    }
    // Bob was never online; he syncs later and gets all, in order.
    assert_eq!(bob.sync_texts(), ["message 0", "message 1", "message 2"]);
    // Nothing is delivered twice.
    assert!(bob.sync_texts().is_empty());
}

#[test]
fn messages_flow_across_a_server_restart() {
    let mut server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "before the restart"]);

    server.restart();
    assert_eq!(bob.sync_texts(), ["before the restart"]);
    bob.ok(&["send", "alice", "after the restart"]);
    assert_eq!(alice.sync_texts(), ["after the restart"]);

    // While the server is down, a command fails with one line, and the
    // store is unharmed.
    server.kill();
    let err = alice.fails(&["send", "bob", "into the void"]);
    assert!(err.contains("network"), "{err}");
    server.restart();
    // The send stayed in the outbox and goes out with the next command.
    alice.ok(&["sync"]);
    alice.ok(&["send", "bob", "back again"]);
    assert_eq!(bob.sync_texts(), ["into the void", "back again"]);
}

#[test]
fn a_wrong_passphrase_fails_in_one_line_and_changes_nothing() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    User::register(&server, "bob");
    alice.ok(&["send", "bob", "hello"]);

    let mut wrong = alice.command(&["history", "bob"]);
    wrong.env("HUSH_PASSPHRASE", "not the passphrase");
    let out = run(wrong);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let line = one_error_line(&out);
    assert!(line.contains("wrong passphrase"), "{line}");

    let history = alice.json(&["history", "bob"]);
    assert_eq!(texts(&history), ["hello"]);
}

#[test]
fn usage_errors_and_missing_accounts_are_one_line() {
    let nobody = User::new("nobody");
    let line = nobody.fails(&["contacts"]);
    assert!(line.contains("no account"), "{line}");
    let line = nobody.fails(&["send", "--group", "g", "bob", "hi"]);
    assert!(line.contains("not a USERNAME too"), "{line}");
    let line = nobody.fails(&["no-such-command"]);
    assert!(line.contains("no-such-command"), "{line}");
    let line = nobody.fails(&["disappear", "bob", "soon"]);
    assert!(line.contains("duration"), "{line}");
    // Help is not an error.
    assert!(nobody.ok(&["--help"]).contains("send-file"));
}

#[test]
fn registering_twice_in_one_directory_fails() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let line = alice.fails(&["register", "--server", &server.url(), "alice2"]);
    assert!(line.contains("already registered"), "{line}");
    // A taken username is refused by the server and leaves nothing behind.
    let other = User::new("alice");
    let line = other.fails(&["register", "--server", &server.url(), "alice"]);
    assert!(line.starts_with("hush: "), "{line}");
    let line = other.fails(&["contacts"]);
    assert!(line.contains("no account"), "{line}");
}

#[test]
fn a_closed_stdout_pipe_is_not_an_error() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    User::register(&server, "bob");
    for i in 0..20 {
        alice.ok(&["send", "bob", &format!("line {i}")]);
    }
    let mut cmd = alice.command(&["history", "bob"]);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before hush writes anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_changed_identity_key_is_shouted_even_in_json_mode() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "hello old bob"]);
    bob.ok(&["sync"]);
    let before = alice.json(&["verify", "bob", "--mark-verified"]);

    // Bob's account is deleted and someone registers "bob" again: a new
    // identity key under the same name.
    server.admin(&["accounts", "delete", "bob"]);
    let new_bob = User::register(&server, "bob");
    new_bob.ok(&["send", "alice", "it's me, new phone"]);

    let out = alice.run(&["--json", "sync"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SECURITY WARNING") && stderr.contains("bob"),
        "{stderr}"
    );
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "key_changed" && e["username"] == "bob"),
        "{events:?}"
    );

    let contacts = alice.json(&["contacts"]);
    let b = contacts.iter().find(|c| c["username"] == "bob").unwrap();
    assert_eq!(b["key_changed"], true);
    assert_eq!(b["verified"], false);
    let line = alice.fails(&["send", "bob", "are you really bob?"]);
    assert!(line.contains("identity key of bob has changed"), "{line}");
    // A new safety number; once compared, bob is trusted again.
    let after = alice.json(&["verify", "bob", "--mark-verified"]);
    assert_ne!(before[0]["safety_number"], after[0]["safety_number"]);
    let contacts = alice.json(&["contacts"]);
    let b = contacts.iter().find(|c| c["username"] == "bob").unwrap();
    assert_eq!(b["key_changed"], false);
}

#[test]
fn mute_and_unmute_through_the_binary() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let _bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "hi"]);
    let muted = alice.json(&["mute", "bob", "--for", "8h"]);
    assert_eq!(muted[0]["name"], "bob");
    assert!(muted[0]["muted_until"].as_u64().unwrap() > 0);
    assert!(alice.ok(&["mute", "bob"]).contains("until you unmute"));
    assert!(
        alice
            .fails(&["mute", "bob", "--for", "5s"])
            .contains("1m to 1 year")
    );
    assert!(alice.fails(&["mute", "--group", "nope"]).contains("nope"));
    let unmuted = alice.json(&["unmute", "bob"]);
    assert_eq!(unmuted[0]["muted_until"], serde_json::Value::Null);
}
