//! `hush web` over plain HTTP, no browser: the guard's refusals from the
//! attacker's side (no secret, a wrong or used secret, a foreign Host as
//! DNS rebinding sends, a foreign Origin as a cross-site page sends), and
//! the local API against a real server with two real `hush web` processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::web::{Web, raw};
use common::*;
use serde_json::{Value, json};

/// What every 401 says, whatever was asked.
const UNAUTHORIZED: &str = "Open the link that `hush web` printed in its terminal.\n";

fn assert_learns_nothing(what: &str, a: &common::web::Answer) {
    let all = format!("{}\n{}", a.head, a.body);
    for secret in ["alice", "bob", "secret plans"] {
        assert!(!all.contains(secret), "{what} tells {secret:?}: {all}");
    }
    let csp = a.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'"),
        "{what}: no CSP: {}",
        a.head
    );
    assert_eq!(
        a.header("cache-control").as_deref(),
        Some("no-store"),
        "{what}"
    );
}

#[test]
fn requests_without_the_secret_or_from_elsewhere_are_refused() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    alice.ok(&["send", "bob", "secret plans"]);
    let mut web = Web::start(&alice);
    let host = web.host();
    let get = |path: &str, extra: &str| {
        raw(
            web.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"),
            "",
        )
    };

    // No session: the same 401 for every path, pages, API and unknown.
    for path in [
        "/",
        "/app.js",
        "/style.css",
        "/api/me",
        "/api/conversations",
        "/api/conversations/1/messages",
        "/api/contacts",
        "/api/contacts/bob/safety-number",
        "/api/events",
        "/api/openapi.json",
        "/no/such/thing",
    ] {
        let a = get(path, "");
        assert_eq!(a.status, 401, "{path}: {}", a.head);
        assert_eq!(a.body, UNAUTHORIZED, "{path}");
        assert_learns_nothing(path, &a);
    }
    let sent = raw(
        web.addr,
        &format!("POST /api/messages HTTP/1.1\r\nHost: {host}\r\n"),
        r#"{"user":"bob","text":"forged without a session"}"#,
    );
    assert_eq!(sent.status, 401);
    // A made-up cookie is no session either.
    let port = web.addr.port();
    let a = get(
        "/api/me",
        &format!("Cookie: hush_session_{port}={}\r\n", "0".repeat(64)),
    );
    assert_eq!(a.status, 401);

    // Wrong secrets, a prefix of the right one, and the right one sent to
    // a foreign Host (a rebinding page that learnt it): refused, and the
    // secret is still unused afterwards.
    for wrong in [
        "",
        "00",
        &web.secret[..web.secret.len() - 1],
        &"f".repeat(64),
    ] {
        let a = get(&format!("/login?secret={wrong}"), "");
        assert_eq!(a.status, 401, "secret {wrong:?}");
        assert_learns_nothing("a wrong secret", &a);
    }
    let a = raw(
        web.addr,
        &format!(
            "GET /login?secret={} HTTP/1.1\r\nHost: evil.example:{port}\r\n",
            web.secret
        ),
        "",
    );
    assert_eq!(a.status, 403, "{}", a.head);
    assert!(a.header("set-cookie").is_none());

    // The secret, once: a session cookie that scripts cannot read and that
    // no other site's request carries.
    let login = get(&format!("/login?secret={}", web.secret), "");
    assert_eq!(login.status, 303);
    assert_eq!(login.header("location").as_deref(), Some("/"));
    let set = login.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} missing: {set}");
    }
    assert!(set.starts_with(&format!("hush_session_{port}=")), "{set}");
    let cookie_value = set.split(';').next().unwrap().to_owned();
    let cookie = format!("Cookie: {cookie_value}\r\n");
    let again = get(&format!("/login?secret={}", web.secret), "");
    assert_eq!(again.status, 401, "the secret works once");

    // With the session: the page and the API answer the right Host.
    let ok = get("/api/conversations", &cookie);
    assert_eq!(ok.status, 200, "{}", ok.head);
    assert!(ok.body.contains("secret plans"));
    let ok = get("/api/me", &format!("{cookie}Origin: http://{host}\r\n"));
    assert_eq!(ok.status, 200);

    // DNS rebinding: the browser sends the attacker's name as Host (and
    // the cookie does not go there, but refuse even if it did).
    for bad_host in [
        format!("evil.example:{port}"),
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
    ] {
        let a = raw(
            web.addr,
            &format!("GET /api/conversations HTTP/1.1\r\nHost: {bad_host}\r\n{cookie}"),
            "",
        );
        assert_eq!(a.status, 403, "Host {bad_host}: {}", a.head);
        assert_learns_nothing("a foreign Host", &a);
    }

    // Cross-site: a page elsewhere posting to the API (a form or a no-cors
    // fetch), even with the cookie attached.
    for header in [
        "Origin: http://evil.example\r\n".to_owned(),
        "Origin: null\r\n".to_owned(),
        format!("Origin: https://{host}\r\n"),
        "Sec-Fetch-Site: cross-site\r\n".to_owned(),
        "Sec-Fetch-Site: same-site\r\n".to_owned(),
    ] {
        let a = raw(
            web.addr,
            &format!("POST /api/messages HTTP/1.1\r\nHost: {host}\r\n{cookie}{header}"),
            r#"{"user":"bob","text":"forged cross-site"}"#,
        );
        assert_eq!(a.status, 403, "{header}: {}", a.head);
        assert_learns_nothing("a foreign Origin", &a);
    }

    // Every embedded file, with the session: the right type, and nothing
    // fetched from anywhere else.
    for (path, ctype) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/api.js", "text/javascript"),
        ("/view.js", "text/javascript"),
        ("/files.js", "text/javascript"),
        ("/groups.js", "text/javascript"),
        ("/settings.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/icon.svg", "image/svg+xml"),
    ] {
        let a = get(path, &cookie);
        assert_eq!(a.status, 200, "{path}");
        assert!(
            a.header("content-type").unwrap().starts_with(ctype),
            "{path}"
        );
        assert_eq!(
            a.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(a.header("x-frame-options").as_deref(), Some("DENY"));
        let without_svg_ns = a.body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !without_svg_ns.contains("http://") && !without_svg_ns.contains("https://"),
            "{path} refers to another origin"
        );
    }

    // Nothing forged went out: bob has only alice's own message.
    assert!(web.running());
    drop(web);
    assert_eq!(bob.sync_texts(), ["secret plans"]);
}

/// Reads an SSE stream in the background; [`Events::expect`] waits for text.
struct Events {
    rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: String,
    task: tokio::task::JoinHandle<()>,
}

impl Events {
    async fn open(web: &Web, cookie: &str) -> Events {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let mut resp = client
            .get(format!("{}/api/events", web.base()))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(Some(chunk)) = resp.chunk().await {
                if tx
                    .send(String::from_utf8_lossy(&chunk).into_owned())
                    .is_err()
                {
                    return;
                }
            }
        });
        Events {
            rx,
            seen: String::new(),
            task,
        }
    }

    /// Waits (30 s at most) for an SSE event named `name` whose data
    /// contains `needle`; returns its data.
    async fn expect(&mut self, name: &str, needle: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            while let Some(end) = self.seen.find("\n\n") {
                let block: String = self.seen.drain(..end + 2).collect();
                let event = block.lines().find_map(|l| l.strip_prefix("event: "));
                let data = block.lines().find_map(|l| l.strip_prefix("data: "));
                if let (Some(e), Some(d)) = (event, data)
                    && e == name
                    && d.contains(needle)
                {
                    return serde_json::from_str(d).unwrap();
                }
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(chunk)) => self.seen.push_str(&chunk),
                Ok(None) => panic!("the event stream ended waiting for {name} {needle:?}"),
                Err(_) => panic!("no {name} event with {needle:?} within 30 s"),
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An authenticated API client for one `hush web`.
struct Api {
    base: String,
    cookie: String,
    http: reqwest::Client,
}

impl Api {
    fn new(web: &Web) -> Api {
        Api {
            base: web.base(),
            cookie: web.login(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("cookie", &self.cookie);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }
}

#[test]
fn the_api_chats_both_ways_live() {
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    let (web_a, web_b) = (Web::start(&alice), Web::start(&bob));
    runtime().block_on(async {
        let (a, b) = (Api::new(&web_a), Api::new(&web_b));
        let me = a.ok("GET", "/api/me", None).await;
        assert_eq!(me["username"], "alice");
        assert_eq!(a.ok("GET", "/api/conversations", None).await, json!([]));
        let mut ev_a = Events::open(&web_a, &a.cookie).await;
        let mut ev_b = Events::open(&web_b, &b.cookie).await;

        // alice -> bob, live on bob's stream.
        let sent = a
            .ok(
                "POST",
                "/api/messages",
                Some(json!({"user": "bob", "text": "hello bob"})),
            )
            .await;
        assert_eq!(sent["outgoing"], true);
        assert_eq!(sent["status"], "sent");
        let got = ev_b.expect("message", "hello bob").await;
        assert_eq!(got["from"], "alice");
        assert_eq!(got["outgoing"], false);
        let list = b.ok("GET", "/api/conversations", None).await;
        assert_eq!(list[0]["name"], "alice");
        assert_eq!(list[0]["kind"], "direct");
        assert_eq!(list[0]["unread"], 1);
        assert_eq!(list[0]["last_message"]["text"], "hello bob");
        let conv_b = list[0]["id"].as_i64().unwrap();

        // Reading sends a read receipt: alice sees it live.
        let read = b
            .ok("POST", &format!("/api/conversations/{conv_b}/read"), None)
            .await;
        assert_eq!(read["marked"], 1);
        let list = b.ok("GET", "/api/conversations", None).await;
        assert_eq!(list[0]["unread"], 0);
        let receipt = ev_a.expect("receipt", "read").await;
        assert_eq!(receipt["ids"][0], sent["id"]);

        // Typing and a reply, bob -> alice, by conversation number.
        let typing = b
            .call(
                "POST",
                &format!("/api/conversations/{conv_b}/typing"),
                Some(json!({"started": true})),
            )
            .await;
        assert_eq!(typing.0, 204, "{typing:?}");
        ev_a.expect("typing", "bob").await;
        b.ok(
            "POST",
            "/api/messages",
            Some(json!({"conversation": conv_b, "text": "hi alice\nline two"})),
        )
        .await;
        ev_a.expect("message", "hi alice\\nline two").await;

        // Paging, oldest first within a page.
        let conv_a = sent["conversation"].as_i64().unwrap();
        for i in 0..3 {
            let text = format!("more {i}");
            a.ok(
                "POST",
                "/api/messages",
                Some(json!({"conversation": conv_a, "text": text})),
            )
            .await;
        }
        let path = format!("/api/conversations/{conv_a}/messages");
        let page = a.ok("GET", &format!("{path}?limit=2"), None).await;
        let texts = |p: &Value| -> Vec<String> {
            p["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["text"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(texts(&page), ["more 1", "more 2"]);
        assert_eq!(page["more"], true);
        let first = page["messages"][0]["id"].as_str().unwrap().to_owned();
        let older = a
            .ok("GET", &format!("{path}?limit=10&before={first}"), None)
            .await;
        assert_eq!(texts(&older), ["hello bob", "hi alice\nline two", "more 0"]);
        assert_eq!(older["more"], false);

        // Bad requests: clear errors, nothing sent.
        for (method, path, body, want) in [
            (
                "GET",
                "/api/conversations/999/messages".to_owned(),
                None,
                404,
            ),
            ("GET", format!("{path}?limit=0"), None, 400),
            ("GET", format!("{path}?before=nope"), None, 400),
            (
                "POST",
                "/api/messages".into(),
                Some(json!({"user": "bob", "group": "g", "text": "x"})),
                400,
            ),
            (
                "POST",
                "/api/messages".into(),
                Some(json!({"conversation": conv_a, "text": ""})),
                400,
            ),
            (
                "POST",
                "/api/messages".into(),
                Some(json!({"conversation": 999, "text": "x"})),
                404,
            ),
        ] {
            let (status, v) = a.call(method, &path, body).await;
            assert_eq!(status, want, "{method} {path}: {v}");
            if status != 400 || v.is_object() {
                assert!(v["error"].is_string(), "{method} {path}: {v}");
            }
        }

        // A group, created and used.
        let group = a
            .ok(
                "POST",
                "/api/groups",
                Some(json!({"name": "team", "members": ["bob"]})),
            )
            .await;
        assert_eq!(group["kind"], "group");
        a.ok(
            "POST",
            "/api/messages",
            Some(json!({"group": "team", "text": "to the team"})),
        )
        .await;
        ev_b.expect("message", "to the team").await;

        // Verification: the safety number, a wrong one refused.
        let contacts = a.ok("GET", "/api/contacts", None).await;
        assert_eq!(contacts[0]["username"], "bob");
        assert_eq!(contacts[0]["verified"], false);
        let n = a.ok("GET", "/api/contacts/bob/safety-number", None).await;
        let digits = n["digits"].as_str().unwrap().to_owned();
        let wrong = a
            .call(
                "POST",
                "/api/contacts/bob/verify",
                Some(json!({"digits": "123"})),
            )
            .await;
        assert_eq!(wrong.0, 409, "{wrong:?}");
        let right = a
            .call(
                "POST",
                "/api/contacts/bob/verify",
                Some(json!({"digits": digits})),
            )
            .await;
        assert_eq!(right.0, 204, "{right:?}");
        assert_eq!(
            a.ok("GET", "/api/contacts", None).await[0]["verified"],
            true
        );

        // The document is served, and every documented GET answers.
        let doc = a.ok("GET", "/api/openapi.json", None).await;
        for (path, item) in doc["paths"].as_object().unwrap() {
            if item.get("get").is_none()
                || ["/login", "/api/events", "/api/messages/{id}/file"].contains(&path.as_str())
            {
                continue;
            }
            let path = path
                .replace("{id}", &conv_a.to_string())
                .replace("{username}", "bob")
                .replace("/api/search", "/api/search?q=more");
            let (status, v) = a.call("GET", &path, None).await;
            assert_eq!(status, 200, "GET {path}: {v}");
        }
    });
}

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
