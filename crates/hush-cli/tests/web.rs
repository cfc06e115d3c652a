//! `hush web` over plain HTTP, no browser: the guard's refusals from the
//! attacker's side (no secret, a wrong or used secret, a foreign Host as
//! DNS rebinding sends, a foreign Origin as a cross-site page sends), and
//! the local API against a real server with two real `hush web` processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/api.rs"]
mod api;
mod common;

use api::{Api, Events};
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
        ("/channels.js", "text/javascript"),
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
        // The QR code to scan comes with it, drawn by the hush process.
        let svg = n["qr_svg"].as_str().unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
        let payload = n["qr_payload"].as_str().unwrap();
        assert!(
            hex::decode(payload).is_ok_and(|p| !p.is_empty()),
            "{payload}"
        );
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

        // The document is served, and every documented GET answers (a
        // channel to ask about: web_channels.rs tests channels).
        a.ok("POST", "/api/channels", Some(json!({"name": "news"})))
            .await;
        let doc = a.ok("GET", "/api/openapi.json", None).await;
        // (Files and avatars need one to be there: web_features.rs,
        // web_channels.rs and web_social.rs.)
        let elsewhere = [
            "/login",
            "/api/events",
            "/api/messages/{id}/file",
            "/api/channels/{name}/posts/{id}/file",
            "/api/contacts/{username}/avatar",
            "/api/profile/avatar",
        ];
        for (path, item) in doc["paths"].as_object().unwrap() {
            if item.get("get").is_none() || elsewhere.contains(&path.as_str()) {
                continue;
            }
            let path = path
                .replace("{id}", &conv_a.to_string())
                .replace("{username}", "bob")
                .replace("{name}", "news")
                .replace("/api/search", "/api/search?q=more");
            let (status, v) = a.call("GET", &path, None).await;
            assert_eq!(status, 200, "GET {path}: {v}");
        }
    });
}
