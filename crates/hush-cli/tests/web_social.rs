//! `hush web`'s API for avatars, polls and forwarding (decision 0040),
//! against a real server and real `hush web` processes: an avatar set by
//! one user is fetched and decrypted by the other's hush and served only as
//! a picture; a poll asked and voted on; a text and a file forwarded. Bad
//! input (the wrong type, too big, a poll that cannot be, a vote that does
//! not fit, a target that does not exist) gets a clear 4xx and changes
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/api.rs"]
mod api;
mod common;

use std::time::Duration;

use api::{Api, Events};
use common::png::png;
use common::web::{Web, raw};
use common::{Server, User, runtime};
use serde_json::{Value, json};

/// The avatar limit (`hush_client::MAX_AVATAR_BYTES`).
const MAX_AVATAR: usize = 512 * 1024;

/// `PUT /api/profile/avatar` with `bytes`: the status and the answer.
async fn put_avatar(a: &Api, ctype: &str, bytes: Vec<u8>) -> (u16, Value) {
    let r = a
        .http
        .put(format!("{}/api/profile/avatar", a.base))
        .header("cookie", &a.cookie)
        .header("content-type", ctype)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// A GET of a picture: status, content type, the policy and the bytes.
async fn get_bytes(a: &Api, path: &str) -> (u16, String, String, Vec<u8>) {
    let r = a
        .http
        .get(format!("{}{path}", a.base))
        .header("cookie", &a.cookie)
        .send()
        .await
        .unwrap();
    let h = r.headers().clone();
    let header = |n: &str| {
        h.get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (ctype, csp) = (header("content-type"), header("content-security-policy"));
    assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    (
        r.status().as_u16(),
        ctype,
        csp,
        r.bytes().await.unwrap().to_vec(),
    )
}

/// bob sets an avatar; alice's hush fetches and decrypts it from his
/// profile and serves it to her page as a picture, live after a `profile`
/// event; wrong types and sizes are refused and leave it as it was; the
/// name set in settings keeps the avatar; removing it works.
#[test]
fn an_avatar_set_by_one_side_is_shown_on_the_other() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "hello"]);
    bob.ok(&["sync"]);
    let (web_a, web_b) = (Web::start(&alice), Web::start(&bob));
    runtime().block_on(async {
        let (a, b) = (Api::new(&web_a), Api::new(&web_b));
        let mut ev_a = Events::open(&web_a, &a.cookie).await;
        // Nothing yet: 404, on both sides, and an empty profile.
        assert_eq!(get_bytes(&a, "/api/contacts/bob/avatar").await.0, 404);
        assert_eq!(get_bytes(&b, "/api/profile/avatar").await.0, 404);
        let p = b.ok("GET", "/api/profile", None).await;
        assert_eq!(
            p,
            json!({"display_name": null, "avatar_type": null, "avatar_bytes": null})
        );

        let picture = png(48, 48, [20, 90, 200]);
        let (status, v) = put_avatar(&b, "image/png", picture.clone()).await;
        assert_eq!(status, 204, "{v}");
        ev_a.expect("profile", "bob").await;
        let (status, ctype, csp, bytes) = get_bytes(&a, "/api/contacts/bob/avatar").await;
        assert_eq!((status, ctype.as_str()), (200, "image/png"));
        assert!(csp.contains("sandbox"), "{csp}");
        assert_eq!(bytes, picture);
        let p = b.ok("GET", "/api/profile", None).await;
        assert_eq!(p["display_name"], "bob", "the username stands in");
        assert_eq!(p["avatar_type"], "image/png");
        assert_eq!(p["avatar_bytes"], picture.len());
        assert_eq!(get_bytes(&b, "/api/profile/avatar").await.3, picture);

        // Refused, and nothing changes: not a picture (whatever the
        // declared type), an SVG, a GIF, empty, too big.
        let mut big = picture.clone();
        big.resize(MAX_AVATAR + 1, 0);
        let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
        for (ctype, bytes, want, says) in [
            (
                "image/png",
                b"<html><script>".to_vec(),
                415,
                "PNG, JPEG or WebP",
            ),
            ("image/svg+xml", svg.to_vec(), 415, "PNG, JPEG or WebP"),
            ("image/gif", b"GIF89a\x01\x00\x01\x00".to_vec(), 415, "PNG"),
            ("image/png", Vec::new(), 400, "empty"),
            ("image/png", big, 413, "at most 512 KiB"),
        ] {
            let (status, v) = put_avatar(&b, ctype, bytes).await;
            assert_eq!(status, want, "{ctype}: {v}");
            let error = v["error"].as_str().unwrap_or_default();
            assert!(error.contains(says), "{ctype}: {error}");
        }
        let p = b.ok("GET", "/api/profile", None).await;
        assert_eq!(p["avatar_bytes"], picture.len(), "{p}");
        assert_eq!(get_bytes(&a, "/api/contacts/bob/avatar").await.3, picture);

        // A new name keeps the avatar.
        let (status, v) = b
            .call(
                "PUT",
                "/api/settings",
                Some(json!({"display_name": "Bob B."})),
            )
            .await;
        assert_eq!(status, 204, "{v}");
        let p = b.ok("GET", "/api/profile", None).await;
        assert_eq!(p["display_name"], "Bob B.");
        assert_eq!(p["avatar_bytes"], picture.len());
        ev_a.expect("profile", "bob").await;
        assert_eq!(get_bytes(&a, "/api/contacts/bob/avatar").await.3, picture);
        // Reading the profile for the avatar kept the new name too.
        let contacts = a.ok("GET", "/api/contacts", None).await;
        assert_eq!(contacts[0]["display_name"], "Bob B.", "{contacts}");

        // Removed: alice's page learns it with the next event.
        let (status, v) = b.call("DELETE", "/api/profile/avatar", None).await;
        assert_eq!(status, 204, "{v}");
        ev_a.expect("profile", "bob").await;
        assert_eq!(get_bytes(&a, "/api/contacts/bob/avatar").await.0, 404);
        assert_eq!(
            b.ok("GET", "/api/profile", None).await["display_name"],
            "Bob B."
        );
        // Not a contact, and no session.
        assert_eq!(get_bytes(&a, "/api/contacts/nobody/avatar").await.0, 404);
        let r = raw(
            web_a.addr,
            &format!(
                "GET /api/contacts/bob/avatar HTTP/1.1\r\nHost: {}\r\n",
                web_a.host()
            ),
            "",
        );
        assert_eq!(r.status, 401);
    });
}

/// The messages of conversation `conv` as `a` sees them.
async fn page(a: &Api, conv: i64) -> Vec<Value> {
    a.ok("GET", &format!("/api/conversations/{conv}/messages"), None)
        .await["messages"]
        .as_array()
        .unwrap()
        .clone()
}

/// A poll asked in a group and voted on by both; polls that cannot be,
/// and votes that do not fit, are refused and change nothing.
#[test]
fn the_api_asks_polls_and_takes_votes() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "hello"]);
    alice.json(&["group", "create", "crew", "--members", "bob"]);
    bob.ok(&["sync"]);
    let (web_a, web_b) = (Web::start(&alice), Web::start(&bob));
    runtime().block_on(async {
        let (a, b) = (Api::new(&web_a), Api::new(&web_b));
        let mut ev_a = Events::open(&web_a, &a.cookie).await;
        let mut ev_b = Events::open(&web_b, &b.cookie).await;
        let list = a.ok("GET", "/api/conversations", None).await;
        let id_of = |list: &Value, kind: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|c| c["kind"] == kind)
                .unwrap()["id"]
                .as_i64()
                .unwrap()
        };
        let (group, direct) = (id_of(&list, "group"), id_of(&list, "direct"));
        let before = page(&a, group).await.len();

        for (body, says) in [
            (
                json!({"conversation": direct, "question": "Tea?", "options": ["yes", "no"]}),
                "groups",
            ),
            (
                json!({"conversation": group, "question": "Tea?", "options": ["yes"]}),
                "options",
            ),
            (
                json!({"conversation": group, "question": " ", "options": ["a", "b"]}),
                "question",
            ),
            (
                json!({"conversation": group, "question": "Tea?", "options": ["a", " "]}),
                "option",
            ),
            (
                json!({"conversation": group, "group": "crew", "question": "Tea?", "options": ["a", "b"]}),
                "exactly one",
            ),
        ] {
            let (status, v) = a.call("POST", "/api/polls", Some(body.clone())).await;
            assert_eq!(status, 400, "{body}: {v}");
            assert!(v["error"].as_str().unwrap().contains(says), "{body}: {v}");
        }
        let (status, _) = a
            .call(
                "POST",
                "/api/polls",
                Some(json!({"conversation": group, "question": "Tea?", "options": "a,b"})),
            )
            .await;
        assert!((400..500).contains(&status), "options as a string: {status}");
        assert_eq!(page(&a, group).await.len(), before, "nothing was sent");

        let poll = a
            .ok(
                "POST",
                "/api/polls",
                Some(json!({"conversation": group, "question": "Lunch?",
                            "options": ["Pizza", "Sushi", "Soup"]})),
            )
            .await;
        assert_eq!(poll["kind"], "poll");
        let id = poll["id"].as_str().unwrap().to_owned();
        let got = ev_b.expect("message", "Lunch?").await;
        assert_eq!(got["poll"]["options"][1]["text"], "Sushi");

        let vote = format!("/api/messages/{id}/vote");
        let (status, v) = b.call("PUT", &vote, Some(json!({"options": [1]}))).await;
        assert_eq!(status, 204, "{v}");
        let voted = ev_a.expect("voted", &id).await;
        assert_eq!(voted["from"], "bob");
        assert_eq!(voted["options"], json!([1]));
        // Not fitting: two in a single-choice poll, past the options, not
        // a poll, not a list.
        let text_id = page(&a, direct).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (path, body) in [
            (vote.clone(), json!({"options": [0, 1]})),
            (vote.clone(), json!({"options": [3]})),
            (format!("/api/messages/{text_id}/vote"), json!({"options": [0]})),
        ] {
            let (status, v) = b.call("PUT", &path, Some(body.clone())).await;
            assert_eq!(status, 400, "{path} {body}: {v}");
        }
        let (status, _) = b.call("PUT", &vote, Some(json!({"options": 1}))).await;
        assert!((400..500).contains(&status), "options as a number: {status}");
        let (status, _) = b
            .call("PUT", "/api/messages/00ff/vote", Some(json!({"options": [0]})))
            .await;
        assert_eq!(status, 404);
        // bob's vote stands, as alice's hush counts it.
        let mut shown = Value::Null;
        for _ in 0..100 {
            let m = page(&a, group).await.into_iter().find(|m| m["id"] == id.as_str());
            shown = m.unwrap()["poll"]["options"].clone();
            if shown[1]["voters"] == json!(["bob"]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(shown[1]["voters"], json!(["bob"]), "{shown}");
        assert_eq!(shown[0]["voters"], json!([]), "{shown}");
    });
}

/// A text and a file forwarded to another conversation: marked forwarded
/// at the recipients, the file's bytes the same; a made-up message or
/// target, or no target, is refused and sends nothing.
#[test]
fn the_api_forwards_texts_and_files() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let carol = User::register(&server, "carol");
    alice.ok(&["send", "bob", "hello bob"]);
    alice.ok(&["send", "carol", "hello carol"]);
    bob.ok(&["sync"]);
    carol.ok(&["sync"]);
    let (web_a, web_c) = (Web::start(&alice), Web::start(&carol));
    runtime().block_on(async {
        let (a, c) = (Api::new(&web_a), Api::new(&web_c));
        let mut ev_c = Events::open(&web_c, &c.cookie).await;
        let list = a.ok("GET", "/api/conversations", None).await;
        let conv = |name: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == name)
                .unwrap()["id"]
                .as_i64()
                .unwrap()
        };
        let (to_bob, to_carol) = (conv("bob"), conv("carol"));
        let text = page(&a, to_bob).await[0].clone();
        let text_id = text["id"].as_str().unwrap();
        let sent = a
            .ok(
                "POST",
                &format!("/api/messages/{text_id}/forward"),
                Some(json!({"conversation": to_carol})),
            )
            .await;
        assert_eq!(sent["forwarded"], true);
        assert_eq!(sent["conversation"], to_carol);
        let got = ev_c.expect("message", "hello bob").await;
        assert_eq!(got["forwarded"], true, "{got}");
        assert_eq!(got["from"], "alice");

        // A file, not uploaded again: carol's hush opens the same bytes.
        let notes = b"meet at noon\n".to_vec();
        let r = a
            .http
            .post(format!(
                "{}/api/conversations/{to_bob}/files?name=notes.txt",
                a.base
            ))
            .header("cookie", &a.cookie)
            .body(notes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let file_id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        a.ok(
            "POST",
            &format!("/api/messages/{file_id}/forward"),
            Some(json!({"user": "carol"})),
        )
        .await;
        let got = ev_c.expect("message", "notes.txt").await;
        assert_eq!(got["forwarded"], true, "{got}");
        let id = got["id"].as_str().unwrap();
        let r = c
            .http
            .get(format!("{}/api/messages/{id}/file", c.base))
            .header("cookie", &c.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), notes.as_slice());

        // Refusals; carol's conversation gets nothing more.
        let before = page(&a, to_carol).await.len();
        for (path, body, want) in [
            (
                format!("/api/messages/{text_id}/forward"),
                json!({"conversation": 999}),
                404,
            ),
            (
                "/api/messages/00ff/forward".to_owned(),
                json!({"conversation": to_carol}),
                404,
            ),
            (format!("/api/messages/{text_id}/forward"), json!({}), 400),
            (
                format!("/api/messages/{text_id}/forward"),
                json!({"conversation": to_carol, "user": "carol"}),
                400,
            ),
        ] {
            let (status, v) = a.call("POST", &path, Some(body.clone())).await;
            assert_eq!(status, want, "{path} {body}: {v}");
            assert!(v["error"].is_string(), "{v}");
        }
        let (status, _) = a
            .call(
                "POST",
                &format!("/api/messages/{text_id}/forward"),
                Some(json!({"conversation": "carol"})),
            )
            .await;
        assert!((400..500).contains(&status), "a name as a number: {status}");
        assert_eq!(page(&a, to_carol).await.len(), before);
    });
}
