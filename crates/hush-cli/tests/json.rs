//! Every command's `--json` output: one object per line, the documented
//! keys, and nothing else on stdout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

fn one(values: Vec<Value>) -> Value {
    assert_eq!(values.len(), 1, "{values:?}");
    values.into_iter().next().unwrap()
}

#[test]
fn every_command_speaks_json() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();

    let alice = User::new("alice");
    let reg = one(alice.json(&["register", "--server", &server.url(), "alice"]));
    assert_eq!(keys(&reg), ["data_dir", "device_id", "server", "username"]);
    assert_eq!(reg["username"], "alice");
    assert_eq!(reg["device_id"], 1);
    let bob = User::register(&server, "bob");
    User::register(&server, "carol");

    // send, sync, history: the message shape.
    let sent = one(alice.json(&["send", "bob", "first"]));
    assert_message_shape(&sent);
    let id = sent["id"].as_str().unwrap().to_owned();
    let synced = bob.json(&["sync"]);
    let joined = synced.iter().find(|e| e["event"] == "joined").unwrap();
    assert_eq!(keys(joined), ["conversation", "event"]);
    let msg = synced.iter().find(|e| e.get("event").is_none()).unwrap();
    assert_message_shape(msg);
    assert_eq!(msg["text"], "first");
    for m in bob.json(&["history", "alice"]) {
        assert_message_shape(&m);
    }
    let receipt = alice
        .json(&["sync"])
        .into_iter()
        .find(|e| e["event"] == "receipt")
        .unwrap();
    assert_eq!(keys(&receipt), ["event", "from", "ids", "status"]);

    // edit and delete.
    let edited = one(alice.json(&["edit", &id, "first, edited"]));
    assert_eq!(
        edited,
        json!({"id": id, "edited": true, "text": "first, edited"})
    );
    let ev = one(bob.json(&["sync"]));
    assert_eq!(
        ev,
        json!({"event": "edited", "id": id, "text": "first, edited"})
    );
    let deleted = one(alice.json(&["delete", &id]));
    assert_eq!(deleted, json!({"id": id, "deleted": true}));
    let ev = one(bob.json(&["sync"]));
    assert_eq!(ev, json!({"event": "deleted", "id": id}));
    let history = bob.json(&["history", "alice"]);
    assert_eq!(history[0]["text"], Value::Null);

    // Groups.
    let created = one(alice.json(&["group", "create", "g", "--members", "bob"]));
    assert_eq!(
        keys(&created),
        [
            "admins",
            "disappear_secs",
            "id",
            "members",
            "name",
            "only_admins_send"
        ]
    );
    assert_eq!(
        one(alice.json(&["group", "add", "g", "carol"])),
        json!({"group": "g", "added": "carol"})
    );
    let list = alice.json(&["group", "list"]);
    assert_eq!(list.len(), 1);
    assert_eq!(
        keys(&list[0]),
        [
            "admins",
            "disappear_secs",
            "id",
            "members",
            "name",
            "only_admins_send"
        ]
    );
    let members = alice.json(&["group", "members", "g"]);
    assert_eq!(
        members,
        [
            json!({"username": "alice"}),
            json!({"username": "bob"}),
            json!({"username": "carol"})
        ]
    );
    assert_eq!(
        one(alice.json(&["group", "rename", "g", "h"])),
        json!({"group": "h", "old_name": "g"})
    );
    let events = bob.json(&["sync"]);
    let joined = events.iter().find(|e| e["event"] == "joined").unwrap();
    assert_eq!(joined["conversation"]["kind"], "group");
    assert!(events.iter().any(|e| e["event"] == "members"));
    assert!(events.iter().any(|e| e["event"] == "renamed"));
    let group_msg = one(alice.json(&["send", "--group", "h", "to the group"]));
    assert_message_shape(&group_msg);
    assert_eq!(group_msg["group"], "h");
    assert_eq!(
        one(alice.json(&["group", "remove", "h", "carol"])),
        json!({"group": "h", "removed": "carol"})
    );
    assert_eq!(
        one(bob.json(&["group", "leave", "h"])),
        json!({"group": "h", "left": true})
    );

    // Files.
    let src = work.path().join("a.txt");
    std::fs::write(&src, b"attachment").unwrap();
    let file_msg = one(alice.json(&["send-file", "bob", src.to_str().unwrap()]));
    assert_message_shape(&file_msg);
    let fid = file_msg["id"].as_str().unwrap().to_owned();
    bob.json(&["sync"]);
    let dest = work.path().join("b.txt");
    let dl = one(bob.json(&["download", &fid, "--out", dest.to_str().unwrap()]));
    assert_eq!(
        dl,
        json!({"id": fid, "path": dest.to_str().unwrap(), "size": 10})
    );

    // verify.
    let v = one(alice.json(&["verify", "bob"]));
    assert_eq!(
        keys(&v),
        [
            "key_transparency",
            "qr_payload",
            "safety_number",
            "username",
            "verified"
        ]
    );
    assert_eq!(
        keys(&v["key_transparency"]),
        ["devices", "epoch", "published_epoch", "version", "vouched"]
    );
    let digits = v["safety_number"].as_str().unwrap();
    assert_eq!(digits.split(' ').count(), 12);
    assert!(
        digits
            .split(' ')
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()))
    );
    assert_eq!(v["verified"], false);
    let v = one(alice.json(&["verify", "bob", "--mark-verified"]));
    assert_eq!(v["verified"], true);
    // Both sides compute the same number.
    let w = one(bob.json(&["verify", "alice"]));
    assert_eq!(w["safety_number"], v["safety_number"]);
    assert_eq!(w["qr_payload"], v["qr_payload"]);
    let human = alice.ok(&["verify", "bob"]);
    assert!(human.contains('▀') || human.contains('▄'), "no QR: {human}");

    // contacts, profile, presence, block.
    let profile = one(alice.json(&["profile", "set", "--name", "Alice A"]));
    assert_eq!(profile, json!({"name": "Alice A", "avatar_bytes": null}));
    assert_eq!(
        one(alice.json(&["profile", "show"])),
        json!({"name": "Alice A", "avatar_bytes": null, "avatar_type": null})
    );
    // An avatar: a picture (known by its first bytes), or a clear refusal.
    let face = work.path().join("face.png");
    std::fs::write(&face, b"\x89PNG\r\n\x1a\n and the rest").unwrap();
    let notes = work.path().join("notes.txt");
    std::fs::write(&notes, "not a picture").unwrap();
    let err = alice.fails(&[
        "profile",
        "set",
        "--name",
        "Alice A",
        "--avatar",
        notes.to_str().unwrap(),
    ]);
    assert!(err.contains("PNG, JPEG or WebP"), "{err}");
    let with = one(alice.json(&[
        "profile",
        "set",
        "--name",
        "Alice A",
        "--avatar",
        face.to_str().unwrap(),
    ]));
    assert_eq!(with["avatar_bytes"], 21);
    assert_eq!(
        one(alice.json(&["profile", "show"])),
        json!({"name": "Alice A", "avatar_bytes": 21, "avatar_type": "image/png"})
    );
    assert_eq!(
        alice.ok(&["profile", "show"]).trim(),
        "Alice A (avatar: image/png, 21 bytes)"
    );
    bob.json(&["sync"]);
    let contacts = bob.json(&["contacts"]);
    let a = contacts.iter().find(|c| c["username"] == "alice").unwrap();
    assert_eq!(
        keys(a),
        [
            "blocked",
            "display_name",
            "key_changed",
            "username",
            "verified"
        ]
    );
    assert_eq!(a["display_name"], "Alice A");
    assert_eq!(
        one(alice.json(&["presence", "nobody"])),
        json!({"presence": "nobody"})
    );
    assert_eq!(
        one(bob.json(&["block", "alice"])),
        json!({"username": "alice", "blocked": true})
    );
    alice.ok(&["send", "bob", "you blocked me"]);
    assert!(bob.sync_texts().is_empty());
    assert_eq!(
        one(bob.json(&["unblock", "alice"])),
        json!({"username": "alice", "blocked": false})
    );

    // disappear.
    let d = one(alice.json(&["disappear", "bob", "1h"]));
    assert_eq!(d, json!({"kind": "direct", "name": "bob", "seconds": 3600}));
    let ev = bob
        .json(&["sync"])
        .into_iter()
        .find(|e| e["event"] == "disappearing")
        .unwrap();
    assert_eq!(ev["seconds"], 3600);
    let off = one(alice.json(&["disappear", "bob", "off"]));
    assert_eq!(off["seconds"], Value::Null);

    // keys export-key-package: an RFC 9420 MLSMessage holding a KeyPackage
    // (version mls10 = 1, wire format mls_key_package = 5).
    for (suite, name) in [("classical", "kp-c.bin"), ("pq", "kp-pq.bin")] {
        let path = work.path().join(name);
        let k = one(alice.json(&[
            "keys",
            "export-key-package",
            "--suite",
            suite,
            "--out",
            path.to_str().unwrap(),
        ]));
        assert_eq!(keys(&k), ["bytes", "path", "suite"]);
        assert_eq!(k["suite"], suite);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(k["bytes"], bytes.len() as u64);
        assert_eq!(&bytes[..4], &[0, 1, 0, 5], "{suite}");
    }
}

#[test]
fn json_mode_keeps_stderr_quiet_on_success() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    User::register(&server, "bob");
    let out = alice.run(&["--json", "send", "bob", "quiet"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = alice.run(&["--json", "group", "list"]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "no groups, no lines");
}
