//! `hush web`'s API for what the app does beyond chatting, against a real
//! server and real `hush web` processes: replies, edits, deletes and
//! timers; files and pictures (and what is never served inline); group
//! management and per-member receipts; search, settings and devices.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/api.rs"]
mod api;
mod common;

use std::time::Duration;

use api::{Api, Events};
use common::web::{Web, raw};
use common::{Server, User, runtime};
use serde_json::{Value, json};
/// Replies, edits, deletes and the disappearing timer through the API,
/// seen live by the other side; a stranger's message cannot be changed.
#[test]
fn the_api_replies_edits_deletes_and_sets_timers() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let (web_a, web_b) = (Web::start(&alice), Web::start(&bob));
    runtime().block_on(async {
        let (a, b) = (Api::new(&web_a), Api::new(&web_b));
        let mut ev_a = Events::open(&web_a, &a.cookie).await;
        let mut ev_b = Events::open(&web_b, &b.cookie).await;
        let first = a
            .ok(
                "POST",
                "/api/messages",
                Some(json!({"user": "bob", "text": "first draft"})),
            )
            .await;
        let id = first["id"].as_str().unwrap().to_owned();
        let conv_a = first["conversation"].as_i64().unwrap();
        let got = ev_b.expect("message", "first draft").await;
        let conv_b = got["conversation"].as_i64().unwrap();

        // bob answers it.
        let reply = b
            .ok(
                "POST",
                "/api/messages",
                Some(json!({"conversation": conv_b, "text": "an answer", "reply_to": id})),
            )
            .await;
        assert_eq!(reply["reply_to"], id.as_str());
        let got = ev_a.expect("message", "an answer").await;
        assert_eq!(got["reply_to"], id.as_str());

        // alice edits hers: bob sees the new text, live and in the history.
        let (status, v) = a
            .call(
                "PUT",
                &format!("/api/messages/{id}"),
                Some(json!({"text": "final text"})),
            )
            .await;
        assert_eq!(status, 204, "{v}");
        let edited = ev_b.expect("edited", "final text").await;
        assert_eq!(edited["id"], id.as_str());
        let page = b
            .ok(
                "GET",
                &format!("/api/conversations/{conv_b}/messages"),
                None,
            )
            .await;
        assert_eq!(page["messages"][0]["text"], "final text");
        assert_eq!(page["messages"][0]["edited"], true);

        // bob cannot edit or delete alice's message (nor a made-up one).
        for (method, body) in [("PUT", Some(json!({"text": "forged"}))), ("DELETE", None)] {
            let (status, v) = b.call(method, &format!("/api/messages/{id}"), body).await;
            assert_eq!(status, 400, "{method}: {v}");
        }
        let (status, _) = b.call("DELETE", "/api/messages/00ff", None).await;
        assert_eq!(status, 404);
        let (status, _) = a
            .call(
                "PUT",
                &format!("/api/messages/{id}"),
                Some(json!({"text": " "})),
            )
            .await;
        assert_eq!(status, 400, "an empty edit");

        // alice deletes it for everyone.
        let (status, v) = a.call("DELETE", &format!("/api/messages/{id}"), None).await;
        assert_eq!(status, 204, "{v}");
        ev_b.expect("deleted", &id).await;
        let page = b
            .ok(
                "GET",
                &format!("/api/conversations/{conv_b}/messages"),
                None,
            )
            .await;
        assert_eq!(page["messages"][0]["deleted"], true);
        assert_eq!(page["messages"][0]["text"], Value::Null);

        // A disappearing timer, for both; bad values refused.
        for bad in [json!({"seconds": 0}), json!({"seconds": 400_000_000})] {
            let (status, v) = a
                .call(
                    "PUT",
                    &format!("/api/conversations/{conv_a}/disappearing"),
                    Some(bad.clone()),
                )
                .await;
            assert!(status == 400 || status == 422, "{bad}: {status} {v}");
        }
        let (status, v) = a
            .call(
                "PUT",
                &format!("/api/conversations/{conv_a}/disappearing"),
                Some(json!({"seconds": 3600})),
            )
            .await;
        assert_eq!(status, 204, "{v}");
        let timer = ev_b.expect("disappearing", "3600").await;
        assert_eq!(timer["conversation"], conv_b);
        let list = b.ok("GET", "/api/conversations", None).await;
        assert_eq!(list[0]["disappear_secs"], 3600);
        let soon = a
            .ok(
                "POST",
                "/api/messages",
                Some(json!({"conversation": conv_a, "text": "gone in an hour"})),
            )
            .await;
        assert!(soon["expires_at"].as_u64().unwrap() > soon["sent_at"].as_u64().unwrap());
        let got = ev_b.expect("message", "gone in an hour").await;
        assert!(got["expires_at"].is_u64(), "{got}");
        a.ok(
            "PUT",
            &format!("/api/conversations/{conv_a}/disappearing"),
            Some(json!({"seconds": null})),
        )
        .await;
        ev_b.expect("disappearing", "null").await;

        // bob mutes the chat on his device only; a past end is refused.
        let mute = format!("/api/conversations/{conv_b}/mute");
        let (status, v) = b.call("PUT", &mute, Some(json!({"until_ms": 1}))).await;
        assert_eq!(status, 400, "{v}");
        let (status, v) = b
            .call("PUT", &mute, Some(json!({"until_ms": i64::MAX})))
            .await;
        assert_eq!(status, 204, "{v}");
        let list = b.ok("GET", "/api/conversations", None).await;
        assert_eq!(list[0]["muted_until"], i64::MAX);
        let list = a.ok("GET", "/api/conversations", None).await;
        assert_eq!(list[0]["muted_until"], Value::Null);
        b.ok("PUT", &mute, Some(json!({"until_ms": null}))).await;
        let list = b.ok("GET", "/api/conversations", None).await;
        assert_eq!(list[0]["muted_until"], Value::Null);
    });
}

/// Files through the API: uploaded as raw bytes, progress on the event
/// stream, decrypted by the receiver's hush and served under its guard;
/// only raster pictures are inline, anything else is a download, and
/// nothing a sender sends is served as something a browser would run.
#[test]
fn the_api_sends_and_serves_files() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "hello"]);
    let (web_a, web_b) = (Web::start(&alice), Web::start(&bob));
    runtime().block_on(async {
        let (a, b) = (Api::new(&web_a), Api::new(&web_b));
        let mut ev_a = Events::open(&web_a, &a.cookie).await;
        let mut ev_b = Events::open(&web_b, &b.cookie).await;
        let conv = a.ok("GET", "/api/conversations", None).await[0]["id"]
            .as_i64()
            .unwrap();
        let upload = |name: &str, bytes: Vec<u8>| {
            let url = format!(
                "{}/api/conversations/{conv}/files?name={}&upload=tok1",
                a.base,
                name.replace('/', "%2F")
            );
            let req = a
                .http
                .post(url)
                .header("cookie", &a.cookie)
                .header("content-type", "application/octet-stream")
                .body(bytes);
            async move {
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let picture: Vec<u8> = b"\x89PNG\r\n\x1a\n not really a picture, but declared one".to_vec();
        let (status, sent) = upload("../../holiday.png", picture.clone()).await;
        assert_eq!(status, 200, "{sent}");
        assert_eq!(sent["kind"], "file");
        assert_eq!(sent["file_name"], "holiday.png");
        assert_eq!(sent["media_type"], "image/png");
        let progress = ev_a.expect("progress", "tok1").await;
        assert!(progress["total"].as_u64().unwrap() > 0, "{progress}");
        let got = ev_b.expect("message", "holiday.png").await;
        let id = got["id"].as_str().unwrap().to_owned();

        // bob's hush decrypts it for bob's page: the bytes, inline, and a
        // policy that lets it do nothing.
        let r = b
            .http
            .get(format!("{}/api/messages/{id}/file", b.base))
            .header("cookie", &b.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "image/png");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("sandbox")
        );
        assert!(
            h["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("inline")
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), picture.as_slice());
        // Asked as a download, and a second time (from memory), the same.
        let r = b
            .http
            .get(format!("{}/api/messages/{id}/file?download=true", b.base))
            .header("cookie", &b.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "application/octet-stream");
        assert_eq!(
            r.headers()["content-disposition"],
            "attachment; filename*=UTF-8''holiday.png"
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), picture.as_slice());

        // A page disguised as a file is never served as a page.
        let evil = b"<script>fetch('/api/messages',{method:'POST'})</script>".to_vec();
        for name in ["page.html", "drawing.svg"] {
            let (status, sent) = upload(name, evil.clone()).await;
            assert_eq!(status, 200, "{sent}");
            let got = ev_b.expect("message", name).await;
            let id = got["id"].as_str().unwrap();
            let r = b
                .http
                .get(format!("{}/api/messages/{id}/file", b.base))
                .header("cookie", &b.cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.headers()["content-type"],
                "application/octet-stream",
                "{name}"
            );
            assert!(
                r.headers()["content-disposition"]
                    .to_str()
                    .unwrap()
                    .starts_with("attachment"),
                "{name}"
            );
        }

        // Refusals: an empty file, no name, a message without a file, no
        // such message, and no session.
        assert_eq!(upload("empty.txt", Vec::new()).await.0, 400);
        assert_eq!(upload("", b"x".to_vec()).await.0, 400);
        let text_id = a
            .ok("GET", &format!("/api/conversations/{conv}/messages"), None)
            .await["messages"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, _) = a
            .call("GET", &format!("/api/messages/{text_id}/file"), None)
            .await;
        assert_eq!(status, 404);
        let (status, _) = a.call("GET", "/api/messages/00ff/file", None).await;
        assert_eq!(status, 404);
        let r = raw(
            web_b.addr,
            &format!(
                "GET /api/messages/{id}/file HTTP/1.1\r\nHost: {}\r\n",
                web_b.host()
            ),
            "",
        );
        assert_eq!(r.status, 401);
    });
}

/// A group managed through the API: members added and removed, renamed,
/// per-member receipts, and leaving; the others see each change live, and
/// a 1:1 chat is no group.
#[test]
fn the_api_manages_a_group() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let _carol = User::register(&server, "carol");
    alice.ok(&["send", "bob", "hello"]);
    let (web_a, web_b) = (Web::start(&alice), Web::start(&bob));
    runtime().block_on(async {
        let (a, b) = (Api::new(&web_a), Api::new(&web_b));
        let mut ev_b = Events::open(&web_b, &b.cookie).await;
        let direct = a.ok("GET", "/api/conversations", None).await[0]["id"]
            .as_i64()
            .unwrap();
        let g = a
            .ok(
                "POST",
                "/api/groups",
                Some(json!({"name": "crew", "members": ["bob"]})),
            )
            .await;
        let id = g["id"].as_i64().unwrap();
        ev_b.expect("joined", "crew").await;
        let members = format!("/api/conversations/{id}/members");

        let view = a
            .ok("POST", &members, Some(json!({"username": "carol"})))
            .await;
        assert_eq!(view["members"], json!(["alice", "bob", "carol"]));
        ev_b.expect("members", "carol").await;
        let view = a.ok("DELETE", &format!("{members}/carol"), None).await;
        assert_eq!(view["members"], json!(["alice", "bob"]));
        ev_b.expect("members", "carol").await;
        let (status, v) = a
            .call(
                "PUT",
                &format!("/api/conversations/{id}/name"),
                Some(json!({"name": "crew2"})),
            )
            .await;
        assert_eq!(status, 204, "{v}");
        ev_b.expect("renamed", "crew2").await;

        // Per-member receipts on a group message.
        let sent = a
            .ok(
                "POST",
                "/api/messages",
                Some(json!({"conversation": id, "text": "to the crew"})),
            )
            .await;
        let got = ev_b.expect("message", "to the crew").await;
        let conv_b = got["conversation"].as_i64().unwrap();
        b.ok("POST", &format!("/api/conversations/{conv_b}/read"), None)
            .await;
        let mut receipts = Value::Null;
        for _ in 0..100 {
            let page = a
                .ok("GET", &format!("/api/conversations/{id}/messages"), None)
                .await;
            let m = page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"] == sent["id"])
                .cloned()
                .unwrap();
            receipts = m["receipts"].clone();
            if receipts["read_by"] == json!(["bob"]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(receipts["read_by"], json!(["bob"]), "{receipts}");
        assert_eq!(receipts["recipients"], 1);

        // Not on a 1:1 chat, nor someone else's made-up group.
        let (status, _) = a
            .call(
                "POST",
                &format!("/api/conversations/{direct}/members"),
                Some(json!({"username": "carol"})),
            )
            .await;
        assert_eq!(status, 400);
        let (status, _) = a.call("POST", "/api/conversations/999/leave", None).await;
        assert_eq!(status, 404);

        // bob leaves: alice sees him go, and the group is gone from his list.
        let (status, v) = b
            .call("POST", &format!("/api/conversations/{conv_b}/leave"), None)
            .await;
        assert_eq!(status, 204, "{v}");
        let list = b.ok("GET", "/api/conversations", None).await;
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .all(|c| c["kind"] != "group"),
            "{list}"
        );
        let mut left = false;
        for _ in 0..100 {
            let list = a.ok("GET", "/api/conversations", None).await;
            let g = list
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == id)
                .cloned()
                .unwrap();
            if g["members"] == json!(["alice"]) {
                left = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(left, "bob still in alice's group");
    });
}

/// Search (in one conversation and in all), settings and devices through
/// the API.
#[test]
fn the_api_searches_and_keeps_settings() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let _bob = User::register(&server, "bob");
    let _carol = User::register(&server, "carol");
    alice.ok(&["send", "bob", "the Blue house at 5"]);
    alice.ok(&["send", "carol", "a blue bird"]);
    alice.ok(&["send", "carol", "100% sure_thing"]);
    let web = Web::start(&alice);
    runtime().block_on(async {
        let a = Api::new(&web);
        let found = a.ok("GET", "/api/search?q=blue", None).await;
        let texts: Vec<&str> = found
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["a blue bird", "the Blue house at 5"]);
        let list = a.ok("GET", "/api/conversations", None).await;
        let carol = list
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "carol")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let here = a
            .ok(
                "GET",
                &format!("/api/search?q=BLUE&conversation={carol}"),
                None,
            )
            .await;
        assert_eq!(here.as_array().unwrap().len(), 1);
        assert_eq!(here[0]["text"], "a blue bird");
        // LIKE's wildcards are plain characters.
        let pct = a.ok("GET", "/api/search?q=0%25%20s", None).await;
        assert_eq!(pct.as_array().unwrap().len(), 1, "{pct}");
        let under = a.ok("GET", "/api/search?q=e_t", None).await;
        assert_eq!(under.as_array().unwrap().len(), 1, "{under}");
        let none = a.ok("GET", "/api/search?q=b_ue", None).await;
        assert_eq!(none, json!([]));
        for bad in [
            "/api/search?q=%20",
            "/api/search?q=x&limit=0",
            "/api/search",
        ] {
            let (status, v) = a.call("GET", bad, None).await;
            assert_eq!(status, 400, "{bad}: {v}");
        }

        let s = a.ok("GET", "/api/settings", None).await;
        assert_eq!(s["presence"], "contacts", "the default");
        let (status, v) = a
            .call("PUT", "/api/settings", Some(json!({"presence": "nobody"})))
            .await;
        assert_eq!(status, 204, "{v}");
        assert_eq!(
            a.ok("GET", "/api/settings", None).await["presence"],
            "nobody"
        );
        let (status, _) = a
            .call("PUT", "/api/settings", Some(json!({"presence": "friends"})))
            .await;
        assert_eq!(status, 400);
        let (status, v) = a
            .call(
                "PUT",
                "/api/settings",
                Some(json!({"display_name": "Alice A."})),
            )
            .await;
        assert_eq!(status, 204, "{v}");

        let devices = a.ok("GET", "/api/devices", None).await;
        assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
        assert_eq!(devices[0]["this"], true);
    });
}
