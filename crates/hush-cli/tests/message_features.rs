//! The message features of decision 0039 through the real `hush` binary
//! and a real `hush-server`: reactions, and the others as they come.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/api.rs"]
mod api;
mod common;

use api::{Api, Events};
use common::web::Web;
use common::*;
use serde_json::json;

/// alice, bob and carol, in alice's group "team".
fn team(server: &Server) -> (User, User, User) {
    let alice = User::register(server, "alice");
    let bob = User::register(server, "bob");
    let carol = User::register(server, "carol");
    alice.json(&["group", "create", "team", "--members", "bob,carol"]);
    bob.ok(&["sync"]);
    carol.ok(&["sync"]);
    (alice, bob, carol)
}

#[test]
fn reactions_show_in_history_json_and_sync() {
    let server = Server::start();
    let (alice, bob, carol) = team(&server);
    let sent = alice.json(&["send", "--group", "team", "lunch at noon?"]);
    let id = sent[0]["id"].as_str().unwrap();
    bob.ok(&["sync"]);
    carol.ok(&["sync"]);

    let reacted = bob.json(&["react", id, "👍"]);
    assert_eq!(reacted, [json!({"id": id, "emoji": "👍"})]);
    carol.ok(&["react", id, "🎉"]);
    bob.ok(&["react", id, "🍕"]);
    let events = alice.json(&["sync"]);
    let last = events
        .iter()
        .rev()
        .find(|e| e["event"] == "reaction")
        .unwrap();
    assert_eq!(
        last,
        &json!({"event": "reaction", "id": id, "from": "bob", "emoji": "🍕"})
    );

    let history = alice.json(&["history", "--group", "team"]);
    history.iter().for_each(assert_message_shape);
    assert_eq!(
        history[0]["reactions"],
        json!([{"from": "bob", "emoji": "🍕"}, {"from": "carol", "emoji": "🎉"}])
    );
    let human = alice.ok(&["history", "--group", "team"]);
    assert!(
        human.contains("lunch at noon? [bob 🍕, carol 🎉]"),
        "{human}"
    );

    carol.ok(&["react", id, "--remove"]);
    let line = alice.ok(&["sync"]);
    assert!(line.contains("carol took back their reaction"), "{line}");
    let history = alice.json(&["history", "--group", "team"]);
    assert_eq!(
        history[0]["reactions"],
        json!([{"from": "bob", "emoji": "🍕"}])
    );

    // An emoji or --remove, not both, not neither; a bad emoji is refused.
    assert!(!bob.run(&["react", id]).status.success());
    assert!(!bob.run(&["react", id, "👍", "--remove"]).status.success());
    let err = bob.fails(&["react", id, "\u{7}"]);
    assert!(err.contains("one emoji"), "{err}");
}

/// Reactions through `hush web`'s API: set, seen live by the other side
/// and in its history, taken back; bad ones refused.
#[test]
fn the_web_api_sets_and_takes_back_reactions() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let sent = alice.json(&["send", "bob", "pizza?"]);
    let id = sent[0]["id"].as_str().unwrap().to_owned();
    bob.ok(&["sync"]);
    let (web_a, web_b) = (Web::start(&alice), Web::start(&bob));
    runtime().block_on(async {
        let (a, b) = (Api::new(&web_a), Api::new(&web_b));
        let mut ev_a = Events::open(&web_a, &a.cookie).await;
        let path = format!("/api/messages/{id}/reaction");
        let (status, v) = b.call("PUT", &path, Some(json!({"emoji": "🍕"}))).await;
        assert_eq!(status, 204, "{v}");
        let got = ev_a.expect("reaction", "🍕").await;
        assert_eq!(got["from"], "bob");
        let list = a.ok("GET", "/api/conversations", None).await;
        let conv = list[0]["id"].as_i64().unwrap();
        let page = a
            .ok("GET", &format!("/api/conversations/{conv}/messages"), None)
            .await;
        assert_eq!(
            page["messages"][0]["reactions"],
            json!([{"from": "bob", "emoji": "🍕"}])
        );
        let (status, v) = b.call("DELETE", &path, None).await;
        assert_eq!(status, 204, "{v}");
        ev_a.expect("reaction", "\"emoji\":null").await;
        let page = a
            .ok("GET", &format!("/api/conversations/{conv}/messages"), None)
            .await;
        assert_eq!(page["messages"][0]["reactions"], json!([]));
        for bad in [json!({"emoji": ""}), json!({"emoji": "\u{1b}"}), json!({})] {
            let (status, v) = b.call("PUT", &path, Some(bad.clone())).await;
            assert!(status == 400 || status == 422, "{bad}: {status} {v}");
        }
        let (status, _) = b
            .call(
                "PUT",
                "/api/messages/00ff/reaction",
                Some(json!({"emoji": "👍"})),
            )
            .await;
        assert_eq!(status, 404);
    });
}

#[test]
fn search_finds_text_in_every_conversation_or_one() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.json(&["group", "create", "team", "--members", "bob"]);
    bob.ok(&["sync"]);
    alice.ok(&["send", "--group", "team", "release notes are ready"]);
    alice.ok(&["send", "bob", "did you read the Release NOTES?"]);
    alice.ok(&["send", "bob", "unrelated"]);
    bob.ok(&["sync"]);

    let found = bob.json(&["search", "release notes"]);
    found.iter().for_each(assert_message_shape);
    assert_eq!(
        texts(&found),
        ["did you read the Release NOTES?", "release notes are ready"]
    );
    let in_team = bob.json(&["search", "release", "--conv", "#team"]);
    assert_eq!(texts(&in_team), ["release notes are ready"]);
    let with_alice = bob.json(&["search", "release", "--conv", "alice"]);
    assert_eq!(texts(&with_alice), ["did you read the Release NOTES?"]);
    assert_eq!(bob.json(&["search", "release", "--limit", "1"]).len(), 1);
    assert!(bob.json(&["search", "nothing like it"]).is_empty());
    let human = bob.ok(&["search", "notes"]);
    assert!(
        human.contains("alice: did you read the Release NOTES?"),
        "{human}"
    );
    assert!(
        human.contains("[team] alice: release notes are ready"),
        "{human}"
    );
}

#[test]
fn a_mention_is_listed_and_marked_for_the_mentioned() {
    let server = Server::start();
    let (alice, bob, carol) = team(&server);
    let sent = alice.json(&["send", "--group", "team", "@bob can you review?"]);
    assert_message_shape(&sent[0]);
    assert_eq!(sent[0]["mentions"], json!(["bob"]));
    assert_eq!(sent[0]["mentions_me"], json!(false));

    let got = bob.sync_messages();
    got.iter().for_each(assert_message_shape);
    assert_eq!(got[0]["mentions_me"], json!(true));
    let got = carol.sync_messages();
    assert_eq!(got[0]["mentions_me"], json!(false));
    let human = bob.ok(&["history", "--group", "team"]);
    assert!(
        human.contains("@bob can you review? (mentions you)"),
        "{human}"
    );
    let human = carol.ok(&["history", "--group", "team"]);
    assert!(!human.contains("mentions you"), "{human}");
}

#[test]
fn pins_are_listed_for_every_member() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.json(&["group", "create", "team", "--members", "bob"]);
    bob.ok(&["sync"]);
    let first = alice.json(&["send", "--group", "team", "wifi password is on the fridge"]);
    let id = first[0]["id"].as_str().unwrap();
    alice.ok(&["send", "--group", "team", "unrelated"]);
    bob.ok(&["sync"]);

    assert_eq!(bob.json(&["pin", id]), [json!({"id": id, "pinned": true})]);
    let events = alice.json(&["sync"]);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "pinned" && e["id"] == id && e["from"] == "bob"),
        "{events:?}"
    );
    let pins = alice.json(&["pins", "--group", "team"]);
    pins.iter().for_each(assert_message_shape);
    assert_eq!(texts(&pins), ["wifi password is on the fridge"]);
    assert_eq!(pins[0]["pinned"], true);
    let human = alice.ok(&["history", "--group", "team"]);
    assert!(human.contains("on the fridge (pinned)"), "{human}");

    alice.ok(&["pin", id, "--remove"]);
    bob.ok(&["sync"]);
    assert!(bob.json(&["pins", "--group", "team"]).is_empty());
}

#[test]
fn forward_sends_a_marked_copy() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let carol = User::register(&server, "carol");
    let sent = alice.json(&["send", "bob", "meet at the station"]);
    let id = sent[0]["id"].as_str().unwrap();
    bob.ok(&["sync"]);
    let copy = bob.json(&["forward", id, "--to", "carol"]);
    assert_message_shape(&copy[0]);
    assert_eq!(copy[0]["forwarded"], true);
    assert_eq!(copy[0]["text"], "meet at the station");
    let got = carol.sync_messages();
    assert_eq!(got[0]["forwarded"], true);
    assert_eq!(got[0]["from"], "bob");
    let human = carol.ok(&["history", "bob"]);
    assert!(
        human.contains("bob: (forwarded) meet at the station"),
        "{human}"
    );
}

#[test]
fn polls_are_created_voted_and_shown() {
    let server = Server::start();
    let (alice, bob, carol) = team(&server);
    let poll = alice.json(&[
        "poll",
        "create",
        "--group",
        "team",
        "Offsite where?",
        "--option",
        "Lisbon",
        "--option",
        "Oslo",
        "--option",
        "Online",
        "--multiple",
    ]);
    assert_message_shape(&poll[0]);
    assert_eq!(poll[0]["kind"], "poll");
    let id = poll[0]["id"].as_str().unwrap();
    bob.ok(&["sync"]);
    carol.ok(&["sync"]);
    assert_eq!(
        bob.json(&["poll", "vote", id, "1", "3"]),
        [json!({"id": id, "options": [1, 3]})]
    );
    carol.ok(&["poll", "vote", id, "3"]);
    assert!(!carol.run(&["poll", "vote", id, "0"]).status.success());
    assert!(!carol.run(&["poll", "vote", id, "4"]).status.success());
    let events = alice.json(&["sync"]);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "voted" && e["from"] == "carol")
    );
    let shown = alice.json(&["poll", "show", id]);
    assert_eq!(
        shown[0]["poll"],
        json!({"multiple": true, "options": [
            {"text": "Lisbon", "voters": ["bob"]},
            {"text": "Oslo", "voters": []},
            {"text": "Online", "voters": ["bob", "carol"]},
        ]})
    );
    let human = alice.ok(&["history", "--group", "team"]);
    assert!(
        human.contains("[poll, several choices] Offsite where?"),
        "{human}"
    );
    assert!(human.contains("3. Online (2: bob, carol)"), "{human}");
    bob.ok(&["poll", "vote", id, "--retract"]);
    alice.ok(&["sync"]);
    let shown = alice.json(&["poll", "show", id]);
    assert_eq!(shown[0]["poll"]["options"][0]["voters"], json!([]));
}
