//! Registering on a server with a self-signed certificate: the fingerprint
//! must be confirmed, and without a terminal it must be given.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn a_self_signed_server_needs_its_fingerprint_confirmed() {
    let server = Server::start_tls();
    let url = server.https_url();
    let fp = server.fingerprint();

    // No terminal to ask on: refuse, say what to do, create nothing.
    let alice = User::new("alice");
    let line = alice.fails(&["register", "--server", &url, "alice"]);
    assert!(line.contains("--trust-fingerprint"), "{line}");
    let line = alice.fails(&["contacts"]);
    assert!(line.contains("no account"), "{line}");

    // A wrong fingerprint is refused.
    let wrong = "00:".repeat(31) + "00";
    let line = alice.fails(&[
        "register",
        "--server",
        &url,
        "--trust-fingerprint",
        &wrong,
        "alice",
    ]);
    assert!(line.contains("certificate"), "{line}");

    // The right one (any case, any separators) works, and stays pinned.
    alice.ok(&[
        "register",
        "--server",
        &url,
        "--trust-fingerprint",
        &fp,
        "alice",
    ]);
    let bob = User::new("bob");
    let loose = fp.replace(':', "").to_lowercase();
    bob.ok(&[
        "register",
        "--server",
        &url,
        "--trust-fingerprint",
        &loose,
        "bob",
    ]);
    alice.ok(&["send", "bob", "over tls"]);
    assert_eq!(bob.sync_texts(), ["over tls"]);
}
