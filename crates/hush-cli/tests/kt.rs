//! Key transparency through the real `hush` binary, against a server that
//! misbehaves on purpose: the in-process test server's fault hooks
//! (`fault-injection`, compiled only for tests) swap a contact's keys or
//! rewrite the directory's history.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_testkit::TestServer;

fn register(url: &str, name: &str) -> User {
    let u = User::new(name);
    u.ok(&["register", "--server", url, name]);
    u
}

#[test]
fn a_swapped_key_stops_the_send_and_a_published_one_alarms_its_owner() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    let url = server.url();
    let state = server.state().unwrap();
    let alice = register(&url, "alice");
    let bob = register(&url, "bob");

    // The server hands out a ghost identity for bob, without publishing it.
    state.kt.faults.serve_ghost("bob").unwrap();
    let err = alice.fails(&["send", "bob", "for bob only"]);
    assert!(err.contains("key transparency"), "{err}");
    assert!(err.contains("bob"), "{err}");
    let stats = rt.block_on(server.store().unwrap().stats()).unwrap();
    assert_eq!(stats.queued_envelopes, 0, "nothing was sent");
    // Bob's keys themselves are clean: no alarm for him.
    let out = bob.run(&["sync"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Now the server also publishes the ghost: bob's next sync sees a key
    // he never added, says so loudly and exits non-zero.
    rt.block_on(state.kt.faults.publish_ghost(&state.kt, "bob"))
        .unwrap();
    let out = bob.run(&["sync"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SECURITY"), "{stderr}");
    assert!(stderr.contains("never"), "{stderr}");
    // Once told, bob is not told again about the same version...
    let out = bob.run(&["sync"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and in --json an alarm is an event object on stdout too.
    rt.block_on(state.kt.faults.publish_ghost(&state.kt, "alice"))
        .unwrap();
    let out = alice.run(&["--json", "sync"]);
    assert!(!out.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "key_transparency_alarm"),
        "{events:?}"
    );
}

#[test]
fn verify_shows_what_the_directory_vouches_for_and_audit_checks_the_chain() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start()).unwrap();
    let url = server.url();
    let state = server.state().unwrap();
    let alice = register(&url, "alice");
    let _bob = register(&url, "bob");

    let shown = alice.ok(&["verify", "bob"]);
    assert!(shown.contains("Key transparency"), "{shown}");
    assert!(shown.contains("vouches"), "{shown}");
    let v = alice.json(&["verify", "bob"]);
    assert_eq!(v[0]["key_transparency"]["vouched"], true);
    assert_eq!(v[0]["key_transparency"]["devices"], serde_json::json!([1]));

    // An outsider audits every epoch so far.
    let auditor = User::new("auditor");
    let ok = auditor.json(&["audit", "--server", &url]);
    assert_eq!(ok[0]["ok"], true);
    let latest = ok[0]["latest_epoch"].as_u64().unwrap();
    assert!(latest >= 2, "two registrations, two epochs: {latest}");

    // The server rewrites the root of epoch 2: the audit fails there.
    state.kt.faults.rewrite_root(2);
    let err = auditor.fails(&["audit", "--server", &url]);
    assert!(err.contains("epoch 2"), "{err}");
    let out = auditor.run(&["--json", "audit", "--server", &url]);
    assert!(!out.status.success());
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(line["ok"], false);
    assert_eq!(line["failed_epoch"], 2);
}
