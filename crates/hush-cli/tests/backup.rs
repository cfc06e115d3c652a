//! Backups and restore through the real binaries (decision 0026): back up,
//! wipe, restore into a new data directory as a new device, get re-added
//! and continue the conversations; a wrong key, a damaged, cut-off or
//! newer backup restores nothing; a scheduled backup is written by sync.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Output;

use common::*;
use serde_json::Value;

fn history_texts(user: &User, args: &[&str]) -> Vec<String> {
    let mut full = vec!["history"];
    full.extend_from_slice(args);
    texts(&user.json(&full))
}

/// `hush backup create --out FILE`: the recovery key.
fn back_up(user: &User, file: &Path) -> String {
    let made = user.json(&["backup", "create", "--out", file.to_str().unwrap()]);
    assert_eq!(made.len(), 1, "{made:?}");
    let key = made[0]["recovery_key"].as_str().unwrap().to_owned();
    let hex: String = key.chars().filter(|c| *c != ' ').collect();
    assert_eq!(hex.len(), 64, "{key}");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{key}");
    key
}

fn restore(into: &User, url: &str, file: &Path, key: &str) -> Output {
    let mut cmd = into.command(&["--json", "restore", "--server", url, file.to_str().unwrap()]);
    cmd.env("HUSH_RECOVERY_KEY", key);
    run(cmd)
}

#[test]
fn back_up_wipe_restore_and_continue_the_conversations() {
    let server = Server::start();
    let url = server.url();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "hello bob"]);
    bob.json(&["sync"]);
    bob.ok(&["send", "alice", "hello alice"]);
    alice.json(&["group", "create", "family", "--members", "bob"]);
    alice.ok(&["send", "--group", "family", "family one"]);
    alice.json(&["sync"]);
    bob.json(&["sync"]);
    alice.ok(&["verify", "bob", "--mark-verified"]);

    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("alice.hushbackup");
    let key = back_up(&alice, &file);
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 100, "{size}");
    // The file does not show what it holds.
    let raw = std::fs::read(&file).unwrap();
    assert!(!raw.windows(9).any(|w| w == b"hello bob"));
    // The machine is lost.
    drop(alice);

    let restored = User::new("alice-restored");
    let out = restore(&restored, &url, &file, &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let done = lines.last().unwrap();
    assert_eq!(done["restored"], true, "{lines:?}");
    assert_eq!(done["username"], "alice");
    assert_eq!(done["device_id"], 2, "a new device of the account");
    assert!(
        lines.iter().any(|l| l["progress"] == "imported"),
        "{lines:?}"
    );

    // History and contacts are back before anyone re-adds the device.
    assert_eq!(
        history_texts(&restored, &["bob"]),
        ["hello bob", "hello alice"]
    );
    assert_eq!(
        history_texts(&restored, &["--group", "family"]),
        ["family one"]
    );
    let contacts = restored.json(&["contacts"]);
    assert_eq!(contacts[0]["username"], "bob");
    assert_eq!(contacts[0]["verified"], true);
    // The key directory lists it as the account's own: no alarm anywhere.
    let events = restored.json(&["sync"]);
    assert!(
        !events.iter().any(|e| e["event"] == "security_alarm"),
        "{events:?}"
    );
    // Bob's client notices the new device the directory vouches for under
    // alice's account key and adds it to both conversations by itself
    // (decision 0025): `hush readd` finds nothing left to do.
    let events = bob.json(&["sync"]);
    assert!(
        !events.iter().any(|e| e["event"] == "security_alarm"),
        "{events:?}"
    );
    let readd = bob.json(&["readd", "alice"]);
    assert_eq!(readd[0]["readded"], 0, "{readd:?}");
    let events = restored.json(&["sync"]);
    assert_eq!(
        events.iter().filter(|e| e["event"] == "joined").count(),
        2,
        "{events:?}"
    );
    bob.ok(&["send", "--group", "family", "welcome back"]);
    bob.ok(&["send", "alice", "direct welcome"]);
    let mut got = restored.sync_texts();
    got.sort();
    assert_eq!(got, ["direct welcome", "welcome back"]);
    restored.ok(&["send", "--group", "family", "I am back"]);
    restored.ok(&["send", "bob", "back in the chat"]);
    let mut got = bob.sync_texts();
    got.sort();
    assert_eq!(got, ["I am back", "back in the chat"]);
    assert_eq!(
        history_texts(&restored, &["--group", "family"]),
        ["family one", "welcome back", "I am back"]
    );
    assert_eq!(
        history_texts(&restored, &["bob"]),
        [
            "hello bob",
            "hello alice",
            "direct welcome",
            "back in the chat"
        ]
    );
    // Nothing more to add the second time.
    assert_eq!(bob.json(&["readd", "alice"])[0]["readded"], 0);
}

#[test]
fn a_wrong_key_or_a_damaged_cut_or_newer_backup_restores_nothing() {
    let server = Server::start();
    let url = server.url();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "hello"]);
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("alice.hushbackup");
    let key = back_up(&alice, &file);
    let good = std::fs::read(&file).unwrap();
    let wrong = "0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567 89ab cdef";

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let mut newer = good.clone();
    newer[8] += 1;
    let cut = good[..good.len() - 100].to_vec();
    let cases: [(&str, Vec<u8>, &str, &str); 5] = [
        ("wrong key", good.clone(), wrong, "wrong key"),
        ("short key", good.clone(), "abcd", "64 characters"),
        ("flipped", flipped, &key, "corrupt"),
        ("cut", cut, &key, "truncated"),
        ("newer", newer, &key, "newer than this hush"),
    ];
    for (what, bytes, k, expected) in cases {
        let bad = files.path().join(what);
        std::fs::write(&bad, bytes).unwrap();
        let into = User::new(&format!("alice-{what}"));
        let out = restore(&into, &url, &bad, k);
        assert!(!out.status.success(), "{what}: restored");
        let line = one_error_line(&out);
        assert!(line.contains(expected), "{what}: {line}");
        if what != "short key" {
            assert!(line.contains("nothing was written"), "{what}: {line}");
        }
        // Nothing half-written: no store, and no device on the server.
        let line = into.fails(&["sync"]);
        assert!(line.contains("no account"), "{what}: {line}");
    }
    let devices = alice.json(&["devices", "list"]);
    assert_eq!(devices.len(), 1, "{devices:?}");
    // The good file still restores.
    let into = User::new("alice-good");
    let out = restore(&into, &url, &file, &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(history_texts(&into, &["bob"]), ["hello"]);
    drop(bob);
}

#[test]
fn a_scheduled_backup_is_written_by_sync_when_due() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let files = tempfile::tempdir().unwrap();
    let kept = files.path().join("kept.hushbackup");
    let kept_arg = kept.to_str().unwrap();
    let line = alice.fails(&["backup", "schedule", "--out", kept_arg, "--every", "1h"]);
    assert!(line.contains("backup create"), "{line}");
    back_up(&alice, &files.path().join("first.hushbackup"));
    let set = alice.json(&["backup", "schedule", "--out", kept_arg, "--every", "1h"]);
    assert_eq!(set[0]["every_secs"], 3600, "{set:?}");
    // The file does not exist yet: the next sync writes it.
    let synced = alice.json(&["sync"]);
    assert!(synced.iter().any(|v| v["backup"] == kept_arg), "{synced:?}");
    assert!(kept.exists());
    // Fresh: the next sync leaves it.
    let synced = alice.json(&["sync"]);
    assert!(
        !synced.iter().any(|v| v.get("backup").is_some()),
        "{synced:?}"
    );
    let shown = alice.json(&["backup", "schedule"]);
    assert_eq!(shown[0]["schedule"], kept_arg);
}
