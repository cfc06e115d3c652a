//! Rotating a device's token through the library: the old token (say, one
//! that leaked from a copied store) stops working, the device goes on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use hush_client::local::LocalStore;
use hush_client::{Client, Event, Target};
use hush_testkit::TestServer;

const PASS: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_token_stops_working_once_the_device_rotates_it() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("alice");
    let mut alice = Client::register(&dir, PASS, &server.url(), "alice", None)
        .await
        .unwrap();
    let mut bob = Client::register(&root.path().join("bob"), PASS, &server.url(), "bob", None)
        .await
        .unwrap();
    // What a thief of the store (and the passphrase) or of a log holds.
    let leaked = LocalStore::open(&dir, PASS)
        .unwrap()
        .meta_str("token")
        .unwrap()
        .unwrap();
    let count = format!("{}/v1/key-packages/count", server.url());
    let http = reqwest::Client::new();
    let status = |token: String| {
        let req = http.get(&count).bearer_auth(token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(leaked.clone()).await, 200);

    alice.rotate_token().await.unwrap();
    assert_eq!(
        status(leaked.clone()).await,
        401,
        "the leaked token is dead"
    );

    // Alice goes on with the new token, also after reopening her store.
    alice
        .send_text(&Target::User("bob".into()), "still here")
        .await
        .unwrap();
    drop(alice);
    let mut alice = Client::open(&dir, PASS).unwrap();
    let events = bob.sync(Duration::ZERO, |_| {}).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Message(m) if m.text.as_deref() == Some("still here")))
    );
    alice.sync(Duration::ZERO, |_| {}).await.unwrap();
    let stored = LocalStore::open(&dir, PASS)
        .unwrap()
        .meta_str("token")
        .unwrap()
        .unwrap();
    assert_ne!(stored, leaked);
    assert_eq!(status(stored).await, 200);
}
