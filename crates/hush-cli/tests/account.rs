//! `hush account rotate-token` through the real binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn a_rotated_token_keeps_the_device_working() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let rotated = alice.json(&["account", "rotate-token"]);
    assert_eq!(rotated[0]["rotated"], true);
    alice.ok(&["send", "bob", "after the rotation"]);
    assert_eq!(bob.sync_texts(), vec!["after the rotation".to_owned()]);
    bob.ok(&["send", "alice", "hello back"]);
    assert_eq!(alice.sync_texts(), vec!["hello back".to_owned()]);
}
