//! Backups stored on the server through the real binaries (decision 0035):
//! store one with `hush backup create --to-server`, lose the machine,
//! restore with `hush restore --from-server` and the recovery key alone, and
//! continue the conversation; a wrong key finds nothing and writes nothing;
//! a server that alters the stored backup is caught; a scheduled backup goes
//! to the server on sync.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Output;

use common::*;
use hush_testkit::TestServer;
use serde_json::Value;

/// `hush backup create --to-server`: the recovery key.
fn back_up_to_server(user: &User) -> String {
    let made = user.json(&["backup", "create", "--to-server"]);
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["backup"], "server", "{made:?}");
    made[0]["recovery_key"].as_str().unwrap().to_owned()
}

fn restore_from_server(into: &User, url: &str, key: &str) -> Output {
    let mut cmd = into.command(&["--json", "restore", "--server", url, "--from-server"]);
    cmd.env("HUSH_RECOVERY_KEY", key);
    run(cmd)
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn back_up_to_the_server_wipe_restore_and_continue() {
    let server = Server::start();
    let url = server.url();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "before the backup"]);
    bob.json(&["sync"]);
    bob.ok(&["send", "alice", "reply before"]);
    alice.json(&["sync"]);

    let old_key = back_up_to_server(&alice);
    let status = alice.json(&["backup", "status"]);
    assert!(
        status[0]["server_backup"]["bytes"].as_u64().unwrap() > 100,
        "{status:?}"
    );
    // A second backup replaces the first: its key no longer finds anything.
    let key = back_up_to_server(&alice);
    assert_ne!(key, old_key);
    let stale = User::new("alice-stale");
    let out = restore_from_server(&stale, &url, &old_key);
    assert!(!out.status.success(), "restored with a replaced key");
    let line = one_error_line(&out);
    assert!(line.contains("no backup for this recovery key"), "{line}");
    // The machine is lost.
    drop(alice);

    let restored = User::new("alice-restored");
    let out = restore_from_server(&restored, &url, &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = lines(&out).pop().unwrap();
    assert_eq!(done["restored"], true, "{done}");
    assert_eq!(done["device_id"], 2, "a new device of the account");
    assert_eq!(
        texts(&restored.json(&["history", "bob"])),
        ["before the backup", "reply before"]
    );
    // Bob's client adds the restored device (decision 0025); the chat goes on.
    restored.json(&["sync"]);
    bob.json(&["sync"]);
    restored.json(&["sync"]);
    bob.ok(&["send", "alice", "welcome back"]);
    assert_eq!(restored.sync_texts(), ["welcome back"]);
    restored.ok(&["send", "bob", "glad to be back"]);
    assert_eq!(bob.sync_texts(), ["glad to be back"]);
    // The restored device deletes the backup: it is gone for everyone.
    let deleted = restored.json(&["backup", "delete"]);
    assert_eq!(deleted[0]["deleted"], true, "{deleted:?}");
    let again = User::new("alice-again");
    let out = restore_from_server(&again, &url, &key);
    assert!(!out.status.success());
}

#[test]
fn a_wrong_key_finds_nothing_and_writes_nothing() {
    let server = Server::start();
    let url = server.url();
    let alice = User::register(&server, "alice");
    back_up_to_server(&alice);
    let wrong = "0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567 89ab cdef";
    let into = User::new("alice-wrong");
    let out = restore_from_server(&into, &url, wrong);
    assert!(!out.status.success(), "restored with a wrong key");
    let line = one_error_line(&out);
    assert!(line.contains("no backup for this recovery key"), "{line}");
    let line = into.fails(&["sync"]);
    assert!(line.contains("no account"), "{line}");
    assert_eq!(alice.json(&["devices", "list"]).len(), 1);
    // Without a backup or a file, restore says what it needs.
    let out = into.run(&["restore", "--server", &url]);
    assert!(!out.status.success());
}

#[test]
fn a_backup_altered_by_the_server_is_refused_with_nothing_written() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    let url = server.url();
    let state = server.state().unwrap();
    let alice = User::new("alice");
    alice.ok(&["register", "--server", &url, "alice"]);
    let key = back_up_to_server(&alice);
    state.kt.faults.corrupt_blob_downloads();
    let into = User::new("alice-tampered");
    let out = restore_from_server(&into, &url, &key);
    assert!(!out.status.success(), "restored an altered backup");
    let line = one_error_line(&out);
    assert!(line.contains("corrupt"), "{line}");
    assert!(line.contains("nothing was written"), "{line}");
    let line = into.fails(&["sync"]);
    assert!(line.contains("no account"), "{line}");
    assert_eq!(alice.json(&["devices", "list"]).len(), 1);
}

#[test]
fn a_scheduled_backup_goes_to_the_server_on_sync() {
    let server = Server::start();
    let url = server.url();
    let alice = User::register(&server, "alice");
    let line = alice.fails(&["backup", "schedule", "--to-server", "--every", "1h"]);
    assert!(line.contains("backup create"), "{line}");
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("first.hushbackup");
    let made = alice.json(&["backup", "create", "--out", file.to_str().unwrap()]);
    let key = made[0]["recovery_key"].as_str().unwrap().to_owned();
    let set = alice.json(&["backup", "schedule", "--to-server", "--every", "1h"]);
    assert_eq!(set[0]["schedule"], "server", "{set:?}");
    assert!(alice.json(&["backup", "status"])[0]["server_backup"].is_null());
    // A new schedule is due at once: the next sync stores it on the server.
    let synced = alice.json(&["sync"]);
    assert!(synced.iter().any(|v| v["backup"] == "server"), "{synced:?}");
    // Fresh: the next sync leaves it.
    let synced = alice.json(&["sync"]);
    assert!(
        !synced.iter().any(|v| v.get("backup").is_some()),
        "{synced:?}"
    );
    // Stored under the key of the last `backup create`.
    let into = User::new("alice-scheduled");
    let out = restore_from_server(&into, &url, &key);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
