//! Real clients (real MLS, real SQLCipher stores) on three server nodes that
//! share PostgreSQL and NATS: each user talks to a different node.
//!
//! Needs `HUSH_TEST_POSTGRES_URL` and `HUSH_TEST_NATS_URL` (`.ci/run` sets
//! both); skips with a notice when they are unset.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use hush_client::{Client, Event, Target};
use hush_testkit::TestCluster;

const PASS: &str = "correct horse battery staple";

async fn sync(c: &mut Client) -> Vec<Event> {
    c.sync(Duration::ZERO, |_| {}).await.unwrap()
}

fn texts(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.from.clone(), m.text.clone().unwrap_or_default())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_three_nodes_chat_one_to_one_and_in_a_group() {
    let Some(cluster) = TestCluster::start(3).await.unwrap() else {
        return;
    };
    let urls = cluster.urls();
    let root = tempfile::tempdir().unwrap();
    let mut users = Vec::new();
    for (name, url) in ["alice", "bob", "carol"].iter().zip(&urls) {
        users.push(
            Client::register(&root.path().join(name), PASS, url, name, None)
                .await
                .unwrap(),
        );
    }
    let [alice, bob, carol] = &mut users[..] else {
        unreachable!()
    };

    // 1:1 across nodes, both ways, with the delivery receipt coming back.
    alice
        .send_text(&Target::User("bob".into()), "hi bob")
        .await
        .unwrap();
    assert_eq!(
        texts(&sync(bob).await),
        vec![("alice".into(), "hi bob".into())]
    );
    bob.send_text(&Target::User("alice".into()), "hi alice")
        .await
        .unwrap();
    assert_eq!(
        texts(&sync(alice).await),
        vec![("bob".into(), "hi alice".into())]
    );
    assert_eq!(
        alice.history(&Target::User("bob".into())).unwrap()[0].status,
        "delivered"
    );

    // A group with a member on each node.
    let crew = Target::Group("crew".into());
    alice
        .create_group("crew", &["bob".into(), "carol".into()])
        .await
        .unwrap();
    for x in [&mut *bob, &mut *carol] {
        let ev = sync(x).await;
        assert!(
            ev.iter().any(|e| matches!(e, Event::Joined { .. })),
            "{ev:?}"
        );
    }
    carol.send_text(&crew, "hello from node 3").await.unwrap();
    for x in [&mut *alice, &mut *bob] {
        assert_eq!(
            texts(&sync(x).await),
            vec![("carol".into(), "hello from node 3".into())]
        );
    }
    bob.send_text(&crew, "and from node 2").await.unwrap();
    for x in [&mut *alice, &mut *carol] {
        assert_eq!(
            texts(&sync(x).await),
            vec![("bob".into(), "and from node 2".into())]
        );
    }
    assert_eq!(
        carol.group_members("crew").unwrap(),
        vec!["alice", "bob", "carol"]
    );
}
