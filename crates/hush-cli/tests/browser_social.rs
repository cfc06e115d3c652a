//! Avatars, polls, forwarding and drag and drop in a real browser
//! (headless Chromium through chromedriver, the harness in
//! `common/browser.rs`), against a real `hush-server` and two real `hush
//! web` processes: alice at desktop size (1280x800), bob at a phone's
//! (390x844). bob picks an avatar in Settings (a wrong file is refused with
//! a clear message) and alice sees it in her conversation list and the
//! conversation's header; alice asks the group a poll from its form and bob
//! votes; alice forwards bob's message to the group; a file dropped on the
//! conversation is sent with the progress bar; and when "bob" comes back
//! with a new identity key, alice's app shows the security warning.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/browser.rs"]
mod kit;

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use common::png::png;

use common::{Server, User};
use fantoccini::Client as Browser;
use kit::*;
use serde_json::json;

/// The whole test, browsers included.
const WHOLE: Duration = Duration::from_secs(240);

/// Picks `file` in the hidden file input `css` (as the file chooser does).
async fn pick(b: &Browser, css: &str, file: &Path) -> Result<()> {
    let input = tokio::time::timeout(WAIT, b.find(fantoccini::Locator::Css(css))).await??;
    input.send_keys(&file.display().to_string()).await?;
    Ok(())
}

/// The avatar picture in `css` once loaded: [width, red, green, blue] of
/// its middle pixel.
fn avatar_pixel(css: &str) -> String {
    format!(
        "const i = document.querySelector({});\
         if (!i || !i.complete || !i.naturalWidth) return null;\
         const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;\
         const g = c.getContext('2d'); g.drawImage(i, 0, 0);\
         const p = g.getImageData(c.width / 2, c.height / 2, 1, 1).data;\
         return [i.naturalWidth, p[0], p[1], p[2]];",
        json!(css)
    )
}

/// bob picks an avatar (first a file that is not a picture, refused with
/// a clear message); alice sees it live in her list and the header, where
/// before there were initials.
async fn avatars(s: &Scene, dir: &Path) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    let initials = until(
        alice,
        "bob's initials",
        "return document.querySelector('button.conv[data-name=\"bob\"] .avatar')?.textContent;",
    )
    .await?;
    ensure!(initials == json!("B"), "initials {initials}");
    click(bob, "#settings").await?;
    let text = dir.join("not-a-picture.txt");
    std::fs::write(&text, "hello")?;
    // The chooser offers pictures only; a file given anyway is refused.
    pick(bob, "#avatar-file", &text).await?;
    until(
        bob,
        "the refusal",
        "return document.getElementById('settings-state').textContent \
         === 'An avatar is a PNG, JPEG or WebP picture.';",
    )
    .await?;
    let face = dir.join("face.png");
    std::fs::write(&face, png(64, 64, [20, 90, 200]))?;
    pick(bob, "#avatar-file", &face).await?;
    until(
        bob,
        "the avatar shared",
        "return document.getElementById('settings-state').textContent \
         === 'Avatar shared with your contacts.';",
    )
    .await?;
    let own = until(
        bob,
        "bob's own avatar",
        &avatar_pixel("#avatar-preview img"),
    )
    .await?;
    ensure!(own == json!([64, 20, 90, 200]), "bob's preview {own}");
    js(
        bob,
        "document.getElementById('settings-dialog').close(); return true;",
    )
    .await?;
    // alice: in the list, then in the header of the conversation.
    let shown = until(
        alice,
        "bob's avatar in alice's list",
        &avatar_pixel("button.conv[data-name=\"bob\"] .avatar img"),
    )
    .await?;
    ensure!(shown == json!([64, 20, 90, 200]), "alice's list {shown}");
    open_conv(alice, "bob").await?;
    let header = until(
        alice,
        "bob's avatar in the header",
        &avatar_pixel("#avatar img"),
    )
    .await?;
    ensure!(header == json!([64, 20, 90, 200]), "header {header}");
    // The group has initials (groups have no avatar).
    let group = js(
        alice,
        "return document.querySelector('button.conv[data-name=\"crew\"] .avatar').textContent;",
    )
    .await?;
    ensure!(group == json!("C"), "group initials {group}");
    Ok(())
}

/// alice asks the group from the poll form; bob votes; both see it.
async fn polls(s: &Scene) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    open_conv(alice, "crew").await?;
    click(alice, "#poll").await?;
    type_into(alice, "#poll-question", "Lunch?").await?;
    type_into(alice, "#poll-options input:nth-child(1)", "Pizza").await?;
    type_into(alice, "#poll-options input:nth-child(2)", "Sushi").await?;
    // Option 3 stays empty (left out); a fourth is added and filled.
    click(alice, "#poll-more").await?;
    type_into(
        alice,
        "#poll-options input:nth-child(4)",
        &format!("Soup{ENTER}"),
    )
    .await?;
    let options = "const li = [...document.querySelectorAll('#messages .msg')]\
                   .find(li => li.querySelector('.text')?.textContent === '📊 Lunch?');\
                   return li && [...li.querySelectorAll('.poll li')].map(o => o.textContent).join('|');";
    let at_alice = until(alice, "the poll at alice", options).await?;
    ensure!(
        at_alice == json!("Pizza 0|Sushi 0|Soup 0"),
        "alice's poll {at_alice}"
    );
    let closed = js(
        alice,
        "return !document.getElementById('poll-dialog').open;",
    )
    .await?;
    ensure!(closed == json!(true), "the poll form stays open");
    open_conv(bob, "crew").await?;
    until(bob, "the poll at bob", options).await?;
    click(
        bob,
        "#messages .msg.in .poll button[aria-label=\"Vote Sushi\"]",
    )
    .await?;
    until(
        alice,
        "bob's vote at alice",
        &format!(
            "return {} === 'Pizza 0|Sushi 1: bob|Soup 0';",
            expr(options)
        ),
    )
    .await?;
    until(
        bob,
        "bob's vote at bob",
        &format!(
            "return {} === 'Pizza 0|Sushi 1: bob|Soup 0';",
            expr(options)
        ),
    )
    .await?;
    Ok(())
}

/// alice forwards bob's message to the group: bob sees it there, marked.
async fn forwarding(s: &Scene) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    open_conv(alice, "bob").await?;
    until(alice, "bob's message", &contains("in", "see you at eight")).await?;
    act(alice, "see you at eight", "forward").await?;
    until(
        alice,
        "the forward dialog",
        "return document.getElementById('forward-dialog').open;",
    )
    .await?;
    click(alice, "#forward-targets button[data-name=\"crew\"]").await?;
    until(
        alice,
        "forwarded",
        "return document.getElementById('forward-state').textContent === 'Forwarded to #crew.';",
    )
    .await?;
    js(
        alice,
        "document.getElementById('forward-dialog').close(); return true;",
    )
    .await?;
    open_conv(bob, "crew").await?;
    let mark = until(
        bob,
        "the forwarded message at bob",
        "const li = [...document.querySelectorAll('#messages .msg.in')]\
         .find(li => li.querySelector('.text')?.textContent === 'see you at eight');\
         return li && li.querySelector('.forwarded')?.textContent;",
    )
    .await?;
    ensure!(mark == json!("Forwarded"), "mark {mark}");
    Ok(())
}

/// A file dragged onto alice's conversation and dropped: the overlay
/// shows, the progress bar moves, bob gets the file.
async fn drag_and_drop(s: &Scene) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    open_conv(alice, "crew").await?;
    // As the browser does for a file dragged from the desktop (WebDriver
    // cannot drag from outside the page): dragenter, dragover, drop.
    let shown = js(
        alice,
        "window.seenProgress = []; new MutationObserver(() => window.seenProgress.push(\
         document.getElementById('upload-bar').value)).observe(\
         document.getElementById('upload-bar'), {attributes: true});\
         const dt = new DataTransfer();\
         dt.items.add(new File(['dropped on the chat\\n'], 'dropped.txt', {type: 'text/plain'}));\
         const on = document.getElementById('scroller');\
         const fire = (t) => on.dispatchEvent(new DragEvent(t, {dataTransfer: dt, bubbles: true, cancelable: true}));\
         fire('dragenter'); fire('dragover');\
         const overlay = !document.getElementById('drop').hidden;\
         const taken = !fire('drop');\
         return [overlay, taken, document.getElementById('drop').hidden];",
    )
    .await?;
    ensure!(
        shown == json!([true, true, true]),
        "overlay shown, drop taken, overlay gone: {shown}"
    );
    let href = until(
        bob,
        "the dropped file at bob",
        "return [...document.querySelectorAll('#messages .msg.in a.file')]\
         .find(a => a.download === 'dropped.txt')?.getAttribute('href');",
    )
    .await?;
    let seen = js(alice, "return window.seenProgress;").await?;
    let seen: Vec<f64> = seen
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    ensure!(
        seen.iter().any(|v| *v >= 0.99),
        "the progress bar did not move: {seen:?}"
    );
    let got = tokio::time::timeout(
        WAIT,
        bob.execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch(arguments[0]).then(async r => done(await r.text()));",
            vec![href],
        ),
    )
    .await??;
    ensure!(got == json!("dropped on the chat\n"), "dropped file {got}");
    Ok(())
}

async fn features(s: &Scene, dir: &Path) -> Result<()> {
    open_app(&s.alice, &s.web_a, "alice").await?;
    open_app(&s.bob, &s.web_b, "bob").await?;
    avatars(s, dir).await?;
    polls(s).await?;
    forwarding(s).await?;
    drag_and_drop(s).await?;
    Ok(())
}

#[test]
fn avatars_polls_forwarding_and_dropped_files_in_browsers() {
    let Some((chromium, driver_bin)) = tools() else {
        return;
    };
    let server = Server::start();
    let alice_user = User::register(&server, "alice");
    let bob_user = User::register(&server, "bob");
    alice_user.ok(&["send", "bob", "hello"]);
    alice_user.json(&["group", "create", "crew", "--members", "bob"]);
    bob_user.ok(&["sync"]);
    bob_user.ok(&["send", "alice", "see you at eight"]);
    alice_user.ok(&["sync"]);
    let key_change = async |s: &Scene, dir: &Path| {
        features(s, dir).await?;
        key_changed(s, &server).await
    };
    in_browsers(
        (chromium, driver_bin),
        (&alice_user, &bob_user),
        "social",
        WHOLE,
        key_change,
    );
}

/// bob's account is deleted and someone registers "bob" again (a new
/// identity key under the same name) and writes to alice: her app shows
/// the security warning, in its alert banner, without a reload.
async fn key_changed(s: &Scene, server: &Server) -> Result<()> {
    server.admin(&["accounts", "delete", "bob"]);
    let new_bob = User::register(server, "bob");
    new_bob.ok(&["send", "alice", "it's me, new phone"]);
    until(
        &s.alice,
        "the key-change warning",
        "const b = document.getElementById('banner'); \
         return !b.hidden && b.getAttribute('role') === 'alert' \
         && b.textContent.includes('identity key of bob has changed');",
    )
    .await?;
    Ok(())
}
