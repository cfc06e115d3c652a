//! A group of 50 real clients through the real binaries (issue 14): create,
//! send, receipts counted per member ("delivered to 40 of 49, read by 30 of
//! 49", and the lists in `--json`), an edit that reaches everyone, add,
//! remove, leave. Clients run a few at a time, each its own `hush` process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use serde_json::{Value, json};

/// Members besides alice.
const OTHERS: usize = 49;
/// How many of them sync (and so acknowledge delivery) ...
const DELIVERED: usize = 40;
/// ... and how many of those read the message.
const READ: usize = 30;
/// `hush` processes at a time.
const WORKERS: usize = 3;

/// Runs `f` on every item, [`WORKERS`] at a time, and returns the results
/// in order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    out.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    out.into_inner()
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

/// Registers `name`, waiting out the server's limit on registrations
/// from one address (20 at once, then 2 a second).
fn register(server: &Server, name: &str) -> User {
    let u = User::new(name);
    for _ in 0..60 {
        let out = u.run(&["register", "--server", &server.url(), name]);
        if out.status.success() {
            return u;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("RateLimited"), "{name}: {err}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("{name} could not register");
}

fn one(mut v: Vec<Value>) -> Value {
    assert_eq!(v.len(), 1, "{v:?}");
    v.pop().unwrap()
}

fn members(user: &User) -> Vec<String> {
    user.json(&["group", "members", "big"])
        .iter()
        .map(|m| m["username"].as_str().unwrap().to_owned())
        .collect()
}

/// Alice's message `id` as her `history --json` shows it.
fn as_alice_sees(alice: &User, id: &str) -> Value {
    alice
        .json(&["history", "--group", "big"])
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap()
}

fn received_events(events: &[Value], status: &str) -> Vec<String> {
    let mut from: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "receipt" && e["status"] == status)
        .map(|e| e["from"].as_str().unwrap().to_owned())
        .collect();
    from.sort();
    from
}

#[test]
fn a_group_of_fifty_counts_receipts_per_member_and_changes_membership() {
    let started = std::time::Instant::now();
    let phase = |what: &str| eprintln!("{:>6.1} s  {what}", started.elapsed().as_secs_f64());
    // Fifty people behind one address: its per-address request rate is
    // lifted (the per-account one stays).
    let server = Server::start_with(&["--rate-limit-ip", "0"]);
    let names: Vec<String> = (1..=OTHERS).map(|i| format!("m{i:02}")).collect();
    let alice = register(&server, "alice");
    let users = par_map(&names, |n| register(&server, n));

    phase("registered 50");
    // The 50 registrations used up this address's allowance of costly
    // requests (20 at once, then 2 a second), which key-transparency audits
    // share: let it fill again, as 50 people registering from 50 places
    // would never need to.
    std::thread::sleep(std::time::Duration::from_secs(11));
    let created = one(alice.json(&["group", "create", "big", "--members", &names.join(",")]));
    assert_eq!(created["members"].as_array().unwrap().len(), OTHERS + 1);
    let hello = one(alice.json(&["send", "--group", "big", "hello all"]));
    let id = hello["id"].as_str().unwrap().to_owned();
    assert_eq!(hello["recipients"], OTHERS);
    assert_eq!(hello["delivered_to"], json!([]));

    phase("created and sent");
    // 40 members sync: each joins and receives the message (and sends one
    // delivery receipt, to alice only); 30 of them read it.
    par_map(&users[..DELIVERED], |u| {
        assert_eq!(u.sync_texts(), ["hello all"], "{}", u.name);
    });
    par_map(&users[..READ], |u| {
        let shown = u.json(&["history", "--group", "big"]);
        assert_eq!(texts(&shown), ["hello all"], "{}", u.name);
    });
    phase("40 synced, 30 read");
    let events = alice.json(&["sync"]);
    assert_eq!(received_events(&events, "delivered"), names[..DELIVERED]);
    assert_eq!(received_events(&events, "read"), names[..READ]);

    // Per member, in both outputs.
    let line = alice
        .ok(&["history", "--group", "big"])
        .lines()
        .find(|l| l.contains(&id))
        .unwrap()
        .to_owned();
    assert!(
        line.contains("(delivered to 40 of 49, read by 30 of 49)"),
        "{line}"
    );
    let seen = as_alice_sees(&alice, &id);
    assert_eq!(seen["recipients"], OTHERS);
    assert_eq!(seen["delivered_to"], json!(names[..DELIVERED]));
    assert_eq!(seen["read_by"], json!(names[..READ]));
    // A member sees no one's receipts for alice's message: it is not theirs.
    let theirs = one(users[0].json(&["history", "--group", "big"]));
    assert!(theirs.get("delivered_to").is_none(), "{theirs}");

    // An edit still reaches every member through the group.
    alice.json(&["edit", &id, "hello everyone"]);
    let edited = users[2].json(&["sync"]);
    assert!(
        edited
            .iter()
            .any(|e| e["event"] == "edited" && e["text"] == "hello everyone"),
        "{edited:?}"
    );

    phase("receipts checked");
    // Add, remove, leave.
    let late = register(&server, "late");
    alice.json(&["group", "add", "big", "late"]);
    alice.json(&["group", "remove", "big", "m01"]);
    // m02 leaves while two commits behind: `leave` catches up before it
    // proposes, so the departure is not lost in an old epoch.
    users[1].json(&["group", "leave", "big"]);
    alice.ok(&["sync"]);
    let now = members(&alice);
    assert_eq!(now.len(), OTHERS + 1 + 1 - 2, "{now:?}");
    assert!(now.contains(&"late".to_string()));
    assert!(!now.contains(&"m01".to_string()) && !now.contains(&"m02".to_string()));

    phase("added, removed, left");
    let last = one(alice.json(&["send", "--group", "big", "after the changes"]));
    let last_id = last["id"].as_str().unwrap().to_owned();
    assert_eq!(last["recipients"], OTHERS - 1);
    assert_eq!(late.sync_texts(), ["after the changes"]);
    let removed = users[0].json(&["sync"]);
    assert!(
        removed.iter().any(|e| e["event"] == "removed"),
        "{removed:?}"
    );
    // Events only (the edit of the first message among them): no message.
    assert!(
        removed.iter().all(|e| e.get("event").is_some()),
        "{removed:?}"
    );
    assert!(users[1].sync_texts().is_empty());
    assert_eq!(users[2].sync_texts(), ["after the changes"]);
    // A member who never synced gets everything in order; the message and
    // its edit arrive in one batch (decision 0018), so the message is shown
    // as it now reads.
    assert_eq!(
        users[OTHERS - 1].sync_texts(),
        ["hello everyone", "after the changes"]
    );

    alice.ok(&["sync"]);
    let seen = as_alice_sees(&alice, &last_id);
    assert_eq!(seen["delivered_to"], json!(["late", "m03", "m49"]));
    assert_eq!(seen["read_by"], json!([]));
    // The first message's counts stay as they were.
    assert_eq!(as_alice_sees(&alice, &id)["read_by"], json!(names[..READ]));
    phase("done");
}
