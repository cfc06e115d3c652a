//! Invite links through the real binaries (decision 0033): an admin makes a
//! link, an outsider joins with `hush join`, a link that needs approval is
//! settled with `hush group requests|approve|deny`, and a revoked link is
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

fn members(user: &User, group: &str) -> Vec<String> {
    user.json(&["group", "members", group])
        .iter()
        .map(|m| m["username"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn invite_join_approve_and_revoke() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let carol = User::register(&server, "carol");
    let dave = User::register(&server, "dave");
    alice.json(&["group", "create", "team", "--members", "bob"]);
    bob.ok(&["sync"]);

    // bob is no admin: his client makes no link.
    let line = bob.fails(&["group", "invite", "team"]);
    assert!(line.contains("admins"), "{line}");

    let made = alice.json(&["group", "invite", "team", "--expires", "7d"]);
    let link = made[0]["invite"].as_str().unwrap().to_owned();
    assert!(link.contains("/join#"), "{link}");
    let asked = carol.json(&["join", &link]);
    assert_eq!(asked[0]["group"], "team");
    assert_eq!(asked[0]["size"], 2);
    assert_eq!(asked[0]["needs_approval"], false);
    alice.ok(&["sync"]);
    carol.ok(&["sync"]);
    assert_eq!(members(&carol, "team"), ["alice", "bob", "carol"]);

    // A link that needs approval: dave asks, alice sees and approves.
    let made = alice.json(&["group", "invite", "team", "--approve", "--max-uses", "5"]);
    let link = made[0]["invite"].as_str().unwrap().to_owned();
    let asked = dave.json(&["join", &link]);
    assert_eq!(asked[0]["needs_approval"], true);
    alice.ok(&["sync"]);
    let waiting = alice.json(&["group", "requests", "team"]);
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["user"], "dave");
    alice.json(&["group", "approve", "team", "dave"]);
    dave.ok(&["sync"]);
    assert_eq!(members(&dave, "team"), ["alice", "bob", "carol", "dave"]);

    // Revoked: the server refuses the link at once.
    let revoked = alice.json(&["group", "invite", "team", "--revoke"]);
    assert_eq!(revoked[0]["revoked"], 2);
    let eve = User::register(&server, "eve");
    let line = eve.fails(&["join", &link]);
    assert!(line.contains("revoked"), "{line}");
    let line = eve.fails(&["join", "https://nowhere.example/join#00"]);
    assert!(line.contains("invite link"), "{line}");
}
