//! Linking a second device to an account through the real binaries
//! (decision 0023): `hush link` on the new device, `hush devices link CODE`
//! on the existing one; both then send and receive in a 1:1 chat and a
//! group, a removed device reads nothing new; a timeout, a wrong code and a
//! server that tampers with the exchange link nothing; a new device that
//! fails after it was added takes itself off the server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::link::*;
use common::*;
use hush_testkit::TestServer;
use serde_json::Value;

fn devices(user: &User) -> Vec<Value> {
    let list = user.json(&["devices", "list"]);
    for d in &list {
        assert_eq!(
            keys(d),
            ["added_at", "id", "last_seen", "name", "this"],
            "{d}"
        );
    }
    list
}

/// How many attachment blobs the server in `dir` holds (each has a `meta`).
fn blobs_held(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                blobs_held(&path)
            } else {
                usize::from(path.file_name().is_some_and(|n| n == "meta"))
            }
        })
        .sum()
}

fn history_texts(user: &User, args: &[&str]) -> Vec<String> {
    let mut full = vec!["history"];
    full.extend_from_slice(args);
    texts(&user.json(&full))
}

#[test]
fn a_linked_device_sends_and_receives_and_a_removed_one_reads_nothing_new() {
    let server = Server::start();
    let url = server.url();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "before the laptop"]);
    alice.json(&["group", "create", "team", "--members", "bob"]);
    assert_eq!(bob.sync_texts(), ["before the laptop"]);

    let laptop = link(&alice, &url, "laptop");
    // The laptop joins both conversations alice's phone is in.
    let events = laptop.json(&["sync"]);
    let joined = events.iter().filter(|e| e["event"] == "joined").count();
    assert_eq!(joined, 2, "{events:?}");
    // Bob's client accepts the new device: the directory vouches for it.
    let events = bob.json(&["sync"]);
    assert!(
        !events.iter().any(|e| e["event"] == "security_alarm"),
        "{events:?}"
    );

    // Bob reaches both of alice's devices, in the 1:1 chat and the group.
    bob.ok(&["send", "alice", "to both devices"]);
    bob.ok(&["send", "--group", "team", "team hello"]);
    for device in [&alice, &laptop] {
        let mut got = device.sync_texts();
        got.sort();
        assert_eq!(got, ["team hello", "to both devices"], "{}", device.name);
    }
    // The laptop sends as alice; her phone shows it as sent by her.
    laptop.ok(&["send", "bob", "from the laptop"]);
    laptop.ok(&["send", "--group", "team", "laptop to team"]);
    let got = bob.sync_messages();
    assert_eq!(texts(&got), ["from the laptop", "laptop to team"]);
    assert!(got.iter().all(|m| m["from"] == "alice"), "{got:?}");
    let mine = alice.sync_messages();
    assert_eq!(texts(&mine), ["from the laptop", "laptop to team"]);
    assert!(mine.iter().all(|m| m["from"] == "alice"), "{mine:?}");
    assert!(history_texts(&alice, &["bob"]).contains(&"from the laptop".to_owned()));

    // Both devices list the account's two devices, each marking itself.
    let on_phone = devices(&alice);
    assert_eq!(on_phone.len(), 2, "{on_phone:?}");
    assert_eq!(on_phone[0]["id"], 1);
    assert_eq!(on_phone[0]["this"], true);
    assert_eq!(on_phone[1]["id"], 2);
    assert_eq!(on_phone[1]["this"], false);
    assert_eq!(on_phone[1]["name"], "laptop");
    let today = on_phone[0]["added_at"].as_str().unwrap().to_owned();
    assert_eq!(today.len(), 10, "a day, YYYY-MM-DD: {today}");
    // The phone saw the laptop's messages today.
    assert_eq!(on_phone[1]["last_seen"], today.as_str());
    let on_laptop = devices(&laptop);
    assert_eq!(on_laptop.len(), 2);
    assert_eq!(on_laptop[1]["this"], true);
    assert_eq!(on_laptop[1]["name"], "laptop");
    alice.json(&["devices", "rename", "2", "old laptop"]);
    assert_eq!(devices(&alice)[1]["name"], "old laptop");

    // Remove the laptop: out of the directory and every conversation.
    let removed = alice.json(&["devices", "remove", "2"]);
    assert_eq!(removed[0]["removed"], true);
    assert_eq!(devices(&alice).len(), 1);
    bob.json(&["sync"]);
    bob.ok(&["send", "alice", "after the removal"]);
    bob.ok(&["send", "--group", "team", "team after the removal"]);
    let mut got = alice.sync_texts();
    got.sort();
    assert_eq!(got, ["after the removal", "team after the removal"]);
    // The laptop's token no longer works, and nothing new reached it.
    let out = laptop.run(&["sync"]);
    assert!(!out.status.success(), "the removed device still syncs");
    for args in [&["bob"][..], &["--group", "team"][..]] {
        // Its history prints from the local store (sending read receipts
        // then fails: it is signed out).
        let mut full = vec!["--json", "history"];
        full.extend_from_slice(args);
        let out = laptop.run(&full);
        let seen: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect();
        assert!(
            seen.iter()
                .any(|t| t == "to both devices" || t == "team hello"),
            "{seen:?}"
        );
        assert!(
            !seen.iter().any(|t| t.contains("after the removal")),
            "{seen:?}"
        );
    }
    // Its own device cannot be removed from itself.
    let line = alice.fails(&["devices", "remove", "1"]);
    assert!(line.contains("another of your devices"), "{line}");
}

#[test]
fn a_link_that_nobody_approves_times_out_and_leaves_nothing() {
    let server = Server::start();
    let new = User::new("nobody-approves");
    let (child, code) = start_link(&new, &server.url(), "tablet", "2s");
    assert!(code.len() > 80, "{code}");
    let (ok, _, stderr) = finish_link(child);
    assert!(!ok);
    assert!(stderr.contains("approved this link within 2 s"), "{stderr}");
    let line = new.fails(&["sync"]);
    assert!(line.contains("no account"), "{line}");
}

#[test]
fn a_wrong_or_mistyped_code_links_nothing() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let line = alice.fails(&["devices", "link", "not-a-code!"]);
    assert!(line.contains("a-z and digits 2-7"), "{line}");
    let line = alice.fails(&["devices", "link", "abcde-fghij"]);
    assert!(line.contains("letters"), "{line}");
    // A real code with one letter changed: its check fails.
    let new = User::new("typo");
    let (mut child, code) = start_link(&new, &server.url(), "tablet", "20s");
    let mut letters: Vec<char> = code.chars().collect();
    letters[7] = if letters[7] == 'q' { 'r' } else { 'q' };
    let typo: String = letters.into_iter().collect();
    let line = alice.fails(&["devices", "link", &typo]);
    assert!(line.contains("mistyped"), "{line}");
    assert_eq!(devices(&alice).len(), 1);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_server_that_swaps_the_link_exchange_links_nothing() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    let url = server.url();
    let state = server.state().unwrap();
    let alice = User::new("alice");
    alice.ok(&["register", "--server", &url, "alice"]);
    state.kt.faults.swap_link_frames();

    let new = User::new("alice-swapped");
    let (child, code) = start_link(&new, &url, "laptop", "30s");
    let out = alice.run(&["devices", "link", &code, "--timeout", "8s"]);
    assert!(!out.status.success());
    let (ok, _, stderr) = finish_link(child);
    assert!(!ok, "the new device took a swapped exchange");
    assert!(stderr.contains("SECURITY"), "{stderr}");
    assert!(stderr.contains("nothing was linked"), "{stderr}");
    // Nothing is linked: no store on the new device, and the approver took
    // the half-made device out of the directory again.
    let line = new.fails(&["sync"]);
    assert!(line.contains("no account"), "{line}");
    let list = devices(&alice);
    assert_eq!(list.len(), 1, "{list:?}");
}

#[test]
fn a_device_the_server_publishes_alarms_every_device_of_the_account() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    let url = server.url();
    let state = server.state().unwrap();
    let alice = User::new("alice");
    alice.ok(&["register", "--server", &url, "alice"]);
    let laptop = link(&alice, &url, "laptop");
    // The linked device is the account's own: no alarm on either.
    for d in [&alice, &laptop] {
        let out = d.run(&["sync"]);
        assert!(
            out.status.success(),
            "{}: {}",
            d.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    rt.block_on(
        state
            .kt
            .faults
            .publish_extra_device(&state.kt, "alice", 7, None),
    )
    .unwrap();
    for d in [&alice, &laptop] {
        let out = d.run(&["sync"]);
        assert!(!out.status.success(), "{} saw no alarm", d.name);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("SECURITY"), "{stderr}");
        assert!(stderr.contains("device(s) 7 "), "{stderr}");
    }
}

/// The progress steps of a link, in order.
fn steps(progress: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = progress
        .iter()
        .map(|p| p["progress"].as_str().unwrap().to_owned())
        .collect();
    out.dedup();
    out
}

#[test]
fn a_linked_device_gets_the_history_contacts_marks_and_blocks() {
    let server = Server::start();
    let url = server.url();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let _carol = User::register(&server, "carol");
    alice.ok(&["send", "bob", "one"]);
    bob.json(&["sync"]);
    bob.ok(&["send", "alice", "two"]);
    alice.json(&["group", "create", "team", "--members", "bob"]);
    alice.ok(&["send", "--group", "team", "team one"]);
    alice.ok(&["send", "carol", "hello carol"]);
    alice.json(&["sync"]);
    alice.ok(&["verify", "bob", "--mark-verified"]);
    alice.ok(&["block", "carol"]);

    assert_eq!(blobs_held(&server.data_dir()), 0);
    let (laptop, approving, new) = link_with(&alice, &url, "laptop", "all");
    // The history blob is gone from the server once the laptop has it
    // (decision 0035), not left until the retention expires.
    assert_eq!(blobs_held(&server.data_dir()), 0);
    assert_eq!(
        steps(&approving),
        ["packed", "uploaded", "sent"],
        "{approving:?}"
    );
    assert_eq!(steps(&new), ["downloaded", "imported"], "{new:?}");
    let imported = new.last().unwrap();
    assert_eq!(imported["messages"], 4, "{imported}");
    // The history is there before the laptop joined anything, and stays
    // once it has.
    assert_eq!(history_texts(&laptop, &["bob"]), ["one", "two"]);
    assert_eq!(history_texts(&laptop, &["--group", "team"]), ["team one"]);
    let events = laptop.json(&["sync"]);
    assert_eq!(events.iter().filter(|e| e["event"] == "joined").count(), 3);
    assert_eq!(history_texts(&laptop, &["bob"]), ["one", "two"]);
    bob.json(&["sync"]);
    bob.ok(&["send", "alice", "three"]);
    assert_eq!(laptop.sync_texts(), ["three"]);
    assert_eq!(history_texts(&laptop, &["bob"]), ["one", "two", "three"]);
    // Verification marks and blocks came along.
    let contacts = laptop.json(&["contacts"]);
    let of = |name: &str| {
        contacts
            .iter()
            .find(|c| c["username"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(of("bob")["verified"], true, "{contacts:?}");
    assert_eq!(of("carol")["blocked"], true, "{contacts:?}");

    // `--history none`: conversations and contacts, no messages.
    let (tablet, _, new) = link_with(&alice, &url, "tablet", "none");
    assert_eq!(new.last().unwrap()["messages"], 0, "{new:?}");
    assert!(history_texts(&tablet, &["bob"]).is_empty());
    assert_eq!(tablet.json(&["contacts"]).len(), 2);
}

#[test]
fn a_history_archive_altered_on_the_server_is_refused_with_nothing_written() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    let url = server.url();
    let state = server.state().unwrap();
    let alice = User::new("alice");
    alice.ok(&["register", "--server", &url, "alice"]);
    let bob = User::new("bob");
    bob.ok(&["register", "--server", &url, "bob"]);
    alice.ok(&["send", "bob", "a history to carry"]);
    state.kt.faults.corrupt_blob_downloads();

    let new = User::new("alice-corrupted");
    let (child, code) = start_link(&new, &url, "laptop", "60s");
    let approved = alice.run(&["--json", "devices", "link", &code]);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let (ok, _, stderr) = finish_link(child);
    assert!(!ok, "the new device took an altered archive");
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    // No store is left on the new device.
    let line = new.fails(&["sync"]);
    assert!(line.contains("no account"), "{line}");
    // The altered history was deleted from the server all the same
    // (decision 0035).
    assert_eq!(blobs_held(&server.data_dir()), 0);
    // The new device took itself off the server: the account lists one
    // device again, and bob, whose client processes the add after that,
    // raises no alarm and still reaches alice.
    assert_eq!(devices(&alice).len(), 1);
    let events = bob.json(&["sync"]);
    assert!(
        !events.iter().any(|e| e["event"] == "security_alarm"),
        "{events:?}"
    );
    bob.ok(&["send", "alice", "after the failed link"]);
    assert_eq!(alice.sync_texts(), ["after the failed link"]);
}
