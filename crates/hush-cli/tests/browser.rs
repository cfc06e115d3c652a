//! `hush web` in a real browser: Debian's headless Chromium driven through
//! chromedriver (WebDriver), against a real `hush-server` and two real
//! `hush web` processes. Two users chat both ways live, alice at desktop
//! size (1280x800), bob at a phone's (390x844) in dark mode; then the
//! browser attacks: a page without the secret, a rebinding name pointed at
//! 127.0.0.1 (foreign Host), and a page on another local port that posts to
//! the API with the session cookie attached (foreign Origin).
//!
//! Skipped (with a notice) only when chromium or chromedriver is missing and
//! `CI` is unset; in CI it fails instead (`.ci/run` installs both). On a
//! failure, each browser's screenshot is saved in the test's output
//! directory and its path printed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::web::Web;
use common::*;
use fantoccini::Client as Browser;
use serde_json::{Value, json};

/// The longest wait for one thing to show in a page.
const WAIT: Duration = Duration::from_secs(30);
/// The whole test, browsers included.
const WHOLE: Duration = Duration::from_secs(240);

fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromium and chromedriver, or `None` to skip outside CI.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_in_path(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find_in_path(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ if std::env::var_os("CI").is_some() => {
            panic!("chromium and chromedriver are needed (CI is set): `.ci/run` installs them")
        }
        _ => {
            eprintln!(
                "SKIPPED: chromium or chromedriver is missing \
                 (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

/// A chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(bin: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless browser session of its own profile and window size.
async fn browser(
    driver: &Driver,
    chromium: &Path,
    profile: &Path,
    size: (u32, u32),
    dark: bool,
) -> Result<Browser> {
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-gpu".to_owned(),
        "--no-first-run".to_owned(),
        "--no-proxy-server".to_owned(),
        format!("--window-size={},{}", size.0, size.1),
        format!("--user-data-dir={}", profile.display()),
        // The rebinding attacker's name resolves to this machine.
        "--host-resolver-rules=MAP evil.test 127.0.0.1".to_owned(),
    ];
    if dark {
        args.push("--force-dark-mode".to_owned());
        args.push("--blink-settings=preferredColorScheme=0".to_owned());
    }
    let mut options = json!({ "binary": chromium, "args": args });
    // Headless windows are at least 500 wide: a phone's viewport is emulated.
    if size.0 < 500 {
        options["mobileEmulation"] = json!({
            "deviceMetrics": { "width": size.0, "height": size.1, "pixelRatio": 1.0 }
        });
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let session = tokio::time::timeout(
        WAIT,
        fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url),
    )
    .await
    .context("chromium did not start in time")??;
    Ok(session)
}

/// Runs `script` (a function body) in the page.
async fn js(b: &Browser, script: &str) -> Result<Value> {
    Ok(tokio::time::timeout(WAIT, b.execute(script, vec![]))
        .await
        .context("a script did not return")??)
}

/// Polls `script` until it returns something other than null, false or "".
async fn until(b: &Browser, what: &str, script: &str) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = js(b, script).await?;
        if !(v.is_null() || v == json!(false) || v == json!("")) {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("waited {WAIT:?} for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn type_into(b: &Browser, css: &str, keys: &str) -> Result<()> {
    let el = tokio::time::timeout(WAIT, b.find(fantoccini::Locator::Css(css)))
        .await
        .context("find")??;
    tokio::time::timeout(WAIT, el.send_keys(keys))
        .await
        .context("send_keys")??;
    Ok(())
}

async fn goto(b: &Browser, url: &str) -> Result<()> {
    tokio::time::timeout(WAIT, b.goto(url))
        .await
        .context("navigation")??;
    Ok(())
}

const ENTER: &str = "\u{E007}";
const SHIFT: &str = "\u{E008}";
/// Releases held modifiers.
const RELEASE: &str = "\u{E000}";

/// The texts of the open conversation's messages, `out` or `in`.
fn texts(dir: &str) -> String {
    format!(
        "return [...document.querySelectorAll('#messages .msg.{dir} .text')]\
         .map(e => e.textContent);"
    )
}

fn contains(dir: &str, text: &str) -> String {
    format!(
        "return [...document.querySelectorAll('#messages .msg.{dir} .text')]\
         .some(e => e.textContent === {});",
        json!(text)
    )
}

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

/// Saves each browser's screenshot into the test's output directory.
async fn screenshots(s: &Scene, name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let _ = std::fs::create_dir_all(&dir);
    for (who, b) in [("alice", &s.alice), ("bob", &s.bob)] {
        let path = dir.join(format!("{name}-{who}.png"));
        match tokio::time::timeout(WAIT, b.screenshot()).await {
            Ok(Ok(png)) => match std::fs::write(&path, png) {
                Ok(()) => eprintln!("screenshot: {}", path.display()),
                Err(e) => eprintln!("cannot save {}: {e}", path.display()),
            },
            other => eprintln!("no screenshot of {who}: {other:?}"),
        }
    }
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
                screenshots(&scene, "two_users_chat_live").await;
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
