//! The app's features in a real browser (headless Chromium through
//! chromedriver, the harness in `common/browser.rs`), against a real
//! `hush-server` and two real `hush web` processes: alice at desktop size
//! (1280x800), bob at a phone's (390x844). A long history opens at its
//! newest page and loads older ones; replies, edits, deletes and
//! disappearing messages go both ways live; a picture is sent with a
//! progress bar and shown inline as a thumbnail, a document downloads; a
//! group is made, managed (members, name, leaving) and used, with who read
//! what; search finds a message far back and opens it; settings, devices
//! and a notification for a message that arrives in the background.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/browser.rs"]
mod kit;

use std::time::Duration;

use anyhow::{Result, ensure};
use common::png::png;

use common::{Server, User};
use fantoccini::Client as Browser;
use kit::*;
use serde_json::json;

/// The whole test, browsers included.
const WHOLE: Duration = Duration::from_secs(300);
/// Messages in the long history (more than the app's page of 50).
const LONG: usize = 60;

/// Sets the disappearing timer from the header's menu.
async fn set_timer(b: &Browser, secs: u32) -> Result<()> {
    js(
        b,
        &format!(
            "const s = document.getElementById('timer'); s.focus(); s.value = '{secs}';\
             s.dispatchEvent(new Event('change')); return true;"
        ),
    )
    .await?;
    Ok(())
}

/// Replies, edits, deletes and disappearing messages, both ways live.
async fn changes(s: &Scene) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    // bob answers alice's last message.
    act(bob, "m59", "reply").await?;
    let ctx = until(
        bob,
        "the reply bar",
        "const c = document.getElementById('context'); return !c.hidden && c.textContent;",
    )
    .await?;
    ensure!(
        ctx.as_str()
            .is_some_and(|t| t.contains("Replying to alice: m59")),
        "reply bar: {ctx}"
    );
    type_into(bob, "#composer", &format!("got them all{ENTER}")).await?;
    let parts = until(bob, "bob's reply", &message_parts("got them all")).await?;
    ensure!(parts[0] == json!("alice: m59"), "bob's quote: {parts}");
    let parts = until(alice, "the reply at alice", &message_parts("got them all")).await?;
    ensure!(parts[0] == json!("You: m59"), "alice's quote: {parts}");

    // alice edits m59: bob sees the new text, marked, and in his quote.
    act(alice, "m59", "edit").await?;
    type_into(
        alice,
        "#composer",
        &format!("{CONTROL}a{RELEASE}m59, edited{ENTER}"),
    )
    .await?;
    let parts = until(alice, "the edit at alice", &message_parts("m59, edited")).await?;
    ensure!(
        parts[2].as_str().is_some_and(|m| m.contains("edited")),
        "no edited mark: {parts}"
    );
    let parts = until(bob, "the edit at bob", &message_parts("m59, edited")).await?;
    ensure!(
        parts[2].as_str().is_some_and(|m| m.contains("edited")),
        "no edited mark at bob: {parts}"
    );
    until(
        bob,
        "the edited quote",
        &format!(
            "return {}?.[0] === 'alice: m59, edited';",
            expr(&message_parts("got them all"))
        ),
    )
    .await?;

    // alice deletes m58 for everyone, confirming in the dialog.
    act(alice, "m58", "delete").await?;
    until(
        alice,
        "the delete dialog",
        "return document.getElementById('delete-dialog').open;",
    )
    .await?;
    click(alice, "#delete-confirm").await?;
    let gone = "return [...document.querySelectorAll('#messages .msg .text')]\
                .some(e => e.textContent === 'm58') === false && \
                [...document.querySelectorAll('#messages .msg.deleted')].length === 1;";
    until(alice, "m58 deleted at alice", gone).await?;
    until(bob, "m58 deleted at bob", gone).await?;

    // A disappearing timer from the menu reaches bob; a short one (set
    // through the API, as a bot would) makes a message vanish on both.
    set_timer(alice, 30).await?;
    until(
        bob,
        "bob's timer",
        "return document.getElementById('timer').value === '30';",
    )
    .await?;
    let conv = js(
        alice,
        "return document.querySelector('button.conv[data-name=\"bob\"]').dataset.id;",
    )
    .await?;
    let status = fetch_status(
        alice,
        "PUT",
        &format!(
            "/api/conversations/{}/disappearing",
            conv.as_str().unwrap_or_default()
        ),
        json!({"seconds": 3}),
    )
    .await?;
    ensure!(status == json!(204), "setting 3 s: {status}");
    until(
        bob,
        "bob's 3 s timer",
        "return document.getElementById('timer').value === '3';",
    )
    .await?;
    type_into(alice, "#composer", &format!("vanishing{ENTER}")).await?;
    let parts = until(
        bob,
        "the vanishing message at bob",
        &message_parts("vanishing"),
    )
    .await?;
    ensure!(
        parts[2].as_str().is_some_and(|m| m.contains("disappears")),
        "no disappearing mark: {parts}"
    );
    for b in [alice, bob] {
        let gone = format!("return {} === null;", expr(&message_parts("vanishing")));
        until(b, "the message vanished", &gone).await?;
    }
    set_timer(alice, 0).await?;
    until(
        bob,
        "the timer off at bob",
        "return document.getElementById('timer').value === '0';",
    )
    .await?;
    Ok(())
}

/// A picture and a document, sent from the file picker with a progress
/// bar; the picture shows inline at bob as a thumbnail (decrypted by his
/// hush, scaled by his browser) and opens whole; the document downloads.
async fn files(s: &Scene, dir: &std::path::Path) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    let picture = dir.join("sunset.png");
    std::fs::write(&picture, png(640, 480, [200, 30, 40]))?;
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "meet at noon\n")?;
    // Watch the progress bar move.
    js(
        alice,
        "window.seenProgress = []; new MutationObserver(() => window.seenProgress.push(\
         document.getElementById('upload-bar').value)).observe(\
         document.getElementById('upload-bar'), {attributes: true}); return true;",
    )
    .await?;
    let input = tokio::time::timeout(WAIT, alice.find(fantoccini::Locator::Css("#file"))).await??;
    input.send_keys(&picture.display().to_string()).await?;
    until(
        alice,
        "the picture at alice",
        "return document.querySelector('#messages .msg.out .thumb[data-ready=\"true\"]') !== null;",
    )
    .await?;
    let seen = js(alice, "return window.seenProgress;").await?;
    let seen: Vec<f64> = seen
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    ensure!(
        seen.iter().any(|v| *v >= 0.99) && seen.len() >= 2,
        "the progress bar did not move: {seen:?}"
    );
    let hidden = js(alice, "return document.getElementById('upload').hidden;").await?;
    ensure!(hidden == json!(true), "the progress bar stays");
    // bob: a thumbnail, scaled down, of the right colour.
    let thumb = until(
        bob,
        "the thumbnail at bob",
        "const c = document.querySelector('#messages .msg.in .thumb[data-ready=\"true\"]');\
         if (!c) return null; const p = c.getContext('2d').getImageData(1, 1, 1, 1).data;\
         return [c.width, c.height, p[0], p[1], p[2]];",
    )
    .await?;
    ensure!(thumb == json!([320, 240, 200, 30, 40]), "thumbnail {thumb}");
    let label = js(
        bob,
        "return document.querySelector('#messages .msg.in button.picture').getAttribute('aria-label');",
    )
    .await?;
    ensure!(label == json!("Open picture sunset.png"), "label {label}");
    // Opened whole, with the keyboard.
    js(
        bob,
        "document.querySelector('#messages .msg.in button.picture').focus(); return true;",
    )
    .await?;
    bob.active_element().await?.send_keys(ENTER).await?;
    let full = until(
        bob,
        "the whole picture",
        "const i = document.getElementById('picture-full');\
         return document.getElementById('picture-dialog').open && i.complete && i.naturalWidth;",
    )
    .await?;
    ensure!(full == json!(640), "whole picture {full}");
    js(
        bob,
        "document.getElementById('picture-dialog').close(); return true;",
    )
    .await?;

    // A document: a download link at bob, whose bytes are the file's.
    let input = tokio::time::timeout(WAIT, alice.find(fantoccini::Locator::Css("#file"))).await??;
    input.send_keys(&notes.display().to_string()).await?;
    let href = until(
        bob,
        "the download link",
        "return document.querySelector('#messages .msg.in a.file')?.getAttribute('href');",
    )
    .await?;
    let got = tokio::time::timeout(
        WAIT,
        bob.execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch(arguments[0]).then(async r => done([r.status, r.headers.get('content-disposition'), await r.text()]));",
            vec![href],
        ),
    )
    .await??;
    ensure!(
        got == json!([
            200,
            "attachment; filename*=UTF-8''notes.txt",
            "meet at noon\n"
        ]),
        "download {got}"
    );
    Ok(())
}

/// A group made, managed and used from the app: members added and
/// removed in the members dialog, renamed, per-member receipts in a
/// message's details, and bob leaving.
async fn groups(s: &Scene) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    // alice makes the group from the sidebar.
    js(
        alice,
        "document.getElementById('new-group').open = true; return true;",
    )
    .await?;
    type_into(alice, "#new-group-name", "crew").await?;
    type_into(alice, "#new-group-members", &format!("bob{ENTER}")).await?;
    until(
        alice,
        "the new group open",
        "return document.getElementById('title').textContent === '#crew';",
    )
    .await?;
    click(alice, "#members").await?;
    let members = "return [...document.querySelectorAll('#group-members li')]\
                   .map(li => li.firstChild.textContent).join(',');";
    until(
        alice,
        "the members list",
        &format!("return {} === 'alice (you),bob';", expr(members)),
    )
    .await?;
    type_into(alice, "#group-add", &format!("carol{ENTER}")).await?;
    until(
        alice,
        "carol added",
        &format!("return {} === 'alice (you),bob,carol';", expr(members)),
    )
    .await?;
    click(alice, "#group-members button[data-remove=\"carol\"]").await?;
    until(
        alice,
        "carol removed",
        &format!("return {} === 'alice (you),bob';", expr(members)),
    )
    .await?;
    let label = js(
        alice,
        "return document.querySelector('#group-members button[data-remove=\"bob\"]').getAttribute('aria-label');",
    )
    .await?;
    ensure!(
        label == json!("Remove bob"),
        "remove button labelled {label}"
    );
    js(
        alice,
        "document.getElementById('group-rename').value = ''; return true;",
    )
    .await?;
    type_into(alice, "#group-rename", &format!("crew two{ENTER}")).await?;
    until(
        alice,
        "the new name",
        "return document.getElementById('title').textContent === '#crew two';",
    )
    .await?;
    js(
        alice,
        "document.getElementById('group-dialog').close(); return true;",
    )
    .await?;
    until(
        bob,
        "the group at bob",
        "return document.querySelector('button.conv[data-name=\"crew two\"]') !== null;",
    )
    .await?;

    // A message, read by bob: alice sees who read it.
    type_into(alice, "#composer", &format!("to the crew{ENTER}")).await?;
    open_conv(bob, "crew two").await?;
    until(
        bob,
        "the group message at bob",
        &contains("in", "to the crew"),
    )
    .await?;
    until(
        alice,
        "read by bob",
        "return document.querySelector('#messages .msg.out button.status')?.dataset.status === 'read';",
    )
    .await?;
    act(alice, "to the crew", "info").await?;
    let info = until(
        alice,
        "the receipts dialog",
        "return document.getElementById('info-dialog').open && \
         [...document.querySelectorAll('#info-members li')].map(li => li.textContent).join(',');",
    )
    .await?;
    ensure!(info == json!("bob: read"), "per-member receipts: {info}");
    js(
        alice,
        "document.getElementById('info-dialog').close(); return true;",
    )
    .await?;

    // bob leaves from his members dialog: alice's list of members shrinks.
    click(bob, "#members").await?;
    click(bob, "#group-leave").await?;
    until(
        bob,
        "the group gone at bob",
        "return document.querySelector('button.conv[data-name=\"crew two\"]') === null;",
    )
    .await?;
    click(alice, "#members").await?;
    until(
        alice,
        "bob gone",
        &format!("return {} === 'alice (you)';", expr(members)),
    )
    .await?;
    js(
        alice,
        "document.getElementById('group-dialog').close(); return true;",
    )
    .await?;
    Ok(())
}

/// Search across all conversations and in one, opening a result at its
/// message; the settings (presence, profile name, linked devices); and a
/// notification for a message that arrives while the tab is in the
/// background, once alice opted in.
async fn search_and_settings(s: &Scene) -> Result<()> {
    let (alice, bob) = (&s.alice, &s.bob);
    // m3 is far back (older pages must load to show it).
    click(alice, "#search-all").await?;
    type_into(alice, "#search-query", &format!("m3{ENTER}")).await?;
    let found = until(
        alice,
        "search results",
        "const r = [...document.querySelectorAll('#search-results .conv-last')].map(e => e.textContent);\
         return r.length > 0 && r;",
    )
    .await?;
    let want: Vec<String> = (30..40)
        .rev()
        .map(|i| format!("You: m{i}"))
        .chain(["You: m3".to_owned()])
        .collect();
    ensure!(found == json!(want), "results {found}");
    js(alice, "[...document.querySelectorAll('#search-results button.result')].pop().click(); return true;").await?;
    until(
        alice,
        "m3 shown and marked",
        "const li = document.querySelector('#messages .msg.found');\
         return li && li.querySelector('.text').textContent === 'm3' && document.activeElement === li;",
    )
    .await?;
    // In one conversation: nothing of another.
    open_conv(alice, "bob").await?;
    click(alice, "#search-here").await?;
    js(
        alice,
        "document.getElementById('search-query').value = ''; return true;",
    )
    .await?;
    type_into(alice, "#search-query", &format!("crew{ENTER}")).await?;
    until(
        alice,
        "no result here",
        "return document.getElementById('search-state').textContent === 'Nothing found.';",
    )
    .await?;
    js(
        alice,
        "document.getElementById('search-dialog').close(); return true;",
    )
    .await?;

    // Settings: this device listed, presence kept.
    click(alice, "#settings").await?;
    until(
        alice,
        "this device",
        "return [...document.querySelectorAll('#devices li')].some(li => li.textContent.includes('(this one)'));",
    )
    .await?;
    js(
        alice,
        "const s = document.getElementById('presence'); s.value = 'nobody';\
         s.dispatchEvent(new Event('change')); return true;",
    )
    .await?;
    until(
        alice,
        "saved",
        "return document.getElementById('settings-state').textContent === 'Saved.';",
    )
    .await?;
    type_into(alice, "#display-name", &format!("Alice A.{ENTER}")).await?;
    until(
        alice,
        "the profile saved",
        "return document.getElementById('settings-state').textContent.startsWith('Profile name shared');",
    )
    .await?;

    // Notifications: opted in (the browser allows them, see `browser`),
    // then a message while alice's tab is in the background.
    js(
        alice,
        "const Real = window.Notification; window.shown = []; window.seen = [];\
         document.addEventListener('visibilitychange', () => window.seen.push(document.visibilityState));\
         window.Notification = class extends Real {\
           constructor(title, o) { super(title, o); window.shown.push([title, o.body]); } };\
         return true;",
    )
    .await?;
    click(alice, "#notify").await?;
    until(
        alice,
        "notifications on",
        "return localStorage.getItem('hush-notify') === 'on';",
    )
    .await?;
    js(
        alice,
        "document.getElementById('settings-dialog').close(); return true;",
    )
    .await?;
    open_conv(bob, "alice").await?;
    let app_tab = alice.window().await?;
    let other = alice.new_window(true).await?;
    alice.switch_to_window(other.handle).await?;
    goto(alice, "about:blank").await?;
    // Let the app's tab learn it is in the background before bob writes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    type_into(bob, "#composer", &format!("ping{ENTER}")).await?;
    until(bob, "ping sent", &contains("out", "ping")).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.switch_to_window(app_tab).await?;
    let shown = match until(
        alice,
        "the notification",
        "return window.shown.length > 0 && window.shown;",
    )
    .await
    {
        Ok(v) => v,
        Err(e) => {
            let seen = js(alice, "return window.seen;").await?;
            anyhow::bail!("{e:#}; the app tab's visibility changes: {seen}");
        }
    };
    ensure!(shown == json!([["bob", "ping"]]), "notifications: {shown}");
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

async fn features(s: &Scene, dir: &std::path::Path) -> Result<()> {
    long_history(s).await?;
    changes(s).await?;
    files(s, dir).await?;
    groups(s).await?;
    search_and_settings(s).await?;
    Ok(())
}

#[test]
fn paging_changes_files_groups_search_and_settings_in_browsers() {
    let Some((chromium, driver_bin)) = tools() else {
        return;
    };
    let server = Server::start();
    let alice_user = User::register(&server, "alice");
    let bob_user = User::register(&server, "bob");
    let _carol = User::register(&server, "carol");
    in_browsers(
        (chromium, driver_bin),
        (&alice_user, &bob_user),
        "app",
        WHOLE,
        features,
    );
}
