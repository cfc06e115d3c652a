//! Channels in a real browser (headless Chromium through chromedriver, the
//! harness in `common/browser.rs`), against a real `hush-server` and two
//! real `hush web` processes: alice (desktop size) creates a channel from
//! the side list, gets its link and posts from the composer; bob (a
//! phone's size) joins by pasting the link, sees the post, and the next one
//! arrives live, shown as text however it looks like markup. bob's page
//! has no composer (and the API refuses his post). alice attaches a
//! picture with a caption, and bob's page shows its thumbnail. bob leaves, and the
//! channel is gone from his list.

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

/// The texts of the open channel's posts, oldest first.
const POSTS: &str =
    "return [...document.querySelectorAll('#channel-posts .msg .text')].map(e => e.textContent);";

/// A post that looks like markup: shown as these very characters.
const MARKUP: &str = "<img src=x onerror=\"window.pwned=1\"> <b>bold?</b>";

/// alice creates "news" from the side list; the link dialog shows its
/// link, which is returned.
async fn create(b: &Browser) -> Result<String> {
    click(b, "#channel-new").await?;
    type_into(b, "#channel-new-name", &format!("news{ENTER}")).await?;
    let link = until(
        b,
        "the new channel's link",
        "const d = document.getElementById('channel-link-dialog');\
         const v = document.getElementById('channel-link').value;\
         return d.open && v.includes('/channel#') ? v : null;",
    )
    .await?;
    click(b, "#channel-link-dialog form[method=dialog] button").await?;
    let shown = until(
        b,
        "alice's channel pane",
        "const p = document.getElementById('channel-pane');\
         return !p.hidden && document.getElementById('channel-title').textContent === '~news'\
           && [!document.getElementById('channel-composer-form').hidden,\
               !document.getElementById('channel-copy').hidden,\
               document.getElementById('pane').hidden];",
    )
    .await?;
    ensure!(
        shown == json!([true, true, true]),
        "composer, copy link, conversation pane hidden: {shown}"
    );
    Ok(link.as_str().unwrap().to_owned())
}

async fn channels(s: &Scene, dir: &Path) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    open_app(alice, &s.web_a, "alice").await?;
    open_app(bob, &s.web_b, "bob").await?;
    let link = create(alice).await?;
    type_into(alice, "#channel-composer", &format!("hello readers{ENTER}")).await?;
    until(alice, "alice's post", &has_post("hello readers")).await?;

    // bob pastes the link into the join dialog.
    click(bob, "#channel-join").await?;
    type_into(bob, "#channel-join-link", &format!("{link}{ENTER}")).await?;
    until(bob, "alice's post at bob", &has_post("hello readers")).await?;
    let pane = js(
        bob,
        "return [document.getElementById('channel-title').textContent,\
         document.getElementById('channel-composer-form').hidden,\
         document.getElementById('channel-copy').hidden,\
         document.getElementById('sidebar').offsetParent === null];",
    )
    .await?;
    ensure!(
        pane == json!(["~news", true, true, true]),
        "title, no composer, no copy link, the list out of the way on a phone: {pane}"
    );

    // The next post arrives live, below the first, as text.
    type_into(alice, "#channel-composer", &format!("{MARKUP}{ENTER}")).await?;
    until(bob, "the second post at bob", &has_post(MARKUP)).await?;
    let texts = js(bob, POSTS).await?;
    ensure!(
        texts == json!(["hello readers", MARKUP]),
        "bob's posts {texts}"
    );
    let inert = js(
        bob,
        "return [document.querySelectorAll('#channel-posts img, #channel-posts b').length,\
         window.pwned === undefined];",
    )
    .await?;
    ensure!(
        inert == json!([0, true]),
        "markup in a post became elements: {inert}"
    );

    // alice attaches a picture, the composer's text its caption: bob's
    // page shows it as a thumbnail (decrypted by his hush, scaled by his
    // browser) with the caption.
    let picture = dir.join("sunset.png");
    std::fs::write(&picture, png(640, 480, [200, 30, 40]))?;
    type_into(alice, "#channel-composer", "a sunset").await?;
    let input = tokio::time::timeout(
        Duration::from_secs(30),
        alice.find(fantoccini::Locator::Css("#channel-file")),
    )
    .await??;
    input.send_keys(&picture.display().to_string()).await?;
    let thumb = until(
        bob,
        "the picture post's thumbnail at bob",
        "const c = document.querySelector('#channel-posts .thumb[data-ready=\"true\"]');\
         if (!c) return null; const p = c.getContext('2d').getImageData(1, 1, 1, 1).data;\
         return [c.width, c.height, p[0], p[1], p[2]];",
    )
    .await?;
    ensure!(thumb == json!([320, 240, 200, 30, 40]), "thumbnail {thumb}");
    let texts = js(bob, POSTS).await?;
    ensure!(
        texts == json!(["hello readers", MARKUP, "a sunset"]),
        "bob's posts {texts}"
    );

    // bob's device follows, it does not own: the API refuses his post.
    let status = fetch_status(
        bob,
        "POST",
        "/api/channels/news/posts",
        json!({"text": "spam"}),
    )
    .await?;
    ensure!(status == json!(403), "bob's post answered {status}");

    // bob leaves: the channel is gone from his list.
    click(bob, "#channel-leave").await?;
    click(bob, "#channel-leave-confirm").await?;
    until(
        bob,
        "the channel gone from bob's list",
        "return document.getElementById('channel-pane').hidden\
         && document.querySelectorAll('#channels button.chan').length === 0\
         && !document.getElementById('no-channels').hidden;",
    )
    .await?;
    // alice still has it, with both posts counted.
    let item = js(
        alice,
        "return document.querySelector('#channels button.chan[data-name=\"news\"]')?.textContent;",
    )
    .await?;
    ensure!(item == json!("~newsYours · 3 posts"), "alice's list {item}");
    Ok(())
}

/// Whether the open channel shows a post whose text is `text`.
fn has_post(text: &str) -> String {
    format!(
        "return [...document.querySelectorAll('#channel-posts .msg .text')]\
         .some(e => e.textContent === {});",
        json!(text)
    )
}

#[test]
fn a_channel_is_made_joined_by_pasting_its_link_and_read_live_in_browsers() {
    let Some((chromium, driver_bin)) = tools() else {
        return;
    };
    let server = Server::start();
    let alice = User::register(&server, "alice");
    let bob = User::register(&server, "bob");
    in_browsers(
        (chromium, driver_bin),
        (&alice, &bob),
        "channels",
        WHOLE,
        async |s: &Scene, dir: &Path| channels(s, dir).await,
    );
}
