//! The app's features in a real browser (headless Chromium through
//! chromedriver, the harness in `common/browser.rs`), against a real
//! `hush-server` and two real `hush web` processes: alice at desktop size
//! (1280x800), bob at a phone's (390x844). A long history opens at its
//! newest page and loads older ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/browser.rs"]
mod kit;

use std::time::Duration;

use anyhow::{Result, ensure};
use common::web::Web;
use common::{Server, User, runtime};
use fantoccini::Client as Browser;
use kit::*;
use serde_json::json;

/// The whole test, browsers included.
const WHOLE: Duration = Duration::from_secs(300);
/// Messages in the long history (more than the app's page of 50).
const LONG: usize = 60;

struct Scene {
    alice: Browser,
    bob: Browser,
    web_a: Web,
    web_b: Web,
}

/// Sends `texts` from the page's own session, one after another, through
/// the same API the app uses (as a bot would); returns the last answer.
async fn post_all(b: &Browser, body: serde_json::Value, texts: &[String]) -> Result<()> {
    let script = format!(
        "const done = arguments[arguments.length - 1];\
         (async () => {{ for (const text of {texts}) {{\
           const r = await fetch('/api/messages', {{method: 'POST',\
             headers: {{'Content-Type': 'application/json'}},\
             body: JSON.stringify({{...{body}, text}})}});\
           if (!r.ok) return done(`${{r.status}} ${{await r.text()}}`);\
         }} done(true); }})();",
        texts = json!(texts),
    );
    let v = tokio::time::timeout(WAIT * 4, b.execute_async(&script, vec![])).await??;
    ensure!(v == json!(true), "sending failed: {v}");
    Ok(())
}

/// Opens the app and waits until it shows `who` as the account.
async fn open_app(b: &Browser, web: &Web, who: &str) -> Result<()> {
    goto(b, &web.url).await?;
    until(
        b,
        &format!("{who}'s app"),
        &format!(
            "return document.getElementById('me').textContent === {};",
            json!(who)
        ),
    )
    .await?;
    Ok(())
}

/// Opens the conversation named `name` from the list.
async fn open_conv(b: &Browser, name: &str) -> Result<()> {
    let css = format!("button.conv[data-name={}]", json!(name));
    until(
        b,
        &format!("{name} in the list"),
        &format!("return document.querySelector({}) !== null;", json!(css)),
    )
    .await?;
    click(b, &css).await?;
    until(
        b,
        &format!("the conversation {name}"),
        &format!(
            "return document.getElementById('title').textContent.endsWith({});",
            json!(name)
        ),
    )
    .await?;
    Ok(())
}

/// The number of messages shown.
const SHOWN: &str = "return document.querySelectorAll('#messages .msg').length;";

/// A long history opens at its newest page; older pages load on demand.
async fn long_history(s: &Scene) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    open_app(alice, &s.web_a, "alice").await?;
    open_app(bob, &s.web_b, "bob").await?;
    let texts: Vec<String> = (0..LONG).map(|i| format!("m{i}")).collect();
    post_all(alice, json!({"user": "bob"}), &texts).await?;
    until(
        alice,
        "the newest message in alice's list",
        "return document.querySelector('button.conv[data-name=\"bob\"] .conv-last')\
         ?.textContent === 'You: m59';",
    )
    .await?;
    until(
        bob,
        "60 unread at bob",
        "return document.querySelector('button.conv[data-name=\"alice\"] .unread')\
         ?.textContent === '60';",
    )
    .await?;
    open_conv(alice, "bob").await?;
    until(alice, "the first page", &contains("out", "m59")).await?;
    let shown = js(alice, SHOWN).await?;
    ensure!(shown == json!(50), "first page: {shown} messages");
    let older = js(alice, "return !document.getElementById('older').hidden;").await?;
    ensure!(older == json!(true), "no button for older messages");
    // With the keyboard: focus the button and press Enter.
    js(
        alice,
        "document.getElementById('older').focus(); return true;",
    )
    .await?;
    type_into(alice, "#older", ENTER).await?;
    until(
        alice,
        "the older page",
        &format!("{} === {LONG}", SHOWN.trim_end_matches(';')),
    )
    .await?;
    let first = js(
        alice,
        "return document.querySelector('#messages .msg .text').textContent;",
    )
    .await?;
    ensure!(first == json!("m0"), "oldest shown: {first}");
    let older = js(alice, "return document.getElementById('older').hidden;").await?;
    ensure!(
        older == json!(true),
        "the button stays after the oldest page"
    );
    // bob, on a phone, opens it: read, and the list's count goes.
    open_conv(bob, "alice").await?;
    until(bob, "the newest at bob", &contains("in", "m59")).await?;
    until(
        bob,
        "no unread left",
        "return document.querySelector('button.conv[data-name=\"alice\"] .unread') === null;",
    )
    .await?;
    Ok(())
}

async fn features(s: &Scene) -> Result<()> {
    long_history(s).await?;
    Ok(())
}

#[test]
fn the_app_pages_a_long_history() {
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
            let profile = |p: &str| profiles.path().join(p);
            let scene = Scene {
                alice: browser(&driver, &chromium, &profile("a"), (1280, 800), false).await?,
                bob: browser(&driver, &chromium, &profile("b"), (390, 844), false).await?,
                web_a: Web::start(&alice_user),
                web_b: Web::start(&bob_user),
            };
            let result = features(&scene).await;
            if result.is_err() {
                screenshots(&[("alice", &scene.alice), ("bob", &scene.bob)], "app").await;
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
