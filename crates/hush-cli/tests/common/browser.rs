//! The browser side of the web tests: Debian's headless Chromium driven
//! through chromedriver (WebDriver, `fantoccini`). Included by the browser
//! test files with `#[path]` (it needs fantoccini, which other tests do not).
//!
//! Skipped (with a notice) only when chromium or chromedriver is missing and
//! `CI` is unset; in CI a missing browser fails instead (`.ci/run` installs
//! both). On a failure, each browser's screenshot is saved in the test's
//! output directory and its path printed.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use fantoccini::Client as Browser;
use serde_json::{Value, json};

/// The longest wait for one thing to show in a page.
pub const WAIT: Duration = Duration::from_secs(30);

fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromium and chromedriver, or `None` to skip outside CI.
pub fn tools() -> Option<(PathBuf, PathBuf)> {
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
pub struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub fn start(bin: &Path) -> Driver {
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
pub async fn browser(
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
    // Notifications are allowed without a prompt (the app still asks).
    let prefs = json!({ "profile.default_content_setting_values.notifications": 1 });
    let mut options = json!({ "binary": chromium, "args": args, "prefs": prefs });
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
pub async fn js(b: &Browser, script: &str) -> Result<Value> {
    Ok(tokio::time::timeout(WAIT, b.execute(script, vec![]))
        .await
        .context("a script did not return")??)
}

/// Polls `script` until it returns something other than null, false or "".
pub async fn until(b: &Browser, what: &str, script: &str) -> Result<Value> {
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

pub async fn type_into(b: &Browser, css: &str, keys: &str) -> Result<()> {
    let el = tokio::time::timeout(WAIT, b.find(fantoccini::Locator::Css(css)))
        .await
        .context("find")??;
    tokio::time::timeout(WAIT, el.send_keys(keys))
        .await
        .context("send_keys")??;
    Ok(())
}

pub async fn goto(b: &Browser, url: &str) -> Result<()> {
    tokio::time::timeout(WAIT, b.goto(url))
        .await
        .context("navigation")??;
    Ok(())
}

pub const ENTER: &str = "\u{E007}";
pub const SHIFT: &str = "\u{E008}";
pub const CONTROL: &str = "\u{E009}";
/// Releases held modifiers.
pub const RELEASE: &str = "\u{E000}";

/// The texts of the open conversation's messages, `out` or `in`.
pub fn texts(dir: &str) -> String {
    format!(
        "return [...document.querySelectorAll('#messages .msg.{dir} .text')]\
         .map(e => e.textContent);"
    )
}

pub fn contains(dir: &str, text: &str) -> String {
    format!(
        "return [...document.querySelectorAll('#messages .msg.{dir} .text')]\
         .some(e => e.textContent === {});",
        json!(text)
    )
}

/// Saves each browser's screenshot into the test's output directory.
pub async fn screenshots(browsers: &[(&str, &Browser)], name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let _ = std::fs::create_dir_all(&dir);
    for (who, b) in browsers {
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

/// Clicks the element `css` selects, as a user does (a real click, so it
/// must be visible); `Err` if there is none. The app redraws lists as
/// events arrive, so an element found just before a redraw is found again.
pub async fn click(b: &Browser, css: &str) -> Result<()> {
    for _ in 0..20 {
        let el = tokio::time::timeout(WAIT, b.find(fantoccini::Locator::Css(css)))
            .await
            .context("find")??;
        match tokio::time::timeout(WAIT, el.click())
            .await
            .context("click")?
        {
            Err(e) if e.to_string().contains("stale element") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return Ok(other?),
        }
    }
    bail!("{css} kept going stale")
}

// ---- the app, as its tests drive it ----

/// Sends `texts` from the page's own session, one after another, through
/// the same API the app uses (as a bot would); returns the last answer.
pub async fn post_all(b: &Browser, body: serde_json::Value, texts: &[String]) -> Result<()> {
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
pub async fn open_app(b: &Browser, web: &super::common::web::Web, who: &str) -> Result<()> {
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

/// Opens the conversation named `name` from the list (on a phone, back to
/// the list first).
pub async fn open_conv(b: &Browser, name: &str) -> Result<()> {
    let css = format!("button.conv[data-name={}]", json!(name));
    until(
        b,
        &format!("{name} in the list"),
        &format!("return document.querySelector({}) !== null;", json!(css)),
    )
    .await?;
    js(
        b,
        &format!(
            "if (document.body.classList.contains('open')) document.getElementById('back').click();\
             document.querySelector({}).click(); return true;",
            json!(css)
        ),
    )
    .await?;
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

/// Clicks an action button (`reply`, `edit`, `delete`, `info`, `picture`)
/// of the message whose text is `text`, as a keyboard user does: focus,
/// then Enter (the buttons show on focus).
pub async fn act(b: &Browser, text: &str, action: &str) -> Result<()> {
    let found = js(
        b,
        &format!(
            "const li = [...document.querySelectorAll('#messages .msg')]\
             .find(li => li.querySelector('.text')?.textContent === {});\
             const btn = li?.querySelector('button[data-act=\"{action}\"]');\
             if (!btn) return false; btn.focus(); return document.activeElement === btn;",
            json!(text)
        ),
    )
    .await?;
    ensure!(found == json!(true), "no {action} button on {text:?}");
    let el = b.active_element().await?;
    el.send_keys(ENTER).await?;
    Ok(())
}

/// The texts of the message whose text is `text`: [quote, text, meta].
pub fn message_parts(text: &str) -> String {
    format!(
        "const li = [...document.querySelectorAll('#messages .msg')]\
         .find(li => li.querySelector('.text')?.textContent === {});\
         return li ? [li.querySelector('.quote')?.textContent ?? null, \
         li.querySelector('.text').textContent, li.querySelector('.meta').textContent] : null;",
        json!(text)
    )
}

/// A function body as an expression.
pub fn expr(body: &str) -> String {
    format!("(() => {{ {body} }})()")
}

/// `fetch` from the page (its session): the answer's status.
pub async fn fetch_status(
    b: &Browser,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value> {
    let script = format!(
        "const done = arguments[arguments.length - 1];\
         fetch({}, {{method: {}, headers: {{'Content-Type': 'application/json'}},\
         body: {}}}).then(r => done(r.status), e => done(String(e)));",
        json!(path),
        json!(method),
        json!(body.to_string())
    );
    Ok(tokio::time::timeout(WAIT, b.execute_async(&script, vec![])).await??)
}

/// alice in a desktop-sized browser (1280x800) and bob in a phone-sized one
/// (390x844), each on their own `hush web`.
pub struct Scene {
    pub alice: Browser,
    pub bob: Browser,
    pub web_a: super::common::web::Web,
    pub web_b: super::common::web::Web,
}

/// Runs `test` on a [`Scene`] of `alice` and `bob` (with a directory for its
/// files), within `whole`; on a failure saves both screenshots under
/// `label` and panics with the error.
pub fn in_browsers(
    (chromium, driver_bin): (PathBuf, PathBuf),
    (alice, bob): (&super::common::User, &super::common::User),
    label: &str,
    whole: Duration,
    test: impl AsyncFnOnce(&Scene, &Path) -> Result<()>,
) {
    use super::common::web::Web;
    let profiles = tempfile::tempdir().unwrap();
    let driver = Driver::start(&driver_bin);
    super::common::runtime().block_on(async {
        let outcome = tokio::time::timeout(whole, async {
            let profile = |p: &str| profiles.path().join(p);
            let scene = Scene {
                alice: browser(&driver, &chromium, &profile("a"), (1280, 800), false).await?,
                bob: browser(&driver, &chromium, &profile("b"), (390, 844), false).await?,
                web_a: Web::start(alice),
                web_b: Web::start(bob),
            };
            let result = test(&scene, profiles.path()).await;
            if result.is_err() {
                screenshots(&[("alice", &scene.alice), ("bob", &scene.bob)], label).await;
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
            Err(_) => panic!("the browser test took longer than {whole:?}"),
        }
    });
}
