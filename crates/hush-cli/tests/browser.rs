//! `hush web` in a real browser: Debian's headless Chromium driven through
//! chromedriver (WebDriver), against a real `hush-server` and two real
//! `hush web` processes. Two users chat both ways live, alice at desktop
//! size (1280x800), bob at a phone's (390x844) in dark mode; then the
//! browser attacks: a page without the secret, a rebinding name pointed at
//! 127.0.0.1 (foreign Host), and a page on another local port that posts to
//! the API with the session cookie attached (foreign Origin).
//!
//! The harness (and when it skips) is in `common/browser.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/browser.rs"]
mod kit;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::web::Web;
use common::{Server, User, runtime};
use fantoccini::Client as Browser;
use kit::*;
use serde_json::json;

/// The whole test, browsers included.
const WHOLE: Duration = Duration::from_secs(240);

/// A page on another loopback port (same site as 127.0.0.1, so the
/// browser attaches the `SameSite=Strict` cookie; another origin) that
/// sends what a cross-site page can: "simple" POSTs, one marking
/// conversation `conv` read (no body needed) and one forging a message,
/// then sets its title to "done". Serves one page.
fn evil_page(target: &str, conv: i64) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let body = format!(
        "<!doctype html><title>evil</title><script>\
         const opts = {{method: 'POST', mode: 'no-cors', credentials: 'include'}};\
         Promise.allSettled([\
         fetch('{target}/api/conversations/{conv}/read', opts),\
         fetch('{target}/api/messages', {{...opts, headers: {{'Content-Type': 'text/plain'}}, \
         body: JSON.stringify({{user: 'bob', text: 'forged by another origin'}})}})])\
         .then(() => {{ document.title = 'done'; }});</script>"
    );
    let handle = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        // Only the page itself (and maybe a favicon) is asked for.
        for _ in 0..2 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let favicon = String::from_utf8_lossy(&buf[..n]).contains("favicon");
            let answer = if favicon {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = s.write_all(answer.as_bytes());
            if !favicon {
                return;
            }
        }
    });
    (url, handle)
}

struct Scene {
    /// alice's conversation with bob, once it exists.
    conv_a: std::sync::OnceLock<i64>,
    alice: Browser,
    bob: Browser,
    web_a: Web,
    web_b: Web,
}

async fn chat(s: &Scene) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    goto(alice, &s.web_a.url).await?;
    until(
        alice,
        "alice's app",
        "return document.getElementById('me').textContent === 'alice';",
    )
    .await?;
    let label = js(
        alice,
        "return document.getElementById('composer').getAttribute('aria-label');",
    )
    .await?;
    ensure!(label == json!("Message"), "composer labelled {label}");

    // bob is on a phone, with the app open (and nothing in it yet).
    goto(bob, &s.web_b.url).await?;
    until(
        bob,
        "bob's app",
        "return document.getElementById('me').textContent === 'bob';",
    )
    .await?;
    until(
        bob,
        "bob's empty list",
        "return !document.getElementById('no-conversations').hidden;",
    )
    .await?;

    // alice starts a chat with bob and sends with Enter.
    type_into(alice, "#new-chat-user", &format!("bob{ENTER}")).await?;
    until(
        alice,
        "the chat with bob",
        "return document.getElementById('title').textContent === 'bob';",
    )
    .await?;
    type_into(alice, "#composer", &format!("hello bob{ENTER}")).await?;
    until(alice, "alice's message", &contains("out", "hello bob")).await?;
    until(
        alice,
        "the chat with bob in alice's list",
        "return document.querySelector('button.conv[data-name=\"bob\"] .conv-last')\
         ?.textContent === 'You: hello bob';",
    )
    .await?;
    let conv = js(
        alice,
        "return Number(document.querySelector('button.conv[data-name=\"bob\"]').dataset.id);",
    )
    .await?;
    let _ = s
        .conv_a
        .set(conv.as_i64().context("a conversation number")?);
    let sent = until(
        alice,
        "the sent mark",
        "return document.querySelector('#messages .msg.out .status')?.dataset.status;",
    )
    .await?;
    ensure!(
        sent == json!("sent") || sent == json!("delivered"),
        "status {sent}"
    );

    // bob, on a phone, sees it arrive in the list, unread, without reloading.
    until(
        bob,
        "alice's chat unread in bob's list",
        "return document.querySelector('button.conv[data-name=\"alice\"] .unread')?.textContent === '1';",
    )
    .await?;
    let layout = js(
        bob,
        "return [getComputedStyle(document.getElementById('sidebar')).display, \
         getComputedStyle(document.getElementById('pane')).display, innerWidth];",
    )
    .await?;
    ensure!(
        layout == json!(["flex", "none", 390]),
        "phone list layout {layout}"
    );
    let time = js(
        bob,
        "return document.querySelector('button.conv .conv-time').textContent;",
    )
    .await?;
    ensure!(
        time.as_str()
            .is_some_and(|t| t.chars().filter(char::is_ascii_digit).count() >= 3),
        "the list shows no time: {time}"
    );
    let dark = js(
        bob,
        "return [matchMedia('(prefers-color-scheme: dark)').matches, \
         getComputedStyle(document.body).backgroundColor];",
    )
    .await?;
    ensure!(
        dark == json!([true, "rgb(17, 20, 19)"]),
        "dark mode: {dark}"
    );
    js(
        bob,
        "document.querySelector('button.conv[data-name=\"alice\"]').click(); return true;",
    )
    .await?;
    until(bob, "alice's message at bob", &contains("in", "hello bob")).await?;
    let layout = js(
        bob,
        "return [getComputedStyle(document.getElementById('sidebar')).display, \
         getComputedStyle(document.getElementById('pane')).display];",
    )
    .await?;
    ensure!(
        layout == json!(["none", "flex"]),
        "phone chat layout {layout}"
    );

    // bob answers on two lines (Shift+Enter), sent with Enter.
    type_into(
        bob,
        "#composer",
        &format!("hi alice{SHIFT}{ENTER}{RELEASE}line two{ENTER}"),
    )
    .await?;
    until(bob, "bob's answer", &contains("out", "hi alice\nline two")).await?;
    let out = js(bob, &texts("out")).await?;
    ensure!(out == json!(["hi alice\nline two"]), "bob sent {out}");

    // alice sees the answer live, and that bob read her message.
    until(
        alice,
        "bob's answer at alice",
        &contains("in", "hi alice\nline two"),
    )
    .await?;
    until(
        alice,
        "the read receipt",
        "return document.querySelector('#messages .msg.out .status')?.dataset.status === 'read';",
    )
    .await?;
    readme_screenshot(alice).await?;

    // alice verifies bob: the safety number with its QR code, then marked.
    click(alice, "#verify").await?;
    let shown = until(
        alice,
        "the safety number and its QR code",
        "const d = document.getElementById('verify-digits').dataset.digits; \
         const q = document.getElementById('verify-qr'); \
         return d && !q.hidden && q.complete && q.naturalWidth >= 200 ? d : null;",
    )
    .await?;
    ensure!(
        shown
            .as_str()
            .is_some_and(|d| d.len() == 60 && d.chars().all(|c| c.is_ascii_digit())),
        "safety number {shown}"
    );
    click(alice, "#verify-mark").await?;
    until(
        alice,
        "bob marked verified",
        "return document.getElementById('verify-state').textContent === 'Verified.';",
    )
    .await?;
    js(
        alice,
        "document.getElementById('verify-dialog').close(); return true;",
    )
    .await?;
    Ok(())
}

/// With `HUSH_README_SCREENSHOT=FILE`, saves what alice sees (1280x800) as
/// the README's picture of `hush web`.
async fn readme_screenshot(alice: &Browser) -> Result<()> {
    let Some(path) = std::env::var_os("HUSH_README_SCREENSHOT") else {
        return Ok(());
    };
    let png = alice.screenshot().await?;
    std::fs::write(&path, png)?;
    Ok(())
}

async fn attacks(s: &Scene) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    let port = s.web_a.addr.port();
    // No secret: bob's browser has no session with alice's hush web.
    goto(bob, &s.web_a.base()).await?;
    let text = js(bob, "return document.body.innerText;").await?;
    ensure!(
        text.as_str()
            .is_some_and(|t| t.contains("Open the link") && !t.contains("alice")),
        "without the secret: {text}"
    );
    // DNS rebinding: evil.test resolves to 127.0.0.1, alice's browser
    // visits it on hush web's port.
    goto(alice, &format!("http://evil.test:{port}/")).await?;
    let text = js(alice, "return document.body.innerText;").await?;
    ensure!(
        text.as_str().is_some_and(|t| t.starts_with("Refused")),
        "foreign Host: {text}"
    );
    // bob writes while alice is away: unread on her side.
    goto(bob, &s.web_b.base()).await?;
    until(
        bob,
        "bob's app again",
        "return document.getElementById('me').textContent === 'bob';",
    )
    .await?;
    until(
        bob,
        "alice in bob's list",
        "return document.querySelector('button.conv[data-name=\"alice\"]') !== null;",
    )
    .await?;
    js(
        bob,
        "document.querySelector('button.conv[data-name=\"alice\"]').click(); return true;",
    )
    .await?;
    until(bob, "bob's history", &contains("out", "hi alice\nline two")).await?;
    type_into(bob, "#composer", &format!("are you there?{ENTER}")).await?;
    until(
        bob,
        "bob's question delivered",
        "const s = [...document.querySelectorAll('#messages .msg.out')].pop()\
         ?.querySelector('.status')?.dataset.status; return s === 'delivered';",
    )
    .await?;
    // Another origin on this machine posts with alice's cookie attached:
    // "mark read" and a forged message, both refused (403 for the Origin).
    let conv = s.conv_a.get().context("alice's conversation number")?;
    let (evil, server) = evil_page(&s.web_a.base(), *conv);
    goto(alice, &evil).await?;
    until(
        alice,
        "the forged posts to finish",
        "return document.title === 'done';",
    )
    .await?;
    let _ = tokio::task::spawn_blocking(move || server.join()).await;
    // Nothing happened: alice's own app (her session still works) shows
    // bob's question unread and only her real message sent.
    goto(alice, &s.web_a.base()).await?;
    until(
        alice,
        "alice's app again",
        "return document.getElementById('me').textContent === 'alice';",
    )
    .await?;
    until(
        alice,
        "bob's question, still unread",
        "return document.querySelector('button.conv[data-name=\"bob\"] .unread')?.textContent === '1';",
    )
    .await?;
    js(
        alice,
        "document.querySelector('button.conv[data-name=\"bob\"]').click(); return true;",
    )
    .await?;
    until(alice, "the history", &contains("in", "are you there?")).await?;
    let out = js(alice, &texts("out")).await?;
    ensure!(out == json!(["hello bob"]), "alice's messages: {out}");
    Ok(())
}

#[test]
fn two_users_chat_live_in_browsers_and_the_guard_holds() {
    let Some((chromium, driver_bin)) = tools() else {
        return;
    };
    let server = Server::start();
    let alice_user = User::register(&server, "alice");
    let bob_user = User::register(&server, "bob");
    let profiles = tempfile::tempdir().unwrap();
    let driver = Driver::start(&driver_bin);
    runtime().block_on(async {
        let outcome = tokio::time::timeout(WHOLE, async {
            let scene = Scene {
                conv_a: std::sync::OnceLock::new(),
                alice: browser(
                    &driver,
                    &chromium,
                    &profiles.path().join("a"),
                    (1280, 800),
                    false,
                )
                .await?,
                bob: browser(
                    &driver,
                    &chromium,
                    &profiles.path().join("b"),
                    (390, 844),
                    true,
                )
                .await?,
                web_a: Web::start(&alice_user),
                web_b: Web::start(&bob_user),
            };
            let mut result = chat(&scene).await;
            if result.is_ok() {
                result = attacks(&scene).await;
            }
            if result.is_err() {
                screenshots(
                    &[("alice", &scene.alice), ("bob", &scene.bob)],
                    "two_users_chat_live",
                )
                .await;
            }
            for b in [scene.alice.clone(), scene.bob.clone()] {
                let _ = tokio::time::timeout(WAIT, b.close()).await;
            }
            result
        })
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e:#}"),
            Err(_) => panic!("the browser test took longer than {WHOLE:?}"),
        }
    });
}
