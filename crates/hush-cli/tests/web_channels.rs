//! Channels through `hush web`'s API (decision 0038), against a real server
//! and two real `hush web` processes: alice creates a channel, bob joins it
//! with its link over the API, alice posts and bob's page hears the post
//! live on the event stream and reads it in the channel's posts. bob's
//! device cannot post (a 403, nothing reaches the server); a link whose
//! owner key was swapped is refused and stores nothing; leaving forgets
//! the channel. Bad input gets a clear 4xx and changes nothing. Files:
//! the owner posts one, a subscriber's page gets it decrypted and served
//! as a message's file is; a subscriber cannot post one. `POST /api/join`
//! takes a group's invite link too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/api.rs"]
mod api;
mod common;

use std::time::Duration;

use api::{Api, Events};
use common::web::Web;
use common::{Server, User, runtime};
use serde_json::{Value, json};

/// The posts of `name` as `a` sees them: their texts and numbers.
async fn posts(a: &Api, name: &str) -> Vec<(String, u64)> {
    let page = a
        .ok("GET", &format!("/api/channels/{name}/posts"), None)
        .await;
    page["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["text"].as_str().unwrap().to_owned(),
                p["number"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Asserts a refusal: `status`, and an error that says `says`.
fn refused(got: (u16, Value), status: u16, says: &str) {
    let error = got.1["error"].as_str().unwrap_or_default();
    assert_eq!(got.0, status, "{}", got.1);
    assert!(error.contains(says), "{error:?} does not say {says:?}");
}

/// `link` with the owner key (the last 64 hex digits) of `other`.
fn with_owner_of(link: &str, other: &str) -> String {
    let (base, hex) = link.split_once('#').unwrap();
    let (_, other_hex) = other.split_once('#').unwrap();
    assert_eq!(hex.len(), 128, "{link}");
    format!("{base}#{}{}", &hex[..64], &other_hex[64..])
}

#[test]
fn a_channel_is_created_joined_by_link_read_live_and_left() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let (web_a, web_b) = (Web::start(&alice), Web::start(&bob));
    runtime().block_on(async {
        let (a, b) = (Api::new(&web_a), Api::new(&web_b));
        let mut ev_a = Events::open(&web_a, &a.cookie).await;
        let mut ev_b = Events::open(&web_b, &b.cookie).await;

        let made = a
            .ok("POST", "/api/channels", Some(json!({"name": "news"})))
            .await;
        assert_eq!(made["channel"], "news");
        let link = made["link"].as_str().unwrap().to_owned();
        assert!(link.contains("/channel#"), "{link}");
        let again = a.ok("GET", "/api/channels/news/link", None).await;
        assert_eq!(again, json!({ "link": link }));
        assert_eq!(
            a.ok("GET", "/api/channels", None).await,
            json!([{"name": "news", "owner": true, "admin": true, "epoch": 0, "posts": 0}])
        );

        // Refused, and nothing made: no name, a name taken, a field too many.
        let (status, v) = a
            .call("POST", "/api/channels", Some(json!({"name": " "})))
            .await;
        assert_eq!(status, 400, "{v}");
        refused(
            a.call("POST", "/api/channels", Some(json!({"name": "news"})))
                .await,
            400,
            "already have a channel named",
        );
        let (status, _) = a
            .call(
                "POST",
                "/api/channels",
                Some(json!({"name": "x", "owner": "bob"})),
            )
            .await;
        assert!((400..500).contains(&status), "{status}");
        assert_eq!(a.ok("GET", "/api/channels", None).await[1], Value::Null);

        // bob: links that are not this channel's are refused and store
        // nothing, among them one whose owner key was swapped for another
        // channel's (its descriptor is not signed by that key).
        let other = a
            .ok("POST", "/api/channels", Some(json!({"name": "other"})))
            .await["link"]
            .as_str()
            .unwrap()
            .to_owned();
        let swapped = with_owner_of(&link, &other);
        refused(
            b.call("POST", "/api/channels/join", Some(json!({"link": swapped})))
                .await,
            400,
            "SECURITY",
        );
        let invite = link.replace("/channel#", "/join#");
        refused(
            b.call("POST", "/api/channels/join", Some(json!({"link": invite})))
                .await,
            400,
            "not a channel link",
        );
        let (status, _) = b
            .call(
                "POST",
                "/api/channels/join",
                Some(json!({"link": format!("{link}00")})),
            )
            .await;
        assert_eq!(status, 400);
        assert_eq!(b.ok("GET", "/api/channels", None).await, json!([]));

        let joined = b
            .ok("POST", "/api/channels/join", Some(json!({"link": link})))
            .await;
        assert_eq!(joined, json!({"channel": "news"}));
        refused(
            b.call("POST", "/api/channels/join", Some(json!({"link": link})))
                .await,
            400,
            "already follow",
        );
        assert_eq!(
            b.ok("GET", "/api/channels", None).await,
            json!([{"name": "news", "owner": false, "admin": false, "epoch": 0, "posts": 0}])
        );

        // alice posts: her other tabs hear it at once, bob's page live.
        let sent = a
            .ok(
                "POST",
                "/api/channels/news/posts",
                Some(json!({"text": "first post"})),
            )
            .await;
        assert_eq!(sent["channel"], "news");
        assert_eq!(sent["number"], 1);
        ev_a.expect("channel_post", "first post").await;
        let heard = ev_b.expect("channel_post", "first post").await;
        assert_eq!(heard["channel"], "news");
        assert_eq!(heard["id"], sent["id"]);
        assert_eq!(heard["event"], "channel_post");
        assert_eq!(posts(&b, "news").await, [("first post".to_owned(), 1)]);

        // bob's device follows but does not own: a clear 403, and nothing
        // reaches the server (alice's next post is number 2).
        refused(
            b.call(
                "POST",
                "/api/channels/news/posts",
                Some(json!({"text": "spam"})),
            )
            .await,
            403,
            "only its owner's device posts",
        );
        refused(
            a.call(
                "POST",
                "/api/channels/news/posts",
                Some(json!({"text": " "})),
            )
            .await,
            400,
            "nothing to post",
        );
        refused(
            b.call(
                "POST",
                "/api/channels/nowhere/posts",
                Some(json!({"text": "hi"})),
            )
            .await,
            404,
            "no channel named",
        );
        a.ok(
            "POST",
            "/api/channels/news/posts",
            Some(json!({"text": "second"})),
        )
        .await;
        ev_b.expect("channel_post", "second").await;
        assert_eq!(
            posts(&b, "news").await,
            [("first post".to_owned(), 1), ("second".to_owned(), 2)]
        );
        assert_eq!(b.ok("GET", "/api/channels", None).await[0]["posts"], 2);

        // Pages: the newest `limit`, and whether older ones were left out.
        let page = b.ok("GET", "/api/channels/news/posts?limit=1", None).await;
        assert_eq!(page["more"], true);
        assert_eq!(page["posts"][0]["text"], "second");
        let (status, _) = b
            .call("GET", "/api/channels/news/posts?limit=0", None)
            .await;
        assert_eq!(status, 400);
        refused(
            b.call("GET", "/api/channels/nowhere/link", None).await,
            404,
            "no channel named",
        );

        // Leaving forgets it: no list entry, no posts, no link.
        let (status, _) = b.call("DELETE", "/api/channels/news", None).await;
        assert_eq!(status, 204);
        assert_eq!(b.ok("GET", "/api/channels", None).await, json!([]));
        refused(
            b.call("GET", "/api/channels/news/posts", None).await,
            404,
            "no channel named",
        );
        refused(
            b.call("DELETE", "/api/channels/news", None).await,
            404,
            "no channel named",
        );
        // Posts made meanwhile do not bring it back.
        a.ok(
            "POST",
            "/api/channels/news/posts",
            Some(json!({"text": "third"})),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(b.ok("GET", "/api/channels", None).await, json!([]));
        // The link still subscribes: the kept posts come again.
        b.ok("POST", "/api/channels/join", Some(json!({"link": link})))
            .await;
        ev_b.expect("channel_post", "third").await;
        let texts: Vec<String> = posts(&b, "news").await.into_iter().map(|p| p.0).collect();
        assert_eq!(texts, ["first post", "second", "third"]);

        // A channel may be named "join", like the path that joins.
        a.ok("POST", "/api/channels", Some(json!({"name": "join"})))
            .await;
        a.ok(
            "POST",
            "/api/channels/join/posts",
            Some(json!({"text": "named join"})),
        )
        .await;
        assert_eq!(posts(&a, "join").await, [("named join".to_owned(), 1)]);
        let (status, v) = a.call("DELETE", "/api/channels/join", None).await;
        assert_eq!(status, 204, "{v}");
        let names: Vec<Value> = a
            .ok("GET", "/api/channels", None)
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(names, [json!("news"), json!("other")]);

        // The owner leaving takes the post token along: it cannot post.
        let (status, _) = a.call("DELETE", "/api/channels/news", None).await;
        assert_eq!(status, 204);
        refused(
            a.call(
                "POST",
                "/api/channels/news/posts",
                Some(json!({"text": "gone"})),
            )
            .await,
            404,
            "no channel named",
        );
    });
}

/// Uploads `bytes` as `name` to the channel `channel` through `a`'s API.
async fn post_file(a: &Api, channel: &str, query: &str, bytes: Vec<u8>) -> (u16, Value) {
    let r = a
        .http
        .post(format!("{}/api/channels/{channel}/files?{query}", a.base))
        .header("cookie", &a.cookie)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// `GET path` through `a`'s API: the status, the headers, the bytes.
async fn fetch(a: &Api, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = a
        .http
        .get(format!("{}{path}", a.base))
        .header("cookie", &a.cookie)
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.bytes().await.unwrap().to_vec())
}

#[test]
fn the_owner_posts_a_file_and_a_subscribers_page_gets_it() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let (web_a, web_b) = (Web::start(&alice), Web::start(&bob));
    runtime().block_on(async {
        let (a, b) = (Api::new(&web_a), Api::new(&web_b));
        let mut ev_a = Events::open(&web_a, &a.cookie).await;
        let mut ev_b = Events::open(&web_b, &b.cookie).await;
        let link = a
            .ok("POST", "/api/channels", Some(json!({"name": "news"})))
            .await["link"]
            .as_str()
            .unwrap()
            .to_owned();
        // The one Join route takes a channel's link.
        let joined = b.ok("POST", "/api/join", Some(json!({"link": link}))).await;
        assert_eq!(joined, json!({"kind": "channel", "channel": "news"}));

        let picture = b"\x89PNG\r\n\x1a\n not really a picture, but declared one".to_vec();
        let (status, sent) = post_file(
            &a,
            "news",
            "name=..%2F..%2Fholiday.png&upload=tok1&caption=look",
            picture.clone(),
        )
        .await;
        assert_eq!(status, 200, "{sent}");
        assert_eq!(sent["file"], "holiday.png");
        assert_eq!(sent["media_type"], "image/png");
        assert_eq!(sent["size"], picture.len());
        assert_eq!(sent["text"], "look");
        ev_a.expect("progress", "tok1").await;
        let heard = ev_b.expect("channel_post", "holiday.png").await;
        let id = heard["id"].as_str().unwrap().to_owned();
        assert_eq!(id, sent["id"].as_str().unwrap());
        assert_eq!(heard["size"], picture.len());

        // bob's hush decrypts it for bob's page, inline as a picture, under
        // the files' policy; as a download when asked.
        let path = format!("/api/channels/news/posts/{id}/file");
        let (status, h, bytes) = fetch(&b, &path).await;
        assert_eq!(status, 200);
        assert_eq!(h["content-type"], "image/png");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("sandbox"), "{csp}");
        assert!(
            h["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("inline")
        );
        assert_eq!(bytes, picture);
        let (_, h, bytes) = fetch(&b, &format!("{path}?download=true")).await;
        assert_eq!(h["content-type"], "application/octet-stream");
        assert_eq!(
            h["content-disposition"],
            "attachment; filename*=UTF-8''holiday.png"
        );
        assert_eq!(bytes, picture);
        // The owner's page gets it too.
        assert_eq!(fetch(&a, &path).await.2, picture);

        // A page disguised as a file is never served as a page.
        let evil = b"<script>fetch('/api/messages',{method:'POST'})</script>".to_vec();
        let (status, sent) = post_file(&a, "news", "name=page.html", evil).await;
        assert_eq!(status, 200, "{sent}");
        ev_b.expect("channel_post", "page.html").await;
        let evil_id = sent["id"].as_str().unwrap();
        let (_, h, _) = fetch(&b, &format!("/api/channels/news/posts/{evil_id}/file")).await;
        assert_eq!(h["content-type"], "application/octet-stream");
        assert!(
            h["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );

        // bob's device follows only: a 403, nothing uploaded or posted
        // (alice's next post is number 3).
        refused(
            post_file(&b, "news", "name=spam.png", b"spam".to_vec()).await,
            403,
            "only its owner's device posts",
        );
        let next = a
            .ok(
                "POST",
                "/api/channels/news/posts",
                Some(json!({"text": "words"})),
            )
            .await;
        assert_eq!(next["number"], 3);
        let text_id = next["id"].as_str().unwrap().to_owned();
        ev_b.expect("channel_post", "words").await;
        // Refusals: an empty file, a text post, no such post or channel.
        assert_eq!(post_file(&a, "news", "name=e.txt", Vec::new()).await.0, 400);
        let no_file = format!("/api/channels/news/posts/{text_id}/file");
        refused(b.call("GET", &no_file, None).await, 404, "has no file");
        let nowhere = format!("/api/channels/news/posts/{}/file", "ab".repeat(16));
        assert_eq!(b.call("GET", &nowhere, None).await.0, 404);
        let elsewhere = format!("/api/channels/other/posts/{id}/file");
        refused(
            b.call("GET", &elsewhere, None).await,
            404,
            "no channel named",
        );
    });
}

#[test]
fn a_group_invite_link_is_joined_from_the_page() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let _bob = User::register(&server, "bob");
    let carol = User::register(&server, "carol");
    alice.json(&["group", "create", "team", "--members", "bob"]);
    let invite = |extra: &[&str]| {
        let made = alice.json(&[&["group", "invite", "team"][..], extra].concat());
        made[0]["invite"].as_str().unwrap().to_owned()
    };
    let approve = invite(&["--approve"]);
    let open = invite(&[]);
    let web_c = Web::start(&carol);
    runtime().block_on(async {
        let c = Api::new(&web_c);
        let mut ev_c = Events::open(&web_c, &c.cookie).await;
        // Not a link of either kind: refused, nothing filed.
        refused(
            c.call(
                "POST",
                "/api/join",
                Some(json!({"link": "https://x.example/nope"})),
            )
            .await,
            400,
            "invite link",
        );

        // A link that needs approval: the request is filed, and the answer
        // says an admin approves it.
        let asked = c
            .ok("POST", "/api/join", Some(json!({"link": approve})))
            .await;
        assert_eq!(
            asked,
            json!({"kind": "group", "group": "team", "size": 2, "needs_approval": true})
        );
        alice.ok(&["sync"]);
        let waiting = alice.json(&["group", "requests", "team"]);
        assert_eq!(waiting[0]["user"], "carol", "{waiting:?}");
        alice.json(&["group", "deny", "team", "carol"]);

        // An open link: alice's device admits carol when it next syncs, and
        // carol's page hears of the group.
        let asked = c.ok("POST", "/api/join", Some(json!({"link": open}))).await;
        assert_eq!(asked["needs_approval"], false);
        assert_eq!(asked["group"], "team");
        alice.ok(&["sync"]);
        ev_c.expect("joined", "team").await;
        let list = c.ok("GET", "/api/conversations", None).await;
        let team = list
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "team")
            .unwrap_or_else(|| panic!("{list}"));
        assert_eq!(team["kind"], "group");
    });
}
