//! A server that skips franking (here the `fault-injection` server, which
//! relays messages without its relay tag) cannot do so silently: the
//! recipient marks every such message as unfranked, in the event, in the
//! history and in reports it refuses to build.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use hush_client::{Client, Event, MessageView, Target};
use hush_testkit::TestServer;

const PASS: &str = "pw";

async fn received(c: &mut Client) -> Vec<MessageView> {
    c.sync(Duration::ZERO, |_| {})
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_relayed_without_a_relay_tag_is_marked_unfranked() {
    let server = TestServer::start().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut alice = Client::register(&root.path().join("a"), PASS, &server.url(), "alice", None)
        .await
        .unwrap();
    let mut bob = Client::register(&root.path().join("b"), PASS, &server.url(), "bob", None)
        .await
        .unwrap();

    // An honest relay: the message carries a tag and is not marked.
    alice
        .send_text(&Target::User("bob".into()), "franked")
        .await
        .unwrap();
    let honest = received(&mut bob).await;
    assert_eq!(honest.len(), 1);
    assert!(!honest[0].unfranked);

    // The server stops tagging.
    server.state().unwrap().kt.faults.strip_relay_tags();
    alice
        .send_text(&Target::User("bob".into()), "not franked")
        .await
        .unwrap();
    let got = received(&mut bob).await;
    assert_eq!(got.len(), 1);
    assert!(
        got[0].unfranked,
        "a message without a relay tag is not marked"
    );

    let history = bob.history(&Target::User("alice".into())).unwrap();
    let stripped = history.iter().find(|m| m.id == got[0].id).unwrap();
    assert!(stripped.unfranked);
    let kept = history.iter().find(|m| m.id == honest[0].id).unwrap();
    assert!(!kept.unfranked);
    // Alice's own copy is never marked.
    let mine = alice.history(&Target::User("bob".into())).unwrap();
    assert!(mine.iter().all(|m| !m.unfranked));

    // It cannot be reported: there is nothing that proves the sender.
    assert!(bob.report_request(&got[0].id, "").is_err());
    assert!(bob.report_request(&honest[0].id, "").is_ok());
}
